// The native addon against the real kernel. Transparent sockets need CAP_NET_ADMIN: those tests skip
// without root. Everything binds to loopback or to addresses that are never connected.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import net from 'node:net';
import { test } from 'node:test';
import { TzorpError } from '../../../src/errors.ts';
import {
  addrText,
  clientFd,
  closeFd,
  deferAcks,
  getDeferAcks,
  getMark,
  getTransparent,
  listenFd,
  nativeAvailable,
  setMark,
  socketFd,
} from '../../../src/native/index.ts';

const root = process.getuid?.() === 0;
const noAddon = nativeAvailable() ? false : 'native addon not built (npm run build)';
const needRoot = noAddon || (root ? false : 'needs root (IP_TRANSPARENT, SO_MARK)');

function listenOn(fd: number): Promise<net.Server> {
  const srv = net.createServer((s) => s.end('hi'));
  return new Promise((r) => srv.listen({ fd }, () => r(srv)));
}

test('transparent listener: IP_TRANSPARENT / IPV6_TRANSPARENT read back, Node adopts the fd', {
  skip: needRoot,
}, async () => {
  for (const host of ['127.0.0.1', '::1']) {
    const fd = listenFd(host, 0, { v6Only: true });
    assert.equal(getTransparent(fd), true);
    const srv = await listenOn(fd);
    const port = (srv.address() as net.AddressInfo).port;
    assert.ok(port > 0);
    const got = await new Promise<string>((resolve, reject) => {
      const c = net.connect({ host, port });
      let s = '';
      c.on('data', (d) => {
        s += d;
      });
      c.on('end', () => resolve(s));
      c.on('error', reject);
    });
    assert.equal(got, 'hi');
    srv.close();
  }
});

test('a listener without transparent reads back 0', { skip: noAddon }, () => {
  const fd = listenFd('127.0.0.1', 0, { transparent: false });
  try {
    assert.equal(getTransparent(fd), false);
  } finally {
    closeFd(fd);
  }
});

test('SO_REUSEPORT lets two listeners share one port; without it the second fails with EADDRINUSE', {
  skip: noAddon,
}, () => {
  const a = listenFd('127.0.0.1', 0, { transparent: false, reusePort: true });
  // Learn the port through a server adopting the fd.
  const server = new net.Server();
  server.listen({ fd: a });
  const port = (server.address() as net.AddressInfo).port;
  const b = listenFd('127.0.0.1', port, { transparent: false, reusePort: true });
  closeFd(b);
  assert.throws(
    () => listenFd('127.0.0.1', port, { transparent: false }),
    (e: unknown) =>
      e instanceof TzorpError &&
      e.id === 'NATIVE_CALL' &&
      e.details?.code === 'EADDRINUSE' &&
      e.details?.call === 'bind',
  );
  server.close();
});

test('SO_MARK round trip on a client socket and on a connected net.Socket', { skip: needRoot }, async () => {
  const fd = clientFd(4, { mark: 0x80000005 });
  assert.equal(getMark(fd), 0x80000005);
  setMark(fd, 42);
  assert.equal(getMark(fd), 42);
  closeFd(fd);
  const srv = net.createServer((s) => s.end());
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const c = net.connect({ host: '127.0.0.1', port: (srv.address() as net.AddressInfo).port });
  await new Promise((r) => c.once('connect', r));
  setMark(socketFd(c), 0x1234);
  assert.equal(getMark(socketFd(c)), 0x1234);
  c.destroy();
  srv.close();
});

test('transparent client socket binds a foreign address; IP_BIND_ADDRESS_NO_PORT defers the port', {
  skip: needRoot,
}, () => {
  for (const [fam, host] of [
    [4, '198.18.77.1'],
    [6, '2001:db8:77::1'],
  ] as const) {
    const fd = clientFd(fam, { host, port: 0, transparent: true });
    assert.equal(getTransparent(fd), true);
    const s = new net.Socket({ fd });
    const a = s.address() as net.AddressInfo;
    assert.equal(a.address, host);
    assert.equal(a.port, 0); // no port taken at bind(): chosen per 4-tuple at connect()
    s.destroy();
  }
});

test('noDelay: the socket has TCP_NODELAY from the start (read back by another process)', {
  skip: noAddon,
}, () => {
  const nagle = (fd: number) =>
    spawnSync(
      'python3',
      [
        '-c',
        'import socket; s = socket.socket(fileno=3); print(s.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)); s.detach()',
      ],
      { stdio: ['ignore', 'pipe', 'inherit', fd], encoding: 'utf8' },
    ).stdout.trim();
  for (const fam of [4, 6] as const) {
    const on = clientFd(fam, { noDelay: true });
    const off = clientFd(fam, {});
    try {
      assert.equal(nagle(on), '1');
      assert.equal(nagle(off), '0');
    } finally {
      closeFd(on);
      closeFd(off);
    }
  }
});

test('deferAcks: a listener delays ACKs, the connections it accepts start so; deferAck on a client socket', {
  skip: noAddon,
}, async () => {
  for (const host of ['127.0.0.1', '::1']) {
    const fd = listenFd(host, 0, { transparent: false, v6Only: true });
    const accepted: number[] = [];
    const srv = net.createServer((s) => {
      accepted.push(getDeferAcks(socketFd(s)) ? 1 : 0);
      s.end();
    });
    await new Promise<void>((r) => srv.listen({ fd }, () => r()));
    const port = (srv.address() as net.AddressInfo).port;
    const connectOnce = () =>
      new Promise<void>((resolve, reject) => {
        const c = net.connect({ host, port });
        c.on('error', reject);
        c.on('close', () => resolve());
        c.resume();
      });
    try {
      assert.equal(getDeferAcks(fd), false, "the kernel's default");
      await connectOnce();
      deferAcks(fd, true);
      assert.equal(getDeferAcks(fd), true);
      await connectOnce();
      deferAcks(fd, false);
      assert.equal(getDeferAcks(fd), false);
      await connectOnce();
      assert.deepEqual(accepted, [0, 1, 0], host);
    } finally {
      srv.close();
    }
  }
  for (const fam of [4, 6] as const) {
    const on = clientFd(fam, { noDelay: true, deferAck: true });
    const off = clientFd(fam, { noDelay: true });
    try {
      assert.equal(getDeferAcks(on), true);
      assert.equal(getDeferAcks(off), false);
    } finally {
      closeFd(on);
      closeFd(off);
    }
  }
  assert.throws(() => deferAcks(-1, true), TypeError);
});

test('a foreign address without transparent fails naming bind and EADDRNOTAVAIL', { skip: noAddon }, () => {
  assert.throws(
    () => clientFd(4, { host: '198.18.77.1', port: 0 }),
    (e: unknown) =>
      e instanceof TzorpError &&
      e.code === 'TZ5001' &&
      e.details?.call === 'bind' &&
      e.details?.code === 'EADDRNOTAVAIL' &&
      /bind failed with EADDRNOTAVAIL/.test(e.message),
  );
});

test('bad arguments are TypeErrors, not crashes', { skip: noAddon }, () => {
  assert.throws(() => listenFd('not-an-address', 0), TypeError);
  assert.throws(() => listenFd('127.0.0.1', 70000), TypeError);
  assert.throws(() => clientFd(4, { host: '::1' }), /does not match the family/);
  assert.throws(() => setMark(-1, 1), TypeError);
  assert.throws(
    () => getMark(987654),
    (e: unknown) => e instanceof TzorpError && e.details?.code === 'EBADF',
  );
});

test('socketFd: the fd of a connected socket; a clear error for one without', { skip: noAddon }, () => {
  assert.throws(
    () => socketFd(new net.Socket()),
    (e: unknown) => e instanceof TzorpError && e.id === 'NATIVE_CALL',
  );
});

test('an addon that is not built gives NATIVE_MISSING with the fix', () => {
  const r = spawnSync(
    process.execPath,
    [
      '--import',
      'tsx',
      '-e',
      "import('./src/native/index.ts').then(m => { try { m.listenFd('127.0.0.1', 0) } catch (e) { console.log(e.code, e.message) } console.log('available', m.nativeAvailable()) })",
    ],
    { env: { ...process.env, TZORP_NATIVE_ADDON: '/nonexistent/tzorp_native.node' }, encoding: 'utf8' },
  );
  assert.match(r.stdout, /TZ5002 the native addon is not built .*npm run build/);
  assert.match(r.stdout, /available false/);
});

test('address text: IPv4 dotted, IPv6 as RFC 5952 / the URL standard writes it, v4-mapped as IPv4', {
  skip: noAddon,
}, () => {
  // a seeded generator: groups are zero often, so runs of zeros of every length and place occur
  let seed = 12345;
  const rnd = () => {
    seed = (seed * 1103515245 + 12345) >>> 0;
    return seed >>> 8;
  };
  for (let n = 0; n < 20_000; n++) {
    const v4 = Buffer.from([rnd() & 255, rnd() & 255, rnd() & 255, rnd() & 255]);
    assert.equal(addrText(v4), [...v4].join('.'));
    const b = Buffer.alloc(16);
    for (let i = 0; i < 8; i++) {
      const r = rnd() % 8;
      const w = r < 4 ? 0 : r === 4 ? rnd() & 0xf : r === 5 ? rnd() & 0xfff : rnd() & 0xffff;
      b.writeUInt16BE(w, 2 * i);
    }
    const first80zero = b.subarray(0, 10).every((x) => x === 0);
    const text = addrText(b);
    if (first80zero && b.readUInt16BE(10) === 0xffff) {
      assert.equal(text, [...b.subarray(12)].join('.'));
      continue;
    }
    if (first80zero && b.readUInt16BE(10) === 0) continue; // (inet_ntop's ::a.b.c.d forms, as before)
    assert.equal(text, new URL(`http://[${text}]/`).hostname.slice(1, -1), `${b.toString('hex')}`);
    assert.equal(
      text,
      new URL(`http://[${b.toString('hex').match(/..../g)!.join(':')}]/`).hostname.slice(1, -1),
    );
  }
  assert.equal(addrText(Buffer.from('20010db8000000000000000000000001', 'hex')), '2001:db8::1');
  assert.equal(addrText(Buffer.from('20010db8000000010000000000000000', 'hex')), '2001:db8:0:1::');
  assert.equal(addrText(Buffer.from('20010db8000000000001000000000000', 'hex')), '2001:db8:0:0:1::');
  assert.equal(addrText(Buffer.from('00000000000000000000000000000001', 'hex')), '::1');
  assert.equal(addrText(Buffer.from('00000000000000000000000000000000', 'hex')), '::');
  assert.equal(addrText(Buffer.from('fe800000000000000000000000000000', 'hex')), 'fe80::');
  assert.equal(addrText(Buffer.from('20010db8000100020003000400050006', 'hex')), '2001:db8:1:2:3:4:5:6');
  assert.equal(addrText(Buffer.from('20010000000100000000000000010000', 'hex')), '2001:0:1::1:0');
  assert.equal(addrText(Buffer.from('00000000000000000000ffffc6120001', 'hex')), '198.18.0.1');
});
