// Prometheus metrics of the primary. Workers count sessions and bytes themselves (worker-metrics.ts);
// the primary counts reloads and the generation, the same way (labeled-metric.ts, no prom-client), and
// its optional `--metrics HOST:PORT` listener answers /metrics with its own metrics plus the workers'
// summed by prom-client's cluster aggregator. prom-client (with node:http, https, zlib and cluster,
// which it loads) is imported only when that listener starts: loaded, it is about 12 MB of the
// primary's memory, which a daemon without --metrics does not pay.

import type { Server } from 'node:http';
import { Labeled, type MetricJson } from './labeled-metric.ts';

type NoLabels = Record<never, string>;
const NONE: NoLabels = {};

export class PrimaryMetrics {
  readonly reloads = new Labeled('tzorp_reloads_total', 'Policy reloads by result (ok, refused)', 'counter', [
    'result',
  ] as const);
  private readonly generationMetric = new Labeled<never>(
    'tzorp_generation',
    'Number of the running policy generation',
    'gauge',
    [],
  );
  private readonly workersMetric = new Labeled<never>('tzorp_workers', 'Worker processes alive', 'gauge', []);
  readonly kernelLogged = new Labeled(
    'tzorp_kernel_sessions_logged_total',
    'Forwarded and denied connections the kernel logged (services with logging), by verdict',
    'counter',
    ['verdict'] as const,
  );
  private readonly restartsMetric = new Labeled<never>(
    'tzorp_worker_restarts_total',
    'Worker processes that exited unexpectedly and were started again',
    'counter',
    [],
  );
  readonly generation = { set: (n: number) => this.generationMetric.set(NONE, n) };
  readonly workers = { set: (n: number) => this.workersMetric.set(NONE, n) };
  readonly workerRestarts = { inc: () => this.restartsMetric.inc(NONE) };
  private server: Server | null = null;

  /** `collect` returns each worker's metrics as JSON (prom-client's getMetricsAsJSON format). */
  constructor(private readonly collect: () => Promise<unknown[]> = async () => []) {}

  /** The primary's own metrics, as prom-client's getMetricsAsJSON() gives them. */
  json(): MetricJson[] {
    return [
      this.reloads,
      this.generationMetric,
      this.workersMetric,
      this.kernelLogged,
      this.restartsMetric,
    ].map((m) => m.json());
  }

  /** The /metrics text: the primary's metrics, then the workers' summed. */
  async text(): Promise<string> {
    const { AggregatorRegistry } = await import('prom-client');
    type Parts = Parameters<typeof AggregatorRegistry.aggregate>[0];
    const own = await AggregatorRegistry.aggregate([this.json()] as Parts).metrics();
    const parts = (await this.collect()) as Parts;
    const workers = parts.length > 0 ? await AggregatorRegistry.aggregate(parts).metrics() : '';
    return `${own}\n${workers}`;
  }

  /** Serve /metrics on host:port (inside the daemon's namespace; plain HTTP, no auth: bind it to a
   * management address only). */
  async listen(host: string, port: number): Promise<{ host: string; port: number }> {
    const [http, { Registry }] = await Promise.all([import('node:http'), import('prom-client')]);
    const server = http.createServer((req, res) => {
      if (req.method !== 'GET' || (req.url !== '/metrics' && req.url !== '/')) {
        res.writeHead(404).end('not found\n');
        return;
      }
      this.text().then(
        (t) => res.writeHead(200, { 'content-type': Registry.PROMETHEUS_CONTENT_TYPE }).end(t),
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
