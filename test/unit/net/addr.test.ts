import assert from 'node:assert/strict';
import net from 'node:net';
import { test } from 'node:test';
import { TzorpError } from '../../../src/errors.ts';
import { clientFd, closeFd, nativeAvailable, socketAddrsOf } from '../../../src/native/index.ts';
import { canonicalHost, formatAddr, makeAddr, socketAddrs, zorpAddr } from '../../../src/net/index.ts';

test('canonical addresses: IPv4-mapped becomes IPv4, IPv6 in RFC 5952 form, names untouched', () => {
  assert.equal(canonicalHost('::ffff:198.18.1.2'), '198.18.1.2');
  assert.equal(canonicalHost('2001:0DB8:0:0:0:0:0:1'), '2001:db8::1');
  assert.equal(canonicalHost('198.18.1.2'), '198.18.1.2');
  assert.equal(canonicalHost('example.org'), 'example.org');
  assert.deepEqual(makeAddr('::ffff:10.0.0.1', 80), { host: '10.0.0.1', port: 80, family: 4 });
  assert.equal(formatAddr(makeAddr('2001:db8::1', 443)), '[2001:db8::1]:443');
  assert.equal(zorpAddr(makeAddr('2001:db8::1', 443)), 'AF_INET6([2001:db8::1]:443)');
  assert.equal(zorpAddr(null), '(NULL)');
});

/** A connected pair over loopback: the accepted socket and the client. */
async function pair(
  listenHost: string,
  connectHost: string,
): Promise<{ a: net.Socket; c: net.Socket; srv: net.Server }> {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen({ host: listenHost, port: 0, ipv6Only: false }, r));
  const port = (srv.address() as net.AddressInfo).port;
  const accepted = new Promise<net.Socket>((r) => srv.once('connection', r));
  const c = net.connect({ host: connectHost, port });
  await new Promise((r) => c.once('connect', r));
  return { a: await accepted, c, srv };
}

/** What Node's getters say, made canonical (the path without the addon). */
function byGetters(s: net.Socket) {
  return {
    local: makeAddr(s.localAddress!, s.localPort!),
    remote: makeAddr(s.remoteAddress!, s.remotePort!),
  };
}

test('socketAddrs: both ends of IPv4, IPv6 and IPv4-on-a-dual-stack-listener connections, as the getters say', async (t) => {
  for (const [listen, connect] of [
    ['127.0.0.1', '127.0.0.1'],
    ['::1', '::1'],
    ['::', '127.0.0.1'], // the accepted socket is AF_INET6 with a ::ffff: peer: IPv4 text, family 4
  ] as const) {
    const { a, c, srv } = await pair(listen, connect);
    t.after(() => {
      c.destroy();
      a.destroy();
      srv.close();
    });
    for (const s of [a, c]) {
      const got = socketAddrs(s);
      assert.deepEqual(got, byGetters(s), `${listen} <- ${connect}`);
      assert.ok(got && !got.remote.host.startsWith('::ffff:'));
    }
    const local = socketAddrs(a)!.local;
    assert.equal(local.family, connect.includes(':') ? 6 : 4);
    assert.equal(local.port, (srv.address() as net.AddressInfo).port);
    assert.deepEqual(socketAddrs(c)!.remote, local);
    c.destroy();
    a.destroy();
    // closed: no descriptor, no addresses
    await new Promise((r) => setImmediate(r));
    assert.equal(socketAddrs(new net.Socket()), null);
  }
});

test('socketAddrsOf (the addon): null for a socket that is not connected, NATIVE_CALL for a bad fd', {
  skip: nativeAvailable() ? false : 'native addon not built',
}, () => {
  const fd = clientFd(4, {});
  try {
    assert.equal(socketAddrsOf(fd), null);
  } finally {
    closeFd(fd);
  }
  assert.throws(
    () => socketAddrsOf(fd), // closed now: EBADF
    (e: unknown) => e instanceof TzorpError && e.id === 'NATIVE_CALL' && /EBADF/.test(e.message),
  );
});
