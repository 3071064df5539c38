// The driver running the real HTTP core over loopback: a response body of known length (at least
// DEFAULTS.httpBodyRelayMinBytes still to come) goes from the server to the client on the native
// relay when it is on (relayBody, answered by bodyRelayed 'done'), and in JavaScript when it is off
// ('declined'). Both ways: the same bytes, a pipelined request answered after it on the same
// connections, the same accounting; a server that ends the body early makes the client see the
// connection close, never a short body passed off as complete.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import net from 'node:net';
import { after, test } from 'node:test';
import { DEFAULTS } from '../../../src/defaults.ts';
import { runSession, ServiceUpstream, type SessionSummary } from '../../../src/net/index.ts';
import { httpModule } from '../../../src/proxy/http/index.ts';
import { bindCore } from '../../../src/proxy/index.ts';
import { loopbackListener, proxyService, watchedCores } from './helpers.ts';

const cleanups: (() => Promise<void> | void)[] = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

const BIG = randomBytes(3 * 1024 * 1024 + 5);
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** Keep-alive server: /big answers BIG (in several writes), /small "ok", /short announces BIG's
 * length, sends half of it and closes. Connections it accepted are counted. */
async function bodyServer(): Promise<{ port: number; connections: () => number }> {
  let connections = 0;
  const srv = net.createServer((s) => {
    connections++;
    s.on('error', () => {});
    let buf = '';
    s.on('data', (d: Buffer) => {
      buf += d.toString('latin1');
      for (let i = buf.indexOf('\r\n\r\n'); i >= 0; i = buf.indexOf('\r\n\r\n')) {
        const path = buf.slice(0, i).split(' ')[1];
        buf = buf.slice(i + 4);
        if (path === '/small') s.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok');
        else {
          s.write(`HTTP/1.1 200 OK\r\nContent-Length: ${BIG.length}\r\n\r\n`);
          const end = path === '/short' ? BIG.length >> 1 : BIG.length;
          for (let o = 0; o < end; o += 200_000) s.write(BIG.subarray(o, Math.min(end, o + 200_000)));
          if (path === '/short') s.end();
        }
      }
    });
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  cleanups.push(() => new Promise<void>((r) => srv.close(() => r())));
  return { port: (srv.address() as net.AddressInfo).port, connections: () => connections };
}

/** Send `paths` pipelined on one connection; the bodies of the responses, and whether the connection
 * was closed by the proxy before all of them came. */
function fetchAll(port: number, paths: string[]): Promise<{ bodies: Buffer[]; closedEarly: boolean }> {
  return new Promise((resolve, reject) => {
    const c = net.connect({ port, host: '127.0.0.1' });
    let buf = Buffer.alloc(0);
    const bodies: Buffer[] = [];
    c.on('error', reject);
    c.on('connect', () => c.write(paths.map((p) => `GET ${p} HTTP/1.1\r\nHost: x\r\n\r\n`).join('')));
    c.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      for (;;) {
        const i = buf.indexOf('\r\n\r\n');
        if (i < 0) return;
        const len = Number(/content-length: *(\d+)/i.exec(buf.subarray(0, i).toString('latin1'))?.[1]);
        if (buf.length < i + 4 + len) return;
        bodies.push(buf.subarray(i + 4, i + 4 + len));
        buf = buf.subarray(i + 4 + len);
        if (bodies.length === paths.length) {
          c.end();
          resolve({ bodies, closedEarly: false });
          return;
        }
      }
    });
    c.on('close', () => resolve({ bodies, closedEarly: bodies.length < paths.length }));
  });
}

async function proxy(serverPort: number, nativeRelay: boolean) {
  const upstream = new ServiceUpstream(proxyService([{ host: '127.0.0.1', port: serverPort }]), {
    transparentUpstream: false,
  });
  const events: string[] = [];
  const lines: Record<string, unknown>[] = [];
  const summaries: SessionSummary[] = [];
  const createCore = bindCore(httpModule, {});
  const l = await loopbackListener((sock: net.Socket) => {
    runSession({
      id: 'svc/web:1',
      service: 'web',
      socket: sock,
      createCore: watchedCores(createCore, (ev) => {
        if (ev.type === 'bodyRelayed') events.push(`${ev.reason} ${ev.read} ${ev.written}`);
      }),
      upstream,
      nativeRelay,
      log: (category: string, _level: unknown, _msg: string, fields: Record<string, unknown>) => {
        if (category === 'http.accounting') lines.push(fields);
      },
      onEnd: (s) => summaries.push(s),
    });
  });
  cleanups.push(() => l.close());
  return { port: l.local.port, events, lines, summaries };
}

async function until(cond: () => boolean, what: string): Promise<void> {
  for (let i = 0; !cond(); i++) {
    if (i > 2000) assert.fail(`still waiting: ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

for (const nativeRelay of [true, false]) {
  const mode = `native relay ${nativeRelay ? 'on' : 'off'}`;

  test(`a large response body of known length, then a pipelined request (${mode})`, {
    timeout: 60_000,
  }, async () => {
    const srv = await bodyServer();
    const p = await proxy(srv.port, nativeRelay);
    const r = await fetchAll(p.port, ['/big', '/small', '/big']);
    assert.equal(r.closedEarly, false);
    assert.deepEqual(
      r.bodies.map((b) => b.length),
      [BIG.length, 2, BIG.length],
    );
    assert.equal(sha(r.bodies[0]!), sha(BIG));
    assert.equal(r.bodies[1]!.toString(), 'ok');
    assert.equal(sha(r.bodies[2]!), sha(BIG));
    await until(() => p.summaries.length === 1, 'the summary');
    assert.equal(srv.connections(), 1, 'one server connection kept alive for all three');
    // every relay carried what the reader had not seen yet (at least the threshold), all of it
    assert.equal(p.events.length, 2, JSON.stringify(p.events));
    for (const e of p.events) {
      const [reason, read, written] = e.split(' ');
      if (!nativeRelay) assert.equal(e, 'declined 0 0');
      else {
        assert.equal(reason, 'done');
        assert.equal(read, written);
        assert.ok(Number(read) >= DEFAULTS.httpBodyRelayMinBytes, e);
      }
    }
    assert.deepEqual(
      p.lines.map((x) => [x.url, x.bytes_to_client]),
      [
        ['/big', BIG.length],
        ['/small', 2],
        ['/big', BIG.length],
      ].map(([u, n]) => [`http://x${u}`, n]),
    );
    assert.equal(p.summaries[0]!.bytes.fromServer, p.summaries[0]!.bytes.toClient);
  });

  test(`a server that ends a body early: the client sees the connection close (${mode})`, {
    timeout: 60_000,
  }, async () => {
    const srv = await bodyServer();
    const p = await proxy(srv.port, nativeRelay);
    const r = await fetchAll(p.port, ['/short']);
    assert.equal(r.closedEarly, true);
    assert.equal(r.bodies.length, 0);
    await until(() => p.summaries.length === 1, 'the summary');
    if (nativeRelay) assert.match(p.events[0] ?? '', /^closed /);
  });
}
