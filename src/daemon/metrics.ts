// Prometheus metrics (prom-client). Workers count sessions and bytes in their own registry; the primary
// counts reloads and the generation, and its optional `--metrics HOST:PORT` listener answers /metrics
// with its own metrics plus the workers' summed by prom-client's cluster aggregator.
import http from 'node:http';
import { AggregatorRegistry, Counter, Gauge, Registry, register as workerRegistry } from 'prom-client';

/** Per-worker session metrics (in prom-client's default registry, which the aggregator collects). */
export class WorkerMetrics {
  readonly sessions = new Counter({
    name: 'tzorp_sessions_total',
    help: 'Finished proxy sessions by service and verdict (Zorp connection summary verdicts)',
    labelNames: ['service', 'verdict'] as const,
    registers: [workerRegistry],
  });
  readonly running = new Gauge({
    name: 'tzorp_sessions_running',
    help: 'Proxy sessions running now, by service',
    labelNames: ['service'] as const,
    registers: [workerRegistry],
  });
  readonly bytes = new Counter({
    name: 'tzorp_session_bytes_total',
    help: 'Bytes relayed by finished sessions, by service and direction',
    labelNames: ['service', 'direction'] as const,
    registers: [workerRegistry],
  });
  readonly duration = new Counter({
    name: 'tzorp_session_seconds_total',
    help: 'Summed duration of finished sessions, by service',
    labelNames: ['service'] as const,
    registers: [workerRegistry],
  });

  readonly tlsHandshakes = new Counter({
    name: 'tzorp_tls_handshakes_total',
    help: 'TLS handshakes of services with a tls block, by service, mode and result (accepted, or why not: the alert sent, timeout, client_closed)',
    labelNames: ['service', 'mode', 'result'] as const,
    registers: [workerRegistry],
  });

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
}

export class PrimaryMetrics {
  readonly registry = new Registry();
  readonly reloads = new Counter({
    name: 'tzorp_reloads_total',
    help: 'Policy reloads by result (ok, refused)',
    labelNames: ['result'] as const,
    registers: [this.registry],
  });
  readonly generation = new Gauge({
    name: 'tzorp_generation',
    help: 'Number of the running policy generation',
    registers: [this.registry],
  });
  readonly workers = new Gauge({
    name: 'tzorp_workers',
    help: 'Worker processes alive',
    registers: [this.registry],
  });
  readonly kernelLogged = new Counter({
    name: 'tzorp_kernel_sessions_logged_total',
    help: 'Forwarded and denied connections the kernel logged (services with logging), by verdict',
    labelNames: ['verdict'] as const,
    registers: [this.registry],
  });
  readonly workerRestarts = new Counter({
    name: 'tzorp_worker_restarts_total',
    help: 'Worker processes that exited unexpectedly and were started again',
    registers: [this.registry],
  });
  private server: http.Server | null = null;

  /** `collect` returns each worker's registry as JSON (prom-client getMetricsAsJSON). */
  constructor(private readonly collect: () => Promise<unknown[]> = async () => []) {}

  async text(): Promise<string> {
    const own = await this.registry.metrics();
    const parts = (await this.collect()) as Parameters<typeof AggregatorRegistry.aggregate>[0];
    const workers = parts.length > 0 ? await AggregatorRegistry.aggregate(parts).metrics() : '';
    return `${own}\n${workers}`;
  }

  /** Serve /metrics on host:port (inside the daemon's namespace; plain HTTP, no auth: bind it to a
   * management address only). */
  async listen(host: string, port: number): Promise<{ host: string; port: number }> {
    const server = http.createServer((req, res) => {
      if (req.method !== 'GET' || (req.url !== '/metrics' && req.url !== '/')) {
        res.writeHead(404).end('not found\n');
        return;
      }
      this.text().then(
        (t) => res.writeHead(200, { 'content-type': this.registry.contentType }).end(t),
        (e) => res.writeHead(500).end(`${(e as Error).message}\n`),
      );
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    this.server = server;
    const a = server.address();
    return typeof a === 'object' && a ? { host: a.address, port: a.port } : { host, port };
  }

  async close(): Promise<void> {
    const s = this.server;
    this.server = null;
    if (s) await new Promise<void>((r) => s.close(() => r()));
  }
}
