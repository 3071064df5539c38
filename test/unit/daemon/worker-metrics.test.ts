// The workers' metrics without prom-client (src/daemon/worker-metrics.ts): their JSON is what
// prom-client's own registry gives for the same counts, and the primary's aggregator sums two workers'
// into the same /metrics text.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { AggregatorRegistry, Counter, Gauge, Registry } from 'prom-client';
import { WorkerMetrics } from '../../../src/daemon/worker-metrics.ts';

const summary = (verdict: string, tls?: Record<string, string>) => ({
  verdict,
  durationMs: 1500,
  bytes: { fromClient: 10, toClient: 20, fromServer: 20, toServer: 10 },
  ...(tls ? { counters: tls } : {}),
});

/** The same counts through prom-client, as WorkerMetrics counted them before it went. */
async function withPromClient(feed: (m: WorkerMetrics) => void): Promise<unknown[]> {
  const r = new Registry();
  const c = (name: string, help: string, labelNames: string[]) =>
    new Counter({ name, help, labelNames, registers: [r] });
  const ours = new WorkerMetrics();
  feed(ours);
  const byName = new Map(ours.json().map((m) => [m.name, m]));
  for (const m of ours.json()) {
    const metric =
      m.type === 'gauge'
        ? new Gauge({
            name: m.name,
            help: m.help,
            labelNames: Object.keys(m.values[0]?.labels ?? { service: '' }),
            registers: [r],
          })
        : c(m.name, m.help, Object.keys(m.values[0]?.labels ?? { service: '', mode: '', result: '' }));
    for (const v of byName.get(m.name)!.values) (metric as Counter).inc(v.labels, v.value);
  }
  return r.getMetricsAsJSON();
}

test('worker metrics: prom-client JSON format, summed across workers by the aggregator', async () => {
  const a = new WorkerMetrics();
  const b = new WorkerMetrics();
  a.started('web');
  a.started('web');
  a.ended('web', summary('ACCEPTED'), true);
  b.started('web');
  b.ended('web', summary('DENIED_BY_POLICY', { tls_mode: 'inspect', tls_result: 'accepted' }), true);
  b.started('ftp');
  const json = a.json();
  assert.deepEqual(
    json.map((m) => [m.name, m.type, m.aggregator]),
    [
      ['tzorp_sessions_total', 'counter', 'sum'],
      ['tzorp_sessions_running', 'gauge', 'sum'],
      ['tzorp_session_bytes_total', 'counter', 'sum'],
      ['tzorp_session_seconds_total', 'counter', 'sum'],
      ['tzorp_tls_handshakes_total', 'counter', 'sum'],
      ['tzorp_accept_failures_total', 'counter', 'sum'],
    ],
  );
  assert.deepEqual(json[0]!.values, [{ value: 1, labels: { service: 'web', verdict: 'ACCEPTED' } }]);
  assert.deepEqual(json[1]!.values, [{ value: 1, labels: { service: 'web' } }]);
  assert.deepEqual(json[4]!.values, []);
  // prom-client's own registry with the same counts gives the same JSON
  assert.deepEqual(await withPromClient((m) => Object.assign(m, a)), json);
  const text = await AggregatorRegistry.aggregate([a.json(), b.json()] as unknown as Parameters<
    typeof AggregatorRegistry.aggregate
  >[0]).metrics();
  assert.match(text, /^tzorp_sessions_running\{service="web"\} 1$/m);
  assert.match(text, /^tzorp_sessions_running\{service="ftp"\} 1$/m);
  assert.match(text, /^tzorp_sessions_total\{service="web",verdict="ACCEPTED"\} 1$/m);
  assert.match(text, /^tzorp_sessions_total\{service="web",verdict="DENIED_BY_POLICY"\} 1$/m);
  assert.match(text, /^tzorp_session_bytes_total\{service="web",direction="to_client"\} 40$/m);
  assert.match(text, /^tzorp_session_seconds_total\{service="web"\} 3$/m);
  assert.match(text, /^tzorp_tls_handshakes_total\{service="web",mode="inspect",result="accepted"\} 1$/m);
  assert.throws(() => a.sessions.inc({ service: 'web', verdict: 'ACCEPTED' }, -1), /only goes up/);
});

test("worker metrics: a service's kept cells add up over many sessions, verdicts and services", () => {
  const m = new WorkerMetrics();
  for (let i = 0; i < 3; i++) m.started('web');
  m.ended('web', summary('ACCEPTED'), true);
  m.ended('web', summary('REJECTED'), true);
  m.started('mail');
  m.ended('web', summary('ACCEPTED'), true);
  m.ended('mail', summary('ACCEPTED'), true);
  m.ended('mail', summary('ACCEPTED'), false); // never counted as running: the gauge stays put
  const [sessions, running, bytes, seconds] = m.json();
  assert.deepEqual(sessions!.values, [
    { value: 2, labels: { service: 'web', verdict: 'ACCEPTED' } },
    { value: 1, labels: { service: 'web', verdict: 'REJECTED' } },
    { value: 2, labels: { service: 'mail', verdict: 'ACCEPTED' } },
  ]);
  assert.deepEqual(running!.values, [
    { value: 0, labels: { service: 'web' } },
    { value: 0, labels: { service: 'mail' } },
  ]);
  assert.deepEqual(
    bytes!.values.filter((v) => v.labels.service === 'web').map((v) => [v.labels.direction, v.value]),
    [
      ['from_client', 30],
      ['to_server', 30],
      ['from_server', 60],
      ['to_client', 60],
    ],
  );
  assert.deepEqual(seconds!.values, [
    { value: 4.5, labels: { service: 'web' } },
    { value: 3, labels: { service: 'mail' } },
  ]);
  // the same counts through the label-keyed path land on the same entries
  m.sessions.inc({ service: 'web', verdict: 'REJECTED' });
  m.ended('web', summary('REJECTED'), false);
  assert.equal(m.json()[0]!.values[1]!.value, 3);
});
