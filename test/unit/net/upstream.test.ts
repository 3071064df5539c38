// connectUpstream on loopback: source port choices (forge_port), abort, refusal.
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { nativeAvailable } from '../../../src/native/index.ts';
import { Cancel, connectUpstream, makeAddr } from '../../../src/net/index.ts';
import { echo, tcpServer } from './helpers.ts';

const noAddon = nativeAvailable() ? false : 'native addon not built';
const cleanups: (() => Promise<void>)[] = [];
after(async () => {
  for (const c of cleanups) await c();
});

test('forge_port random: a random source port from 1024..65535 on the wildcard address', {
  skip: noAddon,
}, async () => {
  const srv = await tcpServer(echo);
  cleanups.push(srv.close);
  const ports = new Set<number>();
  for (let i = 0; i < 5; i++) {
    const s = await connectUpstream({
      target: makeAddr('127.0.0.1', srv.port),
      local: { host: null, port: 'random', transparent: false },
      timeoutMs: 5000,
    });
    assert.ok(s.localPort! >= 1024 && s.localPort! <= 65535);
    ports.add(s.localPort!);
    s.destroy();
  }
  assert.ok(ports.size > 1, 'ports vary');
});

test('an explicit source port is used, and again right after the last one closed (SO_REUSEADDR)', {
  skip: noAddon,
}, async () => {
  const srv = await tcpServer(echo);
  cleanups.push(srv.close);
  const first = await connectUpstream({
    target: makeAddr('127.0.0.1', srv.port),
    local: { host: '127.0.0.1', port: 'random', transparent: false },
    timeoutMs: 5000,
  });
  const port = first.localPort!;
  first.destroy(); // we close first: the port sits in TIME_WAIT
  await new Promise((r) => first.once('close', r));
  // Another server (another 4-tuple): the bind must succeed although the port is in TIME_WAIT.
  const srv2 = await tcpServer(echo);
  cleanups.push(srv2.close);
  const s = await connectUpstream({
    target: makeAddr('127.0.0.1', srv2.port),
    local: { host: '127.0.0.1', port, transparent: false },
    timeoutMs: 5000,
  });
  assert.equal(s.localPort, port);
  s.destroy();
});

test('refusal and abort reject with a reason', async () => {
  const srv = await tcpServer(echo);
  const port = srv.port;
  await srv.close();
  await assert.rejects(
    connectUpstream({ target: makeAddr('127.0.0.1', port), timeoutMs: 5000 }),
    /ECONNREFUSED/,
  );
  const ac = new Cancel();
  ac.abort();
  await assert.rejects(
    connectUpstream({ target: makeAddr('127.0.0.1', port), timeoutMs: 5000, signal: ac }),
    /aborted/,
  );
});

test('a cancel while connecting rejects as aborted; a connect that finished no longer listens to it', async () => {
  const srv = await tcpServer(echo);
  const cancel = new Cancel();
  const p = connectUpstream({ target: makeAddr('127.0.0.1', srv.port), timeoutMs: 5000, signal: cancel });
  cancel.abort(); // before the loop ran the connect's completion
  await assert.rejects(p, /aborted/);
  const again = new Cancel();
  const sock = await connectUpstream({
    target: makeAddr('127.0.0.1', srv.port),
    timeoutMs: 5000,
    signal: again,
  });
  again.abort(); // the session ends after the connect: not this function's business any more
  assert.equal(sock.destroyed, false);
  sock.destroy();
  await srv.close();
});

test('a bind that cannot work fails as NATIVE_CALL naming bind', { skip: noAddon }, async () => {
  await assert.rejects(
    connectUpstream({
      target: makeAddr('127.0.0.1', 9),
      local: { host: '198.18.99.1', port: 0, transparent: false },
      timeoutMs: 5000,
    }),
    (e: unknown) =>
      (e as { code?: string; details?: { call?: string } }).code === 'TZ5001' &&
      (e as { details: { call: string } }).details.call === 'bind',
  );
});
