// A worker's session metrics. Counted here without prom-client (about 12 MB of memory in every worker
// process); the primary asks for them over IPC and sums the workers' with prom-client's cluster
// aggregator (metrics.ts), so `json()` gives exactly prom-client's getMetricsAsJSON() format.

import { TzorpError } from '../errors.ts';

/** The JSON of one metric as prom-client's aggregator reads it. */
export interface MetricJson {
  help: string;
  name: string;
  type: 'counter' | 'gauge';
  values: { value: number; labels: Record<string, string> }[];
  aggregator: 'sum';
}

/** One label set's value (a Labeled's entry; WorkerMetrics keeps its per-service ones at hand). */
interface Cell<L extends string> {
  value: number;
  labels: Record<L, string>;
}

/** A counter or gauge with labels: one value per label set, kept in the order first seen. */
class Labeled<L extends string> {
  private readonly values = new Map<string, Cell<L>>();

  constructor(
    readonly name: string,
    readonly help: string,
    readonly type: 'counter' | 'gauge',
    private readonly labelNames: readonly L[],
  ) {}

  inc(labels: Record<L, string>, by = 1): void {
    this.add(this.cell(labels), by);
  }

  /** The value of one label set (made, at 0, the first time: from then on it is in json()). */
  cell(labels: Record<L, string>): Cell<L> {
    let key = '';
    for (const n of this.labelNames) key += `${labels[n]}\u0000`;
    let v = this.values.get(key);
    if (!v) {
      const copy = {} as Record<L, string>;
      for (const n of this.labelNames) copy[n] = labels[n];
      v = { value: 0, labels: copy };
      this.values.set(key, v);
    }
    return v;
  }

  /** Add to a cell of this metric's (cell()). */
  add(c: Cell<L>, by: number): void {
    if (this.type === 'counter' && !(by >= 0))
      throw new TzorpError('INTERNAL', `${this.name}: a counter only goes up`);
    c.value += by;
  }

  dec(labels: Record<L, string>, by = 1): void {
    this.inc(labels, -by);
  }

  json(): MetricJson {
    return {
      help: this.help,
      name: this.name,
      type: this.type,
      values: [...this.values.values()].map((v) => ({ value: v.value, labels: { ...v.labels } })),
      aggregator: 'sum',
    };
  }
}

interface ServiceCells {
  running: Cell<'service'> | null;
  verdicts: Map<string, Cell<'service' | 'verdict'>>;
  /** from_client, to_server, from_server, to_client */
  bytes:
    | [
        Cell<'service' | 'direction'>,
        Cell<'service' | 'direction'>,
        Cell<'service' | 'direction'>,
        Cell<'service' | 'direction'>,
      ]
    | null;
  duration: Cell<'service'> | null;
}

/** Per-worker session metrics. */
export class WorkerMetrics {
  readonly sessions = new Labeled(
    'tzorp_sessions_total',
    'Finished proxy sessions by service and verdict (Zorp connection summary verdicts)',
    'counter',
    ['service', 'verdict'],
  );
  readonly running = new Labeled(
    'tzorp_sessions_running',
    'Proxy sessions running now, by service',
    'gauge',
    ['service'],
  );
  readonly bytes = new Labeled(
    'tzorp_session_bytes_total',
    'Bytes relayed by finished sessions, by service and direction',
    'counter',
    ['service', 'direction'],
  );
  readonly duration = new Labeled(
    'tzorp_session_seconds_total',
    'Summed duration of finished sessions, by service',
    'counter',
    ['service'],
  );
  readonly tlsHandshakes = new Labeled(
    'tzorp_tls_handshakes_total',
    'TLS handshakes of services with a tls block, by service, mode and result (accepted, or why not: the alert sent, timeout, client_closed)',
    'counter',
    ['service', 'mode', 'result'],
  );

  readonly acceptFailures = new Labeled(
    'tzorp_accept_failures_total',
    'Connections a natively accepting listener could not take for want of descriptors or memory (the listener pauses 100 ms each time; the connections wait in its backlog), by listener and errno',
    'counter',
    ['listener', 'error'],
  );

  /** Each service's cells of the metrics every session touches, made as first used (so json() lists
   * what it did before): a session's start and end cost no label key and no map lookup per metric. */
  private readonly cells = new Map<string, ServiceCells>();

  private cellsOf(service: string): ServiceCells {
    let c = this.cells.get(service);
    if (!c) {
      c = { running: null, verdicts: new Map(), bytes: null, duration: null };
      this.cells.set(service, c);
    }
    return c;
  }

  started(service: string): void {
    const c = this.cellsOf(service);
    c.running ??= this.running.cell({ service });
    this.running.add(c.running, 1);
  }

  ended(
    service: string,
    s: {
      verdict: string;
      durationMs: number;
      bytes: { fromClient: number; toClient: number; fromServer: number; toServer: number };
      counters?: Record<string, number | string>;
    },
    wasRunning: boolean,
  ): void {
    const c = this.cellsOf(service);
    if (wasRunning) {
      c.running ??= this.running.cell({ service });
      this.running.add(c.running, -1);
    }
    let verdict = c.verdicts.get(s.verdict);
    if (!verdict) {
      verdict = this.sessions.cell({ service, verdict: s.verdict });
      c.verdicts.set(s.verdict, verdict);
    }
    this.sessions.add(verdict, 1);
    c.bytes ??= [
      this.bytes.cell({ service, direction: 'from_client' }),
      this.bytes.cell({ service, direction: 'to_server' }),
      this.bytes.cell({ service, direction: 'from_server' }),
      this.bytes.cell({ service, direction: 'to_client' }),
    ];
    this.bytes.add(c.bytes[0], s.bytes.fromClient);
    this.bytes.add(c.bytes[1], s.bytes.toServer);
    this.bytes.add(c.bytes[2], s.bytes.fromServer);
    this.bytes.add(c.bytes[3], s.bytes.toClient);
    c.duration ??= this.duration.cell({ service });
    this.duration.add(c.duration, s.durationMs / 1000);
    // the TLS layer's accounting (src/proxy/tls/gate.ts): one handshake per session of a tls service
    const mode = s.counters?.tls_mode;
    if (typeof mode === 'string')
      this.tlsHandshakes.inc({ service, mode, result: String(s.counters?.tls_result ?? 'incomplete') });
  }

  /** Every metric, as prom-client's getMetricsAsJSON() gives them (the primary aggregates them). */
  json(): MetricJson[] {
    return [
      this.sessions,
      this.running,
      this.bytes,
      this.duration,
      this.tlsHandshakes,
      this.acceptFailures,
    ].map((m) => m.json());
  }
}
