// A TCP connection without net.Socket (issue 14): the descriptor is watched on Node's own event loop by
// the addon (src/native/tzorp_io.c: its own epoll set, edge-triggered; read(2) into one shared buffer,
// copied here into a Buffer per read; send(2) from write()), and this class keeps what the net driver (driver.ts) uses of a net.Socket: the
// events 'data', 'end', 'drain', 'finish', 'error' and 'close', write / end / destroy /
// resetAndDestroy, pause / resume, writableLength and writableFinished. Nothing else of net.Socket is
// here (no TLS on it, no encodings, no cork): the sessions that need more keep net.Socket.
//
// What it saves is Node's stream machinery on every read and write and the socket objects at every
// connection: a relay that parses nothing went from 97 to 51 µs of user CPU per new connection, and
// from 0.70-0.86x to 0.92-1.00x HAProxy's keep-alive rate (bench/README.md, "Socket I/O without
// net.Socket").
//
// Semantics kept from net.Socket with allowHalfOpen (what the driver relies on):
// - reading starts paused: resume() starts it; 'end' is the peer's FIN, after which writing goes on;
// - write() sends at once what the kernel takes; the rest waits in order (writableLength) and 'drain'
//   comes when it has all gone;
// - end() sends FIN after the waiting bytes, then 'finish'; once both 'end' and 'finish' happened the
//   socket closes by itself ('close');
// - an error (a read's or a write's) is 'error' with Node's message and code ("read ECONNRESET"), then
//   'close'; 'close' always comes once, on a later tick than the call that caused it.
import { EventEmitter } from 'node:events';
import { getSystemErrorName } from 'node:util';
import { DEFAULTS } from '../defaults.ts';
import { TzorpError } from '../errors.ts';
import { closeFd, type IoAddon, ioAddon, nativeAvailable } from '../native/index.ts';
import type { ProxyService } from '../policy/model.ts';

const KIND_DATA = 0;
const KIND_END = 1;
const KIND_ERROR = 2;
const KIND_WRITABLE = 3;
const KIND_ACCEPTED = 4;
const KIND_FULL = 5;

/** Live sockets by the addon's id (ids are reused after a close). */
const live: (NativeSocket | undefined)[] = [];
/** NativeSockets open now and made in all (the worker's status: a leak shows as an open count that
 * does not come back). */
let openCount = 0;
let madeCount = 0;

export function nativeSocketCounts(): { open: number; made: number } {
  return { open: openCount, made: madeCount };
}
let io: IoAddon | null = null;

/** What a listening socket's events go to (listenIo), by the addon's id. */
export interface IoListener {
  /** A connection: its descriptor (the receiver's to close), the peer's and the local address (an
   * empty local host: reset before it could be read), the SYN's mark (null when unreadable). */
  accepted(
    fd: number,
    peerHost: string,
    peerPort: number,
    localHost: string,
    localPort: number,
    mark: number | null,
  ): void;
  /** An accept failed for want of descriptors or memory (errno); the addon pauses the listener. */
  full(errno: number): void;
}
const listening: (IoListener | undefined)[] = [];

/** Where the addon's reads land (tzorp_io.c: up to 64 KiB a read): each is copied out at once into a
 * Buffer of its own (allocUnsafe: a slice of Node's pool below 4 KiB), since the next read overwrites
 * it. Cheaper than a Buffer made in C per read (a malloc'd backing store, a prototype set in C++). */
let readBuffer: Uint8Array | null = null;

function readBytes(n: number): Buffer {
  const b = Buffer.allocUnsafe(n);
  const rb = readBuffer!;
  b.set(n === rb.length ? rb : rb.subarray(0, n));
  return b;
}

function addon(): IoAddon {
  if (io) return io;
  const a = ioAddon();
  const rb = Buffer.allocUnsafeSlow(DEFAULTS.ioReadBufferBytes);
  readBuffer = new Uint8Array(rb.buffer, rb.byteOffset, DEFAULTS.ioReadBufferBytes);
  a.ioInit((id, kind, arg, peerHost, peerPort, localHost, localPort, mark) => {
    if (kind === KIND_DATA) {
      const data = readBytes(arg!); // (first: nothing may read into the buffer before the copy)
      live[id]?.onData(data);
    } else if (kind < KIND_ACCEPTED) live[id]?.onEvent(kind, arg);
    else onListenerEvent(id, kind, arg as number, peerHost!, peerPort!, localHost!, localPort!, mark ?? null);
  }, rb);
  io = a;
  return a;
}

function onListenerEvent(
  id: number,
  kind: number,
  fd: number,
  peerHost: string,
  peerPort: number,
  localHost: string,
  localPort: number,
  mark: number | null,
): void {
  const l = listening[id];
  if (kind === KIND_FULL) {
    l?.full(fd);
    return;
  }
  if (!l) {
    closeFd(fd); // (cannot happen: no event comes after ioClose)
    return;
  }
  l.accepted(fd, peerHost, peerPort, localHost, localPort, mark);
}

/**
 * Accept on `fd` (a listening socket; the addon watches a dup of it, so the caller may close its own)
 * on this thread's loop: `listener` gets each connection. Throws TzorpError NATIVE_MISSING without the
 * addon. stop() closes the dup; nothing arrives after it.
 */
export function listenIo(fd: number, listener: IoListener): { stop(): void } {
  const a = addon();
  const id = a.ioListen(fd);
  listening[id] = listener;
  let stopped = false;
  return {
    stop: () => {
      if (stopped) return;
      stopped = true;
      listening[id] = undefined;
      a.ioClose(id, false);
    },
  };
}

/** A socket's error as Node words it ("read ECONNRESET", "connect ECONNREFUSED 198.18.2.3:80"), with
 * the error's name, number and the call in `details` (code, errno, syscall). */
export function socketError(syscall: string, errno: number, suffix = ''): TzorpError {
  let code: string;
  try {
    code = getSystemErrorName(-errno);
  } catch {
    code = `E${errno}`;
  }
  return new TzorpError('SOCKET_IO', `${syscall} ${code}${suffix}`, { details: { code, errno, syscall } });
}

/**
 * What a NativeSocket's owner can take instead of listeners: the driver's stream gets its socket's
 * events through one object per session (with its stream as the tag) instead of five closures and
 * five listeners per socket. The sink hears each event before the listeners of that event.
 */
export interface NativeSocketSink<T> {
  onSocketData(tag: T, data: Buffer): void;
  onSocketEnd(tag: T): void;
  onSocketDrain(tag: T): void;
  onSocketError(tag: T, err: Error): void;
  onSocketClose(tag: T): void;
}

export class NativeSocket extends EventEmitter {
  /** The connection's descriptor (the native relay's handover dups it). */
  readonly fd: number;
  private readonly id: number;
  /** net.Socket's: the driver sets it; this socket is always half-open capable. */
  allowHalfOpen = true;
  destroyed = false;
  writableFinished = false;
  /** Bytes written but not yet taken by the kernel. */
  writableLength = 0;
  // net.Socket's address getters: socketAddrs (addr.ts) reads the addresses from the descriptor
  // instead; these are its fallback, which a NativeSocket does not have (the zone id of a link-local
  // address: the addresses are then unknown).
  readonly localAddress: string | undefined = undefined;
  readonly localPort: number | undefined = undefined;
  readonly remoteAddress: string | undefined = undefined;
  readonly remotePort: number | undefined = undefined;
  /** Nothing is ever buffered on the reading side (for the relay handover). */
  readonly readableLength = 0;
  private queue: Uint8Array[] = [];
  private queueOffset = 0;
  /** Bytes the kernel took, in all; a write's callback runs once this reaches its `until`. */
  private sent = 0;
  private callbacks: { until: number; cb: () => void }[] | null = null;
  private wantRead = false;
  /** A body relay holds the reading side (readStop until readStart). */
  private held = false;
  private readEnded = false;
  private endCalled = false;
  private watching = 0; // bit 1 = readable, bit 2 = writable, as last told to the addon
  private connectDone: ((err: TzorpError | null) => void) | null = null;
  private sink: NativeSocketSink<unknown> | null = null;
  private sinkTag: unknown = null;
  private connectTarget = '';

  /** Watch `fd` (a connected or connecting TCP socket, now ours: closing this closes it). */
  constructor(fd: number, noDelay = false) {
    super();
    const a = addon();
    this.fd = fd;
    this.id = a.ioOpen(fd, noDelay);
    live[this.id] = this;
    openCount++;
    madeCount++;
  }

  /**
   * Connect (the socket came unconnected from the addon's `socket`): `done` once, with null when
   * connected or Node's error ("connect ECONNREFUSED 198.18.2.3:80"). Nothing is read before.
   */
  connect(host: string, port: number, done: (err: TzorpError | null) => void): void {
    const r = addon().ioConnect(this.id, host, port);
    this.connectTarget = ` ${host}:${port}`;
    if (r === 0) {
      queueMicrotask(() => done(null));
      return;
    }
    if (r < 0) {
      const e = socketError('connect', -r, this.connectTarget);
      queueMicrotask(() => done(e));
      return;
    }
    this.connectDone = done;
    this.update();
  }

  /** Give this socket's events to `sink` (with `tag`) as well as to its listeners; null: no more. */
  setSink<T>(sink: NativeSocketSink<T> | null, tag: T | null = null): void {
    this.sink = sink as NativeSocketSink<unknown> | null;
    this.sinkTag = tag;
  }

  /** Whether `sink` is the one this socket gives its events to. */
  hasSink(sink: NativeSocketSink<never>): boolean {
    return this.sink === sink;
  }

  /** @internal bytes read (a Buffer of their own) */
  onData(data: Buffer): void {
    if (this.destroyed) return;
    this.sink?.onSocketData(this.sinkTag, data);
    this.emit('data', data);
  }

  /** @internal the addon's other events */
  onEvent(kind: number, arg: number | undefined): void {
    if (this.destroyed) return;
    if (kind === KIND_WRITABLE) this.onWritable();
    else if (kind === KIND_END) {
      this.readEnded = true;
      this.watching &= ~1; // (the addon stopped watching reads at the end)
      this.sink?.onSocketEnd(this.sinkTag);
      this.emit('end');
      this.maybeClose();
    } else if (kind === KIND_ERROR) {
      this.watching = 0; // (the addon's handle stopped)
      const done = this.connectDone;
      if (done) {
        this.connectDone = null;
        done(socketError('connect', arg as number, this.connectTarget));
      } else this.fail('read', arg as number);
    }
  }

  private onWritable(): void {
    const done = this.connectDone;
    if (done) {
      this.connectDone = null;
      const err = addon().ioSoError(this.id);
      this.update();
      done(err === 0 ? null : socketError('connect', err, this.connectTarget));
      return;
    }
    this.flush();
  }

  pause(): this {
    this.wantRead = false;
    this.update();
    return this;
  }

  resume(): this {
    this.wantRead = true;
    this.update();
    return this;
  }

  setNoDelay(): this {
    return this; // (TCP_NODELAY is set when the descriptor is made or opened)
  }

  /** Send `data`: false when some of it waits (then 'drain' comes when it has gone). `cb` runs (on a
   * later tick) once the kernel has taken it and everything written before it. */
  write(data: Uint8Array, cb?: () => void): boolean {
    if (this.destroyed || this.endCalled) {
      if (cb) process.nextTick(cb); // (as Node calls it, with an error nobody here reads)
      return false;
    }
    if (cb) {
      const w = { until: this.sent + this.writableLength + data.length, cb };
      if (this.callbacks) this.callbacks.push(w);
      else this.callbacks = [w];
    }
    if (this.queue.length === 0) {
      const n = data.length === 0 ? 0 : addon().ioWrite(this.id, data, 0);
      if (n < 0) {
        this.fail('write', -n);
        return false;
      }
      this.sent += n;
      if (n === data.length) {
        if (this.callbacks) this.wrote();
        return true;
      }
      this.queue.push(data);
      this.queueOffset = n;
      this.writableLength += data.length - n;
      this.update();
      return false;
    }
    this.queue.push(data);
    this.writableLength += data.length;
    return false;
  }

  /** Run the callbacks of the writes the kernel has taken. */
  private wrote(): void {
    const cbs = this.callbacks!;
    let i = 0;
    while (i < cbs.length && cbs[i]!.until <= this.sent) i++;
    if (i === 0) return;
    const due = cbs.splice(0, i);
    if (cbs.length === 0) this.callbacks = null;
    process.nextTick(() => {
      for (const w of due) w.cb();
    });
  }

  private flush(): void {
    const a = addon();
    while (this.queue.length > 0) {
      const b = this.queue[0]!;
      const n = a.ioWrite(this.id, b, this.queueOffset);
      if (n < 0) {
        this.fail('write', -n);
        return;
      }
      this.queueOffset += n;
      this.writableLength -= n;
      this.sent += n;
      if (this.callbacks) this.wrote();
      if (this.queueOffset < b.length) return; // the rest when writable again
      this.queue.shift();
      this.queueOffset = 0;
    }
    this.update();
    if (this.endCalled) this.finish();
    this.sink?.onSocketDrain(this.sinkTag);
    this.emit('drain');
  }

  /** FIN after what waits ('finish' then). */
  end(): this {
    if (this.destroyed || this.endCalled) return this;
    this.endCalled = true;
    if (this.queue.length === 0) this.finish();
    return this;
  }

  private finish(): void {
    if (this.writableFinished || this.destroyed) return;
    this.writableFinished = true;
    addon().ioShutdown(this.id); // (ENOTCONN after the peer's reset: 'error' comes from the read side)
    process.nextTick(() => {
      if (this.destroyed) return;
      this.emit('finish');
      this.maybeClose();
    });
  }

  /** Both directions done: close, as net.Socket's autoDestroy does. */
  private maybeClose(): void {
    if (this.readEnded && this.writableFinished && !this.destroyed) this.destroy();
  }

  private fail(syscall: string, errno: number): void {
    this.close(false, socketError(syscall, errno));
  }

  destroy(err?: Error): this {
    this.close(false, err ?? null);
    return this;
  }

  /** Close with a reset (RST), as net.Socket's. */
  resetAndDestroy(): this {
    this.close(true, null);
    return this;
  }

  private close(reset: boolean, err: Error | null): void {
    if (this.destroyed) return;
    this.destroyed = true;
    this.queue = [];
    this.writableLength = 0;
    live[this.id] = undefined;
    openCount--;
    addon().ioClose(this.id, reset);
    const done = this.connectDone;
    this.connectDone = null;
    // Writes that never reached the kernel still get their callbacks (Node calls them on destroy).
    const cbs = this.callbacks;
    this.callbacks = null;
    process.nextTick(() => {
      if (cbs) for (const w of cbs) w.cb();
      if (done)
        done(err ? (err as TzorpError) : socketError('connect', 103)); // ECONNABORTED
      else if (err) {
        this.sink?.onSocketError(this.sinkTag, err);
        if (this.listenerCount('error') > 0) this.emit('error', err);
      }
      this.sink?.onSocketClose(this.sinkTag);
      this.emit('close', err !== null);
      // Nothing is emitted after 'close': let the listeners go (a socket that outlived two scavenges
      // would otherwise hold its owner's closures, and what they reach, until a full collection).
      this.removeAllListeners();
      this.sink = null;
      this.sinkTag = null;
    });
  }

  /** What relay.ts and handleFd (src/native/index.ts) look for on a net.Socket: the descriptor, and
   * the stop and restart of reading a relay handover makes (a body relay holds the reading side until
   * readStart; whether the driver wants it read is still pause/resume). null once closed. */
  get _handle(): { fd: number; reading: boolean; readStop: () => number; readStart: () => number } | null {
    if (this.destroyed) return null;
    return {
      fd: this.fd,
      reading: false,
      readStop: () => {
        this.held = true;
        this.update();
        // the relay thread reads and writes the descriptor (a dup of it) meanwhile: the addon's set
        // stops watching it, and leaves it explicitly at the close (the dup may live on)
        if (!this.destroyed) addon().ioHold(this.id, true);
        return 0;
      },
      readStart: () => {
        this.held = false;
        if (!this.destroyed) addon().ioHold(this.id, false);
        this.update();
        return 0;
      },
    };
  }

  /** Nothing is buffered here (relay.ts drain). */
  read(): null {
    return null;
  }

  private update(): void {
    if (this.destroyed) return;
    const r = this.wantRead && !this.held && !this.readEnded && this.connectDone === null;
    const w = this.queue.length > 0 || this.connectDone !== null;
    const bits = (r ? 1 : 0) | (w ? 2 : 0);
    if (bits === this.watching) return;
    this.watching = bits;
    addon().ioSet(this.id, r, w);
  }
}

/** What the net driver runs a stream on: Node's socket, or this file's. */
export type DriverSocket = import('node:net').Socket | NativeSocket;

/** Whether a service's sessions run on native I/O: the HTTP proxy without a TLS layer (a TLS session
 * needs Node's socket under it), native I/O wanted (`tzorp run --no-native-io` says no) and built. */
export function nativeIoEligible(service: Pick<ProxyService, 'proxy' | 'tls'>, wanted: boolean): boolean {
  return wanted && service.proxy === 'http' && !service.tls && nativeAvailable();
}
