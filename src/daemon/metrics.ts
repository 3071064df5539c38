// Prometheus metrics of the primary (prom-client). Workers count sessions and bytes themselves
// (worker-metrics.ts, without prom-client); the primary counts reloads and the generation, and its
// optional `--metrics HOST:PORT` listener answers /metrics with its own metrics plus the workers'
// summed by prom-client's cluster aggregator.
import http from 'node:http';
import { AggregatorRegistry, Counter, Gauge, Registry } from 'prom-client';

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

  /** `collect` returns each worker's metrics as JSON (prom-client's getMetricsAsJSON format). */
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
