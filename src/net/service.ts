// Everything a proxy service's sessions share: router, chainer state, limit_target_zones_to and the
// max_sessions counter. The daemon builds one ServiceUpstream per proxy service and generation and
// passes it to every runSession of that service.
import { nativeAvailable } from '../native/index.ts';
import type { ProxyService } from '../policy/model.ts';
import type { Addr } from '../proxy/core/types.ts';
import { formatAddr, makeAddr } from './addr.ts';
import { ChainerRuntime, ChainStop, rejectingCall } from './chainer.ts';
import type { DriverSocket } from './native-socket.ts';
import { isAddressLiteral, localBindFor, type RouteInput, routeTargets } from './router.ts';
import {
  type Cancel,
  connectUpstream,
  connectUpstreamNative,
  type UpstreamConnectOptions,
} from './upstream.ts';

/** Concurrent sessions per service (Zorp max_sessions). Keep one across reloads so sessions of the
 * old generation still count. Counts within this process. */
export class SessionLimiter {
  private readonly counts = new Map<string, number>();

  /** Take a slot; false when `max` (> 0) sessions already run. */
  acquire(service: string, max: number): boolean {
    const n = this.counts.get(service) ?? 0;
    if (max > 0 && n >= max) return false;
    this.counts.set(service, n + 1);
    return true;
  }

  release(service: string): void {
    const n = this.counts.get(service) ?? 0;
    if (n <= 1) this.counts.delete(service);
    else this.counts.set(service, n - 1);
  }

  count(service: string): number {
    return this.counts.get(service) ?? 0;
  }
}

/** Zone lookup (the engine's zoneOf) and the zone tree (policy.zones) for limit_target_zones_to. */
export interface ZoneLookup {
  zoneOf(host: string): { name: string } | null;
  zones: ReadonlyMap<string, { parent: string | null }>;
}

/** The server connection was refused by policy (limit_target_zones_to): verdict DENIED_BY_POLICY. */
export class TargetZoneDenied extends ChainStop {
  constructor(
    readonly target: Addr,
    readonly zone: string | null,
  ) {
    super(
      `server zone ${zone ?? '(none)'} of ${formatAddr(target)} is not allowed by limit_target_zones_to`,
      'PROXY_POLICY',
    );
  }
}

export interface ServerConnection {
  /** A NativeSocket when connectServer was asked for native I/O. */
  socket: DriverSocket;
  target: Addr;
  serverZone: string | null;
}

export interface ServiceUpstreamOptions {
  /** Needed for limit_target_zones_to and for the summary's server zone. */
  zones?: ZoneLookup;
  /** Shared max_sessions counter (default: one of its own). */
  limiter?: SessionLimiter;
  /** Transparent upstream sockets also when not forging (default: when the native addon is built).
   * Zorp does this: replies then match `socket transparent 1` and take the tproxy-mark path, so the
   * input chain needs no conntrack state for them. Without the addon, replies rely on `ct state
   * established` in input (linux-tproxy.md pitfall 4). */
  transparentUpstream?: boolean;
  /** SO_MARK on upstream sockets (Zorp server_socket_mark). */
  mark?: number;
  /** Name resolution for inband targets (default: dns.lookup, all addresses). */
  resolve?: (host: string) => Promise<string[]>;
  /** Clock for the failover cache. */
  now?: () => number;
}

type ServiceConfig = Pick<
  ProxyService,
  | 'name'
  | 'router'
  | 'chainer'
  | 'limitTargetZonesTo'
  | 'maxSessions'
  | 'maxSessionsPerClient'
  | 'newSessionsPerClient'
>;

/** Server zones an upstream remembers (zoneOf). */
const ZONE_CACHE_MAX = 4096;

async function defaultResolve(host: string): Promise<string[]> {
  // node:dns/promises on first use, not at every worker's start (bench/README.md, start-up memory)
  const { lookup } = process.getBuiltinModule('node:dns/promises');
  const r = await lookup(host, { all: true, verbatim: true });
  return r.map((a) => a.address);
}

export class ServiceUpstream {
  readonly chainer: ChainerRuntime;
  readonly limiter: SessionLimiter;
  private readonly transparent: boolean;
  private readonly zones = new Map<string, string | null>();

  constructor(
    readonly service: ServiceConfig,
    private readonly opts: ServiceUpstreamOptions = {},
  ) {
    this.chainer = new ChainerRuntime(service.chainer, opts.now ?? Date.now);
    this.limiter = opts.limiter ?? new SessionLimiter();
    this.transparent = opts.transparentUpstream ?? nativeAvailable();
  }

  get name(): string {
    return this.service.name;
  }

  /** Whether the core must name the server (CoreContext.inband). */
  get inband(): boolean {
    return this.service.router.type === 'inband';
  }

  /** max_sessions: take a slot for a new session, false when the service is full. */
  admit(): boolean {
    return this.limiter.acquire(this.service.name, this.service.maxSessions);
  }

  release(): void {
    this.limiter.release(this.service.name);
  }

  /** The zone of an address, null without a zone lookup or outside every zone. Server addresses
   * repeat from session to session: the last few thousand answers are kept (the upstream lives as
   * long as its generation, whose zones do not change). */
  zoneOf(host: string): string | null {
    const known = this.zones.get(host);
    if (known !== undefined) return known;
    const z = this.opts.zones?.zoneOf(host)?.name ?? null;
    if (this.zones.size >= ZONE_CACHE_MAX) this.zones.clear();
    this.zones.set(host, z);
    return z;
  }

  /** limit_target_zones_to: the server's zone or one of its ancestors must be listed. */
  targetAllowed(zone: string | null): boolean {
    const allowed = this.service.limitTargetZonesTo;
    if (allowed.length === 0) return true;
    const tree = this.opts.zones?.zones;
    for (let z = zone, depth = 0; z !== null && depth < 64; depth++) {
      if (allowed.includes(z)) return true;
      z = tree?.get(z)?.parent ?? null;
    }
    return false;
  }

  /**
   * Route, chain and connect the session's server side. Rejects with TargetZoneDenied (policy),
   * RouteError (impossible route), ChainFailed (every target failed) or CONNECT_FAILED 'aborted'. `native`: the socket is a NativeSocket.
   */
  connectServer(
    input: RouteInput,
    signal?: Cancel,
    native = false,
    sendsFirst = false,
  ): Promise<ServerConnection> {
    return this.connectVia<DriverSocket>(
      input,
      native ? connectUpstreamNative : connectUpstream,
      signal,
      sendsFirst,
    ).then((c) => ({ socket: c.conn, target: c.target, serverZone: c.zone }));
  }

  /**
   * connectServer with another way to connect one target (the native relay's: native-plug.ts): the
   * same routing, chaining and limit_target_zones_to, whatever `connect` makes of a target. Never
   * throws: whatever fails rejects. Without a name to resolve it is promise steps, not async
   * functions (a session's connect is on every session's path). `sendsFirst`: the caller writes as soon
   * as it is connected (UpstreamConnectOptions.deferAck).
   */
  connectVia<T>(
    input: RouteInput,
    connect: (o: UpstreamConnectOptions) => Promise<T>,
    signal?: Cancel,
    sendsFirst = false,
  ): Promise<{ conn: T; target: Addr; zone: string | null }> {
    try {
      const named = routeTargets(this.service.router, input);
      const targets: Addr[] = [];
      for (const t of named) {
        const a = literalTarget(t);
        if (!a) return this.resolveThenConnect(input, named, connect, signal, sendsFirst);
        targets.push(a);
      }
      return this.connectTargets(input, targets, connect, signal, sendsFirst);
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /** connectVia for targets named by a name: resolved first (every address of each name, in order). */
  private async resolveThenConnect<T>(
    input: RouteInput,
    named: readonly { host: string; port: number; family?: 4 | 6 }[],
    connect: (o: UpstreamConnectOptions) => Promise<T>,
    signal: Cancel | undefined,
    sendsFirst: boolean,
  ): Promise<{ conn: T; target: Addr; zone: string | null }> {
    const targets: Addr[] = [];
    for (const t of named) {
      const a = literalTarget(t);
      if (a) targets.push(a);
      else
        for (const h of await (this.opts.resolve ?? defaultResolve)(t.host))
          targets.push(makeAddr(h, t.port));
    }
    return this.connectTargets(input, targets, connect, signal, sendsFirst);
  }

  /** Chain the targets; each attempt checks limit_target_zones_to, then connects. May throw (the
   * caller turns it into a rejection). */
  private connectTargets<T>(
    input: RouteInput,
    targets: Addr[],
    connect: (o: UpstreamConnectOptions) => Promise<T>,
    signal: Cancel | undefined,
    sendsFirst: boolean,
  ): Promise<{ conn: T; target: Addr; zone: string | null }> {
    const router = this.service.router;
    // forge_addr can only bind the client's address toward a server of the client's family.
    const usable = router.forgeAddr ? targets.filter((t) => t.family === input.client.family) : targets;
    if (usable.length === 0 && targets.length > 0) localBindFor(router, input.client, targets[0]!); // throws RouteError
    const attempt = (target: Addr): Promise<{ conn: T; zone: string | null }> => {
      const zone = this.zoneOf(target.host);
      if (!this.targetAllowed(zone)) throw new TargetZoneDenied(target, zone);
      const o: UpstreamConnectOptions = {
        target,
        local: localBindFor(router, input.client, target),
        transparent: this.transparent,
        timeoutMs: this.chainer.timeoutConnectMs,
      };
      if (this.opts.mark !== undefined) o.mark = this.opts.mark;
      if (sendsFirst) o.deferAck = true;
      if (signal) o.signal = signal;
      return rejectingCall(connect, o).then(
        (conn) => ({ conn, zone }),
        (e: unknown) => {
          // The session went away: that says nothing about the target, do not remember it as down.
          if (signal?.aborted) throw new ChainStop('aborted');
          throw e;
        },
      );
    };
    return this.chainer
      .run(usable, attempt)
      .then(({ value, target }) => ({ conn: value.conn, target, zone: value.zone }));
  }
}

/** A router's target as an address, or null when its host is a name to resolve. */
function literalTarget(t: { host: string; port: number; family?: 4 | 6 }): Addr | null {
  if (t.family !== undefined) return { host: t.host, port: t.port, family: t.family };
  return isAddressLiteral(t.host) ? makeAddr(t.host, t.port) : null;
}
