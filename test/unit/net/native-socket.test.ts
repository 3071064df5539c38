// NativeSocket (src/net/native-socket.ts) on loopback against Node's own sockets: reading only when
// resumed, half-close both ways, writes the kernel does not take at once (order, writableLength,
// 'drain', write callbacks), Node's error texts for a refusal and a reset, the close events, and a
// session through the driver on it (client and server side native).
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import net from 'node:net';
import { after, test } from 'node:test';
import fc from 'fast-check';
import type { TzorpError } from '../../../src/errors.ts';
import { clientFd, nativeAvailable } from '../../../src/native/index.ts';
import { Cancel, makeAddr, socketAddrs } from '../../../src/net/index.ts';
import { NativeSocket, nativeIoEligible, nativeSocketCounts } from '../../../src/net/native-socket.ts';
import { connectUpstreamNative } from '../../../src/net/upstream.ts';
import { digestReply, echo, loopbackHttpProxy, socketFds, tcpServer, until } from './helpers.ts';

const noAddon = nativeAvailable() ? false : 'native addon not built';
const cleanups: (() => Promise<void>)[] = [];
after(async () => {
  for (const c of cleanups) await c();
});

/** A 'data' listener that calls `onBody` with the body of each HTTP message (Content-Length framing,
 * none = empty) as it completes. */
function messages(onBody: (body: Buffer) => void): (d: Buffer) => void {
  let buf = Buffer.alloc(0);
  return (d) => {
    buf = Buffer.concat([buf, d]);
    for (;;) {
      const i = buf.indexOf('\r\n\r\n');
      if (i < 0) return;
      const len = Number(/content-length: *(\d+)/i.exec(buf.subarray(0, i).toString('latin1'))?.[1] ?? 0);
      if (buf.length < i + 4 + len) return;
      const body = buf.subarray(i + 4, i + 4 + len);
      buf = buf.subarray(i + 4 + len);
      onBody(body);
    }
  };
}

function connectNative(port: number, host = '127.0.0.1'): Promise<NativeSocket> {
  const s = new NativeSocket(clientFd(host.includes(':') ? 6 : 4, { noDelay: true }));
  return new Promise((resolve, reject) => s.connect(host, port, (e) => (e ? reject(e) : resolve(s))));
}

/** Everything `s` reads until its 'end', and the order of its events. */
function collect(s: NativeSocket): { data: Buffer[]; events: string[]; ended: Promise<Buffer> } {
  const data: Buffer[] = [];
  const events: string[] = [];
  const ended = new Promise<Buffer>((resolve) => {
    s.on('data', (d: Buffer) => data.push(d));
    s.on('end', () => {
      events.push('end');
      resolve(Buffer.concat(data));
    });
  });
  for (const e of ['finish', 'close', 'error', 'drain']) s.on(e, () => events.push(e));
  return { data, events, ended };
}

/** The port of a loopback echo server, closed after the test. */
async function echoPort(): Promise<number> {
  const srv = await tcpServer(echo);
  cleanups.push(srv.close);
  return srv.port;
}

/** A loopback peer (`onPeer` runs as it connects) and a NativeSocket connected to it with its events
 * collected, reading resumed unless `paused`; returns once the peer's side has the connection. */
async function nativePair(
  onPeer: (p: net.Socket) => void = () => {},
  { paused = false } = {},
): Promise<{ s: NativeSocket; c: ReturnType<typeof collect>; peer: net.Socket }> {
  let peer: net.Socket | null = null;
  const srv = await tcpServer((p) => {
    peer = p;
    onPeer(p);
  });
  cleanups.push(srv.close);
  const s = await connectNative(srv.port);
  const c = collect(s);
  if (!paused) s.resume();
  await until(() => peer !== null, 'the peer');
  return { s, c, peer: peer! };
}

test('nothing is read before resume(); then the bytes, the peer FIN as end, our FIN after', {
  skip: noAddon,
}, async () => {
  const s = await connectNative(await echoPort());
  const c = collect(s);
  assert.equal(s.write(Buffer.from('hello ')), true);
  s.write(Buffer.from('world'));
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(c.data.length, 0, 'paused: not read');
  s.resume();
  await until(() => Buffer.concat(c.data).length === 11, 'the echo');
  assert.equal(Buffer.concat(c.data).toString(), 'hello world');
  s.end(); // the echo server ends after our FIN
  assert.equal((await c.ended).toString(), 'hello world');
  await until(() => c.events.includes('close'), 'close');
  assert.deepEqual(
    c.events.filter((e) => e !== 'drain'),
    ['finish', 'end', 'close'],
  );
  assert.equal(s.destroyed, true);
  assert.equal(s._handle, null);
});

test('a sink hears the events before the listeners, with its tag; a sink taken off hears nothing more', {
  skip: noAddon,
}, async () => {
  const port = await echoPort();
  const s = await connectNative(port);
  const heard: string[] = [];
  const sink = {
    onSocketData: (tag: string, d: Buffer) => heard.push(`${tag} sink data ${d}`),
    onSocketEnd: (tag: string) => heard.push(`${tag} sink end`),
    onSocketDrain: (tag: string) => heard.push(`${tag} sink drain`),
    onSocketError: (tag: string, e: Error) => heard.push(`${tag} sink error ${e.message}`),
    onSocketClose: (tag: string) => heard.push(`${tag} sink close`),
  };
  s.setSink(sink, 'client');
  assert.equal(s.hasSink(sink), true);
  s.on('data', (d: Buffer) => heard.push(`listener data ${d}`));
  s.on('end', () => heard.push('listener end'));
  s.on('close', () => heard.push('listener close'));
  s.write(Buffer.from('ping'));
  s.resume();
  await until(() => heard.length >= 2, 'the echo');
  assert.deepEqual(heard.splice(0), ['client sink data ping', 'listener data ping']);
  s.setSink(null);
  assert.equal(s.hasSink(sink), false);
  s.write(Buffer.from('pong'));
  await until(() => heard.length >= 1, 'the second echo');
  s.end();
  await until(() => heard.includes('listener close'), 'close');
  assert.deepEqual(
    heard,
    ['listener data pong', 'listener end', 'listener close'],
    'nothing for the old sink',
  );
  // The sink goes with the close, as the listeners do.
  const s2 = await connectNative(port);
  s2.setSink(sink, 'server');
  s2.resume();
  s2.end();
  await until(() => heard.includes('server sink close'), "the second socket's close");
  assert.deepEqual(heard.slice(3), ['server sink end', 'server sink close']);
  assert.equal(s2.hasSink(sink), false);
});

test('half-close: the peer ends first and we go on writing until we end', { skip: noAddon }, async () => {
  let peer: net.Socket | null = null;
  const got: Buffer[] = [];
  const srv = await tcpServer((p) => {
    peer = p;
    p.on('data', (d: Buffer) => got.push(d));
    p.end('bye'); // FIN right away
  });
  cleanups.push(srv.close);
  const s = await connectNative(srv.port);
  const c = collect(s);
  s.resume();
  assert.equal((await c.ended).toString(), 'bye');
  assert.equal(s.destroyed, false, 'our side still open');
  s.write(Buffer.from('after their FIN'));
  s.end();
  await until(() => c.events.includes('close'), 'close after both FINs');
  await until(() => Buffer.concat(got).toString() === 'after their FIN', 'the peer got our bytes');
  assert.ok(peer);
});

test('bytes and the FIN that came while paused: both delivered on resume (one readiness report for both)', {
  skip: noAddon,
}, async () => {
  const { s, c } = await nativePair((p) => p.end('short and final'), { paused: true }); // bytes and FIN at once
  await new Promise((r) => setTimeout(r, 100)); // both are in the socket before anything is read
  assert.equal(c.data.length, 0);
  s.resume();
  assert.equal((await c.ended).toString(), 'short and final');
  s.end();
  await until(() => c.events.includes('close'), 'close');
});

test('pause and resume in the middle of a stream: nothing read while paused, every byte once after', {
  skip: noAddon,
}, async () => {
  const { s, c, peer } = await nativePair();
  peer.write('one ');
  await until(() => Buffer.concat(c.data).length === 4, 'the first bytes');
  s.pause();
  peer.write('two ');
  await new Promise((r) => setTimeout(r, 50));
  peer.write('three');
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(Buffer.concat(c.data).toString(), 'one ', 'paused: nothing more read');
  s.resume();
  await until(() => Buffer.concat(c.data).length === 13, 'the rest after resume');
  assert.equal(Buffer.concat(c.data).toString(), 'one two three');
  // a pause and a resume with nothing new in between, then more bytes and the end
  s.pause();
  s.resume();
  peer.end(' four');
  assert.equal((await c.ended).toString(), 'one two three four');
  s.destroy();
});

test('a relay handover holds the descriptor (readStop): no reads meanwhile; readStart brings what waits', {
  skip: noAddon,
}, async () => {
  const { s, c, peer } = await nativePair();
  const h = s._handle!;
  h.readStop();
  peer.write('while held');
  await new Promise((r) => setTimeout(r, 80));
  assert.equal(c.data.length, 0, 'held: not read');
  h.readStart();
  await until(() => Buffer.concat(c.data).toString() === 'while held', 'read after readStart');
  peer!.end();
  await c.ended;
  s.destroy();
});

test('writes the kernel cannot take at once wait in order; drain and write callbacks come after', {
  skip: noAddon,
}, async () => {
  let peer: net.Socket | null = null;
  const srv = await tcpServer((p) => {
    peer = p;
    p.pause(); // read nothing yet
    digestReply(p);
    p.pause();
  });
  cleanups.push(srv.close);
  const s = await connectNative(srv.port);
  const c = collect(s);
  s.resume();
  const hash = createHash('sha256');
  let total = 0;
  let full = false;
  const order: number[] = [];
  for (let i = 0; i < 64; i++) {
    const chunk = randomBytes(256 * 1024);
    hash.update(chunk);
    total += chunk.length;
    if (!s.write(chunk, () => order.push(i))) full = true;
  }
  const flushed = new Promise<void>((r) => s.write(Buffer.alloc(0), r));
  assert.ok(full, 'the kernel did not take 16 MiB at once');
  assert.ok(s.writableLength > 0);
  await until(() => peer !== null, 'the peer');
  peer!.resume();
  await flushed;
  assert.equal(s.writableLength, 0);
  assert.ok(c.events.includes('drain'));
  assert.deepEqual(
    order,
    Array.from({ length: 64 }, (_, i) => i),
  );
  s.end();
  assert.equal((await c.ended).toString(), `${total} ${hash.digest('hex')}`);
});

test('a destroy with writes still waiting runs their callbacks (a handover waiting on them goes on)', {
  skip: noAddon,
}, async () => {
  const srv = await tcpServer((p) => p.pause()); // never reads
  cleanups.push(srv.close);
  const s = await connectNative(srv.port);
  let full = false;
  for (let i = 0; i < 64 && !full; i++) full = !s.write(randomBytes(256 * 1024));
  assert.ok(full, 'bytes wait');
  let called = false;
  s.write(Buffer.alloc(0), () => {
    called = true;
  });
  await new Promise((r) => setTimeout(r, 30));
  assert.equal(called, false, 'not before the bytes went');
  s.destroy();
  await until(() => called, 'the callback after destroy');
});

test("a refused connect and a peer's reset come with Node's texts and codes", { skip: noAddon }, async () => {
  const probe = await tcpServer(() => {});
  const port = probe.port;
  await probe.close(); // nothing listens there now
  await assert.rejects(connectNative(port), (e: TzorpError) => {
    assert.equal(e.id, 'SOCKET_IO');
    assert.equal(e.details?.code, 'ECONNREFUSED');
    assert.equal(e.message, `connect ECONNREFUSED 127.0.0.1:${port}`);
    return true;
  });
  const srv = await tcpServer((p) => p.once('data', () => p.resetAndDestroy()));
  cleanups.push(srv.close);
  const s = await connectNative(srv.port);
  s.write(Buffer.from('x'));
  const errors: TzorpError[] = [];
  let hadError: boolean | null = null;
  s.on('error', (e: TzorpError) => errors.push(e));
  s.on('close', (h: boolean) => {
    hadError = h;
  });
  s.resume();
  await until(() => hadError !== null, 'close');
  assert.equal(hadError, true);
  assert.equal(errors.length, 1);
  assert.equal(errors[0]!.message, 'read ECONNRESET');
  assert.equal(errors[0]!.details?.code, 'ECONNRESET');
});

test('bytes that arrived before a reset are read before its error', { skip: noAddon }, async () => {
  const srv = await tcpServer((p) => {
    p.on('error', () => {});
    p.once('data', () => {
      p.write(Buffer.alloc(100_000, 7));
      // the reset right behind the bytes (nothing read them yet: the client is paused)
      setTimeout(() => p.resetAndDestroy(), 50);
    });
  });
  cleanups.push(srv.close);
  const s = await connectNative(srv.port);
  s.write(Buffer.from('go'));
  let got = 0;
  const errors: string[] = [];
  let closed = false;
  s.on('data', (d: Buffer) => {
    got += d.length;
  });
  s.on('error', (e: Error) => errors.push(e.message));
  s.on('close', () => {
    closed = true;
  });
  await new Promise((r) => setTimeout(r, 300)); // the reset has arrived
  s.resume();
  await until(() => closed, 'close');
  assert.equal(got, 100_000, 'every byte before the reset');
  assert.deepEqual(errors, ['read ECONNRESET']);
});

test('resetAndDestroy sends a reset; destroy closes once, on a later tick, and lets its listeners go', {
  skip: noAddon,
}, async () => {
  const peerErrors: string[] = [];
  const srv = await tcpServer((p) => {
    p.on('error', (e: NodeJS.ErrnoException) => peerErrors.push(e.code ?? ''));
  });
  cleanups.push(srv.close);
  const s = await connectNative(srv.port);
  let closes = 0;
  s.on('close', () => closes++);
  s.resetAndDestroy();
  s.destroy();
  assert.equal(closes, 0, 'not in the same tick');
  await until(() => closes === 1 && peerErrors.length === 1, 'close and the peer reset');
  assert.equal(peerErrors[0], 'ECONNRESET');
  await new Promise((r) => setTimeout(r, 20));
  assert.equal(closes, 1);
  // Nothing comes after 'close', so nothing keeps its listeners (and what their closures reach).
  assert.deepEqual(s.eventNames(), [], 'no listener left after close');
  let late = false;
  assert.equal(
    s.write(Buffer.from('x'), () => {
      late = true;
    }),
    false,
    'writes after close go nowhere',
  );
  await until(() => late, "a late write's callback still runs");
});

test('addresses come from the descriptor; connectUpstreamNative refuses, aborts and connects', {
  skip: noAddon,
}, async () => {
  const port = await echoPort();
  const s = await connectUpstreamNative({ target: makeAddr('127.0.0.1', port), timeoutMs: 5000 });
  const a = socketAddrs(s);
  assert.ok(a);
  assert.equal(a.remote.port, port);
  assert.equal(a.local.host, '127.0.0.1');
  s.destroy();
  const aborted = new Cancel();
  aborted.abort();
  await assert.rejects(
    connectUpstreamNative({ target: makeAddr('127.0.0.1', port), timeoutMs: 5000, signal: aborted }),
    /aborted/,
  );
  const probe = await tcpServer(() => {});
  await probe.close();
  await assert.rejects(
    connectUpstreamNative({ target: makeAddr('127.0.0.1', probe.port), timeoutMs: 5000 }),
    (e: TzorpError) =>
      e.id === 'CONNECT_FAILED' && e.details?.code === 'ECONNREFUSED' && /ECONNREFUSED/.test(e.message),
  );
});

test('HTTP sessions through the driver on NativeSockets: keep-alive requests, a 3 MiB upload, nothing leaked', {
  skip: noAddon,
}, async () => {
  const srv = await tcpServer((p) => {
    // an HTTP/1.1 server that answers each request with the length and digest of its body
    p.on('error', () => {});
    p.on(
      'data',
      messages((body) => {
        const text = `${body.length} ${createHash('sha256').update(body).digest('hex')}`;
        p.write(`HTTP/1.1 200 OK\r\nContent-Length: ${text.length}\r\n\r\n${text}`);
      }),
    );
  });
  cleanups.push(srv.close);
  const fdsBefore = socketFds();
  const px = await loopbackHttpProxy(srv.port, {}, false, () => {}, true);
  cleanups.push(px.close);
  const upload = randomBytes(3 * 1024 * 1024 + 7);
  const c = net.connect({ port: px.port, host: '127.0.0.1' });
  const replies: string[] = [];
  c.on(
    'data',
    messages((body) => replies.push(body.toString())),
  );
  await new Promise<void>((r) => c.on('connect', r));
  for (const body of [Buffer.from('one'), upload, Buffer.alloc(0)]) {
    c.write(`POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: ${body.length}\r\n\r\n`);
    c.write(body);
    const want = replies.length + 1;
    await until(() => replies.length === want, `reply ${want}`);
    assert.equal(replies.at(-1), `${body.length} ${createHash('sha256').update(body).digest('hex')}`);
  }
  c.end();
  await until(() => px.summaries.length === 1, 'the summary');
  const sum = px.summaries[0]!;
  assert.equal(sum.verdict, 'ACCEPTED');
  assert.ok(sum.bytes.fromClient > upload.length);
  assert.equal(sum.bytes.fromClient, sum.bytes.toServer);
  assert.equal(sum.bytes.fromServer, sum.bytes.toClient);
  c.destroy();
  await px.close();
  await until(() => socketFds() <= fdsBefore, 'the sessions closed their sockets');
});

test('native I/O runs the HTTP proxy without a TLS layer only, and only when wanted', () => {
  const tls = { mode: 'passthrough' } as never;
  assert.equal(nativeIoEligible({ proxy: 'http' }, true), nativeAvailable());
  assert.equal(nativeIoEligible({ proxy: 'http' }, false), false);
  assert.equal(nativeIoEligible({ proxy: 'http', tls }, true), false);
  assert.equal(nativeIoEligible({ proxy: 'plug' }, true), false);
  assert.equal(nativeIoEligible({ proxy: 'ftp' }, true), false);
});

test('random schedules: peers write in bursts and end, we pause and resume at random and write back; every byte once, in order, nothing left', {
  skip: noAddon,
  timeout: 120_000,
}, async () => {
  await fc.assert(
    fc.asyncProperty(fc.integer({ min: 1, max: 2 ** 31 - 1 }), async (seed) => {
      let x = seed;
      const rnd = (n: number) => {
        x = (Math.imul(x, 1103515245) + 12345) >>> 0;
        return x % n;
      };
      const before = { ...nativeSocketCounts(), fds: socketFds() };
      const CONNS = 24;
      const sent = new Map<number, Buffer>(); // what each peer wrote, by connection
      const gotBack = new Map<number, Buffer[]>(); // what each peer received from us
      const peerDone: Promise<void>[] = [];
      let next = 0;
      const srv = await tcpServer((p) => {
        const n = next++;
        const chunks: Buffer[] = [];
        const back: Buffer[] = [];
        gotBack.set(n, back);
        p.on('data', (d: Buffer) => back.push(d));
        peerDone.push(new Promise((r) => p.on('close', () => r())));
        // the peer writes its number first, then bursts of random sizes at random moments, then ends
        const bursts = 1 + rnd(6);
        let i = 0;
        const head = Buffer.alloc(4);
        head.writeUInt32BE(n);
        chunks.push(head);
        p.write(head);
        const step = () => {
          if (i++ === bursts) {
            sent.set(n, Buffer.concat(chunks));
            p.end();
            return;
          }
          const b = randomBytes(1 + rnd(i % 3 === 0 ? 200_000 : 3000));
          chunks.push(b);
          p.write(b);
          setTimeout(step, rnd(4));
        };
        setTimeout(step, rnd(3));
      });
      try {
        const ours = await Promise.all(Array.from({ length: CONNS }, () => connectNative(srv.port)));
        await Promise.all(
          ours.map(
            (s) =>
              new Promise<void>((resolve, reject) => {
                const got: Buffer[] = [];
                s.on('data', (d: Buffer) => {
                  got.push(d);
                  s.write(d); // echo back what we read, backpressure or not
                  if (rnd(4) === 0) {
                    s.pause();
                    setTimeout(() => s.resume(), rnd(5));
                  }
                });
                s.on('end', () => {
                  const all = Buffer.concat(got);
                  const n = all.readUInt32BE(0);
                  s.end();
                  s.on('close', () => {
                    if (!sent.has(n)) reject(new Error(`peer ${n} not finished`));
                    else if (!all.equals(sent.get(n)!)) reject(new Error(`connection ${n}: bytes differ`));
                    else resolve();
                  });
                });
                s.on('error', reject);
                s.resume();
              }),
          ),
        );
        await Promise.all(peerDone);
        for (const [n, b] of sent) assert.ok(Buffer.concat(gotBack.get(n)!).equals(b), `echo ${n} intact`);
      } finally {
        await srv.close();
      }
      await until(() => nativeSocketCounts().open === before.open, 'no NativeSocket left open');
      await until(() => socketFds() <= before.fds, 'no descriptor left');
    }),
    { numRuns: 4 },
  );
});
