// One FTP data channel (RFC 959 §3.2-3.3): the two data connections of one transfer, each terminated
// here and re-originated (zorp-semantics §6.3), as a state machine of its own. It owns its listeners,
// its two data streams and its timer; the control channel (core.ts) creates it for a PORT/EPRT/
// PASV/EPSV, starts its transfer, and hears back through DataChannelHost when the client has its data,
// when the channel is complete and when it cannot work.
//
//   ┌───────┐ server side known, client listener  ┌───────┐ RETR/STOR/LIST/...  ┌──────────┐
//   │ setup │ ──ready (or client active)────────▶ │ ready │ ──────────────────▶ │ transfer │
//   └───────┘                                     └───────┘                     └──────────┘
//       │  replaced, refused, ABOR, failure           │                             │ data relayed,
//       └─────────────────────────────────────────────┴──────────┐                 │ final reply in
//                                                                 ▼                 ▼
//                                                           ┌─────────┐  streams  ┌──────┐
//                                                           │ closing │ ────────▶ │ done │
//                                                           └─────────┘  closed   └──────┘
//
// Streams: the client's data connection `clientData` (accepted on `clientListener`, or connected to the
// client's PORT address) and the server's `serverData` (accepted on `serverListener`, or connected to
// the server's 227/229 address). Bytes from one go to the other; bytes that arrive before the other is
// open wait (bounded: the sender is paused at DEFAULTS.relayBufferBytes).
//
// Native relay (issue 14): once both data connections of a transfer are open, plain (no protected
// data) and nothing waits for either, the channel asks the driver to relay them natively (`relay`).
// If the driver takes them (`relayStarted`) no data/end/closed events come for them any more: the
// relay keeps the half-close (the end of the file passes on as a FIN), and its `relayEnded` gives the
// bytes each way and how it ended, which the channel takes as both streams' end. If the driver
// declines, the channel goes on copying in JavaScript.
import { DEFAULTS } from '../../defaults.ts';
import { canonicalAddress } from '../../policy/address.ts';
import type { Addr, Outbox, ProxyEvent, StreamId, TlsEndpoint, TlsHandshakeInfo } from '../core/index.ts';
import type { Direction } from './commands.ts';
import type { FtpOptions } from './options.ts';

export type DataMode = 'passive' | 'active';
export type DataChannelState = 'setup' | 'ready' | 'transfer' | 'closing' | 'done';

/** One data connection of the channel. */
export interface DataStream {
  /** Which peer it goes to (for logs). */
  readonly peer: 'client' | 'server';
  id: StreamId | null;
  /** securing: connected, TLS being put on it (protected data); open once it is. */
  state: 'none' | 'connecting' | 'securing' | 'open' | 'closed';
  /** The peer sent FIN. */
  ended: boolean;
  /** We sent FIN (shutdown) to it. */
  shutdown: boolean;
  /** Bytes waiting for this stream to open. */
  queue: Uint8Array[];
  queued: number;
  /** We paused reading from it. */
  paused: boolean;
}

/** What the channel needs from the FTP session. */
export interface DataChannelHost {
  readonly out: Outbox;
  readonly opts: FtpOptions;
  now(): number;
  /** The control connections' addresses (null before they are known). */
  client(): Addr | null;
  clientLocal(): Addr | null;
  serverRemote(): Addr | null;
  serverLocal(): Addr | null;
  username(): string | null;
  /** Is this the session's current channel (the one a transfer command would use)? */
  isCurrent(ch: DataChannel): boolean;
  /** The channel is torn down: it is no longer the current one. */
  released(ch: DataChannel): void;
  /** The client has every byte it will get (FIN or closed): a held final reply may go. */
  clientDone(ch: DataChannel): void;
  /** Every stream is gone and the channel is done (accounted): release what waited for it. */
  completed(ch: DataChannel): void;
  /** The channel cannot work (a refused connection, a timeout): the transfer is answered with 425. */
  failed(ch: DataChannel, why: string): void;
  /** The session is over: no more callbacks. */
  sessionOver(): boolean;
  /** Protected data (PROT P on a TLS control connection): each data connection gets TLS on both sides,
   * the client's with a certificate for `names`, the server's resuming stream `from`'s session. */
  dataTls(): { names: string[]; endpoint: TlsEndpoint; from: StreamId } | null;
}

function newStream(peer: 'client' | 'server'): DataStream {
  return {
    peer,
    id: null,
    state: 'none',
    ended: false,
    shutdown: false,
    queue: [],
    queued: 0,
    paused: false,
  };
}

export class DataChannel {
  state: DataChannelState = 'setup';
  readonly clientData = newStream('client');
  readonly serverData = newStream('server');
  clientListener: StreamId | null = null;
  serverListener: StreamId | null = null;
  /** Server passive: where the server listens (from its 227/229). */
  serverPeer: Addr | null = null;
  transfer: { verb: string; param: string; direction: Direction } | null = null;
  /** The server sent a 1xx for the transfer command. */
  prelim = false;
  /** The server's final reply for the transfer arrived. */
  finalSeen = false;
  /** The client side failed (connect refused, reset): the final reply becomes 425/426. */
  failed: 'connect' | 'broken' | null = null;
  bytesToClient = 0;
  bytesToServer = 0;
  /** Asked the driver for the native relay (once per channel). */
  private relayAsked = false;
  /** The native relay copies the data now (relayStarted, until relayEnded). */
  native = false;
  readonly timer: string;
  startedAt: number;

  constructor(
    private readonly host: DataChannelHost,
    readonly seq: number,
    /** The client's set-up command (PORT, EPRT, PASV, EPSV). */
    readonly clientVerb: string,
    readonly clientMode: DataMode,
    readonly serverMode: DataMode,
    /** Client active: where the client listens. */
    readonly clientPeer: Addr | null,
  ) {
    this.timer = `data${seq}`;
    this.startedAt = host.now();
  }

  /** Is `id` one of this channel's live listeners or streams? */
  owns(id: StreamId): boolean {
    if (this.state === 'done') return false;
    if (id === this.clientListener || id === this.serverListener) return true;
    return this.streamOf(id) !== null;
  }

  private streamOf(id: StreamId): DataStream | null {
    for (const s of [this.clientData, this.serverData])
      if (s.id === id && (s.state === 'open' || s.state === 'connecting' || s.state === 'securing')) return s;
    return null;
  }

  private other(s: DataStream): DataStream {
    return s === this.clientData ? this.serverData : this.clientData;
  }

  // --- set-up ----------------------------------------------------------------------------------

  /** Listen for the server's data connection (server active) or the client's (client passive). */
  listen(peer: 'client' | 'server'): void {
    const o = this.host.opts;
    const id = `${peer === 'client' ? 'lc' : 'ls'}${this.seq}`;
    const expected = peer === 'client' ? this.host.client() : this.host.serverRemote();
    const permit = peer === 'client' ? o.permitClientBounceAttack : o.permitServerBounceAttack;
    const local = peer === 'client' ? this.host.clientLocal() : this.host.serverLocal();
    if (peer === 'client') this.clientListener = id;
    else this.serverListener = id;
    this.host.out.emit({
      type: 'listen',
      listener: id,
      host: local?.host ?? '0.0.0.0',
      port: { min: o.dataPortMin, max: o.dataPortMax },
      transparent: true,
      ...(permit || !expected ? {} : { acceptFrom: expected.host }),
      maxAccepts: 1,
    });
  }

  /** The transfer command went to the server: connect to a passive server now, the client later. */
  startTransfer(verb: string, param: string, direction: Direction): void {
    this.state = 'transfer';
    this.transfer = { verb, param, direction };
    this.startedAt = this.host.now();
    this.host.out.emit({ type: 'setTimer', timer: this.timer, ms: this.host.opts.dataTimeoutMs });
    if (this.serverMode !== 'passive' || !this.serverPeer) return;
    const serverLocal = this.host.serverLocal();
    this.serverData.id = `ds${this.seq}`;
    this.serverData.state = 'connecting';
    this.host.out.emit({
      type: 'connect',
      stream: this.serverData.id,
      options: {
        target: this.serverPeer,
        ...(serverLocal ? { local: { host: serverLocal.host, port: 0, transparent: true } } : {}),
      },
    });
  }

  /** Client active: connect to the client once the server side is up and the server said 1xx. */
  connectClient(): void {
    if (!this.host.isCurrent(this) || this.clientMode !== 'active' || this.state !== 'transfer') return;
    const c = this.clientData;
    if (c.state !== 'none' || this.serverData.state !== 'open' || !(this.prelim || this.finalSeen)) return;
    const o = this.host.opts;
    const local = this.host.clientLocal();
    let port = 0;
    if (o.activeConnectionMode === 'twenty') port = 20;
    else if (o.activeConnectionMode === 'minus_one' && local && local.port > 1) port = local.port - 1;
    c.id = `dc${this.seq}`;
    c.state = 'connecting';
    this.host.out.emit({
      type: 'connect',
      stream: c.id,
      options: {
        target: this.clientPeer!,
        ...(local ? { local: { host: local.host, port, transparent: true } } : {}),
      },
    });
  }

  // --- stream events ---------------------------------------------------------------------------

  /** A listener accepted a connection: checked against the expected peer, then it is that side. */
  accepted(listener: StreamId, stream: StreamId, remote: Addr): void {
    const out = this.host.out;
    const o = this.host.opts;
    const fromClient = listener === this.clientListener;
    if (!this.host.isCurrent(this) || (!fromClient && listener !== this.serverListener)) {
      out.emit({ type: 'close', stream, reset: true });
      return;
    }
    const side = fromClient ? this.clientData : this.serverData;
    const peerHost = fromClient ? this.host.client()?.host : this.host.serverRemote()?.host;
    const permit = fromClient ? o.permitClientBounceAttack : o.permitServerBounceAttack;
    const serverPort = this.host.serverRemote()?.port ?? 21;
    let refuse: string | null = null;
    if (side.state !== 'none') refuse = 'a second data connection';
    else if (!permit && canonicalAddress(remote.host)?.host !== peerHost)
      refuse = 'data connection from a third host';
    else if (!fromClient && o.strictPortChecking && remote.port !== 20 && remote.port !== serverPort - 1)
      refuse = 'server data connection not from port 20 or control port - 1';
    if (refuse) {
      out.violation(`Refused ${refuse}`, { remote: remote.host, port: remote.port });
      out.emit({ type: 'close', stream, reset: true });
      // The listener took its one connection (maxAccepts): this channel cannot work any more, so the
      // client is told now rather than after the data timeout.
      if (side.state === 'none') this.host.failed(this, 'refused data connection');
      return;
    }
    out.emit({ type: 'unlisten', listener });
    if (fromClient) this.clientListener = null;
    else this.serverListener = null;
    side.id = stream;
    out.log('ftp.data', 'debug', 'Data connection accepted', { side: side.peer });
    this.up(side);
  }

  /** A data connection is there: open, or first secured (protected data). */
  private up(side: DataStream): void {
    const tls = this.host.dataTls();
    if (!tls) {
      side.state = 'open';
      this.opened(side);
      return;
    }
    side.state = 'securing';
    this.host.out.emit({
      type: 'startTls',
      stream: side.id!,
      side:
        side === this.clientData
          ? { role: 'terminate', names: tls.names }
          : { role: 'resume', from: tls.from },
      endpoint: tls.endpoint,
    });
  }

  /** The TLS of a protected data connection is up (it opens) or failed (the channel fails). */
  tls(stream: StreamId, ok: boolean, detail: string | null, info: TlsHandshakeInfo): void {
    const side = this.streamOf(stream);
    if (side?.state !== 'securing') return;
    const fields = { side: side.peer, version: info.version, cipher: info.cipher, verify: info.verify };
    if (!ok) {
      this.host.out.log('tls.violation', 'warn', 'Data connection TLS failed', { ...fields, detail });
      side.state = 'closed'; // (the driver closed it; its 'closed' event follows)
      this.host.failed(this, `TLS on the ${side.peer} data connection failed`);
      return;
    }
    this.host.out.log('ftp.data', 'debug', 'Data connection TLS established', fields);
    side.state = 'open';
    this.opened(side);
  }

  connected(stream: StreamId): void {
    const side = this.streamOf(stream);
    if (!side) return;
    if (side.state !== 'connecting') {
      this.host.out.emit({ type: 'close', stream, reset: true });
      return;
    }
    this.up(side);
  }

  connectFailed(stream: StreamId, error: string): void {
    const side = this.streamOf(stream);
    if (!side) return;
    side.state = 'closed';
    this.host.out.log('ftp.error', 'warn', 'Data connection failed', { side: side.peer, error });
    if (side === this.clientData) this.failed = 'connect';
    this.teardown(true);
    this.check();
  }

  /** A data stream is up: flush what waited for it, start the client side if it is its turn. */
  private opened(side: DataStream): void {
    const out = this.host.out;
    const other = this.other(side);
    for (const chunk of side.queue) out.emit({ type: 'send', stream: side.id!, data: chunk });
    side.queue = [];
    side.queued = 0;
    if (other.ended && !side.shutdown) {
      side.shutdown = true;
      out.emit({ type: 'shutdown', stream: side.id! });
    }
    if (other.paused && other.state === 'open') {
      other.paused = false;
      out.emit({ type: 'resume', stream: other.id! });
    }
    if (this.state === 'closing' || this.state === 'done') {
      this.closeStream(side, true);
      return;
    }
    if (this.clientData.state === 'open' && this.serverData.state === 'open')
      out.emit({ type: 'clearTimer', timer: this.timer });
    this.connectClient();
    this.askRelay();
  }

  /** Both data connections of a transfer are open and only bytes remain to be copied: offer them to
   * the native relay (idle timeout: the session's, as the control connection's idle timer would end
   * a session whose data stands still). Not for protected data: its bytes go through TLS here. */
  private askRelay(): void {
    const c = this.clientData;
    const s = this.serverData;
    if (this.relayAsked || this.state !== 'transfer' || c.state !== 'open' || s.state !== 'open') return;
    if (c.ended || s.ended || c.shutdown || s.shutdown || c.queued > 0 || s.queued > 0) return;
    if (c.paused || s.paused || this.host.dataTls()) return;
    this.relayAsked = true;
    this.host.out.emit({ type: 'relay', a: c.id!, b: s.id!, idleMs: this.host.opts.timeoutMs });
  }

  /** The driver took the data connections (relayStarted). */
  relayStarted(): void {
    if (this.relayAsked && this.clientData.state === 'open' && this.serverData.state === 'open')
      this.native = true;
  }

  /** The native relay ended: its bytes are the transfer's, both data connections are closed. A
   * client side that failed first during a download broke the transfer (as `closed` with an error
   * does); an idle relay fails it. */
  relayEnded(ev: Extract<ProxyEvent, { type: 'relayEnded' }>): void {
    if (!this.native) return;
    this.native = false;
    const c = this.clientData;
    const s = this.serverData;
    this.bytesToServer += ev.bytes[c.id!]?.read ?? 0;
    this.bytesToClient += ev.bytes[s.id!]?.read ?? 0;
    const out = this.host.out;
    if (ev.reason === 'idle') {
      out.violation('Data connection idle timeout', { timeout_ms: this.host.opts.timeoutMs });
      if (this.state === 'transfer') this.failed = 'broken';
    } else if (ev.reason === 'error') {
      out.log('ftp.data', 'debug', 'Data connection closed with an error', {
        error: ev.error ?? 'error',
        side: ev.by === c.id ? 'client' : 'server',
      });
      if (ev.by === c.id && this.state === 'transfer' && this.transfer?.direction === 'download')
        this.failed = 'broken';
    }
    c.state = s.state = 'closed';
    c.ended = s.ended = c.shutdown = s.shutdown = true;
    this.check();
    if (this.state !== 'done') this.host.clientDone(this);
  }

  data(stream: StreamId, data: Uint8Array): void {
    const from = this.streamOf(stream);
    if (!from) return;
    if (this.state !== 'transfer') {
      // Data outside a transfer (or after ABOR) is dropped: nothing may pass unannounced.
      if (this.state === 'ready' || this.state === 'setup') {
        this.host.out.violation('Data before a transfer command', { side: from.peer });
        this.teardown(true);
      }
      return;
    }
    const to = this.other(from);
    if (from === this.clientData) this.bytesToServer += data.length;
    else this.bytesToClient += data.length;
    if (to.state === 'open') {
      this.host.out.emit({ type: 'send', stream: to.id!, data });
      return;
    }
    to.queue.push(data);
    to.queued += data.length;
    if (to.queued >= DEFAULTS.relayBufferBytes && !from.paused) {
      from.paused = true;
      this.host.out.emit({ type: 'pause', stream });
    }
  }

  /** The driver stops reading the streams that feed a stream whose write buffer is full
   * (src/net/driver.ts): a full data channel never silences the control connections. The channel
   * itself only pauses a data stream whose bytes wait for the other side to open. */
  drain(stream: StreamId): void {
    const to = this.streamOf(stream);
    if (!to) return;
    const from = this.other(to);
    if (from.state === 'open' && from.paused && to.queued === 0) {
      from.paused = false;
      this.host.out.emit({ type: 'resume', stream: from.id! });
    }
  }

  end(stream: StreamId): void {
    const from = this.streamOf(stream);
    if (!from) return;
    const to = this.other(from);
    from.ended = true;
    // Half-close: pass the FIN on after the data (the end of a file is the end of its connection).
    if (to.state === 'open' && !to.shutdown) {
      to.shutdown = true;
      this.host.out.emit({ type: 'shutdown', stream: to.id! });
    }
    if (from.ended && to.ended) {
      this.closeStream(from, false);
      this.closeStream(to, false);
    } else if (to.state === 'closed' || (to.state === 'none' && this.state !== 'transfer')) {
      this.closeStream(from, false);
    }
    if (from === this.clientData) this.host.clientDone(this);
  }

  closed(stream: StreamId, error?: string): void {
    const side = this.streamOf(stream);
    if (!side) return;
    const other = this.other(side);
    const wasEnded = side.ended;
    side.state = 'closed';
    if (error) this.host.out.log('ftp.data', 'debug', 'Data connection closed with an error', { error });
    const isClient = side === this.clientData;
    if (
      isClient &&
      (error || !wasEnded) &&
      this.state === 'transfer' &&
      this.transfer?.direction === 'download'
    ) {
      // The client went away before the data was through.
      if (other.state === 'open' && !other.ended) this.failed = 'broken';
    }
    if (other.state === 'open' || other.state === 'connecting' || other.state === 'securing') {
      if (error) this.closeStream(other, true);
      // The peer closed cleanly: pass the end on and close once it is written.
      else if (!other.shutdown) this.closeStream(other, false);
    }
    this.check();
    if (isClient && this.state !== 'done') this.host.clientDone(this);
  }

  /** The channel's timer: a transfer whose connections did not open fails; one whose connections did
   * not report closing is completed anyway (its held reply goes). */
  timedOut(): void {
    if (this.state === 'transfer' && (this.clientData.state !== 'open' || this.serverData.state !== 'open')) {
      this.host.out.violation('Data connection timeout', { timeout_ms: this.host.opts.dataTimeoutMs });
      this.host.failed(this, 'timeout');
    } else if (this.state === 'closing' || this.state === 'transfer') {
      this.complete();
    }
  }

  // --- ending ----------------------------------------------------------------------------------

  private closeStream(side: DataStream, reset: boolean): void {
    if (side.id && (side.state === 'open' || side.state === 'connecting' || side.state === 'securing')) {
      this.host.out.emit(
        reset ? { type: 'close', stream: side.id, reset: true } : { type: 'close', stream: side.id },
      );
      // A connect we gave up on: no 'closed' will tell us more than that.
      if (side.state === 'connecting') side.state = 'closed';
    }
    side.queue = [];
    side.queued = 0;
  }

  /** Close everything (ABOR, failure, replacement, session end). */
  teardown(reset: boolean): void {
    if (this.state === 'done') return;
    for (const l of [this.clientListener, this.serverListener])
      if (l) this.host.out.emit({ type: 'unlisten', listener: l });
    this.clientListener = null;
    this.serverListener = null;
    this.state = 'closing';
    this.closeStream(this.clientData, reset);
    this.closeStream(this.serverData, reset);
    // A side that never started will not start now.
    if (this.clientData.state === 'none') this.clientData.state = 'closed';
    if (this.serverData.state === 'none') this.serverData.state = 'closed';
    this.host.released(this);
    if (!this.host.sessionOver()) this.check();
  }

  /** Both streams are gone (or never started and will not). */
  finished(): boolean {
    const gone = (s: DataStream) => s.state === 'closed' || (s.state === 'none' && this.state !== 'transfer');
    return gone(this.clientData) && gone(this.serverData);
  }

  /** After any change: a channel whose streams are all gone completes (unless the server's final
   * reply is still to come: the data is through but the server has not answered yet). */
  check(): void {
    if (this.state === 'done' || !this.finished()) return;
    if (this.state === 'transfer' && !this.finalSeen) return;
    this.complete();
  }

  complete(): void {
    if (this.state === 'done') return;
    const out = this.host.out;
    this.state = 'done';
    this.host.released(this);
    out.emit({ type: 'clearTimer', timer: this.timer });
    const t = this.transfer;
    if (t) {
      const bytes = t.direction === 'download' ? this.bytesToClient : this.bytesToServer;
      out.log('ftp.accounting', 'info', 'Accounting', {
        command: t.verb,
        file: t.param,
        direction: t.direction,
        bytes,
        username: this.host.username(),
        client_mode: this.clientMode,
        server_mode: this.serverMode,
        duration_ms: Math.max(0, this.host.now() - this.startedAt),
        result: this.failed ? 'failed' : 'complete',
      });
      out.emit({
        type: 'account',
        fields: {
          ftp_transfers: 1,
          [t.direction === 'download' ? 'ftp_download_bytes' : 'ftp_upload_bytes']: bytes,
        },
      });
    }
    this.host.completed(this);
  }

  describe(): Record<string, unknown> {
    return { seq: this.seq, state: this.state, client: this.clientData.state, server: this.serverData.state };
  }
}
