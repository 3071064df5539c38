// The driver's side of the native relay (src/native/tzorp_relay.c): hand two open net.Sockets to the
// addon's splice thread and learn how the relay ended.
//
// The handover (takeOver), all in one synchronous step so that no byte can slip past:
//   1. the driver's listeners come off both sockets and libuv stops reading them (internal
//      `_handle.readStop()`, the same call Node makes itself when a stream's buffer is full), so from
//      here on new bytes stay in the kernel's socket buffers, where the relay thread reads them;
//   2. what Node had already read but nobody consumed (the Readable buffer) is taken with read() and
//      passed to the addon as the first bytes of that direction: written before anything spliced;
//   3. the addon dup()s both descriptors and starts relaying on the dups;
//   4. the net.Sockets are destroyed: libuv closes its own descriptors, which neither sends a FIN nor a
//      reset, because the dups keep the sockets open (only the last descriptor's close shuts a socket).
// Writes Node still had queued are not in the kernel yet and cannot be taken out of libuv: the driver
// waits until both sockets' write queues are empty (a zero-length write's callback) before step 1.
// If step 3 fails (EMFILE on dup, ...) the sockets are still whole: the bytes of step 2 are put back
// (unshift) and the driver keeps relaying in JavaScript.
import type net from 'node:net';
import { TzorpError } from '../errors.ts';
import {
  errnoName,
  type RelayCounts,
  type RelayEndCallback,
  type RelayMode,
  relayAddon,
} from '../native/index.ts';
import type { Addr } from '../proxy/core/types.ts';
import { addonAddr, formatAddr } from './addr.ts';
import type { DriverSocket } from './native-socket.ts';

export type NativeRelayReason = 'closed' | 'idle' | 'error';

/** How a one-way body relay ended: 'done' (every byte through), or as a relay ('closed': the source
 * ended first). */
export type BodyRelayReason = NativeRelayReason | 'done';

export interface NativeRelayEnd {
  reason: NativeRelayReason;
  /** The side that closed (EOF) or failed first: 0 = a, 1 = b, null = neither (idle). */
  by: 0 | 1 | null;
  /** errno name (ECONNRESET) for reason 'error'. */
  error?: string;
  /** read from a, written to a, read from b, written to b (bytes the relay moved itself). */
  counts: RelayCounts;
}

export interface NativeRelay {
  readonly slot: number;
  /** Bytes so far (the relay's own, without the handed-over buffers); null once it ended. */
  counts(): RelayCounts | null;
  /** End it now (reset: RST instead of FIN) and return the final counts. When it had ended on its own
   * a moment ago (its report still on the way) those counts are returned and the report is dropped. */
  stop(reset: boolean): RelayCounts;
}

export interface TakeOver {
  relay: NativeRelay;
  /** Bytes Node had read from a (resp. b) that the relay writes to b (resp. a) first. */
  bufferedA: number;
  bufferedB: number;
}

/** Who learns how a relay ended (the session: an object with a method, not a closure per relay). */
export interface RelayOwner {
  relayEnded(end: NativeRelayEnd): void;
}

/** Who learns how a body relay ended (bodyTakeOver). */
export interface BodyRelayOwner {
  bodyRelayEnded(end: {
    reason: BodyRelayReason;
    by: 0 | 1 | null;
    error?: string;
    counts: RelayCounts;
  }): void;
}

/** The owner of a relay made by connectRelay: it first learns how the connect went. */
export interface ConnectingRelayOwner extends RelayOwner {
  /** Connected; the relay runs. `local` is the server socket's own address. */
  relayConnected(local: Addr): void;
  /** The connect failed (errno name; ETIMEDOUT after the timeout): the server socket is closed, the
   * client's descriptor is the caller's again, unread. */
  relayConnectFailed(error: string): void;
}

const waiting = new Map<number, RelayOwner>();
/** Body relays (bodyTakeOver) by slot: their owners hear bodyRelayEnded. */
const waitingBody = new Map<number, BodyRelayOwner>();

/** The addon's one callback for every relay (the first relayStart or relayConnect
 * registers it for the process). */
export const onRelayEnd: RelayEndCallback = (slot, reason, by, errno, counts, localHost, localPort) => {
  const body = waitingBody.get(slot);
  if (body) {
    waitingBody.delete(slot);
    const end: Parameters<BodyRelayOwner['bodyRelayEnded']>[0] = {
      reason: reason as BodyRelayReason, // (a body relay neither connects nor fails to)
      by: by === 0 ? 0 : by === 1 ? 1 : null,
      counts,
    };
    if (reason === 'error') end.error = errnoName(errno);
    body.bodyRelayEnded(end);
    return;
  }
  const f = waiting.get(slot);
  if (reason === 'connected') {
    (f as ConnectingRelayOwner | undefined)?.relayConnected(
      addonAddr(localHost || '0.0.0.0', localPort ?? 0),
    );
    return;
  }
  waiting.delete(slot);
  if (reason === 'connectFailed') {
    (f as ConnectingRelayOwner | undefined)?.relayConnectFailed(errnoName(errno));
    return;
  }
  if (reason === 'done') return; // (only body relays end so)
  const end: NativeRelayEnd = { reason, by: by === 0 ? 0 : by === 1 ? 1 : null, counts };
  if (reason === 'error') end.error = errnoName(errno);
  f?.relayEnded(end);
};

/**
 * Connect `serverFd` (made, bound and given TCP_NODELAY by the caller: upstream.ts upstreamFd) to
 * `target` in the addon, then relay it with `clientFd` (accepted natively, nothing read from it yet): no byte and no
 * socket object in JavaScript. Both descriptors are the relay's from here; `owner` hears
 * relayConnected (then relayEnded) or relayConnectFailed (then the client's descriptor is its own
 * again). Throws TzorpError NATIVE_CALL when connect() fails at once (both descriptors still the
 * caller's), NATIVE_MISSING without the addon.
 */
export function connectRelay(
  clientFd: number,
  serverFd: number,
  target: Addr,
  timeoutMs: number,
  idleMs: number,
  owner: ConnectingRelayOwner,
): NativeRelay {
  const addon = relayAddon();
  if (!addon) throw new TzorpError('NATIVE_MISSING', 'the native addon is not built: no native relay');
  let slot: number;
  try {
    slot = addon.relayConnect(clientFd, serverFd, target.host, target.port, timeoutMs, idleMs, onRelayEnd);
  } catch (e) {
    const err = e as Error & { errno?: number };
    const code = typeof err.errno === 'number' ? errnoName(err.errno) : 'EINVAL';
    throw new TzorpError('NATIVE_CALL', `connect ${code} ${formatAddr(target)}`, {
      cause: e,
      details: { call: 'connect', errno: err.errno ?? 0, code },
    });
  }
  waiting.set(slot, owner);
  return new AddonRelay(addon, slot);
}

/** The native relay's default where nobody chose: on, unless TZORP_NATIVE_RELAY=0 (lets a test suite
 * run once with and once without it; `tzorp run --no-native-relay` and a service's `native_relay:
 * false` are the operator's switches). */
export function nativeRelayDefault(): boolean {
  return NATIVE_RELAY_DEFAULT;
}

// Read once: process.env is a slow accessor, and this is asked once per session (it showed in the
// new-connection profile).
const NATIVE_RELAY_DEFAULT = process.env.TZORP_NATIVE_RELAY !== '0';

/**
 * Where this process's native relays run: 'loop' (the default: on the event loop that runs the
 * sessions, so a session's connect and end reach JavaScript without a hop between threads, and a worker
 * is one thread) or 'thread' (an epoll thread of the relay's own, so relayed bytes keep moving while
 * JavaScript is busy, and bulk copying can use a spare core). TZORP_RELAY_MODE chooses where nobody
 * did (test suites run both); `tzorp run --relay-thread` / `--relay-loop` are the operator's switches.
 * Fixed once the first relay started: throws NATIVE_CALL then. Without the addon, nothing to choose.
 */
export function setNativeRelayMode(mode: RelayMode): void {
  const addon = relayAddon();
  if (!addon) return;
  try {
    addon.relayMode(mode);
  } catch (e) {
    throw new TzorpError('NATIVE_CALL', `relay mode ${mode}: ${(e as Error).message}`, {
      cause: e,
      details: { call: 'relayMode', errno: 0, code: 'EBUSY' },
    });
  }
}

/** The mode the native relay runs in (or will, from its first relay on); null without the addon. */
export function nativeRelayMode(): RelayMode | null {
  return relayAddon()?.relayMode() ?? null;
}

/** Descriptors of the native relay's idle pipes kept for reuse (0 without the addon). */
export function nativeRelayPoolFds(): number {
  return relayAddon()?.relayPoolFds?.() ?? 0;
}

/** True when the addon with the relay is built and loads. */
export function nativeRelayAvailable(): boolean {
  return relayAddon() !== null;
}

/** Relays whose end JavaScript has not learned yet (tests: none may be left behind). */
export function nativeRelaysActive(): number {
  return relayAddon()?.relayActive() ?? 0;
}

interface Handle {
  fd?: number;
  reading?: boolean;
  readStop?: () => number;
  readStart?: () => number;
}

function handleOf(sock: DriverSocket): Handle | null {
  const h = (sock as unknown as { _handle?: Handle | null })._handle;
  return h && typeof h.fd === 'number' && h.fd >= 0 ? h : null;
}

function stopReading(h: Handle): void {
  h.reading = false;
  h.readStop?.();
}

/** Node has nothing queued for the kernel on this socket (every write reached the socket buffer). */
export function writesFlushed(sock: DriverSocket): boolean {
  return sock.writableLength === 0;
}

/**
 * Hand sockets a and b to the native relay (see the top of this file). Returns null when the addon is
 * missing or the handover failed: the sockets are then whole, but without any listener (the caller
 * attaches its own again) and not reading. `owner.relayEnded` runs once when the relay ends on its own (not
 * after stop()).
 */
export function takeOver(
  a: DriverSocket,
  b: DriverSocket,
  idleMs: number,
  owner: RelayOwner,
): TakeOver | null {
  const addon = relayAddon();
  const ha = handleOf(a);
  const hb = handleOf(b);
  // read() below emits 'data' for what it returns: the driver's listeners must be gone first.
  for (const s of [a, b]) {
    s.removeAllListeners();
    s.on('error', () => {});
  }
  if (!addon || !ha || !hb || !writesFlushed(a) || !writesFlushed(b)) return null;
  stopReading(ha);
  stopReading(hb);
  const bufA = drain(a);
  const bufB = drain(b);
  // read() may have asked libuv to read again (its buffer went below the high-water mark): stop it;
  // libuv reads only in its poll phase, which cannot run before this function returns.
  stopReading(ha);
  stopReading(hb);
  let slot: number;
  try {
    slot = addon.relayStart(ha.fd!, hb.fd!, idleMs, bufA, bufB, onRelayEnd);
  } catch {
    if (bufA) (a as net.Socket).unshift(bufA); // (a NativeSocket buffers nothing)
    if (bufB) (b as net.Socket).unshift(bufB);
    return null;
  }
  waiting.set(slot, owner);
  for (const s of [a, b]) {
    s.destroy(); // closes libuv's descriptor only; the relay holds the socket through its dup
  }
  const relay = new AddonRelay(addon, slot);
  return { relay, bufferedA: bufA?.length ?? 0, bufferedB: bufB?.length ?? 0 };
}

/** A relay of the addon's, by its slot (a class: no closures per held connection). */
class AddonRelay implements NativeRelay {
  constructor(
    private readonly addon: NonNullable<ReturnType<typeof relayAddon>>,
    readonly slot: number,
  ) {}

  counts(): RelayCounts | null {
    return this.addon.relayCounts(this.slot);
  }

  stop(reset: boolean): RelayCounts {
    waiting.delete(this.slot);
    waitingBody.delete(this.slot);
    return this.addon.relayStop(this.slot, reset) ?? this.addon.relayCounts(this.slot) ?? [0, 0, 0, 0];
  }
}

/** Everything in the socket's Readable buffer (paused mode: no 'data' listener is left). It reads
 * exactly what is buffered: a read() past the end would schedule the stream's 'end' event, which
 * nobody would hear if the handover is then declined and the driver listens again. */
function drain(sock: DriverSocket): Buffer | null {
  sock.pause();
  const chunks: Buffer[] = [];
  while (sock.readableLength > 0) {
    const c = sock.read(sock.readableLength) as Buffer | string | null;
    if (c === null) break;
    chunks.push(typeof c === 'string' ? Buffer.from(c) : c);
  }
  if (chunks.length === 0) return null;
  return chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
}

export interface BodyTakeOver {
  relay: NativeRelay;
  /** Bytes Node had read from `from` already (the relay writes them first); counted in `bytes`. */
  buffered: number;
}

/**
 * A one-way body relay: the next `bytes` bytes of `from` go to `to` on the addon's thread, and both
 * sockets stay the caller's (unlike takeOver nothing is destroyed). The caller has taken its listeners
 * off `from` and must neither read `from` nor write `to` until `owner.bodyRelayEnded` (or stop());
 * `to` must have nothing queued. What Node had already read from `from` goes first (and beyond
 * `bytes` is put back). Null when the addon is missing or declines: then `from` is as it was
 * (unread bytes put back, not reading).
 *
 * libuv must not read `from` meanwhile: its read is stopped, and the handle is marked as reading so
 * that Node's own read-ahead (Socket._read) does not start it again; releaseBodySource undoes that.
 */
export function bodyTakeOver(
  from: DriverSocket,
  to: DriverSocket,
  bytes: number,
  idleMs: number,
  owner: BodyRelayOwner,
): BodyTakeOver | null {
  const addon = relayAddon();
  const hf = handleOf(from);
  const ht = handleOf(to);
  if (!addon || !hf || !ht || !writesFlushed(to) || bytes <= 0) return null;
  hf.readStop?.();
  hf.reading = true;
  let buf = drain(from);
  hf.readStop?.();
  if (buf && buf.length >= bytes) {
    // (everything is here already: nothing to relay)
    (from as net.Socket).unshift(buf);
    releaseBodySource(from);
    return null;
  }
  let slot: number;
  try {
    slot = addon.relayStart(hf.fd!, ht.fd!, idleMs, buf, null, onRelayEnd, bytes - (buf?.length ?? 0));
  } catch {
    if (buf) (from as net.Socket).unshift(buf);
    buf = null;
    releaseBodySource(from);
    return null;
  }
  waitingBody.set(slot, owner);
  return { relay: new AddonRelay(addon, slot), buffered: buf?.length ?? 0 };
}

/** After a body relay: libuv reads `from` again. Started here, not left to Node: its Readable may
 * still count a read as under way (it called _read, and the bytes went to the relay instead), and then
 * it would never call _read again. */
export function releaseBodySource(from: DriverSocket): void {
  const h = handleOf(from);
  if (!h) return;
  h.reading = true;
  if (h.readStart && h.readStart() !== 0) h.reading = false;
}
