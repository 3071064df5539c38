// The driver with scripted cores over loopback sockets (plain, non-transparent): backpressure, timers,
// listeners (acceptFrom, maxAccepts), explicit-target connects, policy denial, and the 'ours' path.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import net from 'node:net';
import { after, test } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import {
  openListener,
  runSession,
  ServiceUpstream,
  type SessionHandle,
  type SessionSummary,
} from '../../../src/net/index.ts';
import type { CoreFactory, ProxyCommand, ProxyEvent } from '../../../src/proxy/core/types.ts';
import { bindCore } from '../../../src/proxy/index.ts';
import { plugModule } from '../../../src/proxy/plug/index.ts';
import { proxyService, tcpServer } from './helpers.ts';

const cleanups: (() => Promise<void>)[] = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

interface Logged {
  category: string;
  level: string;
  msg: string;
  fields: Record<string, unknown>;
}

/** Accepts one connection on a plain listener and runs a session with `createCore` on it. */
async function oneSession(
  createCore: CoreFactory,
  extra: Partial<Parameters<typeof runSession>[0]> = {},
): Promise<{ port: number; session: Promise<SessionHandle>; logs: Logged[] }> {
  const logs: Logged[] = [];
  let resolve!: (h: SessionHandle) => void;
  const session = new Promise<SessionHandle>((r) => {
    resolve = r;
  });
  const l = await openListener({
    host: '127.0.0.1',
    port: 0,
    transparent: false,
    onConnection: (socket) =>
      resolve(
        runSession({
          id: 'svc/t:1',
          service: 't',
          socket,
          createCore,
          log: (category, level, msg, fields) => logs.push({ category, level, msg, fields }),
          ...extra,
        }),
      ),
  });
  cleanups.push(() => l.close());
  return { port: l.local.port, session, logs };
}

/** A core from a function; records every event it saw. */
function scripted(fn: (ev: ProxyEvent, seen: ProxyEvent[]) => ProxyCommand[]) {
  const seen: ProxyEvent[] = [];
  const factory: CoreFactory = () => ({
    handle(ev) {
      seen.push(ev);
      return fn(ev, seen);
    },
    describe: () => ({ proxy: 'scripted', state: 'scripted', events: seen.length }),
  });
  return { seen, factory };
}

function connectClient(port: number, opts: Partial<net.NetConnectOpts> = {}): net.Socket {
  const c = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true, ...opts } as net.NetConnectOpts);
  c.on('error', () => {});
  return c;
}

/** Wait for `cond`; fail (not hang) after a bound that only a stuck session or a leak exceeds. */
const until = async (cond: () => boolean) => {
  for (let i = 0; !cond(); i++) {
    if (i > 12_000) assert.fail('condition still false after 60 s');
    await new Promise((r) => setTimeout(r, 5));
  }
};

/** An explicit-target connect to a loopback test server. */
const connectTo = (stream: string, port: number): ProxyCommand => ({
  type: 'connect',
  stream,
  options: { target: { host: '127.0.0.1', port, family: 4 } },
});

/** Wait until a byte count stops growing (10 looks 20 ms apart see the same value); returns it. */
async function settled(count: () => number): Promise<number> {
  let last = -1;
  for (let still = 0; still < 10; ) {
    await new Promise((r) => setTimeout(r, 20));
    const n = count();
    still = n === last ? still + 1 : 0;
    last = n;
  }
  return last;
}

test('backpressure: a server that does not read stops the client being read; nothing is lost', async () => {
  let serverSock: net.Socket | null = null;
  const h = createHash('sha256');
  let got = 0;
  const srv = await tcpServer((s) => {
    serverSock = s;
    s.pause(); // not reading yet
    s.on('data', (d: Buffer) => {
      got += d.length;
      h.update(d);
    });
    s.on('end', () => s.end());
  });
  cleanups.push(srv.close);
  const drains: string[] = [];
  const { factory } = scripted((ev): ProxyCommand[] => {
    switch (ev.type) {
      case 'start':
        return [connectTo('server', srv.port)];
      case 'data':
        return [{ type: 'send', stream: ev.stream === 'client' ? 'server' : 'client', data: ev.data }];
      case 'end':
        return [{ type: 'shutdown', stream: ev.stream === 'client' ? 'server' : 'client' }];
      case 'drain':
        drains.push(ev.stream);
        return [];
      case 'closed':
        return [{ type: 'done', verdict: 'ACCEPTED' }];
      default:
        return [];
    }
  });
  const { port, session } = await oneSession(factory, { relayBufferBytes: 64 * 1024 });
  const payload = randomBytes(64 * 1024 * 1024);
  const c = connectClient(port);
  c.write(payload);
  c.end();
  const s = await session;
  // Wait until the relay has stopped taking bytes from the client (the server reads nothing).
  const last = await settled(() => s.snapshot().bytes.fromClient);
  // Without backpressure the relay would have read the whole 64 MiB into memory by now; with it,
  // reading stopped once the upstream buffer was full (kernel socket buffers hold the rest).
  assert.ok(last < payload.length / 2, `read ${last} bytes from the client while the server read nothing`);
  (serverSock as net.Socket | null)?.resume();
  await until(() => got === payload.length);
  assert.equal(h.digest('hex'), createHash('sha256').update(payload).digest('hex'));
  assert.ok(drains.includes('server'), 'the core got a drain for the server stream');
  c.destroy();
});

test('backpressure is per feeder: a congested stream pauses only what feeds it; core pauses still win', async () => {
  // Three streams, as in FTP: 'a' (a data source) is relayed to 'b' (a data sink that stops reading),
  // and 'client' (the control connection) talks to the core alone. 'b' congests: 'a' must stop being
  // read, the client must not (an ABOR must still be heard).
  const payload = randomBytes(32 * 1024 * 1024);
  const a = await tcpServer((s) => {
    s.on('error', () => {});
    s.end(payload);
  });
  cleanups.push(a.close);
  let sink: net.Socket | null = null;
  const h = createHash('sha256');
  let got = 0;
  const b = await tcpServer((s) => {
    sink = s;
    s.on('error', () => {});
    s.pause(); // not reading yet
    s.on('data', (d: Buffer) => {
      got += d.length;
      h.update(d);
    });
  });
  cleanups.push(b.close);
  let fromA = 0;
  let atHold = -1;
  let atGo = -1;
  const heard: string[] = [];
  const drains: string[] = [];
  const { factory } = scripted((ev): ProxyCommand[] => {
    switch (ev.type) {
      case 'start':
        return [connectTo('b', b.port)];
      case 'connected':
        if (ev.stream !== 'b') return [];
        return [connectTo('a', a.port)];
      case 'data': {
        if (ev.stream === 'a') {
          fromA += ev.data.length;
          return [{ type: 'send', stream: 'b', data: ev.data }];
        }
        const line = Buffer.from(ev.data).toString();
        heard.push(line);
        if (line === 'hold') {
          atHold = fromA;
          return [{ type: 'pause', stream: 'a' }];
        }
        if (line === 'go') {
          atGo = fromA;
          return [{ type: 'resume', stream: 'a' }];
        }
        return [{ type: 'send', stream: 'client', data: Buffer.from(`ok ${line}`) }];
      }
      case 'end':
        if (ev.stream === 'a') return [{ type: 'shutdown', stream: 'b' }];
        if (ev.stream === 'client') return [{ type: 'done', verdict: 'ACCEPTED' }];
        return [];
      case 'drain':
        drains.push(ev.stream);
        return [];
      default:
        return [];
    }
  });
  const { port, session } = await oneSession(factory, { relayBufferBytes: 64 * 1024 });
  const c = connectClient(port);
  let reply = '';
  c.on('data', (d) => {
    reply += d;
  });
  const s = await session;
  // Wait until the relay has stopped taking bytes from 'a' (the sink reads nothing).
  const last = await settled(() => fromA);
  assert.ok(last > 0 && last < payload.length / 2, `read ${last} bytes from 'a' while the sink read nothing`);
  // 'b' is congested, but the client does not feed it: its bytes still reach the core, and the core's
  // answer (client to client) goes out.
  c.write('ping');
  await until(() => reply === 'ok ping');
  // The core pauses 'a' itself; the sink's drain must not resume it.
  c.write('hold');
  await until(() => atHold >= 0);
  (sink as net.Socket | null)!.resume();
  await until(() => drains.includes('b'));
  c.write('pong');
  await until(() => reply === 'ok pingok pong');
  c.write('go');
  await until(() => atGo >= 0);
  assert.equal(atGo, atHold, "the core's pause of 'a' held through the drain of 'b'");
  await until(() => got === payload.length);
  assert.equal(h.digest('hex'), createHash('sha256').update(payload).digest('hex'));
  assert.deepEqual(heard, ['ping', 'hold', 'pong', 'go']);
  c.end();
  const sum = await s.done;
  assert.equal(sum.verdict, 'ACCEPTED');
  c.destroy();
});

test('timers fire as events, clearTimer cancels, and done ends the session with the summary', async () => {
  const { seen, factory } = scripted((ev): ProxyCommand[] => {
    if (ev.type === 'start')
      return [
        { type: 'setTimer', timer: 'never', ms: 5 },
        { type: 'setTimer', timer: 't', ms: 10 },
        { type: 'clearTimer', timer: 'never' },
        { type: 'account', fields: { n: 1, tag: 'a' } },
        { type: 'account', fields: { n: 2, tag: 'b' } },
      ];
    if (ev.type === 'timer')
      return [
        { type: 'send', stream: 'client', data: Buffer.from('tick') },
        { type: 'done', verdict: 'ACCEPTED', info: 'x' },
      ];
    return [];
  });
  const { port, session } = await oneSession(factory);
  const c = connectClient(port);
  let data = '';
  c.on('data', (d) => {
    data += d;
  });
  const sum = await (await session).done;
  assert.deepEqual(
    seen.filter((e) => e.type === 'timer').map((e) => (e as { timer: string }).timer),
    ['t'],
  );
  assert.equal(sum.verdict, 'ACCEPTED');
  assert.equal(sum.info, 'x');
  assert.deepEqual(sum.counters, { n: 3, tag: 'b' });
  await until(() => data === 'tick');
  c.destroy();
});

test('listen: port range, acceptFrom refuses other peers, maxAccepts closes the listener', async () => {
  let listening: { port: number } | null = null;
  const { seen, factory } = scripted((ev): ProxyCommand[] => {
    if (ev.type === 'start')
      return [
        {
          type: 'listen',
          listener: 'data',
          host: '127.0.0.1',
          port: { min: 20000, max: 60000 },
          transparent: false,
          acceptFrom: '127.0.0.1',
          maxAccepts: 1,
        },
      ];
    if (ev.type === 'listening') listening = { port: ev.local.port };
    if (ev.type === 'accepted')
      return [
        { type: 'send', stream: ev.stream, data: Buffer.from('welcome') },
        { type: 'close', stream: ev.stream },
      ];
    if (ev.type === 'closed' && ev.stream !== 'client') return [{ type: 'done', verdict: 'ACCEPTED' }];
    return [];
  });
  const { port, session } = await oneSession(factory);
  const c = connectClient(port);
  const s = await session;
  await until(() => listening !== null);
  const lp = (listening as { port: number } | null)!.port;
  assert.ok(lp >= 20000 && lp <= 60000);
  // From 127.0.0.2: refused by acceptFrom.
  const bad = connectClient(lp, { localAddress: '127.0.0.2' });
  await new Promise((r) => bad.on('close', r));
  // From 127.0.0.1: accepted as stream data.1.
  const good = connectClient(lp);
  let got = '';
  good.on('data', (d) => {
    got += d;
  });
  await new Promise((r) => good.on('end', r));
  assert.equal(got, 'welcome');
  const sum = await s.done;
  assert.equal(sum.verdict, 'ACCEPTED');
  const accepted = seen.filter((e) => e.type === 'accepted');
  assert.equal(accepted.length, 1);
  assert.equal((accepted[0] as { stream: string }).stream, 'data.1');
  // maxAccepts reached: nobody listens any more.
  const late = connectClient(lp);
  const err = await new Promise<Error>((r) => late.on('error', r));
  assert.match(err.message, /ECONNREFUSED/);
  c.destroy();
});

test('explicit-target connect: sends and shutdown issued while connecting are delivered after connect', async () => {
  let serverGot = '';
  const srv = await tcpServer((s) => {
    s.on('data', (d) => {
      serverGot += d;
    });
    s.on('end', () => s.end('bye'));
  });
  cleanups.push(srv.close);
  const { factory } = scripted((ev): ProxyCommand[] => {
    if (ev.type === 'start')
      return [
        {
          type: 'connect',
          stream: 'up',
          options: { target: { host: '127.0.0.1', port: srv.port, family: 4 } },
        },
        { type: 'send', stream: 'up', data: Buffer.from('early') },
        { type: 'shutdown', stream: 'up' },
      ];
    if (ev.type === 'data' && ev.stream === 'up') return [{ type: 'send', stream: 'client', data: ev.data }];
    if (ev.type === 'end' && ev.stream === 'up') return [{ type: 'done', verdict: 'ACCEPTED' }];
    return [];
  });
  const { port, session } = await oneSession(factory);
  const c = connectClient(port);
  let got = '';
  c.on('data', (d) => {
    got += d;
  });
  const sum = await (await session).done;
  assert.equal(sum.verdict, 'ACCEPTED');
  assert.equal(serverGot, 'early');
  await until(() => got === 'bye');
  c.destroy();
});

test('limit_target_zones_to: a server outside the allowed zones ends DENIED_BY_POLICY', async () => {
  const srv = await tcpServer((s) => s.end());
  cleanups.push(srv.close);
  const zones = new Map([
    ['inside', { parent: null }],
    ['loop', { parent: null }],
  ]);
  const up = new ServiceUpstream(
    proxyService([{ host: '127.0.0.1', port: srv.port }], { limitTargetZonesTo: ['inside'] }),
    {
      transparentUpstream: false,
      zones: { zoneOf: (h) => (h.startsWith('127.') ? { name: 'loop' } : null), zones },
    },
  );
  const { port, session, logs } = await oneSession(bindCore(plugModule, {}), { upstream: up });
  const c = connectClient(port);
  const sum = await (await session).done;
  assert.equal(sum.verdict, 'DENIED_BY_POLICY');
  assert.equal(sum.serverZone, 'loop');
  assert.equal(sum.clientZone, 'loop');
  assert.ok(logs.some((l) => l.category === 'core.policy' && /limit_target_zones_to/.test(l.msg)));
  c.destroy();
});

test('a core that throws ends only its session: DENIED_BY_UNKNOWN_FAIL, logged as TZ9001', async () => {
  const { factory } = scripted((ev): ProxyCommand[] => {
    if (ev.type === 'data') throw new Error('boom');
    return [];
  });
  const { port, session, logs } = await oneSession(factory);
  const c = connectClient(port);
  c.write('x');
  const closed = new Promise((r) => c.on('close', r));
  const sum = await (await session).done;
  assert.equal(sum.verdict, 'DENIED_BY_UNKNOWN_FAIL');
  assert.match(sum.info ?? '', /boom/);
  const err = logs.find((l) => l.category === 'core.error');
  assert.equal(err?.fields.code, 'TZ9001');
  // The core's describe(): where it was when it broke (start and the data event it threw on).
  assert.deepEqual(err?.fields.core, { proxy: 'scripted', state: 'scripted', events: 2 });
  await closed; // the client connection was torn down
});

test('a core that never says done is ended once nothing is left to wait for', async () => {
  const { factory } = scripted(() => []);
  const { port, session, logs } = await oneSession(factory);
  const c = connectClient(port);
  const s = await session;
  c.resetAndDestroy(); // the only stream is gone; the core does nothing about it
  const sum = await s.done;
  assert.equal(sum.verdict, 'DENIED_BY_UNKNOWN_FAIL');
  assert.match(sum.info ?? '', /did not finish/);
  assert.ok(logs.some((l) => l.category === 'core.error'));
});

test('abort reaches the core; kill resets at once', async () => {
  const { seen, factory } = scripted((ev) =>
    ev.type === 'abort' ? [{ type: 'done', verdict: 'ACCEPTED', info: ev.reason }] : [],
  );
  const a = await oneSession(factory);
  const c1 = connectClient(a.port);
  const s1 = await a.session;
  s1.abort('stop');
  const sum1: SessionSummary = await s1.done;
  assert.equal(sum1.info, 'stop');
  assert.ok(seen.some((e) => e.type === 'abort'));
  c1.destroy();

  const b = await oneSession(scripted(() => []).factory);
  const c2 = connectClient(b.port);
  const reset = new Promise<Error>((r) => c2.on('error', r));
  const s2 = await b.session;
  s2.kill('test');
  const sum2 = await s2.done;
  assert.equal(sum2.info, 'killed: test');
  assert.match((await reset).message, /ECONNRESET/);
});

test('done releases what the core left open: streams are closed, timers cleared', async () => {
  let serverSide: net.Socket | null = null;
  const srv = await tcpServer((s) => {
    serverSide = s;
    s.resume();
  });
  cleanups.push(srv.close);
  const { seen, factory } = scripted((ev): ProxyCommand[] => {
    if (ev.type === 'start')
      return [
        { type: 'setTimer', timer: 'long', ms: 3_600_000 },
        {
          type: 'connect',
          stream: 'server',
          options: { target: { host: '127.0.0.1', port: srv.port, family: 4 } },
        },
      ];
    if (ev.type === 'data') return [{ type: 'done', verdict: 'ACCEPTED' }]; // closes nothing itself
    return [];
  });
  const timersBefore = process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
  const { port, session } = await oneSession(factory);
  const c = connectClient(port);
  const clientClosed = new Promise((r) => c.on('close', r));
  c.on('end', () => c.end());
  await until(() => seen.some((e) => e.type === 'connected'));
  c.write('go');
  await (await session).done;
  await clientClosed; // the driver closed the client stream
  await until(() => serverSide !== null && (serverSide as net.Socket).readableEnded); // and the server stream
  await until(() => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length <= timersBefore);
  assert.equal(seen.filter((e) => e.type === 'timer').length, 0);
});

test('a finished session lets its core go (a session kept dead in old space must not keep it)', async () => {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  const held: { core?: WeakRef<object> } = {};
  const factory: CoreFactory = () => {
    const c = {
      handle: (ev: ProxyEvent): ProxyCommand[] =>
        ev.type === 'start' ? [{ type: 'done', verdict: 'ACCEPTED', info: 'x' }] : [],
      describe: () => ({ proxy: 'scripted', state: 'scripted' }),
    };
    held.core = new WeakRef(c);
    return c;
  };
  const { port, session } = await oneSession(factory);
  const c = connectClient(port);
  const handle = await session;
  await handle.done;
  const core = held.core;
  assert.ok(core, 'the core was made');
  for (let i = 0; i < 5 && core.deref() !== undefined; i++) {
    await new Promise((r) => setImmediate(r));
    gc();
  }
  assert.equal(core.deref(), undefined, 'the ended session still holds its core');
  assert.equal(handle.id, 'svc/t:1'); // (the session itself is still referenced here)
  c.destroy();
});
