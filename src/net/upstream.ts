// Outgoing TCP connections (the server side of a session, FTP data channels). The socket is made by
// the native addon whenever it must be transparent or bound before connect, and then connected by
// Node (`new net.Socket({ fd }).connect()`), so Node's own connect path reports 'connect',
// ECONNREFUSED and so on (linux-tproxy.md pitfall 8).

import net from 'node:net';
import { DEFAULTS } from '../defaults.ts';
import { TzorpError } from '../errors.ts';
import { clientFd, closeFd } from '../native/index.ts';
import type { Addr } from '../proxy/core/types.ts';
import { formatAddr } from './addr.ts';
import { NativeSocket } from './native-socket.ts';

/**
 * Cancels connects in flight when their session ends: the part of an AbortSignal a connect needs (is it
 * aborted, a callback on abort), without the EventTarget, listener records and event object an
 * AbortController costs on every new session.
 */
export class Cancel {
  aborted = false;
  private fns: (() => void)[] | null = null;

  /** Call `fn` once on abort (callers look at `aborted` first). */
  on(fn: () => void): void {
    if (this.fns) this.fns.push(fn);
    else this.fns = [fn];
  }

  off(fn: () => void): void {
    const i = this.fns ? this.fns.indexOf(fn) : -1;
    if (i >= 0) this.fns!.splice(i, 1);
  }

  abort(): void {
    if (this.aborted) return;
    this.aborted = true;
    const fns = this.fns;
    this.fns = null;
    if (fns) for (const fn of fns) fn();
  }
}

/** Where the upstream socket is bound before connect. `host` null = the wildcard address. */
export interface LocalBind {
  host: string | null;
  /** 0 = chosen by the kernel at connect(); 'random' = a random port (Zorp Z_PORT_RANDOM). */
  port: number | 'random';
  /** IP(V6)_TRANSPARENT before bind: required to bind a foreign address (forge_addr). */
  transparent: boolean;
}

export interface UpstreamConnectOptions {
  target: Addr;
  local?: LocalBind | null;
  /** Make the socket transparent even when not binding (Zorp does: replies then match
   * `socket transparent 1` and need no conntrack state in input). Needs the native addon. */
  transparent?: boolean;
  /** SO_MARK for this connection's packets. */
  mark?: number;
  /** The caller writes as soon as it is connected: the handshake's last ACK waits for those bytes
   * (TCP_QUICKACK 0 before connect; native I/O's sockets and the ones the addon binds). */
  deferAck?: boolean;
  /** Give up connecting after this long. */
  timeoutMs: number;
  /** Aborting (the session ended) destroys the socket and rejects. */
  signal?: Cancel;
}

function makeFd(o: UpstreamConnectOptions): number | null {
  const local = o.local ?? null;
  const transparent = (o.transparent ?? false) || (local?.transparent ?? false);
  if (!local && !transparent && o.mark === undefined) return null; // Node alone can do this one
  const host = local?.host ?? null;
  if (local?.port === 'random') {
    let last: unknown;
    // (node:crypto on first use: a worker without such a service never loads it; bench/README.md,
    // "Start-up memory of the daemon")
    const { randomInt } = process.getBuiltinModule('node:crypto');
    for (let i = 0; i < DEFAULTS.forgePortRandomTries; i++) {
      try {
        const port = randomInt(DEFAULTS.forgePortRandomMin, DEFAULTS.forgePortRandomMax + 1);
        return boundFd(o, host, transparent, port, true);
      } catch (e) {
        last = e;
        if (!(e instanceof TzorpError) || e.details?.code !== 'EADDRINUSE') throw e;
      }
    }
    throw last;
  }
  const port = local?.port ?? 0;
  // An explicit port (forge_port exact/number) may still sit in TIME_WAIT from the last session.
  return boundFd(o, host, transparent, port, port !== 0);
}

function boundFd(
  o: UpstreamConnectOptions,
  host: string | null,
  transparent: boolean,
  port: number,
  reuseAddr: boolean,
): number {
  // (one options object per socket, no spreads: this runs once per session)
  return clientFd(o.target.family, {
    host,
    transparent,
    noDelay: true,
    mark: o.mark,
    port,
    reuseAddr,
    deferAck: o.deferAck === true,
  });
}

/** The socket for an upstream connection made by the addon, bound as `o` asks (the native relay's
 * connect: src/net/native-plug.ts). Throws NATIVE_CALL (bind failures) like connectUpstream rejects. */
export function upstreamFd(o: UpstreamConnectOptions): number {
  return makeFd(o) ?? clientFd(o.target.family, { noDelay: true });
}

/** The server connection failed; the socket error's code (ECONNREFUSED, ...) stays in details. */
export function connectFailed(message: string, cause?: { code?: string | undefined }): TzorpError {
  return new TzorpError('CONNECT_FAILED', message, {
    ...(cause ? { cause, details: { code: cause.code } } : {}),
  });
}

/**
 * The settling both connects share: `make` the socket (a throw rejects with it, after an abort check),
 * then `start` its connect, which reports once through `done` (null = connected) and returns what to
 * undo when the connect settles. Settles once, on that report, the timeout or an abort (`o.signal`);
 * any failure destroys the socket.
 */
function settleConnect<S extends { destroy(): unknown }>(
  o: UpstreamConnectOptions,
  make: () => S,
  start: (sock: S, done: (err: Error | null) => void) => (() => void) | undefined,
): Promise<S> {
  return new Promise((resolve, reject) => {
    if (o.signal?.aborted) {
      reject(connectFailed('aborted'));
      return;
    }
    let sock: S;
    try {
      sock = make();
    } catch (e) {
      reject(e);
      return;
    }
    let settled = false;
    let undo: (() => void) | undefined;
    const finish = (err: Error | null) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      undo?.();
      o.signal?.off(onAbort);
      if (err) {
        sock.destroy();
        reject(err);
      } else resolve(sock);
    };
    const onAbort = () => finish(connectFailed('aborted'));
    const timer = setTimeout(
      () => finish(connectFailed(`connect to ${formatAddr(o.target)} timed out after ${o.timeoutMs} ms`)),
      o.timeoutMs,
    );
    o.signal?.on(onAbort);
    const u = start(sock, finish);
    // (had `start` reported already, finish found nothing to undo: undo now)
    if (settled) u?.();
    else undo = u;
  });
}

/**
 * Connect to `o.target`. Resolves with the connected socket (half-open capable, Nagle off), rejects
 * with a TzorpError whose message says why: NATIVE_CALL for a bind failure, CONNECT_FAILED for a
 * refusal, a timeout or an abort.
 */
export function connectUpstream(o: UpstreamConnectOptions): Promise<net.Socket> {
  let fd: number | null = null;
  return settleConnect(
    o,
    () => {
      fd = makeFd(o);
      try {
        return fd === null
          ? new net.Socket({ allowHalfOpen: true })
          : new net.Socket({ fd, allowHalfOpen: true });
      } catch (e) {
        if (fd !== null) closeFd(fd);
        throw e;
      }
    },
    (sock, done) => {
      const onConnect = () => {
        if (fd === null) sock.setNoDelay(true); // (a socket the addon made has it from the start)
        done(null);
      };
      const onError = (e: NodeJS.ErrnoException) => done(connectFailed(e.message, e));
      sock.once('connect', onConnect);
      sock.once('error', onError);
      sock.connect({ port: o.target.port, host: o.target.host, family: o.target.family });
      return () => {
        sock.off('connect', onConnect);
        sock.off('error', onError);
      };
    },
  );
}

/**
 * connectUpstream for a session on native I/O (native-socket.ts): the addon makes and binds the socket
 * (always: Nagle off from socket()), the connect runs on Node's loop without net.Socket. The same
 * results and errors as connectUpstream, Node's error texts included ("connect ECONNREFUSED ...").
 */
export function connectUpstreamNative(o: UpstreamConnectOptions): Promise<NativeSocket> {
  return settleConnect(
    o,
    () => {
      const fd = makeFd(o) ?? clientFd(o.target.family, { noDelay: true, deferAck: o.deferAck === true });
      try {
        return new NativeSocket(fd);
      } catch (e) {
        closeFd(fd);
        throw e;
      }
    },
    (sock, done) => {
      sock.connect(o.target.host, o.target.port, (e) =>
        done(e ? connectFailed(e.message, { code: String(e.details?.code) }) : null),
      );
      return undefined; // (nothing to undo: NativeSocket calls `done` once)
    },
  );
}
