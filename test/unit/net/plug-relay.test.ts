// The driver running the real plug core over loopback sockets (plain, non-transparent), with a
// directed router: relay both ways, half-close, large transfer, summary, max_sessions, failover.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import type net from 'node:net';
import { after, test } from 'node:test';
import { runSession, ServiceUpstream, SessionLimiter, type SessionSummary } from '../../../src/net/index.ts';
import { bindCore } from '../../../src/proxy/index.ts';
import { plugModule } from '../../../src/proxy/plug/index.ts';
import { digestReply, echo, exchange, loopbackListener, proxyService, tcpServer } from './helpers.ts';

const cleanups: (() => Promise<void>)[] = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

async function relay(
  upstream: ServiceUpstream,
  options: Record<string, unknown> = {},
  admitted?: () => boolean,
) {
  const summaries: SessionSummary[] = [];
  const waiters: ((s: SessionSummary) => void)[] = [];
  let taken = 0;
  let n = 0;
  const l = await loopbackListener((sock: net.Socket) => {
    runSession({
      id: `svc/test_plug:${++n}`,
      service: 'test_plug',
      socket: sock,
      createCore: bindCore(plugModule, options),
      upstream,
      ...(admitted ? { admitted: admitted() } : {}),
      onEnd: (s) => {
        summaries.push(s);
        const w = waiters.shift();
        if (w) {
          taken++;
          w(s);
        }
      },
    });
  });
  cleanups.push(() => l.close());
  /** The summaries in the order the sessions ended. */
  const nextSummary = () =>
    new Promise<SessionSummary>((r) => {
      if (taken < summaries.length) r(summaries[taken++]!);
      else waiters.push(r);
    });
  return { port: l.local.port, summaries, nextSummary };
}

test('relays both ways with half-close, and summarises the session', async () => {
  const srv = await tcpServer(digestReply);
  cleanups.push(srv.close);
  const up = new ServiceUpstream(proxyService([{ host: '127.0.0.1', port: srv.port }]), {
    transparentUpstream: false,
  });
  const r = await relay(up);
  const payload = randomBytes(3 * 1024 * 1024 + 17);
  const reply = (await exchange(r.port, payload)).toString();
  assert.equal(reply, `${payload.length} ${createHash('sha256').update(payload).digest('hex')}`);
  const s = await r.nextSummary();
  assert.equal(s.verdict, 'ACCEPTED');
  assert.equal(s.bytes.fromClient, payload.length);
  assert.equal(s.bytes.toServer, payload.length);
  assert.equal(s.bytes.fromServer, Buffer.byteLength(reply));
  assert.equal(s.bytes.toClient, Buffer.byteLength(reply));
  assert.equal(s.server?.port, srv.port);
  assert.equal(s.client?.host, '127.0.0.1');
  assert.equal(s.counters.plug_bytes_to_server, payload.length);
});

test('copy_to_server false drops the client bytes', async () => {
  const srv = await tcpServer(digestReply);
  cleanups.push(srv.close);
  const up = new ServiceUpstream(proxyService([{ host: '127.0.0.1', port: srv.port }]), {
    transparentUpstream: false,
  });
  const r = await relay(up, { copy_to_server: false });
  const reply = (await exchange(r.port, 'hello')).toString();
  assert.equal(reply, `0 ${createHash('sha256').digest('hex')}`);
  const s = await r.nextSummary();
  assert.equal(s.bytes.fromClient, 5);
  assert.equal(s.bytes.toServer, 0);
});

test('max_sessions decided by the caller: the driver obeys and leaves the limiter alone', async () => {
  const srv = await tcpServer(digestReply);
  cleanups.push(srv.close);
  const limiter = new SessionLimiter();
  const up = new ServiceUpstream(proxyService([{ host: '127.0.0.1', port: srv.port }], { maxSessions: 1 }), {
    transparentUpstream: false,
    limiter,
  });
  const answers = [false, true];
  const r = await relay(up, {}, () => answers.shift()!);
  await assert.rejects(exchange(r.port, 'x'), /ECONNRESET|EPIPE/);
  assert.equal((await r.nextSummary()).verdict, 'DENIED_BY_LIMIT');
  assert.match((await exchange(r.port, 'abc')).toString(), /^3 /);
  assert.equal((await r.nextSummary()).verdict, 'ACCEPTED');
  assert.equal(limiter.count('test_plug'), 0, 'the caller owns the slots');
});

test('a refused server ends as DENIED_BY_CONNECTION_FAIL and the client sees the close', async () => {
  const srv = await tcpServer(echo);
  const port = srv.port;
  await srv.close(); // nobody listens there any more
  const up = new ServiceUpstream(proxyService([{ host: '127.0.0.1', port }]), { transparentUpstream: false });
  const r = await relay(up);
  await assert.rejects(exchange(r.port, 'x'), /ECONNRESET|EPIPE/);
  const s = await r.nextSummary();
  assert.equal(s.verdict, 'DENIED_BY_CONNECTION_FAIL');
  assert.match(s.info ?? '', /ECONNREFUSED/);
});

test('failover: primary down, the backup serves; the primary is remembered as down', async () => {
  const dead = await tcpServer(echo);
  const deadPort = dead.port;
  await dead.close();
  // The backup on another loopback address, so the failed-target cache (by host) tells them apart.
  const backup = await tcpServer(digestReply, '127.0.0.2');
  cleanups.push(backup.close);
  const up2 = new ServiceUpstream(
    proxyService(
      [
        { host: '127.0.0.1', port: deadPort },
        { host: '127.0.0.2', port: backup.port },
      ],
      { chainer: { type: 'failover', timeoutConnectMs: 5000, timeoutStateMs: 60_000 } },
    ),
    { transparentUpstream: false },
  );
  const r = await relay(up2);
  assert.match((await exchange(r.port, 'abc')).toString(), /^3 /);
  assert.deepEqual(up2.chainer.downTargets(), ['127.0.0.1']);
  const s1 = await r.nextSummary();
  assert.equal(s1.verdict, 'ACCEPTED');
  assert.equal(s1.server?.host, '127.0.0.2');
  assert.match((await exchange(r.port, 'abcd')).toString(), /^4 /);
});

test('max_sessions: a session over the limit is refused with DENIED_BY_LIMIT', async () => {
  // A server that holds connections open until told.
  const held: net.Socket[] = [];
  const srv = await tcpServer((s) => {
    s.on('error', () => {});
    held.push(s);
  });
  cleanups.push(srv.close);
  const limiter = new SessionLimiter();
  const up = new ServiceUpstream(proxyService([{ host: '127.0.0.1', port: srv.port }], { maxSessions: 1 }), {
    transparentUpstream: false,
    limiter,
  });
  const r = await relay(up);
  const { connect } = await import('node:net');
  const first = connect({ port: r.port, host: '127.0.0.1' });
  first.on('error', () => {});
  await new Promise<void>((res) => {
    const t = setInterval(() => {
      if (held.length === 1) {
        clearInterval(t);
        res();
      }
    }, 5);
  });
  assert.equal(limiter.count('test_plug'), 1);
  await assert.rejects(exchange(r.port, 'x'), /ECONNRESET|EPIPE/);
  const refused = await r.nextSummary();
  assert.equal(refused.verdict, 'DENIED_BY_LIMIT');
  first.resetAndDestroy(); // the held server never ends, so a FIN would only half-close the relay
  const s = await r.nextSummary();
  assert.equal(s.verdict, 'ACCEPTED');
  assert.equal(limiter.count('test_plug'), 0);
});
