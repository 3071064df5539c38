// The session driver: runs one sans-IO ProxyCore (src/proxy/core/types.ts) over real sockets. It
// turns socket happenings into events, in order, and carries out the core's commands. It owns every
// socket, timer and listener of the session, so when the session ends nothing is left behind.
//
// Backpressure (bounded memory): when a stream's write buffer holds more than `relayBufferBytes`, the
// driver stops reading the streams that feed it until that buffer drains; the core then gets a 'drain'
// event. Stream Y feeds stream X once the core sent to X while handling a 'data' event from Y (plug:
// client feeds server and back; FTP: a data stream feeds its other side). Only feeders stop: pausing
// every other stream would also stop an FTP control connection, so a client that stops reading a
// download and sends ABOR would not be heard until its data socket closed. A stream is read again when
// every stream it feeds has drained. A core can pause/resume streams on top of that, and its pause wins.
import type net from 'node:net';
import { DEFAULTS } from '../defaults.ts';
import { bug, E, TzorpError } from '../errors.ts';
import { handleFd, type RelayCounts, resetOnClose } from '../native/index.ts';
import { assertNever } from '../proxy/core/index.ts';
import type {
  Addr,
  CoreFactory,
  LogLevel,
  ProxyCommand,
  ProxyCore,
  ProxyEvent,
  StreamId,
  TlsHandshakeInfo,
  Verdict,
} from '../proxy/core/types.ts';
import type { KeptSession } from '../proxy/tls/inspect.ts';
import { canonicalHost, formatAddr, makeAddr, socketAddrs, zorpAddr } from './addr.ts';
import { ChainFailed } from './chainer.ts';
import { type Listener, openListener } from './listener.ts';
import { type DriverSocket, NativeSocket, type NativeSocketSink } from './native-socket.ts';
import {
  type BodyRelayOwner,
  bodyTakeOver,
  type NativeRelay,
  type NativeRelayEnd,
  type NativeRelayReason,
  nativeRelayDefault,
  releaseBodySource,
  takeOver,
} from './relay.ts';
import { RouteError } from './router.ts';
import { type ServiceUpstream, TargetZoneDenied } from './service.ts';
import { isoTime } from './time.ts';
import { Cancel, connectUpstream, connectUpstreamNative } from './upstream.ts';

/** Where the driver's log lines go. `category` is Zorp's `module.category` (core.session, plug.debug). */
export type SessionLog = ((
  category: string,
  level: LogLevel,
  msg: string,
  fields: Record<string, unknown>,
) => void) & {
  /** Whether a line of this category and level would be written (absent: every line is): a line
   * that would not is not built at all. */
  enabled?: (category: string, level: LogLevel) => boolean;
  /** The same line with the session's id apart from its fields (no `session_id` and `service` merged
   * in): where present, sessions call this instead, and no line's fields are copied on the way. */
  session?: (
    category: string,
    level: LogLevel,
    sessionId: string,
    msg: string,
    fields: Record<string, unknown>,
  ) => void;
};

/** The TLS layer's I/O (src/proxy/tls/inspect.ts, node:tls), loaded on first use: a worker whose
 * policies have no TLS service does not load node:tls (about 1.2 MiB of a process's memory). The
 * worker loads it while it prepares a generation with one (WorkerDeps.loadTls), so a session does not
 * wait for it; the failures of a load are the handshake's. */
let tlsModule: Promise<typeof import('../proxy/tls/inspect.ts')> | null = null;
export function tlsLayer(): Promise<typeof import('../proxy/tls/inspect.ts')> {
  tlsModule ??= import('../proxy/tls/inspect.ts');
  return tlsModule;
}

/** A session's line to `log`: through its `session` form when it has one, else with `session_id` and
 * `service` merged into the fields. */
export function sessionLine(
  log: SessionLog,
  id: string,
  service: string,
  category: string,
  level: LogLevel,
  msg: string,
  fields: Record<string, unknown>,
): void {
  if (log.session) log.session(category, level, id, msg, fields);
  else log(category, level, msg, { session_id: id, service, ...fields });
}

/** Bytes moved by the session, counted by the driver on the sockets. */
export interface SessionBytes {
  fromClient: number;
  toClient: number;
  fromServer: number;
  toServer: number;
}

/** The connection summary (Zorp core.summary), handed to `onEnd` once per session. */
export interface SessionSummary {
  id: string;
  service: string;
  ruleId: number | null;
  /** Epoch milliseconds. */
  startedAt: number;
  endedAt: number;
  durationMs: number;
  client: Addr | null;
  /** The address the client dialled (transparent: the original destination). */
  clientLocal: Addr | null;
  clientZone: string | null;
  server: Addr | null;
  serverLocal: Addr | null;
  serverZone: string | null;
  bytes: SessionBytes;
  verdict: Verdict;
  info: string | null;
  /** What the core reported with `account` (numbers summed, strings last value). */
  counters: Record<string, number | string>;
}

/** A running session as `tzorp sessions` shows it. */
export interface SessionSnapshot {
  id: string;
  service: string;
  client: Addr | null;
  clientZone: string | null;
  server: Addr | null;
  serverZone: string | null;
  startedAt: number;
  bytes: SessionBytes;
  /** What the core reported with `account` so far (e.g. the TLS layer's tls_* fields). */
  counters: Readonly<Record<string, number | string>>;
}

export interface RunSessionOptions {
  /** Zorp-style session id, e.g. svc/intra_http:12. */
  id: string;
  service: string;
  /** The accepted client connection (paused; the driver starts reading when the core wants data). A
   * NativeSocket (native I/O, native-socket.ts) makes the session's server connections NativeSockets
   * too; such a session cannot start TLS. */
  socket: DriverSocket;
  /** The socket's addresses when the caller has made them already (canonical, as makeAddr makes
   * them): shared instead of read and parsed again. */
  addrs?: { remote: Addr; local: Addr };
  /** Builds the session's core, its options already bound (src/proxy/bind.ts). */
  createCore: CoreFactory;
  /** Router, chainer, limit_target_zones_to and max_sessions of the service. Without it, connects
   * need an explicit target and no session limit applies. */
  upstream?: ServiceUpstream;
  /** max_sessions as the caller decided it before the session existed (the daemon: one decision
   * across its workers). false ends the session at once as DENIED_BY_LIMIT; the caller owns the slot
   * of an admitted session. Unset: the driver takes a slot from `upstream`'s limiter itself. */
  admitted?: boolean;
  /** Which limit refused a session that is not admitted (the daemon's per-client limits); the
   * default is max_sessions. */
  refusedBy?: string;
  /** The kernel's decision for this connection (default: zone looked up through `upstream`). */
  clientZone?: string | null;
  ruleId?: number | null;
  log?: SessionLog;
  /** Called once with the connection summary, when the core said `done` (or the session failed). */
  onEnd?: (summary: SessionSummary) => void;
  /** Write-buffer limit per stream before the other streams stop being read (bytes). */
  relayBufferBytes?: number;
  /** Connect timeout for explicit-target connects (the chainer has its own for routed ones), ms. */
  connectTimeoutMs?: number;
  /** Transparent sockets for explicit-target connects (default: as the upstream does, else false). */
  transparentUpstream?: boolean;
  /** Clock (epoch ms) for events and the summary. */
  now?: () => number;
  /** Hand streams to the native splice relay when a core asks (`relay` command) and the addon is
   * built (default: nativeRelayDefault(), i.e. on). false: every byte goes through JavaScript. */
  nativeRelay?: boolean;
}

export interface SessionHandle {
  readonly id: string;
  /** Resolves with the summary when the session has ended. Never rejects. */
  readonly done: Promise<SessionSummary>;
  snapshot(): SessionSnapshot;
  /** Ask the core to finish (an 'abort' event): daemon stop or session kill. */
  abort(reason: string): void;
  /** End at once, resetting every stream (after a drain timeout). */
  kill(reason: string): void;
}

/** 'native': the stream's socket belongs to the native relay now (src/net/relay.ts). */
type StreamState = 'connecting' | 'open' | 'closing' | 'closed' | 'native';

interface Stream {
  id: StreamId;
  sock: DriverSocket | null;
  state: StreamState;
  /** The core asked to pause reading. */
  corePaused: boolean;
  /** Write buffer over the limit: its feeders are not read; a 'drain' is owed to the core. */
  congested: boolean;
  /** The streams this one's bytes were sent to (a send while handling its 'data' event); it is not
   * read while any of them is congested. Never itself: a stream that answers its own peer was not
   * paused by its own congestion before either, and pausing it could stall a peer that reads only
   * after it has written everything. */
  feeds: Set<Stream> | null;
  /** Our side sent FIN (shutdown or close). */
  finSent: boolean;
  /** What the driver last told the socket: true = reading, false = paused, null = not yet. */
  reading: boolean | null;
  /** Writes and a shutdown the core issued while the stream was still connecting. */
  pending: Uint8Array[];
  pendingShutdown: boolean;
  abort: Cancel | null;
  error: string | undefined;
  closedSent: boolean;
  /** True for the routed server connection (the one in the summary). */
  routed: boolean;
  /** Waiting to be handed to the native relay, or the source of a body relay: not read meanwhile. */
  handover: boolean;
  /** The destination of a body relay: sends and a shutdown wait in `pending` until it ends. */
  bodyHold: boolean;
  /** Takes the driver's listeners off the socket (before TLS is put on it). */
  detach: (() => void) | null;
  /** The stream is (or is becoming) a TLS session: never handed to the native relay. */
  tls: boolean;
  /** A server side we originated TLS on: how, and the server's latest session (TLS 1.3 tickets come
   * after the handshake), for a `resume` of it on another connection (FTP data channels). */
  origin: { sni: string | null; verifyName: string; session: KeptSession | null } | null;
  /** Under a TLS stream: the TCP socket the TLS session runs on (a reset goes to it: a TLS socket has
   * no TCP handle of its own). */
  transport: net.Socket | null;
}

/** A one-way body relay (after a `relayBody` command): `from`'s next `bytes` go to `to` natively. */
interface BodyState {
  from: Stream;
  to: Stream;
  bytes: number;
  idleMs: number;
  /** Waiting for `to`'s queued writes (started after the command batch). */
  waiting: boolean;
  /** The addon's relay once it runs. */
  relay: NativeRelay | null;
  /** Bytes Node had read from `from` (the relay wrote them first). */
  buffered: number;
  owner: BodyRelayOwner;
}

/** A stream pair the native relay copies (after a `relay` command). */
interface RelayState {
  relay: NativeRelay;
  a: Stream;
  b: Stream;
  /** Bytes Node had read from a / b at the handover (the relay writes them first). */
  bufferedA: number;
  bufferedB: number;
}

interface ListenerState {
  id: StreamId;
  listener: Listener | null;
  closed: boolean;
  accepted: number;
}

/** The listeners of a session that never listened (shared, never written: `listen` makes its own). */
const NO_LISTENERS = new Map<StreamId, ListenerState>();

/** Close a stream's connection with a reset (RST). A TLS stream's socket has no TCP handle of its own
 * (node refuses resetAndDestroy on it), and resetting the TCP socket under it while the TLS layer still
 * uses it crashes the process (node 20: SIGSEGV): the TCP socket gets SO_LINGER 0 instead, and
 * destroying the TLS socket closes it, with a RST. (Without the addon: a FIN.) */
function resetStream(s: Stream): void {
  const sock = s.sock;
  if (!sock) return;
  const raw = s.transport;
  if (raw) {
    const fd = raw.destroyed ? -1 : handleFd(raw);
    if (fd >= 0) {
      try {
        resetOnClose(fd);
      } catch {
        // (no addon, or the socket is gone already: the close below sends what it can)
      }
    }
    sock.destroy();
    if (!raw.destroyed) raw.destroy();
  } else sock.resetAndDestroy();
}

/**
 * Run one session: build the core, feed it events, execute its commands, and report the summary.
 * Returns at once; the session runs on the event loop. A core that throws ends only this session
 * (logged as an internal 'ours' error, TZ9001).
 */
export function runSession(o: RunSessionOptions): SessionHandle {
  return new Session(o);
}

/** A handle's `done` and the summary it resolves with (shared by native-plug.ts's sessions). */
export abstract class SessionDone {
  /** `done`, made when first asked for (the daemon learns the end through onEnd: a Promise and its
   * resolver less per held connection), and the summary once the session has ended. */
  private donePromise: Promise<SessionSummary> | null = null;
  private resolveDone: ((s: SessionSummary) => void) | null = null;
  private summary: SessionSummary | null = null;

  get done(): Promise<SessionSummary> {
    this.donePromise ??= this.summary
      ? Promise.resolve(this.summary)
      : new Promise<SessionSummary>((r) => {
          this.resolveDone = r;
        });
    return this.donePromise;
  }

  /** Log the summary line, hand the summary to `onEnd`, and resolve `done`. */
  protected settle(
    summary: SessionSummary,
    log: SessionLog | undefined,
    onEnd?: (s: SessionSummary) => void,
  ): void {
    if (log && log.enabled?.('core.summary', 'info') !== false)
      sessionLine(
        log,
        summary.id,
        summary.service,
        'core.summary',
        'info',
        'Connection summary',
        summaryFields(summary),
      );
    try {
      onEnd?.(summary);
    } finally {
      this.summary = summary;
      this.resolveDone?.(summary);
    }
  }
}

/** A session is its own handle (methods on the class: no closures per held connection). */
class Session extends SessionDone implements SessionHandle, NativeSocketSink<Stream> {
  private core: ProxyCore | null = null;
  private readonly streams = new Map<StreamId, Stream>();
  /** Listeners and per-listener accept numbers: made by the first `listen` (most sessions never
   * listen; two Maps less per held connection). */
  private listeners: Map<StreamId, ListenerState> = NO_LISTENERS;
  /** The core's timers and their durations: made by the first setTimer, dropped with the last one. */
  private timers: Map<string, { t: NodeJS.Timeout; ms: number }> | null = null;
  private acceptSeq: Map<StreamId, number> | null = null;
  private readonly queue: ProxyEvent[] = [];
  private pumping = false;
  /** The stream whose 'data' event the core is handling now (its sends make it a feeder). */
  private feeding: Stream | null = null;
  private ended = false;
  /** Async work (listen, connect) whose result is still to come. */
  private inflight = 0;
  private admitted = false;
  private policyDenied = false;
  private readonly now: () => number;
  private readonly limit: number;
  private readonly startedAt: number;
  private readonly client: Addr | null;
  private readonly clientLocal: Addr | null;
  private readonly clientZone: string | null;
  private server: Addr | null = null;
  private serverLocal: Addr | null = null;
  private serverZone: string | null = null;
  private readonly bytes: SessionBytes = { fromClient: 0, toClient: 0, fromServer: 0, toServer: 0 };
  private readonly counters: Record<string, number | string> = {};
  /** A `relay` command waiting for the end of its command batch, then for the write queues to empty. */
  private handingOver: { a: Stream; b: Stream; idleMs: number; waiting: boolean } | null = null;
  private native: RelayState | null = null;
  /** The client is a NativeSocket: server connections are made as NativeSockets too. */
  private readonly nativeIo: boolean;
  /** A body relay in progress (relayBody). */
  private body: BodyState | null = null;

  /** The options without the accepted socket (a Stream holds it while it is ours: kept here, a
   * natively relayed session would keep the destroyed socket in memory). */
  private readonly o: Omit<RunSessionOptions, 'socket'>;

  constructor(options: RunSessionOptions) {
    super();
    const { socket, ...o } = options;
    this.o = o;
    this.nativeIo = socket instanceof NativeSocket;
    this.now = o.now ?? Date.now;
    this.limit = o.relayBufferBytes ?? DEFAULTS.relayBufferBytes;
    this.startedAt = this.now();
    const addrs = o.addrs ?? socketAddrs(socket);
    this.client = addrs?.remote ?? null;
    this.clientLocal = addrs?.local ?? null;
    this.clientZone =
      o.clientZone !== undefined
        ? o.clientZone
        : this.client
          ? (o.upstream?.zoneOf(this.client.host) ?? null)
          : null;
    this.start(socket);
  }

  get id(): string {
    return this.o.id;
  }

  snapshot(): SessionSnapshot {
    return {
      id: this.o.id,
      service: this.o.service,
      client: this.client,
      clientZone: this.clientZone,
      server: this.server,
      serverZone: this.serverZone,
      startedAt: this.startedAt,
      bytes: this.liveBytes(),
      counters: { ...this.counters },
    };
  }

  abort(reason: string): void {
    this.feed({ type: 'abort', now: this.now(), reason });
  }

  kill(reason: string): void {
    this.finish('DENIED_BY_UNKNOWN_FAIL', `killed: ${reason}`, true);
  }

  private log(category: string, level: LogLevel, msg: string, fields: Record<string, unknown> = {}): void {
    const log = this.o.log;
    if (!log || log.enabled?.(category, level) === false) return;
    sessionLine(log, this.o.id, this.o.service, category, level, msg, fields);
  }

  private start(sock: DriverSocket): void {
    sock.allowHalfOpen = true; // a client's FIN must not end the relay toward it (half-close)
    sock.setNoDelay(true);
    if (!this.client || !this.clientLocal) {
      // Reset before we looked at it: nothing to serve.
      sock.destroy();
      this.finish(
        'DENIED_BY_UNKNOWN_FAIL',
        'the client connection was gone before the session started',
        false,
      );
      return;
    }
    if (this.o.upstream) {
      if (!(this.o.admitted ?? this.o.upstream.admit())) {
        const { msg, fields, info } = refusalText(this.o.upstream, this.o.refusedBy);
        this.log('core.policy', 'warn', msg, {
          client_address: zorpAddr(this.client),
          client_zone: this.clientZone,
          ...fields,
        });
        sock.resetAndDestroy();
        this.finish('DENIED_BY_LIMIT', info, false);
        return;
      }
      // the driver gives back only a slot it took
      this.admitted = this.o.admitted === undefined;
    }
    this.log('core.session', 'info', 'Starting proxy session', {
      client_address: zorpAddr(this.client),
      client_local: zorpAddr(this.clientLocal),
      client_zone: this.clientZone,
      rule_id: this.o.ruleId ?? null,
    });
    try {
      this.core = this.o.createCore({
        sessionId: this.o.id,
        service: this.o.service,
        clientZone: this.clientZone,
        inband: this.o.upstream?.inband ?? false,
        clientLocal: this.clientLocal,
      });
    } catch (e) {
      this.ours(e);
      sock.destroy();
      return;
    }
    const client = this.newStream('client', 'open', false);
    this.attach(client, sock);
    this.feed({ type: 'start', now: this.now(), client: this.client, clientLocal: this.clientLocal });
  }

  // --- events -----------------------------------------------------------------------------------

  private feed(ev: ProxyEvent): void {
    if (this.ended) return;
    this.queue.push(ev);
    if (this.pumping) return; // a command of the current event caused this one: keep the order
    this.pumping = true;
    try {
      while (this.queue.length > 0 && !this.ended) {
        const e = this.queue.shift()!;
        let cmds: ProxyCommand[];
        try {
          cmds = this.core!.handle(e);
        } catch (err) {
          this.ours(err);
          return;
        }
        this.feeding = e.type === 'data' ? (this.streams.get(e.stream) ?? null) : null;
        for (const c of cmds) {
          if (this.ended) break;
          try {
            this.exec(c);
          } catch (err) {
            this.ours(err);
            return;
          }
        }
      }
    } finally {
      this.pumping = false;
      this.feeding = null;
    }
    if (this.handingOver && !this.handingOver.waiting) this.waitForHandover();
    if (this.body && !this.body.waiting) this.waitForBody();
    this.checkStalled();
  }

  /** A core that has nothing left to wait for and did not say `done` would hang the session. */
  private checkStalled(): void {
    if (this.ended || this.inflight > 0 || this.timers !== null) return;
    for (const s of this.streams.values()) if (s.state !== 'closed') return;
    for (const l of this.listeners.values()) if (!l.closed) return;
    this.ours(bug('the core did not finish although every stream is closed'));
  }

  /** A broken invariant (a core bug, or ours): end this session only. */
  private ours(err: unknown): void {
    if (this.ended) return;
    const msg = err instanceof Error ? err.message : String(err);
    const e = new TzorpError('INTERNAL', `session ${this.o.id}: ${msg}`, { cause: err });
    this.log('core.error', 'error', 'Internal error, ending the session', {
      code: e.code,
      error: msg,
      stack: err instanceof Error ? err.stack : undefined,
      core: this.describeCore(),
    });
    this.finish('DENIED_BY_UNKNOWN_FAIL', `internal error: ${msg}`, true);
  }

  /** The core's own account of where it was (its describe()); a core that cannot say is noted. */
  private describeCore(): unknown {
    if (!this.core) return null;
    try {
      return this.core.describe();
    } catch (e) {
      return { describe_failed: e instanceof Error ? e.message : String(e) };
    }
  }

  // --- streams ----------------------------------------------------------------------------------

  private newStream(id: StreamId, state: StreamState, routed: boolean): Stream {
    const s: Stream = {
      id,
      sock: null,
      state,
      corePaused: false,
      congested: false,
      feeds: null,
      finSent: false,
      reading: null,
      pending: [],
      pendingShutdown: false,
      bodyHold: false,
      abort: null,
      error: undefined,
      closedSent: false,
      routed,
      handover: false,
      detach: null,
      tls: false,
      origin: null,
      transport: null,
    };
    this.streams.set(id, s);
    return s;
  }

  private attach(s: Stream, sock: DriverSocket): void {
    s.sock = sock;
    s.state = 'open';
    s.reading = null;
    if (sock instanceof NativeSocket) {
      // One sink for the session, the stream as its tag: no closures and listeners per socket.
      sock.setSink<Stream>(this, s);
      s.detach = () => {
        if (sock.hasSink(this)) sock.setSink(null);
      };
    } else this.addListeners(s, sock);
    for (const d of s.pending) this.write(s, d);
    s.pending = [];
    if (s.pendingShutdown) this.shutdown(s);
    this.updateReading();
  }

  // A NativeSocket's events (NativeSocketSink), as the listeners below take a net.Socket's.
  onSocketData(s: Stream, buf: Buffer): void {
    if (s.state !== 'open') return; // closing: the core no longer wants this stream's bytes
    this.count(s, 'in', buf.length);
    this.feed({ type: 'data', now: this.now(), stream: s.id, data: buf });
  }

  onSocketEnd(s: Stream): void {
    if (s.state !== 'open') return;
    this.feed({ type: 'end', now: this.now(), stream: s.id });
  }

  onSocketDrain(s: Stream): void {
    this.onDrain(s);
  }

  onSocketError(s: Stream, e: Error): void {
    s.error ??= e.message;
  }

  onSocketClose(s: Stream): void {
    this.onClose(s);
  }

  /** A net.Socket's (or a TLS socket's) events, by listeners. */
  private addListeners(s: Stream, sock: DriverSocket): void {
    const onData = (buf: Buffer): void => this.onSocketData(s, buf);
    const onEnd = (): void => this.onSocketEnd(s);
    const onDrain = (): void => this.onDrain(s);
    const onError = (e: Error): void => this.onSocketError(s, e);
    const onClose = (): void => this.onClose(s);
    sock.on('data', onData);
    sock.on('end', onEnd);
    sock.on('drain', onDrain);
    sock.on('error', onError);
    sock.on('close', onClose);
    s.detach = () => {
      sock.off('data', onData);
      sock.off('end', onEnd);
      sock.off('drain', onDrain);
      sock.off('error', onError);
      sock.off('close', onClose);
    };
  }

  private count(s: Stream, dir: 'in' | 'out', n: number, into: SessionBytes = this.bytes): void {
    if (s.id === 'client') {
      if (dir === 'in') into.fromClient += n;
      else into.toClient += n;
    } else if (s.routed) {
      if (dir === 'in') into.fromServer += n;
      else into.toServer += n;
    }
  }

  private onDrain(s: Stream): void {
    if (!s.congested || !s.sock || s.sock.writableLength > this.limit) return;
    s.congested = false;
    this.updateReading();
    if (s.state === 'open') this.feed({ type: 'drain', now: this.now(), stream: s.id });
  }

  private onClose(s: Stream): void {
    const wasOpen = s.state !== 'closed';
    s.state = 'closed';
    s.congested = false;
    s.sock = null;
    if (wasOpen || !s.closedSent) this.sendClosed(s);
    this.updateReading();
  }

  private sendClosed(s: Stream): void {
    if (s.closedSent) return;
    s.closedSent = true;
    const ev: ProxyEvent = { type: 'closed', now: this.now(), stream: s.id };
    if (s.error !== undefined) ev.error = s.error;
    this.feed(ev);
  }

  /** Read a stream unless the core paused it or a stream it feeds has its write buffer over the limit.
   * (A stream that closed or was replaced by a new connect under its id is never congested.) */
  private updateReading(): void {
    for (const s of this.streams.values()) {
      if (!s.sock || s.state !== 'open') continue;
      let blocked = s.corePaused || s.handover;
      if (!blocked && s.feeds) {
        for (const o of s.feeds) {
          if (o.congested) {
            blocked = true;
            break;
          }
        }
      }
      const want = !blocked;
      if (s.reading === want) continue;
      s.reading = want;
      if (want) s.sock.resume();
      else s.sock.pause();
    }
  }

  private stream(id: StreamId, cmd: string): Stream {
    const s = this.streams.get(id);
    if (!s) throw bug(`${cmd} on unknown stream '${id}'`);
    return s;
  }

  private write(s: Stream, data: Uint8Array): void {
    const sock = s.sock!;
    sock.write(data);
    this.count(s, 'out', data.length);
    if (!s.congested && sock.writableLength > this.limit) {
      s.congested = true;
      this.updateReading();
    }
  }

  private shutdown(s: Stream): void {
    if (s.finSent) return;
    s.finSent = true;
    s.sock!.end();
  }

  /** Graceful close: FIN after the queued bytes, then release; a reset if the peer does not take them. */
  private closeGraceful(s: Stream): void {
    const sock = s.sock;
    if (!sock) return;
    s.state = 'closing';
    s.finSent = true;
    s.congested = false;
    if (sock.writableFinished) {
      sock.destroy(); // everything was sent already (the usual end of a relay): no flush to wait for
      return;
    }
    if (sock instanceof NativeSocket && sock.writableLength === 0) {
      // Nothing waits: end() sends the FIN at once (shutdown), and the close can follow it now, as it
      // would on 'finish' a tick later, without a timer and two listeners for every connection.
      sock.end();
      sock.destroy();
      return;
    }
    const t = setTimeout(() => {
      this.log('core.session', 'warn', 'The peer did not take the last bytes in time; connection reset', {
        stream: s.id,
        timeout_ms: DEFAULTS.closeFlushTimeoutMs,
        code: E.PROXY_TIMEOUT.code,
      });
      resetStream(s);
    }, DEFAULTS.closeFlushTimeoutMs);
    t.unref();
    sock.once('close', () => clearTimeout(t));
    sock.once('finish', () => sock.destroy());
    sock.end();
  }

  // --- commands ---------------------------------------------------------------------------------

  private exec(c: ProxyCommand): void {
    switch (c.type) {
      case 'send': {
        const s = this.stream(c.stream, 'send');
        if (s.state === 'native') throw bug(`send on stream '${s.id}' that the native relay owns`);
        if (s.finSent || s.state === 'closing' || s.state === 'closed') return; // raced with a close
        const from = this.feeding;
        if (from && from !== s && !from.feeds?.has(s)) {
          from.feeds ??= new Set();
          from.feeds.add(s);
          // Already congested (bytes sent outside a 'data' event, e.g. flushed on 'connected'): the
          // new feeder stops now, after this one chunk.
          if (s.congested) this.updateReading();
        }
        if (s.state === 'connecting' || s.bodyHold) s.pending.push(c.data);
        else this.write(s, c.data);
        return;
      }
      case 'shutdown': {
        const s = this.stream(c.stream, 'shutdown');
        if (s.state === 'native') throw bug(`shutdown of stream '${s.id}' that the native relay owns`);
        if (s.state === 'connecting' || s.bodyHold) s.pendingShutdown = true;
        else if (s.state === 'open') this.shutdown(s);
        return;
      }
      case 'close': {
        const s = this.stream(c.stream, 'close');
        if (s.state === 'closed' || s.state === 'closing') return;
        const b = this.body;
        if (b && (b.from === s || b.to === s)) {
          // The core gave up on a stream of the body relay: it ends here (stopped), then the close.
          const counts = this.settleBody(b, b.relay?.stop(false) ?? null);
          this.feedBody(b, 'stopped', counts);
        }
        if (s.state === 'native') {
          // The core ended the relay itself: it still learns the final counts (relayEnded, stopped).
          this.reportNativeEnd(this.stopNative(c.reset ?? false), 'stopped');
          return;
        }
        if (s.state === 'connecting') {
          s.abort?.abort();
          s.state = 'closed';
          this.sendClosed(s);
          return;
        }
        if (c.reset) resetStream(s);
        else this.closeGraceful(s);
        this.updateReading();
        return;
      }
      case 'pause':
      case 'resume': {
        const s = this.stream(c.stream, c.type);
        s.corePaused = c.type === 'pause';
        this.updateReading();
        return;
      }
      case 'connect':
        this.connect(c.stream, c.options);
        return;
      case 'relayBody':
        this.relayBody(this.stream(c.from, 'relayBody'), this.stream(c.to, 'relayBody'), c.bytes, c.idleMs);
        return;
      case 'relay':
        this.relay(this.stream(c.a, 'relay'), this.stream(c.b, 'relay'), c.idleMs);
        return;
      case 'startTls':
        this.startTls(this.stream(c.stream, 'startTls'), c);
        return;
      case 'listen':
        this.listen(c);
        return;
      case 'unlisten': {
        const l = this.listeners.get(c.listener);
        if (!l) throw bug(`unlisten of unknown listener '${c.listener}'`);
        this.closeListener(l);
        return;
      }
      case 'setTimer': {
        const old = this.timers?.get(c.timer);
        if (old && old.ms === c.ms) {
          old.t.refresh(); // same duration again: restart it without a new timer object
          return;
        }
        if (old) clearTimeout(old.t);
        const t = setTimeout(
          () => {
            this.dropTimer(c.timer);
            this.feed({ type: 'timer', now: this.now(), timer: c.timer });
          },
          Math.max(0, c.ms),
        );
        this.timers ??= new Map();
        this.timers.set(c.timer, { t, ms: c.ms });
        return;
      }
      case 'clearTimer': {
        const old = this.timers?.get(c.timer);
        if (old) clearTimeout(old.t);
        this.dropTimer(c.timer);
        return;
      }
      case 'log':
        this.log(c.category, c.level, c.msg, c.fields ?? {});
        return;
      case 'account':
        for (const [k, v] of Object.entries(c.fields)) {
          const old = this.counters[k];
          this.counters[k] = typeof v === 'number' && typeof old === 'number' ? old + v : v;
        }
        return;
      case 'done':
        this.finish(c.verdict, c.info ?? null, false);
        return;
      default:
        assertNever(c, 'command');
    }
  }

  private connect(id: StreamId, options: Extract<ProxyCommand, { type: 'connect' }>['options']): void {
    const old = this.streams.get(id);
    if (old && old.state !== 'closed') throw bug(`connect on stream '${id}' that is already open`);
    const routed = !options.target;
    const s = this.newStream(id, 'connecting', routed);
    s.closedSent = false;
    const abort = new Cancel();
    s.abort = abort;
    this.inflight++;
    let p: Promise<{ sock: DriverSocket; target: Addr; zone: string | null }>;
    if (options.target) {
      const target = makeAddr(options.target.host, options.target.port);
      const transparent = this.o.transparentUpstream ?? false;
      p = (this.nativeIo ? connectUpstreamNative : connectUpstream)({
        target,
        local: options.local
          ? {
              host: options.local.host || null,
              port: options.local.port,
              transparent: options.local.transparent,
            }
          : null,
        transparent,
        deferAck: options.sendsFirst === true,
        timeoutMs: this.o.connectTimeoutMs ?? DEFAULTS.connectTimeoutMs,
        signal: abort,
      }).then((sock) => ({ sock, target, zone: this.o.upstream?.zoneOf(target.host) ?? null }));
    } else if (!this.o.upstream) {
      p = Promise.reject(bug('no router for this session: connect needs an explicit target'));
    } else {
      const input = {
        client: this.client!,
        clientLocal: this.clientLocal!,
        ...(options.inband ? { inband: options.inband } : {}),
      };
      p = this.o.upstream
        .connectServer(input, abort, this.nativeIo, options.sendsFirst === true)
        .then((c) => ({ sock: c.socket, target: c.target, zone: c.serverZone }));
    }
    p.then(
      ({ sock, target, zone }) => {
        this.inflight--;
        if (this.ended || s.state !== 'connecting' || this.streams.get(id) !== s) {
          sock.destroy();
          this.checkStalled();
          return;
        }
        const a = socketAddrs(sock);
        const local = a?.local ?? makeAddr(target.family === 6 ? '::' : '0.0.0.0', 0);
        if (routed) {
          this.server = target;
          this.serverLocal = local;
          this.serverZone = zone;
        }
        this.log('core.session', 'info', 'Server connection established', {
          stream: id,
          server_address: zorpAddr(target),
          server_zone: zone,
          server_local: zorpAddr(local),
        });
        s.abort = null;
        this.attach(s, sock);
        this.feed({ type: 'connected', now: this.now(), stream: id, local, remote: a?.remote ?? target });
      },
      (err: unknown) => {
        this.inflight--;
        if (this.ended || s.state !== 'connecting' || this.streams.get(id) !== s) {
          this.checkStalled();
          return;
        }
        s.state = 'closed';
        s.closedSent = true; // a failed connect is reported as connectFailed, not closed
        const explicit = options.target ? makeAddr(options.target.host, options.target.port) : undefined;
        const { msg, target, denied } = connectFailure(err, id, explicit, (c, l, m, f) =>
          this.log(c, l, m, f),
        );
        if (denied) {
          this.policyDenied = true;
          this.serverZone = denied.zone;
          this.server = denied.target;
        }
        if (routed && target && !this.server) this.server = target;
        const ev: ProxyEvent = { type: 'connectFailed', now: this.now(), stream: id, error: msg };
        if (target) ev.target = target;
        this.feed(ev);
      },
    );
  }

  private listen(c: Extract<ProxyCommand, { type: 'listen' }>): void {
    if (this.listeners.has(c.listener) && !this.listeners.get(c.listener)!.closed) {
      throw bug(`listen on listener '${c.listener}' that is already open`);
    }
    const l: ListenerState = { id: c.listener, listener: null, closed: false, accepted: 0 };
    if (this.listeners === NO_LISTENERS) this.listeners = new Map();
    this.listeners.set(c.listener, l);
    const ports = portCandidates(c.port);
    const acceptFrom = c.acceptFrom ? canonicalHost(c.acceptFrom) : null;
    const onConnection = (sock: net.Socket) => {
      if (this.ended || l.closed) {
        sock.destroy();
        return;
      }
      const a = socketAddrs(sock);
      if (!a || (acceptFrom !== null && a.remote.host !== acceptFrom)) {
        // Bounce protection: only the expected peer may use a data channel.
        this.log('core.policy', 'warn', 'Connection from an unexpected peer refused', {
          listener: l.id,
          peer: a ? formatAddr(a.remote) : '(NULL)',
          expected: acceptFrom,
        });
        sock.resetAndDestroy();
        return;
      }
      l.accepted++;
      // Numbered per listener id over the whole session: a listener opened again under the same id
      // never reuses the name of a stream that may still be open.
      this.acceptSeq ??= new Map();
      const n = (this.acceptSeq.get(l.id) ?? 0) + 1;
      this.acceptSeq.set(l.id, n);
      const id = `${l.id}.${n}`;
      sock.allowHalfOpen = true;
      sock.setNoDelay(true);
      const s = this.newStream(id, 'open', false);
      this.attach(s, sock);
      if (c.maxAccepts !== undefined && l.accepted >= c.maxAccepts) this.closeListener(l, false);
      this.feed({
        type: 'accepted',
        now: this.now(),
        listener: l.id,
        stream: id,
        local: a.local,
        remote: a.remote,
      });
    };
    this.inflight++;
    (async () => {
      let lastErr: unknown = bug('empty port range');
      for (const port of ports) {
        try {
          return await openListener({ host: c.host, port, transparent: c.transparent, onConnection });
        } catch (e) {
          lastErr = e;
          const code = e instanceof TzorpError ? e.details?.code : undefined;
          const inUse = code === 'EADDRINUSE' || (e instanceof Error && /EADDRINUSE/.test(e.message));
          if (!inUse) break;
        }
      }
      throw lastErr;
    })().then(
      (listener) => {
        this.inflight--;
        if (this.ended || l.closed) {
          void listener.close();
          this.checkStalled();
          return;
        }
        l.listener = listener;
        this.feed({ type: 'listening', now: this.now(), listener: l.id, local: listener.local });
      },
      (err: unknown) => {
        this.inflight--;
        l.closed = true;
        if (this.ended) return;
        this.feed({
          type: 'listenFailed',
          now: this.now(),
          listener: l.id,
          error: err instanceof Error ? err.message : String(err),
        });
      },
    );
  }

  // --- the native relay -------------------------------------------------------------------------

  /** A core's `relay` command: hand a and b to the native relay once Node has no write queued for
   * them (src/net/relay.ts explains the handover); meanwhile neither is read. The wait starts after
   * the command batch (sends that follow the command in the same batch, like a TLS gate's held
   * ClientHello after its inner core's commands, still go first). Declined silently (the core keeps
   * copying) when the native relay is off or a stream is not plainly open. */
  private relay(a: Stream, b: Stream, idleMs: number): void {
    if (!this.relayFree() || a === b) return;
    // a TLS stream's bytes must go through its TLS session: splicing its socket would relay ciphertext
    for (const s of [a, b]) if (s.state !== 'open' || !s.sock || s.tls) return;
    this.handingOver = { a, b, idleMs, waiting: false };
    a.handover = b.handover = true;
    this.updateReading();
  }

  /**
   * TLS on an open stream: the socket leaves the session (the stream counts as connecting, so sends
   * are queued and a close or the session's end aborts the handshake), the handshake runs
   * (src/proxy/tls/inspect.ts), and the TLS socket comes back in its place; the core hears of it in a
   * `tls` event. A failed handshake closes the stream (`tls` not ok, then `closed`).
   */
  private startTls(s: Stream, c: Extract<ProxyCommand, { type: 'startTls' }>): void {
    const raw = s.sock;
    const info: TlsHandshakeInfo = {
      sni: c.side.role === 'originate' ? c.side.sni : null,
      version: null,
      cipher: null,
      alpn: null,
      subject: null,
      issuer: null,
      verify: null,
      altNames: [],
    };
    if (!raw || s.state !== 'open' || s.tls || raw instanceof NativeSocket) {
      this.feed({
        type: 'tls',
        now: this.now(),
        stream: s.id,
        ok: false,
        reason: 'not_open',
        detail:
          raw instanceof NativeSocket ? 'the stream runs on native I/O (no TLS)' : 'the stream is not open',
        info,
      });
      return;
    }
    s.detach?.();
    s.detach = null;
    s.sock = null;
    s.state = 'connecting';
    s.tls = true;
    s.transport = raw;
    raw.pause();
    raw.on('error', () => {}); // (the TLS socket reports the handshake's errors)
    const abort = new Cancel();
    s.abort = abort;
    abort.on(() => raw.destroy());
    const up = (sock: net.Socket, got: TlsHandshakeInfo): void => {
      if (abort.aborted || this.ended) {
        sock.destroy();
        return;
      }
      s.abort = null;
      this.attach(s, sock);
      this.feed({ type: 'tls', now: this.now(), stream: s.id, ok: true, info: got });
    };
    const failed = (reason: string, detail: string, got: TlsHandshakeInfo): void => {
      if (abort.aborted || this.ended) return;
      s.abort = null;
      raw.destroy();
      s.state = 'closed';
      this.feed({ type: 'tls', now: this.now(), stream: s.id, ok: false, reason, detail, info: got });
      this.sendClosed(s);
      this.updateReading();
    };
    const side = c.side;
    if (side.role === 'terminate') {
      tlsLayer()
        .then((m) =>
          m.terminateClient(raw, {
            leaf: c.endpoint.leaf,
            names: side.names,
            minVersion: c.endpoint.minVersion,
            ...(side.alpn ? { alpn: side.alpn } : {}),
            ...(side.held ? { held: side.held } : {}),
          }),
        )
        .then(
          (secure) => {
            info.version = secure.getProtocol();
            info.cipher = secure.getCipher()?.name ?? null;
            info.alpn = secure.alpnProtocol || null;
            info.sni = (secure as net.Socket & { servername?: string | false }).servername || null;
            up(secure, info);
          },
          (e: Error) => failed('client_handshake', e.message, info),
        );
    } else {
      // 'resume': as the other stream's origination was, offering its session
      const like = side.role === 'resume' ? (this.streams.get(side.from)?.origin ?? null) : null;
      if (side.role === 'resume' && !like) {
        failed('handshake_failure', `stream '${side.from}' has no TLS to resume`, info);
        return;
      }
      const { sni, verifyName } = side.role === 'originate' ? side : like!;
      const alpn = side.role === 'originate' ? side.alpn : undefined;
      info.sni = sni;
      tlsLayer().then(
        async (m) => {
          const r = await m.originateServer(raw, {
            sni,
            verifyName,
            verify: c.endpoint.verify,
            ...(c.endpoint.serverCa !== undefined ? { ca: c.endpoint.serverCa } : {}),
            minVersion: c.endpoint.minVersion,
            ...(alpn ? { alpn } : {}),
            ...(like?.session ? { resume: like.session } : {}),
          });
          if (!r.ok) {
            failed(r.reason, r.detail, r.info);
            return;
          }
          if (!like) {
            const origin: NonNullable<Stream['origin']> = { sni, verifyName, session: null };
            m.followSessions(r.socket, r.info, (kept) => {
              origin.session = kept;
            });
            s.origin = origin;
          }
          up(r.socket, r.info);
        },
        // (the TLS layer could not be loaded; originateServer itself answers failures as { ok: false })
        (e: Error) => failed('handshake_failure', e.message, info),
      );
    }
  }

  private waitForHandover(): void {
    const h = this.handingOver!;
    h.waiting = true;
    const { a, b } = h;
    if (this.ended || a.state !== 'open' || b.state !== 'open' || !a.sock || !b.sock) {
      this.completeHandover();
      return;
    }
    let waits = 1;
    const ready = () => {
      if (--waits === 0) this.completeHandover();
    };
    for (const s of [a, b]) {
      const sock = s.sock!;
      if (s.finSent && !sock.writableFinished) {
        // A FIN the core asked for is still queued behind writes: let libuv send it first.
        waits++;
        let once = false;
        const fin = () => {
          if (once) return;
          once = true;
          sock.off('finish', fin);
          sock.off('close', fin);
          ready();
        };
        sock.on('finish', fin);
        sock.on('close', fin);
      } else if (!s.finSent && sock.writableLength > 0) {
        waits++;
        // A zero-length write completes after every write before it (writes complete in order).
        sock.write(EMPTY, ready);
      }
    }
    ready();
  }

  private completeHandover(): void {
    const h = this.handingOver;
    if (!h) return;
    this.handingOver = null;
    const { a, b, idleMs } = h;
    a.handover = b.handover = false;
    if (this.ended || a.state !== 'open' || b.state !== 'open' || !a.sock || !b.sock) {
      // A stream closed meanwhile: the core heard about it and goes on in JavaScript.
      this.updateReading();
      return;
    }
    const sa = a.sock;
    const sb = b.sock;
    // takeOver takes every listener off the sockets; a NativeSocket's sink goes with our detach.
    a.detach?.();
    b.detach?.();
    const t = takeOver(sa, sb, idleMs, this);
    if (!t) {
      // Declined (no addon, EMFILE on dup, ...): the sockets are whole; listen to them again.
      a.reading = b.reading = null;
      this.attach(a, sa);
      this.attach(b, sb);
      return;
    }
    this.count(a, 'in', t.bufferedA);
    this.count(b, 'in', t.bufferedB);
    for (const s of [a, b]) {
      s.sock = null;
      // (its closures hold the socket: dropped, or every natively relayed connection keeps two
      // destroyed sockets and their listeners in memory, about 3 KB)
      s.detach = null;
      s.state = 'native';
      s.congested = false;
      s.feeds = null;
    }
    this.native = { relay: t.relay, a, b, bufferedA: t.bufferedA, bufferedB: t.bufferedB };
    this.log('core.debug', 'debug', 'Streams handed to the native relay', {
      streams: [a.id, b.id],
      buffered_a: t.bufferedA,
      buffered_b: t.bufferedB,
    });
    this.feed({ type: 'relayStarted', now: this.now(), a: a.id, b: b.id });
  }

  /** The relay's counts become the session's; both streams are closed from here on. */
  private settleNative(counts: RelayCounts): RelayState {
    const n = this.native!;
    this.native = null;
    this.count(n.a, 'in', counts[0]);
    this.count(n.a, 'out', counts[1]);
    this.count(n.b, 'in', counts[2]);
    this.count(n.b, 'out', counts[3]);
    for (const s of [n.a, n.b]) {
      s.state = 'closed';
      s.closedSent = true; // the core learns the end from relayEnded (or closed them itself)
    }
    return n;
  }

  /** The native relay ended on its own (relay.ts RelayOwner). */
  relayEnded(end: NativeRelayEnd): void {
    if (this.ended || !this.native) return;
    const n = this.native;
    this.settleNative(end.counts);
    this.reportNativeEnd({ n, counts: end.counts }, end.reason, end.by, end.error);
  }

  /** The core's `relayEnded` event for a relay that was settled (see settleNative). */
  private reportNativeEnd(
    settled: { n: RelayState; counts: RelayCounts } | null,
    reason: NativeRelayReason | 'stopped',
    by: 0 | 1 | null = null,
    error?: string,
  ): void {
    if (!settled || this.ended) return;
    const { n, counts: c } = settled;
    const ev: ProxyEvent = {
      type: 'relayEnded',
      now: this.now(),
      reason,
      by: by === 0 ? n.a.id : by === 1 ? n.b.id : null,
      bytes: {
        [n.a.id]: { read: n.bufferedA + c[0], written: c[1] },
        [n.b.id]: { read: n.bufferedB + c[2], written: c[3] },
      },
    };
    if (error !== undefined) ev.error = error;
    this.feed(ev);
  }

  /** End the native relay from here (a core's close, abort, kill, the end of the session); what it
   * was and its final counts, or null when there was none. */
  private stopNative(reset: boolean): { n: RelayState; counts: RelayCounts } | null {
    const n = this.native;
    if (!n) return null;
    const counts = n.relay.stop(reset);
    this.settleNative(counts);
    return { n, counts };
  }

  /** The native relay is wanted, and no handover, relay or body relay of this session is under way. */
  private relayFree(): boolean {
    return (this.o.nativeRelay ?? nativeRelayDefault()) && !this.handingOver && !this.native && !this.body;
  }

  // --- body relays (relayBody) ------------------------------------------------------------------

  /** A core's `relayBody`: `from` is not read from here on and sends to `to` wait; after the command
   * batch and once `to` has nothing queued, the next `bytes` of `from` go to the native relay
   * (src/net/relay.ts bodyTakeOver). Declined (answered at once) when the native relay is off, a
   * relay runs already, or a stream is not plainly open (TLS: its bytes go through its session). */
  private relayBody(from: Stream, to: Stream, bytes: number, idleMs: number): void {
    const b: BodyState = {
      from,
      to,
      bytes,
      idleMs,
      waiting: false,
      relay: null,
      buffered: 0,
      owner: { bodyRelayEnded: (e) => this.bodyRelayEnded(b, e) },
    };
    const usable = (s: Stream) => s.state === 'open' && s.sock !== null && !s.tls;
    if (!this.relayFree() || from === to || !(bytes > 0) || !usable(from) || !usable(to) || to.finSent) {
      this.feedBody(b, 'declined', null);
      return;
    }
    this.body = b;
    from.handover = true;
    to.bodyHold = true;
    this.updateReading();
  }

  private waitForBody(): void {
    const b = this.body!;
    b.waiting = true;
    const sock = b.to.sock;
    if (sock && b.to.state === 'open' && sock.writableLength > 0) sock.write(EMPTY, () => this.startBody(b));
    else this.startBody(b);
  }

  private startBody(b: BodyState): void {
    if (this.body !== b || b.relay || this.ended) return;
    const { from, to } = b;
    const fsock = from.sock;
    if (from.state === 'open' && to.state === 'open' && fsock && to.sock) {
      // (its listeners come off: what Node buffered is taken out with read(), which emits 'data')
      from.detach?.();
      from.detach = null;
      const t = bodyTakeOver(fsock, to.sock, b.bytes, b.idleMs, b.owner);
      if (t) {
        b.relay = t.relay;
        b.buffered = t.buffered;
        this.log('core.debug', 'debug', 'Body handed to the native relay', {
          from: from.id,
          to: to.id,
          bytes: b.bytes,
          buffered: t.buffered,
        });
        return;
      }
    }
    this.feedBody(b, 'declined', this.settleBody(b, null));
  }

  /** The body relay is over (or never ran): `from` is read again (its listeners back), what waited
   * for `to` goes, the counts become the session's. Returns the final counts. */
  private settleBody(b: BodyState, counts: RelayCounts | null): RelayCounts | null {
    if (this.body === b) this.body = null;
    const { from, to } = b;
    from.handover = false;
    to.bodyHold = false;
    if (counts) {
      this.count(from, 'in', b.buffered + counts[0]);
      this.count(to, 'out', counts[3]);
    }
    if (from.sock && from.state === 'open') {
      // (only a relay that ran stopped libuv's reading; bodyTakeOver restores it when it declines)
      if (b.relay) releaseBodySource(from.sock);
      if (!from.detach) this.attach(from, from.sock);
    }
    if (to.sock && to.state === 'open') {
      for (const d of to.pending) this.write(to, d);
      if (to.pendingShutdown) this.shutdown(to);
    }
    to.pending = [];
    to.pendingShutdown = false;
    this.updateReading();
    return counts;
  }

  private feedBody(
    b: BodyState,
    reason: BodyReason,
    counts: RelayCounts | null,
    error?: string,
    more = false,
  ): void {
    const ev: ProxyEvent = {
      type: 'bodyRelayed',
      now: this.now(),
      from: b.from.id,
      to: b.to.id,
      reason,
      read: counts ? b.buffered + counts[0] : 0,
      written: counts ? counts[3] : 0,
    };
    if (error !== undefined) ev.error = error;
    if (more) ev.more = true;
    this.feed(ev);
  }

  /** The addon's report of a body relay. */
  private bodyRelayEnded(b: BodyState, e: Parameters<BodyRelayOwner['bodyRelayEnded']>[0]): void {
    if (this.ended || this.body !== b) return;
    this.feedBody(b, e.reason, this.settleBody(b, e.counts), e.error, e.reason === 'done' && e.by === 0);
  }

  /** Bytes so far, the native relay's included. */
  private liveBytes(): SessionBytes {
    const b = { ...this.bytes };
    const n = this.native;
    const c = n?.relay.counts();
    if (n && c) {
      this.count(n.a, 'in', c[0], b);
      this.count(n.a, 'out', c[1], b);
      this.count(n.b, 'in', c[2], b);
      this.count(n.b, 'out', c[3], b);
    }
    const body = this.body;
    const bc = body?.relay?.counts();
    if (body && bc) {
      this.count(body.from, 'in', body.buffered + bc[0], b);
      this.count(body.to, 'out', bc[3], b);
    }
    return b;
  }

  private closeListener(l: ListenerState, check = true): void {
    if (l.closed) return;
    l.closed = true;
    void l.listener?.close();
    l.listener = null;
    if (check && !this.pumping) this.checkStalled();
  }

  /** Forget a timer (fired or cleared); the Map goes with the last one. */
  private dropTimer(name: string): void {
    if (!this.timers) return;
    this.timers.delete(name);
    if (this.timers.size === 0) this.timers = null;
  }

  // --- the end ----------------------------------------------------------------------------------

  private finish(verdict: Verdict, info: string | null, reset: boolean): void {
    if (this.ended) return;
    this.ended = true;
    this.queue.length = 0;
    if (this.timers) for (const x of this.timers.values()) clearTimeout(x.t);
    this.timers = null;
    for (const l of this.listeners.values()) this.closeListener(l, false);
    if (this.native) this.stopNative(reset);
    if (this.body) this.settleBody(this.body, this.body.relay?.stop(false) ?? null);
    for (const s of this.streams.values()) {
      if (s.state === 'connecting') s.abort?.abort();
      else if (s.sock && s.state !== 'closed') {
        if (reset) resetStream(s);
        else this.closeGraceful(s);
      }
    }
    // The client socket of a session that never got a core (refused, or gone) is closed by start().
    if (this.admitted) this.o.upstream?.release();
    // limit_target_zones_to denial ends as a connection failure in the core; Zorp calls it policy.
    const v: Verdict =
      this.policyDenied && verdict === 'DENIED_BY_CONNECTION_FAIL' ? 'DENIED_BY_POLICY' : verdict;
    const endedAt = this.now();
    const summary: SessionSummary = {
      id: this.o.id,
      service: this.o.service,
      ruleId: this.o.ruleId ?? null,
      startedAt: this.startedAt,
      endedAt,
      durationMs: endedAt - this.startedAt,
      client: this.client,
      clientLocal: this.clientLocal,
      clientZone: this.clientZone,
      server: this.server,
      serverLocal: this.serverLocal,
      serverZone: this.serverZone,
      bytes: { ...this.bytes },
      verdict: v,
      info,
      counters: { ...this.counters },
    };
    this.settle(summary, this.o.log, this.o.onEnd);
    // Nothing calls the core after the end (feed and pump stop at `ended`; describeCore allows null).
    // Let it go now: a session that lived through two scavenges sits dead in old space until a full
    // collection, and whatever young objects its core still links to would be copied and promoted
    // with it at every scavenge until then (bench/README.md, "What a connection's garbage costs").
    this.core = null;
    // The same for the streams: their sockets' last events ('close') reach them through the listeners
    // attached to each socket, not through this map.
    this.streams.clear();
  }
}

const EMPTY = Buffer.alloc(0);

type BodyReason = Extract<ProxyEvent, { type: 'bodyRelayed' }>['reason'];

/** A failed server connect, logged (the policy line for limit_target_zones_to, then the failure):
 * its message, the target it names (the last one a chain tried, or `explicit`), and the denial when
 * limit_target_zones_to refused it. */
export function connectFailure(
  err: unknown,
  stream: string,
  explicit: Addr | undefined,
  log: (category: string, level: LogLevel, msg: string, fields: Record<string, unknown>) => void,
): { msg: string; target: Addr | undefined; denied: TargetZoneDenied | null } {
  const msg = err instanceof Error ? err.message : String(err);
  let target = explicit;
  const denied = err instanceof TargetZoneDenied ? err : null;
  if (denied) {
    target = denied.target;
    log('core.policy', 'warn', 'Server zone not permitted by limit_target_zones_to', {
      server_address: zorpAddr(denied.target),
      server_zone: denied.zone,
    });
  } else if (err instanceof ChainFailed) {
    target = err.attempts.at(-1)?.target;
  }
  log('core.session', err instanceof RouteError ? 'error' : 'warn', 'Server connection failure', {
    stream,
    server_address: target ? zorpAddr(target) : '(NULL)',
    error: msg,
    code: err instanceof TzorpError ? err.code : E.CONNECT_FAILED.code,
  });
  return { msg, target, denied };
}

/** The fields of a session's `core.summary` line (Zorp's connection summary). */
export function summaryFields(summary: SessionSummary): Record<string, unknown> {
  return {
    rule_id: summary.ruleId,
    session_start: isoTime(summary.startedAt),
    session_end: isoTime(summary.endedAt),
    duration_ms: summary.durationMs,
    client_address: zorpAddr(summary.client),
    client_zone: summary.clientZone,
    client_local: zorpAddr(summary.clientLocal),
    server_address: zorpAddr(summary.server),
    server_zone: summary.serverZone,
    server_local: zorpAddr(summary.serverLocal),
    bytes_from_client: summary.bytes.fromClient,
    bytes_to_server: summary.bytes.toServer,
    bytes_from_server: summary.bytes.fromServer,
    bytes_to_client: summary.bytes.toClient,
    verdict: summary.verdict,
    info: summary.info,
  };
}

/** Ports to try for a listen command: one port, or a range from a random offset (so concurrent
 * sessions do not all race for the same first port). */
function portCandidates(p: number | { min: number; max: number }): number[] {
  if (typeof p === 'number') return [p];
  const lo = Math.max(1, Math.min(p.min, p.max));
  const hi = Math.min(65535, Math.max(p.min, p.max));
  const n = hi - lo + 1;
  const first = Math.floor(Math.random() * n);
  const out: number[] = [];
  for (let i = 0; i < n; i++) out.push(lo + ((first + i) % n));
  return out;
}

/** The log line and summary text of a session refused at admission (before its core ran, so before
 * any server connection): max_sessions, or one of the daemon's per-client limits. */
export function refusalText(
  u: ServiceUpstream,
  limit: string | undefined,
): { msg: string; fields: Record<string, unknown>; info: string } {
  const s = u.service;
  switch (limit) {
    case 'max_sessions_per_client':
      return {
        msg: 'Connection refused, too many sessions from this client',
        fields: { limit, max_sessions_per_client: s.maxSessionsPerClient ?? 0 },
        info: `max_sessions_per_client ${s.maxSessionsPerClient ?? 0} reached`,
      };
    case 'new_sessions_per_client': {
      const r = s.newSessionsPerClient;
      const text = r ? `${r.rate} per ${r.perSeconds} s` : 'limit';
      return {
        msg: 'Connection refused, client starts sessions too fast',
        fields: { limit, new_sessions_per_client: text },
        info: `new_sessions_per_client ${text} exceeded`,
      };
    }
    default:
      return {
        msg: 'Connection refused, too many sessions',
        fields: { max_sessions: s.maxSessions },
        info: `max_sessions ${s.maxSessions} reached`,
      };
  }
}
