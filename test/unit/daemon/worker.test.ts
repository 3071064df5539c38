import assert from 'node:assert/strict';
import type { Socket } from 'node:net';
import { test } from 'node:test';
import type { Admission } from '../../../src/daemon/admission.ts';
import { sessionCapacity } from '../../../src/daemon/capacity.ts';
import type { LimitName } from '../../../src/daemon/client-limits.ts';
import type { ListenerSpec, WorkerGenerationSpec } from '../../../src/daemon/ipc.ts';
import { ZorpLog } from '../../../src/daemon/log.ts';
import { LogLevels } from '../../../src/daemon/log-spec.ts';
import { IdBlockAllocator, SessionIdSource } from '../../../src/daemon/session-ids.ts';
import { ServiceStats } from '../../../src/daemon/stats.ts';
import {
  resolveConnection,
  type SessionStart,
  type WorkerGeneration,
  WorkerRuntime,
} from '../../../src/daemon/worker.ts';
import { DEFAULTS } from '../../../src/defaults.ts';
import { Engine } from '../../../src/engine/index.ts';
import type { NativeConn } from '../../../src/net/accept.ts';
import type { SessionHandle, SessionSummary } from '../../../src/net/index.ts';
import type { Policy, Rule, Service } from '../../../src/policy/model.ts';
import { bindProxies } from '../../../src/proxy/index.ts';
import { policy as basePolicy, proxy, rule, zone } from './fixtures.ts';

const MARK = 0x80000000;
const k4 = (port: number) => `127.0.0.1:${port}`;
const k6 = (port: number) => `[::1]:${port}`;

/** The tests' policies: two zones, and rules that decide by destination port (rule(id, svc, port)). */
function policy(services: Service[], rules: Rule[], sha?: string): Policy {
  return basePolicy(services, rules, sha, [
    zone('clients', ['198.18.1.0/24']),
    zone('servers', ['198.18.2.0/24']),
  ]);
}

function spec(n: number, p: Policy, ports: Record<string, number>): WorkerGenerationSpec {
  const services: WorkerGenerationSpec['services'] = {};
  const listeners: ListenerSpec[] = [];
  for (const [name, port] of Object.entries(ports)) {
    services[name] = { v4: k4(port), v6: k6(port) };
    listeners.push({ key: k4(port), family: 4, host: '127.0.0.1', port, fd: -1 });
    listeners.push({ key: k6(port), family: 6, host: '::1', port, fd: -1 });
  }
  return { n, policy: p, services, listeners };
}

class FakeSession implements SessionHandle {
  end!: (s: SessionSummary) => void;
  aborted: string[] = [];
  killed = false;
  done = new Promise<SessionSummary>((r) => {
    this.end = r;
  });
  constructor(readonly start: SessionStart<string>) {}
  get id() {
    return this.start.id;
  }
  snapshot() {
    return {
      id: this.id,
      service: this.start.service.name,
      client: null,
      clientZone: this.start.clientZone,
      server: null,
      serverZone: null,
      startedAt: 1000,
      bytes: { fromClient: 1, toClient: 2, fromServer: 2, toServer: 1 },
      counters: {},
    };
  }
  abort(reason: string) {
    this.aborted.push(reason);
  }
  kill() {
    this.killed = true;
    this.finish('DENIED_BY_UNKNOWN_FAIL');
  }
  /** As runSession ends a session: onEnd with the summary, then `done`. */
  finish(verdict: SessionSummary['verdict'] = 'ACCEPTED') {
    const summary: SessionSummary = {
      id: this.id,
      service: this.start.service.name,
      ruleId: this.start.ruleId,
      startedAt: 1000,
      endedAt: 1001,
      durationMs: 1,
      client: null,
      clientLocal: null,
      clientZone: this.start.clientZone,
      server: null,
      serverLocal: null,
      serverZone: null,
      bytes: { fromClient: 1, toClient: 2, fromServer: 2, toServer: 1 },
      verdict,
      info: null,
      counters: {},
    };
    this.start.onEnd(summary);
    this.end(summary);
  }
}

function sock(client: string, cport: number, local: string, lport: number, mark: number | null) {
  const s = {
    remoteAddress: client,
    remotePort: cport,
    localAddress: local,
    localPort: lport,
    mark,
    destroyed: false,
    reset: false,
    destroy() {
      s.destroyed = true;
    },
    resetAndDestroy() {
      s.reset = true;
      s.destroyed = true;
    },
    pause() {},
  };
  return s as unknown as Socket & { mark: number | null; destroyed: boolean; reset: boolean };
}

function setup(
  opts: { admit?: boolean | LimitName; capacity?: number; native?: (service: string) => boolean } = {},
) {
  const clients: string[] = [];
  const accept = new Map<string, (s: Socket) => void>();
  /** Listeners that accept natively (the runtime asked for it), and what became of native fds. */
  const acceptNative = new Map<string, (c: NativeConn) => void>();
  const fdsClosed: string[] = [];
  const madeSockets: number[] = [];
  const closed: string[] = [];
  const sessions: FakeSession[] = [];
  const lines: string[] = [];
  const primary = new IdBlockAllocator(4);
  const released: string[] = [];
  const asked: string[] = [];
  const ids: SessionIdSource = new SessionIdSource((svc) =>
    queueMicrotask(() => ids.addBlock(primary.allocate(svc))),
  );
  const rt = new WorkerRuntime<string>({
    index: 0,
    ...(opts.capacity !== undefined ? { capacity: opts.capacity } : {}),
    ids,
    log: new ZorpLog({
      format: 'text',
      levels: new LogLevels(5),
      destination: { write: (l) => lines.push(l) },
    }),
    stats: new ServiceStats(() => 0),
    now: () => 1000,
    listen: async (l, onConn, onNative) => {
      accept.set(l.key, onConn);
      if (onNative) acceptNative.set(l.key, onNative);
      return {
        close: async () => {
          accept.delete(l.key);
          acceptNative.delete(l.key);
          closed.push(l.key);
        },
      };
    },
    ...(opts.native
      ? {
          runsNatively: (svc) => opts.native!(svc.name),
          socketOf: (fd) => {
            madeSockets.push(fd);
            return sock('198.18.1.9', 5000, '198.18.2.2', 80, null);
          },
          closeFd: (fd, reset) => fdsClosed.push(`${fd}${reset ? ' reset' : ''}`),
        }
      : {}),
    mark: (s) => (s as unknown as { mark: number | null }).mark,
    engine: (p) => new Engine(p),
    upstream: (svc, _e, p) => `${svc.name}@${p.source.sha256}`,
    startSession: (s) => {
      const f = new FakeSession(s);
      sessions.push(f);
      return f;
    },
    admission: {
      admit: async (svc, client) => {
        asked.push(svc.name);
        clients.push(client);
        return opts.admit ?? true;
      },
      release: (svc, client) => released.push(svc.maxSessions > 0 ? svc.name : `${svc.name} ${client}`),
    } satisfies Admission,
  });
  const connect = async (key: string, s: Socket) => {
    const f = accept.get(key);
    assert.ok(f, `nobody accepts on ${key}`);
    f(s);
    for (let i = 0; i < 5; i++) await Promise.resolve();
  };
  return {
    rt,
    accept,
    acceptNative,
    fdsClosed,
    madeSockets,
    closed,
    sessions,
    lines,
    connect,
    released,
    asked,
    clients,
  };
}

test('resolveConnection: the mark names the rule; its service must own the accepting listener', () => {
  const p = policy([proxy('web', 1), proxy('ssh', 2)], [rule(3, 'web', 80), rule(4, 'ssh', 22)]);
  const bound = bindProxies(p);
  const gen: WorkerGeneration<null> = {
    n: 1,
    policy: p,
    engine: new Engine(p),
    rules: new Map(p.rules.map((r) => [r.id, r])),
    services: new Map([
      [
        'web',
        {
          service: p.services.get('web') as never,
          keys: { v4: k4(50000), v6: k6(50000) },
          upstream: null,
          proxy: bound.services.get('web')!,
          native: false,
        },
      ],
      [
        'ssh',
        {
          service: p.services.get('ssh') as never,
          keys: { v4: k4(50001), v6: k6(50001) },
          upstream: null,
          proxy: bound.services.get('ssh')!,
          native: false,
        },
      ],
    ]),
    sessions: 0,
  };
  const c = { host: '198.18.1.2', port: 4000 };
  const d = { host: '198.18.2.2', port: 80 };
  const r = resolveConnection([gen], k4(50000), (MARK | 3) >>> 0, c, d);
  assert.equal('error' in r ? r.error : `${r.rule.id} ${r.service.name} ${r.how}`, '3 web mark');
  // rule 4 is ssh's, but the connection came in on web's listener: not believed
  assert.equal('error' in resolveConnection([gen], k4(50000), (MARK | 4) >>> 0, c, d), true);
  assert.equal('error' in resolveConnection([gen], k4(50000), (MARK | 99) >>> 0, c, d), true);
  // no tproxy bit (tcp_fwmark_accept off, --no-kernel): the engine decides from the addresses
  const e = resolveConnection([gen], k6(50000), 0, c, d);
  assert.equal('error' in e ? e.error : `${e.rule.id} ${e.how}`, '3 engine');
  assert.equal('error' in resolveConnection([gen], k4(50001), null, c, d), true); // port 80 is web's, not ssh's
});

test('sessions get svc/<service>:<n> ids, zones, rule; status and list show them', async () => {
  const h = setup();
  const p = policy([proxy('web', 1)], [rule(7, 'web', 80)], 'v1');
  await h.rt.prepare(spec(1, p, { web: 50000 }));
  await h.rt.commit(1);
  await h.connect(k4(50000), sock('198.18.1.2', 4000, '198.18.2.2', 80, (MARK | 7) >>> 0));
  await h.connect(k6(50000), sock('::ffff:198.18.1.3', 4001, '198.18.2.2', 80, (MARK | 7) >>> 0));
  assert.deepEqual(
    h.sessions.map((s) => [s.start.id, s.start.ruleId, s.start.clientZone, s.start.upstream]),
    [
      ['svc/web:1', 7, 'clients', 'web@v1'],
      ['svc/web:2', 7, 'clients', 'web@v1'],
    ],
  );
  const list = h.rt.list();
  assert.equal(list.length, 2);
  assert.deepEqual(list[1]!.client, { address: '198.18.1.3', port: 4001, zone: 'clients' });
  assert.deepEqual(list[1]!.clientLocal, { address: '198.18.2.2', port: 80 });
  assert.equal(list[0]!.generation, 1);
  assert.equal(list[0]!.rule, 7);
  h.sessions[0]!.finish();
  await Promise.resolve();
  await Promise.resolve();
  const st = h.rt.status();
  assert.equal(st.counters.web!.running, 1);
  assert.equal(st.counters.web!.total, 2);
  assert.deepEqual(st.generations, { 1: 1 });
});

test('an unknown decision closes the connection and logs core.error', async () => {
  const h = setup();
  const p = policy([proxy('web', 1)], [rule(7, 'web', 80)]);
  await h.rt.prepare(spec(1, p, { web: 50000 }));
  await h.rt.commit(1);
  const s = sock('198.18.1.2', 4000, '198.18.2.2', 81, (MARK | 8) >>> 0);
  await h.connect(k4(50000), s);
  assert.ok(s.destroyed);
  assert.equal(h.sessions.length, 0);
  assert.match(h.lines.join(''), /core\.error\(1\): \(nosession\): Unable to determine service/);
});

test('reload: kept listeners stay open, removed ones close after commit, old sessions keep their generation', async () => {
  const h = setup();
  const p1 = policy([proxy('web', 1), proxy('old', 2)], [rule(1, 'web', 80), rule(2, 'old', 21)], 'v1');
  await h.rt.prepare(spec(1, p1, { web: 50000, old: 50001 }));
  await h.rt.commit(1);
  await h.connect(k4(50000), sock('198.18.1.2', 4000, '198.18.2.2', 80, (MARK | 1) >>> 0));
  const p2 = policy([proxy('web', 2), proxy('new', 1)], [rule(1, 'web', 80), rule(3, 'new', 25)], 'v2');
  await h.rt.prepare(spec(2, p2, { web: 50000, new: 50002 }));
  // prepared, not committed: the new listener accepts already, the old one still does too
  assert.deepEqual(h.rt.listening, [k4(50000), k4(50001), k4(50002), k6(50000), k6(50001), k6(50002)].sort());
  // a connection the new ruleset decided (rule 3) is served by generation 2 before the commit
  await h.connect(k4(50002), sock('198.18.1.2', 4001, '198.18.2.2', 25, (MARK | 3) >>> 0));
  assert.equal(h.sessions[1]!.start.upstream, 'new@v2');
  await h.rt.commit(2);
  assert.deepEqual(h.closed.sort(), [k4(50001), k6(50001)].sort());
  await h.connect(k4(50000), sock('198.18.1.2', 4002, '198.18.2.2', 80, (MARK | 1) >>> 0));
  assert.equal(h.sessions[2]!.start.upstream, 'web@v2');
  const gens = h.rt.list().map((s) => [s.id, s.generation]);
  assert.deepEqual(gens, [
    ['svc/web:1', 1],
    ['svc/new:1', 2],
    ['svc/web:2', 2],
  ]);
  assert.deepEqual(h.rt.status().generations, { 1: 1, 2: 2 });
  h.sessions[0]!.finish();
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(h.rt.status().generations, { 2: 2 }); // generation 1 is let go
});

test('abort drops the prepared generation and closes only its new listeners', async () => {
  const h = setup();
  const p1 = policy([proxy('web', 1)], [rule(1, 'web', 80)]);
  await h.rt.prepare(spec(1, p1, { web: 50000 }));
  await h.rt.commit(1);
  await h.rt.prepare(
    spec(2, policy([proxy('web', 1), proxy('x', 2)], [rule(1, 'web', 80)]), { web: 50000, x: 50009 }),
  );
  await h.rt.abort(2);
  assert.deepEqual(h.closed.sort(), [k4(50009), k6(50009)].sort());
  assert.equal(h.rt.generation, 1);
  await assert.rejects(h.rt.commit(2));
});

test('max_sessions: refused by the primary -> session started as not admitted, counted as refused', async () => {
  const h = setup({ admit: false });
  const p = policy([proxy('lim', 1, { maxSessions: 1 })], [rule(1, 'lim', 80)]);
  await h.rt.prepare(spec(1, p, { lim: 50000 }));
  await h.rt.commit(1);
  await h.connect(k4(50000), sock('198.18.1.2', 4000, '198.18.2.2', 80, (MARK | 1) >>> 0));
  await new Promise((r) => setImmediate(r));
  assert.equal(h.sessions.length, 1);
  assert.equal(h.sessions[0]!.start.admitted, false);
  assert.equal(h.rt.list().length, 0);
  assert.equal(h.rt.status().counters.lim!.refused, 1);
  assert.deepEqual(h.released, []);
});

test('max_sessions: an admitted session gives its slot back once when it ends; no limit, no question', async () => {
  const h = setup({ admit: true });
  const p = policy(
    [proxy('lim', 1, { maxSessions: 1 }), proxy('free', 2)],
    [rule(1, 'lim', 80), rule(2, 'free', 81)],
  );
  await h.rt.prepare(spec(1, p, { lim: 50000, free: 50001 }));
  await h.rt.commit(1);
  await h.connect(k4(50000), sock('198.18.1.2', 4000, '198.18.2.2', 80, (MARK | 1) >>> 0));
  await h.connect(k4(50001), sock('198.18.1.2', 4001, '198.18.2.2', 81, (MARK | 2) >>> 0));
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(
    h.sessions.map((s) => [s.start.service.name, s.start.admitted]),
    [
      ['lim', true],
      ['free', true],
    ],
  );
  assert.deepEqual(h.asked, ['lim']);
  for (const s of h.sessions) s.finish();
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(h.released, ['lim']);
});

test('stop closes the listeners, waits for sessions up to the timeout, then ends the rest', async () => {
  const h = setup();
  const p = policy([proxy('web', 1)], [rule(1, 'web', 80)]);
  await h.rt.prepare(spec(1, p, { web: 50000 }));
  await h.rt.commit(1);
  await h.connect(k4(50000), sock('198.18.1.2', 4000, '198.18.2.2', 80, (MARK | 1) >>> 0));
  await h.connect(k4(50000), sock('198.18.1.2', 4001, '198.18.2.2', 80, (MARK | 1) >>> 0));
  let fire!: () => void;
  const stopping = h.rt.stop(
    1000,
    () =>
      new Promise<void>((r) => {
        fire = r;
      }),
  );
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(h.rt.listening, []);
  h.sessions[0]!.finish(); // one finishes within the drain time
  await new Promise((r) => setImmediate(r));
  assert.equal(h.sessions[1]!.killed, false);
  fire(); // the drain timeout
  assert.equal(await stopping, 1);
  assert.equal(h.sessions[1]!.killed, true);
  assert.equal(h.sessions[0]!.killed, false);
});

test('stop returns 0 at once when every session finished in time', async () => {
  const h = setup();
  const p = policy([proxy('web', 1)], [rule(1, 'web', 80)]);
  await h.rt.prepare(spec(1, p, { web: 50000 }));
  await h.rt.commit(1);
  await h.connect(k4(50000), sock('198.18.1.2', 4000, '198.18.2.2', 80, (MARK | 1) >>> 0));
  const stopping = h.rt.stop(1000, () => new Promise<void>(() => {}));
  await new Promise((r) => setImmediate(r));
  h.sessions[0]!.finish();
  assert.equal(await stopping, 0);
});

test('per-client limits: the primary is asked with the client address; a refusal names its limit and is counted by it', async () => {
  const h = setup({ admit: 'new_sessions_per_client' });
  const p = policy(
    [proxy('pc', 1, { newSessionsPerClient: { rate: 5, perSeconds: 1 } })],
    [rule(1, 'pc', 80)],
  );
  await h.rt.prepare(spec(1, p, { pc: 50000 }));
  await h.rt.commit(1);
  await h.connect(k4(50000), sock('198.18.1.2', 4000, '198.18.2.2', 80, (MARK | 1) >>> 0));
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(h.clients, ['198.18.1.2']);
  assert.equal(h.sessions[0]!.start.admitted, false);
  assert.equal(h.sessions[0]!.start.refusedBy, 'new_sessions_per_client');
  assert.deepEqual(h.rt.status().counters.pc!.refusedBy, { new_sessions_per_client: 1 });
  assert.deepEqual(h.released, []);
});

test('per-client limits: an admitted session gives its client slot back when it ends', async () => {
  const h = setup();
  const p = policy([proxy('pc', 1, { maxSessionsPerClient: 1 })], [rule(1, 'pc', 80)]);
  await h.rt.prepare(spec(1, p, { pc: 50000 }));
  await h.rt.commit(1);
  await h.connect(k4(50000), sock('198.18.1.7', 4000, '198.18.2.2', 80, (MARK | 1) >>> 0));
  await new Promise((r) => setImmediate(r));
  assert.equal(h.sessions[0]!.start.admitted, true);
  h.sessions[0]!.finish();
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(h.released, ['pc 198.18.1.7']);
});

test('descriptor capacity: beyond it a connection is reset, counted as refused and logged once', async () => {
  const h = setup({ capacity: 2 });
  const p = policy([proxy('web', 1)], [rule(7, 'web', 80)]);
  await h.rt.prepare(spec(1, p, { web: 50000 }));
  await h.rt.commit(1);
  const socks = [4000, 4001, 4002, 4003].map((port) =>
    sock('198.18.1.2', port, '198.18.2.2', 80, (MARK | 7) >>> 0),
  );
  for (const s of socks) await h.connect(k4(50000), s);
  assert.equal(h.sessions.length, 2);
  assert.deepEqual(
    socks.map((s) => s.reset),
    [false, false, true, true],
  );
  assert.equal(h.rt.status().counters.web!.refused, 2);
  // one log line for the burst (the clock stands still in this test)
  assert.equal(h.lines.join('').split('descriptor limit reached').length - 1, 1);
  // a session ending frees a place
  h.sessions[0]!.finish();
  for (let i = 0; i < 5; i++) await Promise.resolve();
  const next = sock('198.18.1.2', 4004, '198.18.2.2', 80, (MARK | 7) >>> 0);
  await h.connect(k4(50000), next);
  assert.equal(next.reset, false);
  assert.equal(h.sessions.length, 3);
});

test('sessionCapacity: what the reserve leaves, two descriptors per session', () => {
  assert.equal(sessionCapacity(20_000), Math.floor((20_000 - DEFAULTS.fdReserveCount) / 2));
  assert.equal(sessionCapacity(10), 0);
  assert.equal(sessionCapacity(Infinity), Infinity);
});

test('native accept: a listener whose services all run natively accepts natively; a reload to another service turns its connections into sockets', async () => {
  const h = setup({ native: (svc) => svc === 'plug' });
  const p1 = policy([proxy('plug', 1), proxy('web', 2)], [rule(7, 'plug', 80), rule(8, 'web', 81)], 'v1');
  await h.rt.prepare(spec(1, p1, { plug: 50000, web: 50001 }));
  await h.rt.commit(1);
  assert.deepEqual(
    [...h.acceptNative.keys()].sort(),
    [k6(50000), k4(50000)].sort(),
    'only plug accepts natively',
  );
  const conn = (fd: number, port: number, mark: number | null): NativeConn => ({
    fd,
    remote: { host: '198.18.1.2', port: 4000 + fd, family: 4 },
    local: { host: '198.18.2.2', port, family: 4 },
    mark,
  });
  h.acceptNative.get(k4(50000))!(conn(11, 80, (MARK | 7) >>> 0));
  for (let i = 0; i < 5; i++) await Promise.resolve();
  assert.equal(h.sessions.length, 1);
  assert.equal(h.sessions[0]!.start.native?.fd, 11, 'a native session gets the descriptor');
  assert.equal(h.sessions[0]!.start.socket, null);
  assert.equal(h.sessions[0]!.start.clientZone, 'clients');
  // a connection no rule diverts to this listener: closed, no session
  h.acceptNative.get(k4(50000))!(conn(12, 81, (MARK | 8) >>> 0));
  for (let i = 0; i < 5; i++) await Promise.resolve();
  assert.equal(h.sessions.length, 1);
  assert.deepEqual(h.fdsClosed, ['12']);

  // the same port now belongs to web, which needs a socket: the listener stays native (it is kept),
  // and its connections become sockets for the driver
  const p2 = policy([proxy('web', 2)], [rule(9, 'web', 80)], 'v2');
  await h.rt.prepare(spec(2, p2, { web: 50000 }));
  await h.rt.commit(2);
  h.acceptNative.get(k4(50000))!(conn(13, 80, (MARK | 9) >>> 0));
  for (let i = 0; i < 5; i++) await Promise.resolve();
  assert.equal(h.sessions.length, 2);
  assert.deepEqual(h.madeSockets, [13]);
  assert.equal(h.sessions[1]!.start.native, null);
  assert.ok(h.sessions[1]!.start.socket, 'the driver gets a socket');
  assert.equal(h.sessions[1]!.start.service.name, 'web');
  assert.equal(h.sessions[1]!.start.addrs.remote.host, '198.18.1.2', 'the addresses the addon read');

  // at the descriptor capacity a native connection is reset
  const full = setup({ native: () => true, capacity: 0 });
  await full.rt.prepare(spec(1, p1, { plug: 50000, web: 50001 }));
  await full.rt.commit(1);
  full.acceptNative.get(k4(50001))!(conn(21, 81, (MARK | 8) >>> 0));
  for (let i = 0; i < 5; i++) await Promise.resolve();
  assert.deepEqual(full.fdsClosed, ['21 reset']);
  assert.equal(full.sessions.length, 0);
});
