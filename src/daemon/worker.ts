// A worker process's part of the daemon: it accepts diverted connections on the listening sockets the
// primary owns (shared by every worker), learns the kernel's decision for each one, gives it a session
// id and runs the service's proxy core through the net driver. It holds every generation that still
// has sessions: a session keeps the Policy/Engine/upstream objects of the generation it started on.
//
// Everything that touches sockets, the native addon or the net driver comes in through WorkerDeps, so
// this file's bookkeeping is tested with fakes of those (test/unit/daemon/worker.test.ts); the types
// are the real modules' own.
//
// max_sessions is decided here and only here (accept → admit), before a session exists; see
// admission.ts.
import type { Socket } from 'node:net';
import { DEFAULTS } from '../defaults.ts';
import type { Engine } from '../engine/index.ts';
import { TzorpError } from '../errors.ts';
import type { NativeConn } from '../net/accept.ts';
import { type SessionHandle, type SessionSummary, socketAddrs } from '../net/index.ts';
import type { Policy, ProxyService, Rule } from '../policy/index.ts';
import type { Addr, CoreFactory } from '../proxy/core/index.ts';
import { type BoundProxy, bindProxies } from '../proxy/index.ts';
import type { Admission } from './admission.ts';
import { type LimitName, needsAdmission } from './client-limits.ts';
import type { SessionInfo, TlsSessionInfo } from './control-protocol.ts';
import type { ListenerSpec, WorkerGenerationSpec, WorkerStatus } from './ipc.ts';
import type { ZorpLog } from './log.ts';
import { type SessionIdSource, sessionId } from './session-ids.ts';
import type { ServiceStats } from './stats.ts';

const PROTO_TCP = 6;

/** A TCP endpoint as the accepted socket shows it. */
interface Endpoint {
  host: string;
  port: number;
}

export interface SessionStart<U> {
  id: string;
  service: ProxyService;
  /** The service's core factory, its options bound once for the generation (src/proxy/bind.ts). */
  createCore: CoreFactory;
  /** The service's typed options (what a native session needs of them). */
  options: unknown;
  /** The accepted connection: a net.Socket, or (native accept, a service that runs natively) the
   * addon's descriptor; exactly one of the two. */
  socket: Socket | null;
  native: NativeConn | null;
  upstream: U;
  clientZone: string | null;
  ruleId: number | null;
  /** max_sessions and the per-client limits, as WorkerRuntime decided them (true when the service has
   * no limit): a session not admitted ends at once as DENIED_BY_LIMIT with its summary. */
  admitted: boolean;
  /** The limit that refused a session not admitted. */
  refusedBy?: LimitName;
  /** The socket's addresses (runSession's addrs). */
  addrs: { remote: Addr; local: Addr };
  /** For the session's summary, when it ends (runSession's onEnd): one function for every session. */
  onEnd: (summary: SessionSummary) => void;
}

export interface ClosableServer {
  close(): Promise<void>;
}

export interface WorkerDeps<U> {
  /** Start accepting on a listening socket the primary owns; with `onNative`, the addon accepts and
   * each connection comes as a descriptor (when it can: else as sockets to onConnection). */
  listen(
    spec: ListenerSpec,
    onConnection: (sock: Socket) => void,
    onNative?: (conn: NativeConn) => void,
  ): Promise<ClosableServer>;
  /** Whether a service's sessions can run without sockets in JavaScript (native-plug.ts
   * nativePlugEligible); its listeners then accept natively. Default: never. */
  runsNatively?(service: ProxyService, proxy: BoundProxy): boolean;
  /** Load the TLS layer's I/O (driver.ts tlsLayer) before a generation with a TLS service is used:
   * it is loaded on first use, so a worker whose policies have none does not load node:tls. */
  loadTls?(): Promise<unknown>;
  /** A net.Socket of a natively accepted descriptor, for a session that needs one (a listener
   * accepting natively can get a connection for another service after a reload). */
  socketOf?(fd: number): Socket;
  /** Close a natively accepted descriptor (reset: RST). */
  closeFd?(fd: number, reset: boolean): void;
  /** SO_MARK of an accepted socket (tcp_fwmark_accept: the SYN's mark), null when unreadable. */
  mark(sock: Socket): number | null;
  engine(policy: Policy): Engine;
  /** What one proxy service's sessions share within a generation (router, chainer state). */
  upstream(service: ProxyService, engine: Engine, policy: Policy): U;
  startSession(s: SessionStart<U>): SessionHandle;
  /** max_sessions slots (daemon-wide). */
  admission: Admission;
  onStart?(service: ProxyService): void;
  /** `running` is false for a session refused before it started (max_sessions). */
  onEnd?(service: ProxyService, summary: SessionSummary, running: boolean): void;
  ids: SessionIdSource;
  log: ZorpLog;
  stats: ServiceStats;
  now(): number;
  index: number;
  /** Sessions this worker may hold at once (the descriptor limit's share, capacity.ts); beyond it a
   * connection is reset, logged and counted as refused. Default: no limit. */
  capacity?: number;
}

export interface WorkerGeneration<U> {
  n: number;
  policy: Policy;
  engine: Engine;
  rules: Map<number, Rule>;
  /** Proxy service name -> its listener keys, shared upstream state and bound proxy (typed options). */
  services: Map<
    string,
    {
      service: ProxyService;
      keys: { v4: string; v6: string };
      upstream: U;
      proxy: BoundProxy;
      /** Its sessions run natively (deps.runsNatively). */
      native: boolean;
    }
  >;
  sessions: number;
}

interface LiveSession<U> {
  id: string;
  gen: WorkerGeneration<U>;
  service: ProxyService;
  ruleId: number | null;
  how: 'mark' | 'engine';
  client: Endpoint;
  clientZone: string | null;
  local: Endpoint;
  startedAt: number;
  run: SessionHandle;
}

/** An accepted connection on its way to a session: a net.Socket or the addon's descriptor. */
interface Incoming {
  addrs: { remote: Addr; local: Addr };
  mark: number | null;
  socket: Socket | null;
  native: NativeConn | null;
}

export type Resolution<U> =
  | { gen: WorkerGeneration<U>; rule: Rule; service: ProxyService; how: 'mark' | 'engine' }
  | { error: string };

/**
 * The kernel's decision for a connection accepted on `key`. With net.ipv4.tcp_fwmark_accept=1 the
 * socket's mark is the SYN's: tproxyMark | rule id. The generations are tried in order (the current
 * one first, then one being prepared: between the kernel switch and the workers' commit a connection
 * can carry a rule id of the next ruleset). A rule matches when its service is a proxy service whose
 * listener is the one that accepted the connection. Without the mark (tcp_fwmark_accept off, or
 * --no-kernel), the engine decides the same question from the addresses.
 */
export function resolveConnection<U>(
  gens: WorkerGeneration<U>[],
  key: string,
  mark: number | null,
  client: Endpoint,
  local: Endpoint,
): Resolution<U> {
  for (const gen of gens) {
    const tmark = gen.policy.settings.tproxyMark >>> 0;
    if (mark === null || (mark & tmark) >>> 0 !== tmark) continue;
    const ruleId = (mark & ~tmark) >>> 0;
    const rule = gen.rules.get(ruleId);
    const entry = rule ? gen.services.get(rule.service) : undefined;
    if (rule && entry && (entry.keys.v4 === key || entry.keys.v6 === key)) {
      return { gen, rule, service: entry.service, how: 'mark' };
    }
  }
  for (const gen of gens) {
    const tmark = gen.policy.settings.tproxyMark >>> 0;
    if (mark !== null && (mark & tmark) >>> 0 === tmark) continue; // marked, but not by this generation
    const d = gen.engine.decide({
      proto: PROTO_TCP,
      src: client.host,
      dst: local.host,
      srcPort: client.port,
      dstPort: local.port,
    });
    const rule = d.rule ? gen.rules.get(d.rule.id) : undefined;
    const entry = rule ? gen.services.get(rule.service) : undefined;
    if (rule && entry && (entry.keys.v4 === key || entry.keys.v6 === key)) {
      return { gen, rule, service: entry.service, how: 'engine' };
    }
  }
  const m = mark === null ? 'unreadable' : `0x${(mark >>> 0).toString(16)}`;
  return {
    error: `no rule of generation(s) ${gens.map((g) => g.n).join(', ') || '-'} diverts to ${key} (mark ${m})`,
  };
}

export class WorkerRuntime<U> {
  private current: WorkerGeneration<U> | null = null;
  private pending: WorkerGeneration<U> | null = null;
  /** Generations that still have sessions (the current one included). */
  private readonly alive = new Set<WorkerGeneration<U>>();
  private readonly servers = new Map<string, { server: ClosableServer; spec: ListenerSpec }>();
  private readonly sessions = new Map<string, LiveSession<U>>();
  private stopping = false;
  private drainedWaiters: (() => void)[] = [];
  /** Refused at the descriptor limit since the last log line about it, and when that was. */
  private capacityRefused = 0;
  private capacityLoggedAt = Number.NEGATIVE_INFINITY;

  constructor(private readonly deps: WorkerDeps<U>) {}

  get generation(): number | null {
    return this.current?.n ?? null;
  }

  get listening(): string[] {
    return [...this.servers.keys()].sort();
  }

  get sessionCount(): number {
    return this.sessions.size;
  }

  /** Build the generation and start accepting on listeners it adds. Not used for new connections
   * before `commit`, except for connections the kernel already decided with its rules. */
  async prepare(spec: WorkerGenerationSpec): Promise<void> {
    if (this.stopping) throw new TzorpError('DAEMON_STOPPING', 'the worker is stopping');
    const engine = this.deps.engine(spec.policy);
    const rules = new Map(spec.policy.rules.map((r) => [r.id, r]));
    const services: WorkerGeneration<U>['services'] = new Map();
    // Options are parsed here, once per generation; the primary checked the same policy already.
    const bound = bindProxies(spec.policy);
    if (bound.errors.length > 0) throw bound.errors[0];
    for (const [name, keys] of Object.entries(spec.services)) {
      const s = spec.policy.services.get(name);
      const proxy = bound.services.get(name);
      if (s?.type !== 'proxy' || !proxy) continue;
      const native = this.deps.runsNatively?.(s, proxy) ?? false;
      services.set(name, {
        service: s,
        keys,
        upstream: this.deps.upstream(s, engine, spec.policy),
        proxy,
        native,
      });
    }
    // (a load that fails refuses the generation here, not its first TLS session)
    for (const e of services.values())
      if (e.service.tls) {
        await this.deps.loadTls?.();
        break;
      }
    const gen: WorkerGeneration<U> = { n: spec.n, policy: spec.policy, engine, rules, services, sessions: 0 };
    const opened: string[] = [];
    try {
      for (const l of spec.listeners) {
        if (this.servers.has(l.key)) continue;
        // Native accept when every service of this generation on the listener runs natively.
        let native = false;
        for (const e of services.values()) {
          if (e.keys.v4 !== l.key && e.keys.v6 !== l.key) continue;
          native = e.native;
          if (!native) break;
        }
        const server = await this.deps.listen(
          l,
          (sock) => this.accept(l.key, sock),
          native ? (conn) => this.acceptNative(l.key, conn) : undefined,
        );
        this.servers.set(l.key, { server, spec: l });
        opened.push(l.key);
      }
    } catch (e) {
      for (const k of opened) await this.closeServer(k);
      throw e;
    }
    this.pending = gen;
  }

  /** Switch new connections to the prepared generation; close listeners nobody uses any more. */
  async commit(n: number): Promise<void> {
    const gen = this.pending;
    if (!gen || gen.n !== n)
      throw new TzorpError('INTERNAL', `commit of generation ${n}, but ${gen?.n ?? 'none'} is prepared`);
    const old = this.current;
    this.pending = null;
    this.current = gen;
    this.alive.add(gen);
    if (old && old.sessions === 0) this.alive.delete(old);
    await this.closeUnused();
  }

  async abort(n: number): Promise<void> {
    if (this.pending?.n !== n) return;
    this.pending = null;
    await this.closeUnused();
  }

  private keysInUse(): Set<string> {
    const keys = new Set<string>();
    for (const g of [this.current, this.pending]) {
      if (!g) continue;
      for (const s of g.services.values()) {
        keys.add(s.keys.v4);
        keys.add(s.keys.v6);
      }
    }
    return keys;
  }

  private async closeUnused(): Promise<void> {
    const used = this.keysInUse();
    for (const k of [...this.servers.keys()]) if (!used.has(k)) await this.closeServer(k);
  }

  private async closeServer(key: string): Promise<void> {
    const s = this.servers.get(key);
    if (!s) return;
    this.servers.delete(key);
    await s.server.close().catch(() => {});
  }

  private accept(key: string, sock: Socket): void {
    if (this.stopping) {
      sock.destroy();
      return;
    }
    // IPv4 peers of a dual-stack socket show as ::ffff:a.b.c.d; zones, logs and the cores want the
    // one canonical text (the driver's Addr is made the same way)
    const addrs = socketAddrs(sock);
    if (!addrs) {
      sock.destroy(); // reset before we could look at it
      return;
    }
    this.incoming(key, { addrs, mark: this.deps.mark(sock), socket: sock, native: null });
  }

  /** A connection the addon accepted (the listener accepts natively). */
  private acceptNative(key: string, conn: NativeConn): void {
    const inc: Incoming = {
      addrs: { remote: conn.remote, local: conn.local },
      mark: conn.mark,
      socket: null,
      native: conn,
    };
    if (this.stopping) this.drop(inc, false);
    else this.incoming(key, inc);
  }

  /** Close an accepted connection that gets no session. */
  private drop(inc: Incoming, reset: boolean): void {
    if (inc.socket) {
      if (reset) inc.socket.resetAndDestroy();
      else inc.socket.destroy();
    } else if (inc.native) this.deps.closeFd?.(inc.native.fd, reset);
  }

  private incoming(key: string, inc: Incoming): void {
    const { addrs } = inc;
    const { remote: client, local } = addrs;
    const gens = [this.current, this.pending].filter((g): g is WorkerGeneration<U> => g !== null);
    const r = resolveConnection(gens, key, inc.mark, client, local);
    if ('error' in r) {
      // Zorp: "Unable to determine service, KZorp service lookup failed" and the connection is closed.
      this.deps.log.log('core.error', 1, null, 'Unable to determine service; connection closed', {
        client_address: `${client.host}:${client.port}`,
        client_local: `${local.host}:${local.port}`,
        reason: r.error,
      });
      this.drop(inc, false);
      return;
    }
    const { gen, rule, service } = r;
    if (this.sessions.size >= (this.deps.capacity ?? Infinity)) {
      this.refuseAtCapacity(service, client);
      this.drop(inc, true);
      return;
    }
    const entry = gen.services.get(service.name)!;
    if (inc.native && !entry.native) {
      // accepted natively for a service that needs a socket (a reload put it on this listener)
      if (!this.deps.socketOf) {
        this.drop(inc, true);
        return;
      }
      inc.socket = this.deps.socketOf(inc.native.fd);
      inc.native = null;
    }
    const clientZone = gen.engine.zoneOf(client.host)?.name ?? null;
    const begin = (answer: boolean | LimitName, n: number) => {
      const id = sessionId(service.name, n);
      const admitted = answer === true;
      const refusedBy: LimitName | undefined = admitted
        ? undefined
        : answer === false
          ? 'max_sessions'
          : answer;
      let run: SessionHandle;
      try {
        run = this.deps.startSession({
          id,
          service,
          createCore: entry.proxy.createCore,
          options: entry.proxy.options,
          socket: inc.socket,
          native: inc.native,
          addrs,
          upstream: entry.upstream,
          clientZone,
          ruleId: rule.id,
          admitted,
          ...(refusedBy ? { refusedBy } : {}),
          onEnd: this.sessionEnded,
        });
      } catch (e) {
        this.deps.log.log('core.error', 1, id, 'Internal error starting the session', {
          error: (e as Error).message,
        });
        this.drop(inc, false);
        if (admitted) this.release(service, client.host);
        return;
      }
      if (!admitted) {
        this.deps.stats.refused(service.name, refusedBy);
        this.untilRefusedDone(run, service);
        return;
      }
      this.track({
        id,
        gen,
        service,
        ruleId: rule.id,
        how: r.how,
        client,
        clientZone,
        local,
        startedAt: this.deps.now(),
        run,
      });
    };
    const withId = (answer: boolean | LimitName) => {
      const n = this.deps.ids.tryTake(service.name);
      if (n !== null) begin(answer, n);
      else void this.deps.ids.next(service.name).then((m) => begin(answer, m));
    };
    const admitted = this.admit(service, client.host);
    if (admitted === true) withId(admitted);
    else {
      inc.socket?.pause();
      admitted.then(withId, () => withId(false));
    }
  }

  /** A running session, until it ends. (Its own method: a closure made inside accept() would keep
   * accept's context, and with it the accepted socket, for the session's whole life: after a native
   * relay takes the connection over, a destroyed socket and its state per session.) */
  private track(live: LiveSession<U>): void {
    const { id, gen, service } = live;
    this.sessions.set(id, live);
    gen.sessions++;
    this.alive.add(gen);
    this.deps.stats.started(service.name);
    this.deps.onStart?.(service);
  }

  /** Every session's end, by its id (one function, not a closure per session that would live as long
   * as the session). Deferred to a microtask: a session can end inside runSession, before track(). */
  private readonly sessionEnded = (summary: SessionSummary): void => {
    queueMicrotask(() => {
      const live = this.sessions.get(summary.id);
      if (live) this.ended(live, summary);
    });
  };

  private ended(live: LiveSession<U>, summary: SessionSummary): void {
    const { service } = live;
    this.sessions.delete(live.id);
    live.gen.sessions--;
    if (live.gen.sessions === 0 && live.gen !== this.current) this.alive.delete(live.gen);
    this.deps.stats.ended(service.name);
    this.release(service, live.client.host);
    this.deps.onEnd?.(service, summary, true);
    if (this.sessions.size === 0) for (const w of this.drainedWaiters.splice(0)) w();
  }

  /** A session refused before it started (max_sessions): not tracked, it ends at once. */
  private untilRefusedDone(run: SessionHandle, service: ProxyService): void {
    void run.done.then((summary) => this.deps.onEnd?.(service, summary, false));
  }

  /** The descriptor limit is reached: refuse (the caller resets), count, and log at most once per
   * capacityLogIntervalMs with the number refused meanwhile, so a flood cannot flood the log too. */
  private refuseAtCapacity(service: ProxyService, client: { host: string; port: number }): void {
    this.deps.stats.refused(service.name);
    this.capacityRefused++;
    const now = this.deps.now();
    if (now - this.capacityLoggedAt < DEFAULTS.capacityLogIntervalMs) return;
    this.capacityLoggedAt = now;
    this.deps.log.log('core.policy', 2, null, 'Connection refused, descriptor limit reached', {
      service: service.name,
      client_address: `${client.host}:${client.port}`,
      sessions: this.sessions.size,
      capacity: this.deps.capacity,
      refused: this.capacityRefused,
    });
    this.capacityRefused = 0;
  }

  /** max_sessions and the per-client limits: the one decision, before the session exists (so before
   * any server connection). A service without a limit is admitted at once; otherwise a slot is asked
   * for (an unanswerable question counts as full: fail closed). */
  private admit(service: ProxyService, client: string): true | Promise<boolean | LimitName> {
    return needsAdmission(service) ? this.deps.admission.admit(service, client) : true;
  }

  /** Give back the slot of an admitted session (nothing to give for a service without a limit). */
  private release(service: ProxyService, client: string): void {
    if (needsAdmission(service)) this.deps.admission.release(service, client);
  }

  status(): WorkerStatus {
    const generations: Record<number, number> = {};
    for (const g of this.alive) generations[g.n] = g.sessions;
    return { counters: this.deps.stats.snapshot(), generations };
  }

  /** Sessions running in this worker (cheap: for the primary's lost-sessions count). */
  get running(): number {
    return this.sessions.size;
  }

  list(): SessionInfo[] {
    const now = this.deps.now();
    return [...this.sessions.values()].map((s) => {
      const snap = s.run.snapshot();
      return {
        id: s.id,
        service: s.service.name,
        proxy: s.service.proxy,
        rule: s.ruleId,
        client: { address: s.client.host, port: s.client.port, zone: s.clientZone },
        clientLocal: { address: s.local.host, port: s.local.port },
        server: snap.server
          ? { address: snap.server.host, port: snap.server.port, zone: snap.serverZone }
          : null,
        bytesFromClient: snap.bytes.fromClient,
        bytesToClient: snap.bytes.toClient,
        startedAt: new Date(s.startedAt).toISOString(),
        ageMs: now - s.startedAt,
        generation: s.gen.n,
        worker: this.deps.index,
        decision: s.how === 'mark' ? 'kernel' : 'engine',
        ...tlsInfo(snap.counters),
      };
    });
  }

  /** Stop accepting, let sessions finish for up to timeoutMs, then end the rest. Returns how many
   * had to be ended. `wait` is the timer (injected for tests). */
  async stop(timeoutMs: number, wait: (ms: number) => Promise<void>): Promise<number> {
    this.stopping = true;
    this.pending = null;
    for (const k of [...this.servers.keys()]) await this.closeServer(k);
    if (this.sessions.size > 0) {
      const drained = new Promise<void>((r) => this.drainedWaiters.push(r));
      await Promise.race([drained, wait(timeoutMs)]);
    }
    const left = this.sessions.size;
    // Past the drain timeout: ask the cores to finish, then end what is still there.
    for (const s of [...this.sessions.values()]) {
      s.run.abort('the daemon is stopping (drain timeout)');
      s.run.kill('stop timeout');
    }
    return left;
  }
}

/** The TLS layer's accounting (src/proxy/tls/gate.ts, inspect-gate.ts: tls_* fields) as `tzorp sessions` shows it. */
function tlsInfo(c: Readonly<Record<string, number | string>>): { tls?: TlsSessionInfo } {
  if (typeof c.tls_mode !== 'string') return {};
  const text = (v: unknown) => (typeof v === 'string' && v !== '' ? v : null);
  return {
    tls: {
      mode: c.tls_mode,
      sni: text(c.tls_sni),
      offeredMaxVersion: text(c.tls_offered_max_version),
      alpnOffered: text(c.tls_alpn_offered)?.split(',') ?? [],
      result: text(c.tls_result) ?? 'incomplete',
      ...(c.tls_mode === 'inspect'
        ? {
            version: text(c.tls_version),
            serverVersion: text(c.tls_server_version),
            serverSubject: text(c.tls_server_subject),
            serverIssuer: text(c.tls_server_issuer),
            serverVerify: text(c.tls_server_verify),
          }
        : {}),
    },
  };
}
