// Routers, chainers and the service-level checks, without sockets (Zorp Router.py / Chainer.py).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  ChainerRuntime,
  ChainFailed,
  ChainStop,
  localBindFor,
  RouteError,
  routeTargets,
  ServiceUpstream,
  SessionLimiter,
  TargetZoneDenied,
} from '../../../src/net/index.ts';
import type { Router } from '../../../src/policy/model.ts';
import type { Addr } from '../../../src/proxy/core/types.ts';
import { proxyService } from './helpers.ts';

const client: Addr = { host: '198.18.1.2', port: 40001, family: 4 };
const clientLocal: Addr = { host: '198.18.2.2', port: 80, family: 4 };
const a = (host: string, port = 80): Addr => ({ host, port, family: host.includes(':') ? 6 : 4 });

test('transparent router: the original destination, forced_port replaces the port', () => {
  const r = { type: 'transparent', forcedPort: null, forgeAddr: false, forgePort: 'any' } as const;
  assert.deepEqual(routeTargets(r, { client, clientLocal }), [{ host: '198.18.2.2', port: 80, family: 4 }]);
  assert.deepEqual(routeTargets({ ...r, forcedPort: 8080 }, { client, clientLocal }), [
    { host: '198.18.2.2', port: 8080, family: 4 },
  ]);
});

test('directed router: the configured targets in order; port 0 = the dialled port', () => {
  const r: Router = {
    type: 'directed',
    targets: [
      { host: '198.18.3.1', port: 0, family: 4 },
      { host: '2001:db8:3::1', port: 25, family: 6 },
    ],
    forgeAddr: false,
    forgePort: 'any',
  };
  assert.deepEqual(routeTargets(r, { client, clientLocal }), [
    { host: '198.18.3.1', port: 80 },
    { host: '2001:db8:3::1', port: 25 },
  ]);
});

test('inband router: the target the proxy read, default_port when it gave none', () => {
  const r = { type: 'inband', forgeAddr: false, forgePort: 'any', defaultPort: 8080 } as const;
  assert.deepEqual(routeTargets(r, { client, clientLocal, inband: { host: 'example.org', port: 0 } }), [
    { host: 'example.org', port: 8080 },
  ]);
  assert.throws(() => routeTargets(r, { client, clientLocal }), RouteError);
});

test('forge_addr / forge_port decide the local bind as Zorp does', () => {
  const t = a('198.18.2.2');
  assert.equal(localBindFor({ forgeAddr: false, forgePort: 'any' }, client, t), null);
  assert.deepEqual(localBindFor({ forgeAddr: true, forgePort: 'any' }, client, t), {
    host: '198.18.1.2',
    port: 0,
    transparent: true,
  });
  assert.deepEqual(localBindFor({ forgeAddr: true, forgePort: 'exact' }, client, t), {
    host: '198.18.1.2',
    port: 40001,
    transparent: true,
  });
  assert.deepEqual(localBindFor({ forgeAddr: false, forgePort: 'exact' }, client, t), {
    host: null,
    port: 40001,
    transparent: false,
  });
  assert.deepEqual(localBindFor({ forgeAddr: false, forgePort: 'random' }, client, t), {
    host: null,
    port: 'random',
    transparent: false,
  });
  assert.deepEqual(localBindFor({ forgeAddr: true, forgePort: 1234 }, client, t), {
    host: '198.18.1.2',
    port: 1234,
    transparent: true,
  });
  assert.throws(
    () => localBindFor({ forgeAddr: true, forgePort: 'any' }, client, a('2001:db8::1')),
    RouteError,
  );
});

function clock(start = 1000) {
  let t = start;
  return { now: () => t, advance: (ms: number) => (t += ms) };
}

/** An attempt function that fails for the hosts in `down` and records the order of tries. */
function attempts(down: Set<string>) {
  const tried: string[] = [];
  const fn = async (t: Addr) => {
    tried.push(t.host);
    if (down.has(t.host)) throw new Error(`connect ECONNREFUSED ${t.host}`);
    return t.host;
  };
  return { tried, fn };
}

test('connect chainer: the first target only', async () => {
  const c = new ChainerRuntime({ type: 'connect', timeoutConnectMs: 100 });
  const { tried, fn } = attempts(new Set(['h1']));
  await assert.rejects(c.run([a('h1'), a('h2')], fn), ChainFailed);
  assert.deepEqual(tried, ['h1']);
});

test('failover: primary first, failed targets remembered for timeoutStateMs', async () => {
  const k = clock();
  const c = new ChainerRuntime({ type: 'failover', timeoutConnectMs: 100, timeoutStateMs: 60_000 }, k.now);
  const down = new Set(['p']);
  const targets = [a('p'), a('b')];
  let r = attempts(down);
  assert.equal((await c.run(targets, r.fn)).value, 'b');
  assert.deepEqual(r.tried, ['p', 'b']);
  r = attempts(down);
  await c.run(targets, r.fn);
  assert.deepEqual(r.tried, ['b']); // p is skipped while remembered as down
  assert.deepEqual(c.downTargets(), ['p']);
  k.advance(60_001);
  down.clear();
  r = attempts(down);
  assert.equal((await c.run(targets, r.fn)).value, 'p'); // expired: the primary again
  assert.deepEqual(r.tried, ['p']);
});

test('failover: all down -> the cache is cleared and one more round is tried, then ChainFailed', async () => {
  const k = clock();
  const c = new ChainerRuntime({ type: 'failover', timeoutConnectMs: 100, timeoutStateMs: 60_000 }, k.now);
  const r = attempts(new Set(['p', 'b']));
  const err = await c.run([a('p'), a('b')], r.fn).catch((e) => e);
  assert.ok(err instanceof ChainFailed);
  assert.deepEqual(r.tried, ['p', 'b', 'p', 'b']);
  assert.equal(err.attempts.length, 4);
  // After giving up the cache is clear again: a later session tries the primary first.
  const r2 = attempts(new Set(['b']));
  assert.equal((await c.run([a('p'), a('b')], r2.fn)).value, 'p');
});

test('round robin: each session starts one target further', async () => {
  const c = new ChainerRuntime({ type: 'round_robin', timeoutConnectMs: 100, timeoutStateMs: 60_000 });
  const got: string[] = [];
  for (let i = 0; i < 6; i++) got.push((await c.run([a('x'), a('y'), a('z')], attempts(new Set()).fn)).value);
  assert.deepEqual(got, ['x', 'y', 'z', 'x', 'y', 'z']);
});

test('ChainStop ends the chain at once (policy denial is not a failed target)', async () => {
  const c = new ChainerRuntime({ type: 'failover', timeoutConnectMs: 100, timeoutStateMs: 60_000 });
  const tried: string[] = [];
  await assert.rejects(
    c.run([a('p'), a('b')], async (t) => {
      tried.push(t.host);
      throw new ChainStop('denied');
    }),
    ChainStop,
  );
  assert.deepEqual(tried, ['p']);
  assert.deepEqual(c.downTargets(), []);
});

test('limit_target_zones_to: the server zone or an ancestor must be listed', () => {
  const zones = new Map([
    ['internet', { parent: null }],
    ['dmz', { parent: null }],
    ['dmz_web', { parent: 'dmz' }],
  ]);
  const up = new ServiceUpstream(proxyService([], { limitTargetZonesTo: ['dmz'] }), {
    transparentUpstream: false,
    zones: { zoneOf: () => null, zones },
  });
  assert.equal(up.targetAllowed('dmz'), true);
  assert.equal(up.targetAllowed('dmz_web'), true);
  assert.equal(up.targetAllowed('internet'), false);
  assert.equal(up.targetAllowed(null), false);
  const open = new ServiceUpstream(proxyService([]), { transparentUpstream: false });
  assert.equal(open.targetAllowed('internet'), true);
});

test('max_sessions: the limiter counts per service and refuses over the limit', () => {
  const l = new SessionLimiter();
  assert.equal(l.acquire('s', 2), true);
  assert.equal(l.acquire('s', 2), true);
  assert.equal(l.acquire('s', 2), false);
  assert.equal(l.acquire('other', 2), true);
  l.release('s');
  assert.equal(l.acquire('s', 2), true);
  assert.equal(l.acquire('u', 0), true); // 0 = unlimited
  assert.equal(l.count('s'), 2);
});

test('connect chainer: an attempt that throws at once rejects as one that rejects (ChainFailed naming the target; a ChainStop as it is)', async () => {
  const c = new ChainerRuntime({ type: 'connect', timeoutConnectMs: 100 });
  const failed = await c
    .run([a('h1')], () => {
      throw new Error('no socket');
    })
    .catch((e: unknown) => e);
  assert.ok(failed instanceof ChainFailed);
  assert.deepEqual(failed.attempts, [{ target: a('h1'), error: 'no socket' }]);
  await assert.rejects(
    c.run([a('h1')], () => {
      throw new ChainStop('denied');
    }),
    (e) => e instanceof ChainStop && !(e instanceof ChainFailed),
  );
  assert.equal((await c.run([a('h1')], async (t) => t.host)).value, 'h1');
});

test('connectVia never throws: a denied zone, a route that cannot bind and a failing connect all reject', async () => {
  const zones = new Map([
    ['internet', { parent: null }],
    ['dmz', { parent: null }],
  ]);
  const input = { client, clientLocal };
  const denied = new ServiceUpstream(
    proxyService([{ host: '198.18.2.3', port: 80 }], { limitTargetZonesTo: ['dmz'] }),
    {
      transparentUpstream: false,
      zones: { zoneOf: () => ({ name: 'internet' }), zones },
    },
  );
  let called = 0;
  const connect = async () => {
    called++;
    return 'sock';
  };
  const p1 = denied.connectVia(input, connect);
  await assert.rejects(p1, (e) => e instanceof TargetZoneDenied);
  assert.equal(called, 0, 'the server is never contacted');
  // forge_addr toward a server of the other family: no usable target, RouteError.
  const forged = new ServiceUpstream(
    proxyService([{ host: '2001:db8::3', port: 80 }], {
      router: { type: 'directed', targets: [a('2001:db8::3')], forgeAddr: true, forgePort: 'any' },
    }),
    { transparentUpstream: false },
  );
  await assert.rejects(forged.connectVia(input, connect), (e) => e instanceof RouteError);
  assert.equal(called, 0);
  // A connect that throws at once (no socket) rejects with ChainFailed naming the target.
  const open = new ServiceUpstream(proxyService([{ host: '198.18.2.3', port: 80 }]), {
    transparentUpstream: false,
  });
  const err = await open
    .connectVia(input, () => {
      throw new Error('EMFILE');
    })
    .catch((e: unknown) => e);
  assert.ok(err instanceof ChainFailed);
  assert.match(err.message, /198\.18\.2\.3:80: EMFILE/);
  const ok = await open.connectVia(input, connect);
  assert.deepEqual(ok, { conn: 'sock', target: a('198.18.2.3'), zone: null });
});
