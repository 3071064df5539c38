// Typed wrapper of the tzorp_native addon (tzorp_native.c): the socket calls Node.js cannot make.
// Built by scripts/setup.mjs (`npm run build`) with node-gyp into build/Release/tzorp_native.node.
// Every function throws TzorpError NATIVE_CALL (details: call, errno, code) when the system call fails
// and NATIVE_MISSING when the addon was not built. See docs/native.md.
import { createRequire } from 'node:module';
import type { Server, Socket } from 'node:net';
import { constants as osConstants } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { TzorpError } from '../errors.ts';

interface RawAddon {
  listen(
    host: string,
    port: number,
    backlog: number,
    opts?: {
      transparent?: boolean;
      reuseAddr?: boolean;
      reusePort?: boolean;
      v6Only?: boolean;
      mark?: number;
    },
  ): number;
  /** `flags`: SOCKET_TRANSPARENT | SOCKET_REUSEADDR | SOCKET_NODELAY | SOCKET_DEFER_ACK; `mark`: SO_MARK,
   * -1 for none. */
  socket(family: 4 | 6, bindHost: string | null, bindPort: number, flags: number, mark: number): number;
  getMark(fd: number): number;
  addrs(fd: number): [string, number, string, number] | null | undefined;
  addrText(bytes: Uint8Array): string;
  setMark(fd: number, mark: number): void;
  getTransparent(fd: number): boolean;
  deferAcks(fd: number, on: boolean): void;
  getDeferAcks(fd: number): boolean;
  close(fd: number, reset?: boolean): void;
  resetOnClose(fd: number): void;
  dropPrivileges(uid: number, gid: number, groups: number[], caps: number[]): DroppedPrivileges;
  // tzorp_relay.c
  relayStart(
    fdA: number,
    fdB: number,
    idleMs: number,
    initAB: Uint8Array | null,
    initBA: Uint8Array | null,
    onEnd: RelayEndCallback,
    /** A one-way body relay of A's next `limit` bytes to B (tzorp_relay.c); the caller keeps its sockets. */
    limit?: number,
  ): number;
  relayConnect(
    clientFd: number,
    serverFd: number,
    host: string,
    port: number,
    connectTimeoutMs: number,
    idleMs: number,
    onEnd: RelayEndCallback,
  ): number;
  relayStop(slot: number, reset: boolean): RelayCounts | null;
  relayCounts(slot: number): RelayCounts | null;
  relayActive(): number;
  relayPoolFds(): number;
  /** Where relays run: "loop" (the JavaScript thread's event loop) or "thread" (one of their own);
   * settable until the first relay starts. Returns the mode in force. */
  relayMode(mode?: RelayMode): RelayMode;
  raiseNofile(): { soft: number; hard: number };
  // tzorp_nflog.c
  nflogOpen(group: number, copyBytes: number): number;
  /** `readBuffer`: where every read lands (at least 4 KiB); kind 0's arg is how many bytes it got,
   * to be copied out before the callback returns. */
  ioInit(cb: IoCallback, readBuffer: Buffer): void;
  ioOpen(fd: number, noDelay: boolean): number;
  ioListen(fd: number): number;
  ioSet(id: number, readable: boolean, writable: boolean): void;
  ioHold(id: number, held: boolean): void;
  ioWrite(id: number, data: Uint8Array, offset: number): number;
  ioConnect(id: number, host: string, port: number): number;
  ioSoError(id: number): number;
  ioShutdown(id: number): number;
  ioClose(id: number, reset: boolean): void;
  // tzorp_memory.cc
  shedMemory(): void;
}

/** The one receiver of tzorp_io.c's events: kind 0 = bytes (arg: how many, in
 * the read buffer given to ioInit), 1 = end of stream, 2 =
 * error (arg: errno), 3 = writable; on a listening socket (ioListen) 4 = accepted (arg: the new
 * descriptor, non-blocking, Nagle off, nothing read; then the peer's and the local address in
 * canonical text, IPv4 never as ::ffff:, and the SYN's mark, null when unreadable; an empty local host:
 * the connection was reset before its address could be read) and 5 = an accept failed for want of
 * descriptors or memory (arg: errno; the listener pauses a moment). */
export type IoCallback = (
  id: number,
  kind: number,
  arg: number | undefined,
  peerHost?: string,
  peerPort?: number,
  localHost?: string,
  localPort?: number,
  mark?: number | null,
) => void;

/** Socket I/O on Node's loop without net.Socket (tzorp_io.c; src/net/native-socket.ts): the addon's
 * io* calls, typed, without the per-call wrapping of `call` (they are on every read and write; their
 * failures come back as values, not throws, except for bad arguments). Throws NATIVE_MISSING. */
export type IoAddon = Pick<
  RawAddon,
  | 'ioInit'
  | 'ioOpen'
  | 'ioListen'
  | 'ioSet'
  | 'ioHold'
  | 'ioWrite'
  | 'ioConnect'
  | 'ioSoError'
  | 'ioShutdown'
  | 'ioClose'
>;
export function ioAddon(): IoAddon {
  return load();
}

/** What the process runs with after dropPrivileges, read back from the kernel (capget, getresuid). */
export interface DroppedPrivileges {
  uid: number;
  gid: number;
  /** Effective and permitted capability sets, 16 hex digits as /proc/<pid>/status shows them. */
  effective: string;
  permitted: string;
}

/** Where the native relay runs (tzorp_relay.c, relayMode). */
export type RelayMode = 'loop' | 'thread';

/** Bytes of a native relay in side order: read from a, written to a, read from b, written to b. */
export type RelayCounts = [number, number, number, number];
/** How a native relay ended: `by` is the side (0 = a, 1 = b) that closed or failed first, -1 none.
 * A relay made by relayConnect first reports 'connected' (with the server socket's local address;
 * not an end) or ends with 'connectFailed' (errno; the client's descriptor is the caller's again). */
export type RelayEndCallback = (
  slot: number,
  reason: 'closed' | 'idle' | 'error' | 'connected' | 'connectFailed' | 'done',
  by: number,
  errno: number,
  counts: RelayCounts,
  localHost: string | undefined,
  localPort: number | undefined,
) => void;

/** Where setup.mjs puts the built addon; TZORP_NATIVE_ADDON overrides it (packaging, tests). */
export const ADDON_PATH =
  process.env.TZORP_NATIVE_ADDON ||
  join(dirname(fileURLToPath(import.meta.url)), 'build/Release/tzorp_native.node');

let addon: RawAddon | null = null;
let loadError: unknown = null;

function load(): RawAddon {
  if (addon) return addon;
  if (loadError === null) {
    try {
      addon = createRequire(import.meta.url)(ADDON_PATH) as RawAddon;
      // Where the relay runs when nobody chose (src/net/relay.ts setNativeRelayMode): test suites run
      // once per mode.
      const mode = process.env.TZORP_RELAY_MODE;
      if (mode === 'loop' || mode === 'thread') addon.relayMode(mode);
      return addon;
    } catch (e) {
      loadError = e;
    }
  }
  throw new TzorpError(
    'NATIVE_MISSING',
    `the native addon is not built (${ADDON_PATH}); run \`npm run build\` (node-gyp, needs make and a C compiler)`,
    { cause: loadError, details: { path: ADDON_PATH } },
  );
}

/** True when the addon is built and loads. Never throws. */
export function nativeAvailable(): boolean {
  if (addon) return true;
  if (loadError !== null) return false;
  try {
    load();
    return true;
  } catch {
    return false;
  }
}

const errnoNames = new Map<number, string>(Object.entries(osConstants.errno).map(([k, v]) => [v, k]));

/** Run one addon call; a system-call failure becomes NATIVE_CALL naming the call and the errno. `what`
 * may be a function: the text is made only for an error (calls made per session). */
function call<T>(whatOf: string | (() => string), f: (a: RawAddon) => T): T {
  const a = load();
  try {
    return f(a);
  } catch (e) {
    const err = e as Error & { syscall?: string; errno?: number };
    if (typeof err.errno === 'number' && typeof err.syscall === 'string') {
      const what = typeof whatOf === 'string' ? whatOf : whatOf();
      const code = errnoNames.get(err.errno) ?? `E${err.errno}`;
      throw new TzorpError('NATIVE_CALL', `${what}: ${err.syscall} failed with ${code} (${err.message})`, {
        cause: e,
        details: { call: err.syscall, errno: err.errno, code, op: what },
      });
    }
    // A TypeError from the addon is a bug in our caller: keep it as it is.
    throw e;
  }
}

export interface ListenFdOptions {
  /** Listen backlog (default 4096). */
  backlog?: number;
  /** IP_TRANSPARENT / IPV6_TRANSPARENT before bind (default true): TPROXY only assigns to such sockets. */
  transparent?: boolean;
  /** SO_REUSEPORT: several processes (workers) share one listening address. */
  reusePort?: boolean;
  /** IPV6_V6ONLY for IPv6 listeners (default false = dual stack for "::"). */
  v6Only?: boolean;
  /** SO_MARK on the listening socket. */
  mark?: number;
}

/** A listening, non-blocking TCP socket for `net.Server.listen({ fd })`. */
export function listenFd(host: string, port: number, opts: ListenFdOptions = {}): number {
  const o: Parameters<RawAddon['listen']>[3] = {
    transparent: opts.transparent ?? true,
    reusePort: opts.reusePort ?? false,
    v6Only: opts.v6Only ?? false,
  };
  if (opts.mark !== undefined) o.mark = opts.mark;
  return call(`listen on ${fmt(host, port)}`, (a) => a.listen(host, port, opts.backlog ?? 4096, o));
}

export interface ClientFdOptions {
  /** Bind to this address first (may be foreign when `transparent`); null/undefined = no address. */
  host?: string | null;
  /** Bind to this port (0 = chosen at connect(); with a host that uses IP_BIND_ADDRESS_NO_PORT). */
  port?: number;
  /** IP_TRANSPARENT / IPV6_TRANSPARENT before bind: needed for a foreign (forged) address. */
  transparent?: boolean;
  /** SO_MARK for the upstream packets. */
  mark?: number;
  /** SO_REUSEADDR before binding an explicit port (forge_port exact/number after TIME_WAIT). */
  reuseAddr?: boolean;
  /** TCP_NODELAY (Nagle off) from the start: no setNoDelay call after the connect. */
  noDelay?: boolean;
  /** TCP_QUICKACK 0 before the connect: the handshake's last ACK waits (at most 200 ms) for the first
   * bytes written, which carry it. Only for a caller that writes as soon as it is connected (an HTTP
   * request): a server that speaks first would wait for that ACK before its accept() returns. */
  deferAck?: boolean;
}

/** An unconnected, non-blocking TCP socket, bound as asked, for `new net.Socket({ fd }).connect()`. */
export function clientFd(family: 4 | 6, opts: ClientFdOptions = {}): number {
  const flags =
    (opts.transparent ? SOCKET_TRANSPARENT : 0) |
    (opts.reuseAddr ? SOCKET_REUSEADDR : 0) |
    (opts.noDelay ? SOCKET_NODELAY : 0) |
    (opts.deferAck ? SOCKET_DEFER_ACK : 0);
  const host = opts.host ?? null;
  const port = opts.port ?? 0;
  const mark = opts.mark ?? -1;
  return call(
    () => `client socket bound to ${fmt(host ?? '*', port)}`,
    (a) => a.socket(family, host, port, flags, mark),
  );
}

// The flags of the addon's socket() (tzorp_native.c).
const SOCKET_TRANSPARENT = 1;
const SOCKET_REUSEADDR = 2;
const SOCKET_NODELAY = 4;
const SOCKET_DEFER_ACK = 8;

/**
 * A connected socket's local and remote address and port in one call: `[localHost, localPort,
 * remoteHost, remotePort]`, the hosts in canonical text (IPv4 never as ::ffff:). null when the socket is
 * not connected (any more); undefined when an address has a zone id (link-local: Node's getters name
 * the interface). Throws NATIVE_CALL for a bad fd.
 */
export function socketAddrsOf(fd: number): [string, number, string, number] | null | undefined {
  return call('addrs', (a) => a.addrs(fd));
}

/** The text the addon gives an address of 4 or 16 bytes (what accept and addrs report). */
export function addrText(bytes: Uint8Array): string {
  return call('addrText', (a) => a.addrText(bytes));
}

/** SO_MARK of a socket (an accepted socket carries the SYN's mark with net.ipv4.tcp_fwmark_accept=1). */
export function getMark(fd: number): number {
  return call('get SO_MARK', (a) => a.getMark(fd));
}

export function setMark(fd: number, mark: number): void {
  call('set SO_MARK', (a) => a.setMark(fd, mark));
}

/** IP_TRANSPARENT / IPV6_TRANSPARENT of a socket, by its family. */
export function getTransparent(fd: number): boolean {
  return call('get IP_TRANSPARENT', (a) => a.getTransparent(fd));
}

/**
 * TCP_QUICKACK 0 (`on`) or 1 on a socket. On a listening socket it is what each accepted connection
 * starts with: the kernel then acknowledges a request with the reply that follows it instead of at once
 * (HAProxy does this on HTTP frontends). The daemon sets it on HTTP services' listeners.
 */
export function deferAcks(fd: number, on: boolean): void {
  call('set TCP_QUICKACK', (a) => a.deferAcks(fd, on));
}

/** Whether a socket delays its ACKs (TCP_QUICKACK reads 0). */
export function getDeferAcks(fd: number): boolean {
  return call('get TCP_QUICKACK', (a) => a.getDeferAcks(fd));
}

/** A netlink socket bound to NFLOG `group`, copying `copyBytes` of each logged packet: its fd, read by
 * the daemon (one datagram per read, src/kernel/nflog.ts parses them). Needs CAP_NET_ADMIN. */
export function nflogOpen(group: number, copyBytes: number): number {
  return call(`NFLOG group ${group}`, (a) => a.nflogOpen(group, copyBytes));
}

/** Close an fd from listenFd/clientFd that was never handed to a net.Socket/net.Server. */
export function closeFd(fd: number, reset = false): void {
  call('close', (a) => a.close(fd, reset));
}

/** SO_LINGER 0 on a socket Node owns (its descriptor: handleFd), so that its close sends a RST: the
 * reset of a TCP socket under node's TLS layer (src/net/driver.ts resetStream). */
export function resetOnClose(fd: number): void {
  call('set SO_LINGER 0', (a) => a.resetOnClose(fd));
}

/**
 * Become uid/gid (supplementary groups `groups`) keeping only the capabilities `caps` (numbers), also
 * across execve for the programs this process starts (ambient set); the rest leaves the bounding set.
 * Other threads keep no capability: what needs one must run synchronously on this thread or in a child
 * process. Idempotent in a process that already runs as uid/gid (see tzorp_privs.c).
 */
export function dropPrivileges(
  uid: number,
  gid: number,
  groups: number[],
  caps: number[],
): DroppedPrivileges {
  return call(`drop privileges to uid ${uid}`, (a) => a.dropPrivileges(uid, gid, groups, caps));
}

/**
 * The file descriptor under a net.Socket or net.Server, or -1 when it has none (not yet connected or
 * listening, already closed, or a TLS socket, which has no TCP handle of its own). Node 20 has no
 * public API for it; this reads the internal `_handle.fd` (libuv's fd of a TCP handle). The one place
 * that knows this hack.
 */
export function handleFd(s: object): number {
  const fd = (s as { _handle?: { fd?: unknown } | null })._handle?.fd;
  return typeof fd === 'number' && fd >= 0 ? fd : -1;
}

/** handleFd, or NATIVE_CALL when the object has no fd. */
export function socketFd(s: Socket | Server): number {
  const fd = handleFd(s);
  if (fd < 0) {
    throw new TzorpError('NATIVE_CALL', 'the socket has no file descriptor (not open, or closed)', {
      details: { call: '_handle.fd', errno: 0, code: 'EBADF' },
    });
  }
  return fd;
}

function fmt(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

/** The native relay calls of tzorp_relay.c (used by src/net/relay.ts), or null without the addon. */
export function relayAddon(): Pick<
  RawAddon,
  'relayStart' | 'relayStop' | 'relayCounts' | 'relayActive' | 'relayPoolFds' | 'relayConnect' | 'relayMode'
> | null {
  try {
    return load();
  } catch {
    return null;
  }
}

/** Give the memory of a start or a reload back to the system (tzorp_memory.cc): V8's low-memory full
 * collection (shrinks the young generation, frees empty heap pages), then malloc_trim. One full
 * collection's pause: call it when a process has just loaded a policy, never per session. False when
 * the addon is not built (nothing done). */
export function shedMemory(): boolean {
  let a: RawAddon;
  try {
    a = load();
  } catch {
    return false;
  }
  a.shedMemory();
  return true;
}

/** Raise the soft RLIMIT_NOFILE to the hard limit; returns the limits now in force (-1 = unlimited). */
export function raiseNofile(): { soft: number; hard: number } {
  return call('raise RLIMIT_NOFILE', (a) => a.raiseNofile());
}

/** The name of an errno value (ECONNRESET), or E<n>. */
export function errnoName(errno: number): string {
  return errnoNames.get(errno) ?? `E${errno}`;
}
