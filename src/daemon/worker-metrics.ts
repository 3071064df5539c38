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

/** A counter or gauge with labels: one value per label set, kept in the order first seen. */
class Labeled<L extends string> {
  private readonly values = new Map<string, { value: number; labels: Record<L, string> }>();

  constructor(
    readonly name: string,
    readonly help: string,
    readonly type: 'counter' | 'gauge',
    private readonly labelNames: readonly L[],
  ) {}

  inc(labels: Record<L, string>, by = 1): void {
    if (this.type === 'counter' && !(by >= 0))
      throw new TzorpError('INTERNAL', `${this.name}: a counter only goes up`);
    let key = '';
    for (const n of this.labelNames) key += `${labels[n]}\u0000`;
    const v = this.values.get(key);
    if (v) v.value += by;
    else {
      const copy = {} as Record<L, string>;
      for (const n of this.labelNames) copy[n] = labels[n];
      this.values.set(key, { value: by, labels: copy });
    }
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

  started(service: string): void {
    this.running.inc({ service });
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
    if (wasRunning) this.running.dec({ service });
    this.sessions.inc({ service, verdict: s.verdict });
    this.bytes.inc({ service, direction: 'from_client' }, s.bytes.fromClient);
    this.bytes.inc({ service, direction: 'to_server' }, s.bytes.toServer);
    this.bytes.inc({ service, direction: 'from_server' }, s.bytes.fromServer);
    this.bytes.inc({ service, direction: 'to_client' }, s.bytes.toClient);
    this.duration.inc({ service }, s.durationMs / 1000);
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
