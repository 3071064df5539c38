// The HTTP core's own cost per keep-alive request, without sockets: the sans-IO core (reader, plan,
// policies, writer) fed a request and nginx's answer in a loop, as the driver feeds it. A breakdown for
// work on the request path, not a comparison with a peer (bench/macro/http.bench.ts is that).
//
//   node --import tsx bench/micro/http-core.bench.ts [--requests 200000] [--rounds 5] [--host NAME]
import { performance } from 'node:perf_hooks';
import type { ProxyCommand, ProxyEvent } from '../../src/proxy/core/types.ts';
import { load } from '../code.ts';

// (the compiled tree, as the daemon runs it: ../code.ts)
const { httpModule } = await load<typeof import('../../src/proxy/http/index.ts')>('proxy/http/index');
const { bindCore } = await load<typeof import('../../src/proxy/index.ts')>('proxy/index');

const arg = (name: string, dflt: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1]! : dflt;
};
const REQUESTS = Number(arg('requests', '200000'));
const ROUNDS = Number(arg('rounds', '5'));
const HOST = arg('host', '198.18.2.3');

const CLIENT = { host: '198.18.1.10', port: 40000, family: 4 as const };
const DEST = {
  host: /^[\d.]+$/.test(HOST) ? HOST : '198.18.2.3',
  port: 80,
  family: 4 as const,
};
const request = Buffer.from(
  `GET / HTTP/1.1\r\nHost: ${HOST}\r\nUser-Agent: wrk\r\nAccept: */*\r\n\r\n`,
  'latin1',
);
const response = Buffer.from(
  'HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Sat, 05 Dec 2026 02:00:00 GMT\r\nContent-Type: text/plain\r\n' +
    'Content-Length: 3\r\nConnection: keep-alive\r\n\r\nok\n',
  'latin1',
);

const core = bindCore(
  httpModule,
  {},
)({
  sessionId: 'svc/bench:1',
  service: 'bench',
  clientZone: 'clients',
  inband: false,
  clientLocal: DEST,
});
let now = 1_000_000;
let sentToClient = 0;
const feed = (e: ProxyEvent): void => {
  const cmds: ProxyCommand[] = core.handle(e);
  for (const c of cmds) if (c.type === 'send' && c.stream === 'client') sentToClient += c.data.length;
};
feed({ type: 'start', now, client: CLIENT, clientLocal: DEST });
// (a copy per event: the driver hands the core a fresh buffer per read, and the reader keeps views)
feed({ type: 'data', now, stream: 'client', data: Buffer.from(request) });
feed({ type: 'connected', now, stream: 'server', local: CLIENT, remote: DEST });
feed({ type: 'data', now, stream: 'server', data: Buffer.from(response) });
// (the answer loses its hop-by-hop Connection header on the way)
const ANSWER = sentToClient;
if (ANSWER < response.length - 30) throw new Error('the core did not answer the first request');

const one = (): void => {
  now += 0.05;
  feed({ type: 'data', now, stream: 'client', data: Buffer.from(request) });
  feed({ type: 'data', now, stream: 'server', data: Buffer.from(response) });
};
for (let i = 0; i < 20_000; i++) one(); // warm-up: the JIT's optimised code
const results: number[] = [];
for (let r = 0; r < ROUNDS; r++) {
  const before = sentToClient;
  const t0 = performance.now();
  for (let i = 0; i < REQUESTS; i++) one();
  const ms = performance.now() - t0;
  if (sentToClient - before !== REQUESTS * ANSWER) throw new Error('responses went missing');
  results.push((ms * 1000) / REQUESTS);
}
results.sort((a, b) => a - b);
console.log(
  `HTTP core, keep-alive request and nginx's answer, Host ${HOST}: median ${results[Math.floor(ROUNDS / 2)]!.toFixed(2)} µs per request (rounds: ${results.map((x) => x.toFixed(2)).join(', ')})`,
);
