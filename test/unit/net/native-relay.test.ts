// The native splice relay (src/native/tzorp_relay.c) under the real driver and plug core, over
// loopback: the handover keeps every byte exactly once (bytes Node had buffered, bytes arriving during
// the handover, half-close either way, resets), summaries and live counts stay exact, idle timeout and
// abort work, and nothing is left behind (no socket descriptor, no relay).
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import net from 'node:net';
import { after, test } from 'node:test';
import fc from 'fast-check';
import {
  openListener,
  runSession,
  ServiceUpstream,
  type SessionHandle,
  type SessionLog,
  type SessionSummary,
} from '../../../src/net/index.ts';
import { nativeRelayAvailable, nativeRelaysActive } from '../../../src/net/relay.ts';
import type { ProxyCommand, ProxyCore, ProxyEvent } from '../../../src/proxy/core/index.ts';
import { bindCore } from '../../../src/proxy/index.ts';
import { plugModule } from '../../../src/proxy/plug/index.ts';
import { digestReply, exchange, proxyService, socketFds, tcpServer, until } from './helpers.ts';

const skip = nativeRelayAvailable() ? false : 'the native addon is not built';

const cleanups: (() => Promise<void>)[] = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

interface Relay {
  port: number;
  summaries: SessionSummary[];
  handles: SessionHandle[];
  handed: { buffered: number }[];
  close: () => Promise<void>;
}

async function relay(
  targetPort: number,
  opts: { nativeRelay?: boolean; options?: Record<string, unknown> } = {},
): Promise<Relay> {
  const up = new ServiceUpstream(proxyService([{ host: '127.0.0.1', port: targetPort }]), {
    transparentUpstream: false,
  });
  const summaries: SessionSummary[] = [];
  const handles: SessionHandle[] = [];
  const handed: { buffered: number }[] = [];
  const log: SessionLog = (_cat, _lvl, msg, fields) => {
    if (msg === 'Streams handed to the native relay')
      handed.push({ buffered: Number(fields.buffered_a) + Number(fields.buffered_b) });
  };
  let n = 0;
  const l = await openListener({
    host: '127.0.0.1',
    port: 0,
    transparent: false,
    onConnection: (socket: net.Socket) => {
      handles.push(
        runSession({
          id: `svc/native:${++n}`,
          service: 'native',
          socket,
          createCore: bindCore(plugModule, opts.options ?? {}),
          upstream: up,
          log,
          nativeRelay: opts.nativeRelay ?? true,
          onEnd: (s) => summaries.push(s),
        }),
      );
    },
  });
  return { port: l.local.port, summaries, handles, handed, close: () => l.close() };
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

test('native relay: both ways with half-close, exact summary, nothing left behind', { skip }, async () => {
  const srv = await tcpServer(digestReply);
  cleanups.push(srv.close);
  const base = socketFds();
  const r = await relay(srv.port);
  const payload = randomBytes(4 * 1024 * 1024 + 3);
  const reply = (await exchange(r.port, payload)).toString();
  assert.equal(reply, `${payload.length} ${sha(payload)}`);
  await until(() => r.summaries.length === 1, 'the summary');
  const s = r.summaries[0]!;
  assert.equal(r.handed.length, 1, 'the session went native');
  assert.equal(s.verdict, 'ACCEPTED');
  assert.equal(s.info, null);
  assert.equal(s.bytes.fromClient, payload.length);
  assert.equal(s.bytes.toServer, payload.length);
  assert.equal(s.bytes.fromServer, reply.length);
  assert.equal(s.bytes.toClient, reply.length);
  assert.equal(s.counters.plug_bytes_from_client, payload.length);
  assert.equal(s.counters.plug_bytes_to_client, reply.length);
  await r.close();
  await until(() => nativeRelaysActive() === 0, 'no relay left');
  await until(() => socketFds() <= base, `socket descriptors back to ${base} (now ${socketFds()})`);
});

test('native relay off: the same session copies in JavaScript', { skip }, async () => {
  const srv = await tcpServer(digestReply);
  cleanups.push(srv.close);
  const r = await relay(srv.port, { nativeRelay: false });
  const payload = randomBytes(100_000);
  assert.equal((await exchange(r.port, payload)).toString(), `${payload.length} ${sha(payload)}`);
  await until(() => r.summaries.length === 1, 'the summary');
  assert.equal(r.handed.length, 0);
  assert.equal(r.summaries[0]!.bytes.toServer, payload.length);
  await r.close();
});

test('native relay: the idle timeout ends the session like the JS one', { skip }, async () => {
  const held: net.Socket[] = [];
  const srv = await tcpServer((s) => {
    s.on('error', () => {});
    held.push(s);
    s.write('hi');
  });
  cleanups.push(srv.close);
  const r = await relay(srv.port, { options: { timeout: 150 } });
  const c = net.connect({ port: r.port, host: '127.0.0.1' });
  c.on('error', () => {});
  c.resume();
  const closed = new Promise<void>((res) => c.on('close', () => res()));
  await closed; // the relay closes the quiet session
  await until(() => r.summaries.length === 1, 'the summary');
  const s = r.summaries[0]!;
  assert.equal(r.handed.length, 1);
  assert.equal(s.info, 'idle timeout (150 ms)');
  assert.equal(s.bytes.toClient, 2);
  await r.close();
});

/** A server that reads and ignores; `side()` is its end of the last connection. */
async function quietServer(): Promise<{ port: number; side: () => net.Socket | null }> {
  let serverSide: net.Socket | null = null;
  const srv = await tcpServer((s) => {
    s.on('error', () => {});
    s.on('data', () => {});
    serverSide = s;
  });
  cleanups.push(srv.close);
  return { port: srv.port, side: () => serverSide };
}

/** A client connected to `port` that reads and ignores. */
async function quietClient(port: number): Promise<net.Socket> {
  const c = net.connect({ port, host: '127.0.0.1' });
  c.on('error', () => {});
  c.on('data', () => {});
  await new Promise<void>((res) => c.on('connect', () => res()));
  return c;
}

test('native relay: live counts while relaying, abort ends it with exact bytes', { skip }, async () => {
  const srv = await quietServer();
  const r = await relay(srv.port);
  const c = await quietClient(r.port);
  await until(() => r.handed.length === 1 && srv.side() !== null, 'the handover');
  c.write(Buffer.alloc(5000, 1));
  srv.side()!.write(Buffer.alloc(700, 2));
  await until(() => {
    const b = r.handles[0]!.snapshot().bytes;
    return b.toServer === 5000 && b.toClient === 700;
  }, 'live counts from the native relay');
  const closed = new Promise<void>((res) => c.on('close', () => res()));
  r.handles[0]!.abort('test');
  await closed;
  await until(() => r.summaries.length === 1, 'the summary');
  const s = r.summaries[0]!;
  assert.equal(s.info, 'aborted: test');
  assert.deepEqual(s.bytes, { fromClient: 5000, toServer: 5000, fromServer: 700, toClient: 700 });
  await r.close();
});

type ClientAct = 'early' | 'late' | 'halfFirst' | 'resetMid';
type ServerAct = 'digest' | 'echoHalf' | 'resetOnData';

/** A server per behaviour: digest (reads to EOF, answers with a digest), echoHalf (echoes and closes
 * its side when the client does), resetOnData (resets at the first byte; closes on a FIN without
 * any, or its socket would stay in CLOSE-WAIT and count as a leaked descriptor). */
function serverFor(act: ServerAct) {
  return (s: net.Socket) => {
    s.on('error', () => {});
    if (act === 'digest') digestReply(s);
    else if (act === 'echoHalf') s.pipe(s);
    else {
      s.once('data', () => s.resetAndDestroy());
      s.on('end', () => s.destroy()); // the relay may close toward it before any byte came
    }
  };
}

test('handover stress: every byte delivered once, one summary per session, no descriptor or relay leaked', {
  skip,
  timeout: 240_000,
}, async () => {
  const servers = new Map<ServerAct, Relay>();
  for (const act of ['digest', 'echoHalf', 'resetOnData'] as const) {
    const srv = await tcpServer(serverFor(act));
    cleanups.push(srv.close);
    servers.set(act, await relay(srv.port));
  }
  const base = socketFds();
  const one = (port: number, cact: ClientAct, sact: ServerAct, payload: Buffer) =>
    new Promise<{ got: Buffer; err: boolean; stuck?: string }>((resolve) => {
      const c = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
      const parts: Buffer[] = [];
      let err = false;
      c.on('data', (d: Buffer) => parts.push(d));
      c.on('error', () => {
        err = true;
      });
      c.on('end', () => c.end());
      // A session that never ends would hang here: fail with what it was instead.
      const t = setTimeout(() => {
        resolve({ got: Buffer.concat(parts), err: true, stuck: `${cact}/${sact}/${payload.length}` });
        c.destroy();
      }, 60_000);
      c.on('close', () => {
        clearTimeout(t);
        resolve({ got: Buffer.concat(parts), err });
      });
      c.on('connect', () => {
        if (cact === 'early')
          c.end(payload); // bytes (and the FIN) before the session even started
        else if (cact === 'late') setTimeout(() => c.end(payload), 20);
        else if (cact === 'halfFirst') {
          // half the bytes now (arriving during the handover), the rest a moment later
          c.write(payload.subarray(0, payload.length >> 1));
          setImmediate(() => c.end(payload.subarray(payload.length >> 1)));
        } else {
          c.write(payload.subarray(0, payload.length >> 1), () => setTimeout(() => c.resetAndDestroy(), 5));
        }
        void sact;
      });
    });
  await fc.assert(
    fc.asyncProperty(
      fc.array(
        fc.record({
          c: fc.constantFrom<ClientAct>('early', 'late', 'halfFirst', 'resetMid'),
          s: fc.constantFrom<ServerAct>('digest', 'echoHalf', 'resetOnData'),
          size: fc.integer({ min: 1, max: 600_000 }),
        }),
        { minLength: 1, maxLength: 12 },
      ),
      async (sessions) => {
        const before = new Map([...servers].map(([k, v]) => [k, v.summaries.length]));
        const results = await Promise.all(
          sessions.map(async (x) => {
            const payload = randomBytes(x.size);
            return { x, payload, res: await one(servers.get(x.s)!.port, x.c, x.s, payload) };
          }),
        );
        for (const { res } of results)
          assert.equal(res.stuck, undefined, `a session never ended: ${res.stuck}`);
        for (const { x, payload, res } of results) {
          if (x.c === 'resetMid' || x.s === 'resetOnData') continue; // a reset loses bytes by design
          if (x.s === 'digest') assert.equal(res.got.toString(), `${payload.length} ${sha(payload)}`);
          else assert.ok(res.got.equals(payload), `echo of ${payload.length} bytes came back whole`);
        }
        // exactly one summary per session
        for (const [k, r] of servers) {
          const want = before.get(k)! + sessions.filter((x) => x.s === k).length;
          await until(() => r.summaries.length >= want, `${k}: ${want} summaries`);
          assert.equal(r.summaries.length, want);
        }
      },
    ),
    { numRuns: 15, seed: Number(process.env.FC_SEED ?? 1414) },
  );
  const all = [...servers.values()];
  // The summaries of whole sessions have exact bytes.
  for (const r of all) for (const s of r.summaries) assert.ok(s.bytes.toServer <= s.bytes.fromClient);
  assert.ok(
    all.some((r) => r.handed.length > 0),
    'sessions went native',
  );
  // Clients that wrote before their session started leave bytes in Node's buffer at the handover.
  assert.ok(
    all.some((r) => r.handed.some((h) => h.buffered > 0)),
    'handovers with bytes Node had buffered',
  );
  for (const r of all) await r.close();
  await until(() => nativeRelaysActive() === 0, 'no relay left');
  await until(() => socketFds() <= base, `socket descriptors back to ${base} (now ${socketFds()})`);
});

test('native relay: a relayed session keeps no socket object (the relay holds the connection, not JavaScript)', {
  skip,
}, async () => {
  // gc on demand in this one test (node --test runs without --expose-gc)
  const { setFlagsFromString } = await import('node:v8');
  const { runInNewContext } = await import('node:vm');
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  const quiet = net.createServer((s) => s.on('error', () => {}));
  await new Promise<void>((r) => quiet.listen(0, '127.0.0.1', r));
  cleanups.push(() => new Promise<void>((r) => quiet.close(() => r())));
  const up = new ServiceUpstream(
    proxyService([{ host: '127.0.0.1', port: (quiet.address() as net.AddressInfo).port }]),
    {
      transparentUpstream: false,
    },
  );
  const refs: WeakRef<net.Socket>[] = [];
  let handed = 0;
  const handles: SessionHandle[] = [];
  const l = await openListener({
    host: '127.0.0.1',
    port: 0,
    transparent: false,
    onConnection: (socket: net.Socket) => {
      refs.push(new WeakRef(socket));
      handles.push(
        runSession({
          id: 'svc/native:held',
          service: 'native',
          socket,
          createCore: bindCore(plugModule, {}),
          upstream: up,
          log: (_c, _l, msg) => {
            if (msg === 'Streams handed to the native relay') handed++;
          },
          nativeRelay: true,
        }),
      );
    },
  });
  cleanups.push(() => l.close());
  const c = net.connect(l.local.port, '127.0.0.1');
  c.on('error', () => {});
  try {
    await until(() => handed === 1, 'the handover');
    for (let i = 0; i < 5 && refs[0]!.deref(); i++) {
      await new Promise((r) => setTimeout(r, 20));
      gc();
    }
    assert.equal(refs[0]!.deref(), undefined, 'the accepted socket is still referenced after the handover');
  } finally {
    c.destroy();
    await handles[0]?.done;
  }
});

test('native relay: a core that closes a relayed stream itself learns the final counts (relayEnded, stopped)', {
  skip,
}, async () => {
  const srv = await quietServer();
  const up = new ServiceUpstream(proxyService([{ host: '127.0.0.1', port: srv.port }]), {
    transparentUpstream: false,
  });
  // A core of its own: relays, and on abort closes the client (not the session), then ends with what
  // relayEnded told it.
  const seen: ProxyEvent[] = [];
  const core = (): ProxyCore => ({
    describe: () => ({ proxy: 'test', state: 'x' }),
    handle(ev: ProxyEvent): ProxyCommand[] {
      if (ev.type === 'start') return [{ type: 'connect', stream: 'server', options: {} }];
      if (ev.type === 'connected') return [{ type: 'relay', a: 'client', b: 'server', idleMs: 0 }];
      if (ev.type === 'relayStarted') seen.push(ev);
      if (ev.type === 'abort') return [{ type: 'close', stream: 'client' }];
      if (ev.type === 'relayEnded') {
        seen.push(ev);
        return [{ type: 'done', verdict: 'ACCEPTED', info: `${ev.reason} ${JSON.stringify(ev.bytes)}` }];
      }
      return [];
    },
  });
  const summaries: SessionSummary[] = [];
  let handle: SessionHandle | null = null;
  const l = await openListener({
    host: '127.0.0.1',
    port: 0,
    transparent: false,
    onConnection: (socket: net.Socket) => {
      handle = runSession({
        id: 'svc/stop:1',
        service: 'stop',
        socket,
        createCore: core,
        upstream: up,
        log: () => {},
        nativeRelay: true,
        onEnd: (s) => summaries.push(s),
      });
    },
  });
  const c = await quietClient(l.local.port);
  await until(() => seen.length === 1 && srv.side() !== null, 'the handover');
  c.write(Buffer.alloc(3000, 1));
  srv.side()!.write(Buffer.alloc(400, 2));
  await until(() => {
    const b = handle!.snapshot().bytes;
    return b.toServer === 3000 && b.toClient === 400;
  }, 'the bytes through the relay');
  const closed = new Promise<void>((res) => c.on('close', () => res()));
  handle!.abort('test');
  await closed;
  await until(() => summaries.length === 1, 'the summary');
  const end = seen[1] as Extract<ProxyEvent, { type: 'relayEnded' }>;
  assert.equal(end.reason, 'stopped');
  assert.deepEqual(end.bytes, { client: { read: 3000, written: 400 }, server: { read: 400, written: 3000 } });
  assert.equal(summaries[0]!.bytes.toServer, 3000);
  await l.close();
  await until(() => nativeRelaysActive() === 0, 'no relay left');
});
