// A worker's session metrics. Counted here without prom-client (about 12 MB of memory in every worker
// process); the primary asks for them over IPC and sums the workers' with prom-client's cluster
// aggregator (metrics.ts), so `json()` gives exactly prom-client's getMetricsAsJSON() format.

import { type Cell, Labeled, type MetricJson } from './labeled-metric.ts';

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
