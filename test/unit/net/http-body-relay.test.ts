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
import fc from 'fast-check';
import { DEFAULTS } from '../../../src/defaults.ts';
import { nativeRelayAvailable, nativeRelaysActive } from '../../../src/net/relay.ts';
import { loopbackHttpProxy, RELAY_IO_MODES, socketFds, until as untilLong } from './helpers.ts';

const cleanups: (() => Promise<void> | void)[] = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

const BIG = randomBytes(3 * 1024 * 1024 + 5);
const SMUGGLED = 'HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nevil';
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** Keep-alive server: /big answers BIG (in several writes), /small "ok", /short announces BIG's
 * length, sends half of it and closes. Connections it accepted are counted. */
async function bodyServer(): Promise<{ port: number; connections: () => number }> {
  let connections = 0;
  const srv = net.createServer((s) => {
    connections++;
    s.on('error', () => {});
    let buf = '';
    // a request body being read: its bytes left, and their digest so far
    let upload: { left: number; n: number; h: ReturnType<typeof createHash> } | null = null;
    s.on('data', (d: Buffer) => {
      buf += d.toString('latin1');
      for (;;) {
        if (upload) {
          const take = buf.slice(0, upload.left);
          buf = buf.slice(take.length);
          upload.h.update(Buffer.from(take, 'latin1'));
          upload.n += take.length;
          upload.left -= take.length;
          if (upload.left > 0) return;
          const reply = `${upload.n} ${upload.h.digest('hex')}`;
          s.write(`HTTP/1.1 200 OK\r\nContent-Length: ${reply.length}\r\n\r\n${reply}`);
          upload = null;
        }
        const i = buf.indexOf('\r\n\r\n');
        if (i < 0) return;
        const head = buf.slice(0, i);
        const path = head.split(' ')[1];
        buf = buf.slice(i + 4);
        if (path === '/upload') {
          upload = { left: Number(/content-length: *(\d+)/i.exec(head)?.[1]), n: 0, h: createHash('sha256') };
          continue;
        }
        const chunky = /^\/chunky\/(\d+)\/(\d+)$/.exec(path ?? '');
        if (path === '/small') s.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok');
        else if (chunky) void writeChunky(s, Number(chunky[1]), Number(chunky[2]));
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

/** /chunky/<size>/<seed>: BIG's first `size` bytes in pieces of random sizes (1 byte to 300 KB, or
 * for a third of the bodies at most 4000 bytes, so that no read of the relay fills its buffer) with
 * random pauses, the first piece sometimes in the head's write; half of the bodies are followed, in
 * the same write as their last piece, by a second response nobody asked for (which must never reach
 * the client: the proxy drops that server connection). */
async function writeChunky(s: net.Socket, size: number, seed: number): Promise<void> {
  let x = seed || 1;
  const rnd = (n: number) => {
    x = (x * 1103515245 + 12345) % 2 ** 31;
    return x % n;
  };
  const head = Buffer.from(`HTTP/1.1 200 OK\r\nContent-Length: ${size}\r\n\r\n`);
  const trickle = rnd(3) === 0;
  const junk = rnd(2) === 0 ? Buffer.from(SMUGGLED) : Buffer.alloc(0);
  let o = rnd(2) ? Math.min(size, rnd(70_000)) : 0;
  s.write(Buffer.concat([head, BIG.subarray(0, o)]));
  while (o < size) {
    const max = trickle ? 4000 : rnd(4) === 0 ? 100 : 300_000;
    const n = Math.min(size - o, 1 + rnd(max));
    s.write(o + n === size ? Buffer.concat([BIG.subarray(o, o + n), junk]) : BIG.subarray(o, o + n));
    o += n;
    const pause = trickle ? 2 : rnd(4); // (a trickle pauses every time: no read of the relay fills up)
    if (pause === 1) await new Promise((r) => setImmediate(r));
    else if (pause === 2) await new Promise((r) => setTimeout(r, 1 + rnd(3)));
  }
}

/** Send `paths` pipelined on one connection; the bodies of the responses, and whether the connection
 * was closed by the proxy before all of them came. */
function fetchAll(
  port: number,
  paths: string[],
  upload: Buffer = BIG,
): Promise<{ bodies: Buffer[]; closedEarly: boolean }> {
  return new Promise((resolve, reject) => {
    const c = net.connect({ port, host: '127.0.0.1' });
    let buf = Buffer.alloc(0);
    const bodies: Buffer[] = [];
    c.on('error', reject);
    // (/upload: a POST of `upload`, with Content-Length)
    c.on('connect', () => {
      for (const p of paths)
        if (p === '/upload') {
          c.write(`POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: ${upload.length}\r\n\r\n`);
          c.write(upload);
        } else c.write(`GET ${p} HTTP/1.1\r\nHost: x\r\n\r\n`);
    });
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

async function proxy(serverPort: number, nativeRelay: boolean, nativeIo = false) {
  const events: string[] = [];
  const p = await loopbackHttpProxy(
    serverPort,
    {},
    nativeRelay,
    (ev) => {
      if (ev.type === 'bodyRelayed') events.push(`${ev.reason} ${ev.read} ${ev.written}`);
    },
    nativeIo,
  );
  cleanups.push(p.close);
  return { ...p, events };
}

async function until(cond: () => boolean, what: string): Promise<void> {
  for (let i = 0; !cond(); i++) {
    if (i > 2000) assert.fail(`still waiting: ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

// (native I/O: the sessions run on NativeSockets, as tzorp run's HTTP sessions do)
for (const { nativeRelay, nativeIo, mode } of RELAY_IO_MODES) {
  test(`a large response body of known length, then a pipelined request (${mode})`, {
    timeout: 60_000,
  }, async () => {
    const srv = await bodyServer();
    const p = await proxy(srv.port, nativeRelay, nativeIo);
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

  test(`large request bodies of known length, each followed by a pipelined request (${mode})`, {
    timeout: 60_000,
  }, async () => {
    const srv = await bodyServer();
    const p = await proxy(srv.port, nativeRelay, nativeIo);
    const r = await fetchAll(p.port, ['/upload', '/small', '/upload']);
    assert.equal(r.closedEarly, false);
    const want = `${BIG.length} ${sha(BIG)}`;
    assert.deepEqual(
      r.bodies.map((b) => b.toString()),
      [want, 'ok', want],
    );
    await until(() => p.summaries.length === 1, 'the summary');
    assert.equal(srv.connections(), 1);
    assert.equal(p.events.length, 2, JSON.stringify(p.events));
    for (const e of p.events) {
      if (!nativeRelay) assert.equal(e, 'declined 0 0');
      else assert.match(e, /^done (\d+) \1$/);
    }
    assert.deepEqual(
      p.lines.map((x) => x.bytes_to_server),
      [BIG.length, 0, BIG.length],
    );
  });

  test(`a server that ends a body early: the client sees the connection close (${mode})`, {
    timeout: 60_000,
  }, async () => {
    const srv = await bodyServer();
    const p = await proxy(srv.port, nativeRelay, nativeIo);
    const r = await fetchAll(p.port, ['/short']);
    assert.equal(r.closedEarly, true);
    assert.equal(r.bodies.length, 0);
    await until(() => p.summaries.length === 1, 'the summary');
    if (nativeRelay) assert.match(p.events[0] ?? '', /^closed /);
  });
}

test('body relay stress: bodies in random pieces and pauses, pipelined requests, every byte once, nothing left behind', {
  skip: nativeRelayAvailable() ? false : 'the native addon is not built',
  timeout: 180_000,
}, async () => {
  const srv = await bodyServer();
  const p = await proxy(srv.port, true);
  const base = socketFds();
  await fc.assert(
    fc.asyncProperty(
      fc.array(
        fc.record({
          size: fc.integer({ min: DEFAULTS.httpBodyRelayMinBytes - 1000, max: BIG.length }),
          seed: fc.integer({ min: 1, max: 2 ** 30 }),
        }),
        { minLength: 1, maxLength: 3 },
      ),
      fc.boolean(),
      async (bodies, small) => {
        const paths = bodies.flatMap((b) => [`/chunky/${b.size}/${b.seed}`, ...(small ? ['/small'] : [])]);
        const r = await fetchAll(p.port, paths);
        assert.equal(r.closedEarly, false);
        let i = 0;
        for (const b of bodies) {
          const got = r.bodies[i++]!;
          assert.equal(got.length, b.size);
          assert.ok(got.equals(BIG.subarray(0, b.size)), `body of ${b.size} bytes (seed ${b.seed}) differs`);
          if (small) assert.equal(r.bodies[i++]!.toString(), 'ok');
        }
      },
    ),
    { numRuns: 20 },
  );
  await untilLong(() => p.summaries.length === 20, 'every session ended');
  assert.ok(
    p.events.length > 0 && p.events.every((e) => e.startsWith('done ')),
    JSON.stringify(p.events.slice(0, 5)),
  );
  await untilLong(() => nativeRelaysActive() === 0, 'no relay left');
  await untilLong(() => socketFds() <= base, `socket descriptors back to ${base} (now ${socketFds()})`);
});
