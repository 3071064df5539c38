// The FTP proxy core (sans-IO): Zorp's FtpProxy (zorp:`modules/ftp/`, `pylib/Zorp/Ftp.py`) as a state
// machine over the contract in ../core/types.ts.
//
// Session (`phase`):
//
//   ┌──────┐ start (transparent)  ┌────────────┐ server connected  ┌─────────┐ QUIT answered, a side
//   │ init │ ───────────────────▶ │ connecting │ ────────────────▶ │ running │ closed, idle, abort,
//   └──────┘                      └────────────┘                   └─────────┘ server broke protocol
//      │ start (non-transparent)        ▲ USER user@host                │            ┌──────┐
//      ▼                                │                               └──────────▶ │ done │
//   ┌───────┐ ──────────────────────────┘                                             └──────┘
//   │ login │  (the proxy greets; only USER, NOOP, QUIT)
//   └───────┘
//
// Each command sent to the server is a Pending entry (`inflight`, in command order):
//   unsent ──our listener is up / the greeting came──▶ sent ──final reply──▶ final ──flush──▶ (client)
//                                                       │                    ▲
//                                                       └──final reply, data─┴─ held (data still relayed,
//                                                          not through yet         a listener opening)
// A 'sent' entry may be `answered` already (we told the client 425, or the policy rejected its 1xx):
// the server's final reply to it is then dropped.
//
// Data channel: data-channel.ts, one state machine per PORT/EPRT/PASV/EPSV.
//
// Control channel: client commands are read (CommandReader), checked against the limits and the
// request policy, and forwarded one at a time; server replies (ReplyReader) go through the response
// policy (and FEAT through the feature policy) back to the client, in command order.
//
// Data channel: always terminated on both sides and re-originated (zorp-semantics §6.3). The client's
// PORT/EPRT/PASV/EPSV is translated into the server-side mode (`data_mode`: keep, passive, active):
//   client PASV/EPSV  -> tzorp listens (transparent) on the address the client dialled, port from the
//                        data port range, and answers 227/229 with it;
//   client PORT/EPRT  -> tzorp connects to the client from that address (source port control-1, 20 or
//                        random: `active_connection_mode`) once the server side of a transfer is up;
//   server passive    -> tzorp sends PASV/EPSV and connects to the address in the 227/229;
//   server active     -> tzorp listens on its server-side address and sends PORT/EPRT.
// Only one data channel is current at a time; a new PORT/PASV replaces one that has not been used. The
// final reply of a transfer (226) is held until the data has been relayed and the client has closed
// its data side (or both data streams are closed), so the client never sees "complete" before it has
// all the bytes.

import { DEFAULTS } from '../../defaults.ts';
import { ProtocolError } from '../../errors.ts';
import { canonicalAddress } from '../../policy/address.ts';
import {
  type Addr,
  assertNever,
  type CoreContext,
  type CoreDescription,
  type LogLevel,
  Outbox,
  type ProxyCommand,
  type ProxyCore,
  type ProxyEvent,
  type Verdict as SessionVerdict,
  type StreamId,
  type TlsHandshakeInfo,
} from '../core/index.ts';
import {
  ALERT,
  ALERT_NAMES,
  alertRecord,
  type ClientHello,
  helloStep,
  leafNames,
  refusalFields,
  serverTlsFields,
  tlsAccountFields,
  versionName,
} from '../tls/index.ts';
import { appendBytes, type CommandItem, CommandReader, type FtpCommand, toBytes } from './command-reader.ts';
import { DATA_SETUP_COMMANDS, type Direction, KNOWN_COMMANDS, TRANSFER_COMMANDS } from './commands.ts';
import { DataChannel, type DataChannelHost, type DataMode } from './data-channel.ts';
import {
  format227,
  format229,
  formatEprt,
  formatHostPort,
  parse227,
  parse229,
  parseEprt,
  parseHostPort,
} from './endpoints.ts';
import type { FtpOptions } from './options.ts';
import { lookupFeature, lookupRequest, lookupResponse, type Verdict } from './policy.ts';
import { type FtpReply, ReplyReader, replyText } from './reply-reader.ts';

const CLIENT = 'client';
const SERVER = 'server';
const IDLE_TIMER = 'idle';
const HELLO_TIMER = 'tls.hello';
const EMPTY = new Uint8Array(0);

/** TLS on the control connection (tls.mode inspect):
 *   off ──AUTH TLS, the server said 234──▶ hello ──ClientHello accepted──▶ server ──verified──▶ client ──▶ on
 *   (implicit FTPS: start ──▶ hello ──accepted──▶ connect ──server connected──▶ server ─ ... ─▶ on)
 * hello: the client's ClientHello is collected and decided (SNI policy, min_version) before anything
 * else; server: TLS originated to the server with the client's SNI and verified; client: TLS
 * terminated with a certificate for the SNI (or the address the client dialled) and the verified
 * server certificate's names. Commands wait until 'on'. */
type TlsPhase = 'off' | 'hello' | 'connect' | 'server' | 'client' | 'on';

type PendingKind = 'plain' | 'greeting' | 'inband-greeting' | 'setup' | 'transfer' | 'quit' | 'feat' | 'auth';

/** A command sent (or about to be sent) to the server, until the client has its final answer. */
type Pending = {
  verb: string;
  param: string;
  kind: PendingKind;
  channel?: DataChannel;
} /** Not written to the server yet: it waits for our data listener (PORT/EPRT) or the greeting (USER). */ & (
  | { state: 'unsent' }
  /** Written; its final reply is awaited. `answered`: the client already has a final answer from us
   * (a 425, a rejected 1xx), so that reply will be dropped. */
  | { state: 'sent'; answered: boolean }
  /** The final reply is in; `out` (null: not decided yet) is kept back: data still being relayed, or
   * our listener still opening. */
  | { state: 'held'; answered: boolean; out: string[] | null }
  /** The final reply is in; `out` goes to the client in command order. */
  | { state: 'final'; answered: boolean; out: string[] | null }
);
type Settled = Extract<Pending, { out: unknown }>;

function sent(verb: string, param: string, kind: PendingKind, channel?: DataChannel): Pending {
  return { verb, param, kind, ...(channel ? { channel } : {}), state: 'sent', answered: false };
}

function unsent(verb: string, param: string, kind: PendingKind, channel?: DataChannel): Pending {
  return { verb, param, kind, ...(channel ? { channel } : {}), state: 'unsent' };
}

/** A held reply goes out (in command order). */
function release(p: Settled): void {
  p.state = 'final';
}

/** The final reply is in (or decided for it): the client gets `out`, in order. */
function settle(p: Pending, out: string[] | null): Settled {
  const answered = p.state === 'unsent' ? false : p.answered;
  return Object.assign(p, { state: 'final' as const, answered, out });
}

export class FtpCore implements ProxyCore {
  private readonly out = new Outbox('ftp');
  private phase: 'init' | 'login' | 'connecting' | 'running' | 'done' = 'init';
  private readonly cmdReader: CommandReader;
  private readonly replyReader: ReplyReader;
  private readonly nonTransparent: boolean;
  private client: Addr | null = null;
  private clientLocal: Addr | null = null;
  private serverRemote: Addr | null = null;
  private serverLocal: Addr | null = null;
  private inflight: Pending[] = [];
  private deferred: CommandItem[] = [];
  private clientPaused = false;
  /** The current data channel: the one a transfer command uses. */
  private channel: DataChannel | null = null;
  private seq = 0;
  private readonly channelHost: DataChannelHost;
  /** Every data channel not done yet (the current one, and replaced ones still closing). */
  private readonly channels = new Set<DataChannel>();
  private now = 0;
  private lastActivity = 0;
  private epsvAll = false;
  private finishWhenIdle = false;
  /** Non-transparent mode: the target named in USER, for later USER commands. */
  private inbandTarget: { host: string; port: number } | null = null;
  private username: string | null = null;
  private pumping = false;
  /** Why the last data channel failed before its transfer command (for that command's 425). */
  private lastChannelFailure: string | null = null;
  private tlsPhase: TlsPhase = 'off';
  /** Implicit FTPS: TLS from the first byte, the server connected after the ClientHello. */
  private implicitTls = false;
  private hello: ClientHello | null = null;
  /** The ClientHello's bytes, replayed into our handshake with the client. */
  private helloBytes: Uint8Array = EMPTY;
  private tlsResult = 'incomplete';
  private clientTls: TlsHandshakeInfo | null = null;
  private serverTls: TlsHandshakeInfo | null = null;
  /** The names on the client's certificate (its data channels get the same). */
  private clientTlsNames: string[] = [];
  /** PROT P accepted by the server on a TLS session: data channels are TLS on both sides. */
  private dataProtected = false;

  constructor(
    private readonly ctx: CoreContext,
    private readonly opts: FtpOptions,
  ) {
    this.cmdReader = new CommandReader({ maxLineBytes: opts.maxLineLength });
    this.replyReader = new ReplyReader({
      maxLineBytes: opts.maxLineLength,
      maxLines: opts.maxContinuousLine,
    });
    this.nonTransparent = ctx.inband || !opts.transparentMode;
    this.channelHost = {
      out: this.out,
      opts,
      now: () => this.now,
      client: () => this.client,
      clientLocal: () => this.clientLocal,
      serverRemote: () => this.serverRemote,
      serverLocal: () => this.serverLocal,
      username: () => this.username,
      isCurrent: (channel) => this.channel === channel,
      released: (channel) => {
        if (this.channel === channel) this.channel = null;
      },
      clientDone: (channel) => this.releaseIfClientDone(channel),
      completed: (channel) => this.channelCompleted(channel),
      failed: (channel, why) => this.failChannel(channel, why),
      sessionOver: () => this.phase === 'done',
      dataTls: () =>
        this.dataProtected && this.tlsPhase === 'on' && this.opts.tls
          ? { names: this.clientTlsNames, endpoint: this.opts.tls.endpoint, from: SERVER }
          : null,
    };
  }

  handle(ev: ProxyEvent): ProxyCommand[] {
    if (this.phase === 'done') return [];
    this.now = ev.now;
    this.dispatch(ev);
    return this.out.take();
  }

  describe(): CoreDescription {
    const channel = this.channel;
    return {
      proxy: 'ftp',
      state: this.phase,
      waiting_for: this.inflight.map((p) => `${p.verb}:${p.kind}:${p.state}`),
      deferred_commands: this.deferred.length,
      ...(this.opts.tls ? { tls: this.tlsPhase, data_protected: this.dataProtected } : {}),
      ...(channel ? { data_channel: channel.describe() } : {}),
    };
  }

  private dispatch(ev: ProxyEvent): void {
    switch (ev.type) {
      case 'start':
        this.onStart(ev.client, ev.clientLocal);
        break;
      case 'data':
        this.lastActivity = ev.now;
        if (ev.stream === CLIENT) {
          if (this.tlsPhase === 'hello' || this.tlsPhase === 'connect' || this.tlsPhase === 'server')
            this.onHelloData(ev.data);
          else this.onClientData(ev.data);
        } else if (ev.stream === SERVER) this.onServerData(ev.data);
        else this.channelFor(ev.stream)?.data(ev.stream, ev.data);
        break;
      case 'end':
        if (ev.stream === CLIENT) this.finish('ACCEPTED', 'client closed the control connection');
        else if (ev.stream === SERVER) this.onServerGone('server closed the control connection');
        else this.channelFor(ev.stream)?.end(ev.stream);
        break;
      case 'closed':
        if (ev.stream === CLIENT) this.finish('ACCEPTED', ev.error ? `client: ${ev.error}` : 'client closed');
        else if (ev.stream === SERVER) this.onServerGone(ev.error ? `server: ${ev.error}` : 'server closed');
        else this.channelFor(ev.stream)?.closed(ev.stream, ev.error);
        break;
      case 'drain':
        this.channelFor(ev.stream)?.drain(ev.stream);
        break;
      case 'connected':
        if (ev.stream === SERVER) this.onServerConnected(ev.local, ev.remote);
        else this.channelFor(ev.stream)?.connected(ev.stream);
        break;
      case 'connectFailed':
        if (ev.stream === SERVER) this.onServerConnectFailed(ev.error);
        else this.channelFor(ev.stream)?.connectFailed(ev.stream, ev.error);
        break;
      case 'listening':
        this.onListening(ev.listener, ev.local);
        break;
      case 'listenFailed':
        this.onListenFailed(ev.listener, ev.error);
        break;
      case 'accepted':
        {
          const channel = this.channelFor(ev.listener);
          if (channel) channel.accepted(ev.listener, ev.stream, ev.remote);
          else this.emit({ type: 'close', stream: ev.stream, reset: true });
        }
        break;
      case 'timer':
        this.onTimer(ev.timer);
        break;
      case 'abort':
        this.replyClient(421, `Service shutting down (${oneLine(ev.reason)})`);
        this.finish('ACCEPTED', `aborted: ${ev.reason}`);
        break;
      // A data channel's connections on the native relay (data-channel.ts): its start and its end.
      case 'relayStarted':
        this.channelFor(ev.a)?.relayStarted();
        break;
      case 'relayEnded':
        if (ev.reason !== 'idle') this.lastActivity = ev.now;
        for (const id of Object.keys(ev.bytes)) {
          const channel = this.channelFor(id);
          if (channel?.native) {
            channel.relayEnded(ev);
            break;
          }
        }
        break;
      case 'bodyRelayed': // (FTP asks for no body relay)
        break;
      case 'tls':
        if (ev.stream === CLIENT || ev.stream === SERVER) this.onControlTls(ev);
        else this.channelFor(ev.stream)?.tls(ev.stream, ev.ok, ev.detail ?? ev.reason ?? null, ev.info);
        break;
      default:
        assertNever(ev, 'event');
    }
  }

  // -------------------------------------------------------------------------------------------
  // small helpers

  private emit(c: ProxyCommand): void {
    this.out.emit(c);
  }

  private log(category: string, level: LogLevel, msg: string, fields?: Record<string, unknown>): void {
    this.out.log(category, level, msg, fields);
  }

  private violation(msg: string, fields?: Record<string, unknown>): void {
    this.out.violation(msg, fields);
  }

  private sendLines(stream: StreamId, lines: string[]): void {
    if (lines.length === 0) return;
    this.emit({ type: 'send', stream, data: toBytes(`${lines.join('\r\n')}\r\n`) });
  }

  private replyClient(code: number, text: string): void {
    this.sendLines(CLIENT, [`${code} ${text}`]);
  }

  private sendServer(verb: string, param: string): void {
    this.log('ftp.request', 'debug', 'Command to server', {
      command: verb,
      parameter: verb === 'PASS' ? '***' : param,
    });
    this.sendLines(SERVER, [param === '' ? verb : `${verb} ${param}`]);
  }

  private finish(verdict: SessionVerdict, info: string): void {
    if (this.phase === 'done') return;
    // 'done' first: tearing the data channel down must not release replies or read commands.
    this.phase = 'done';
    if (this.channel) this.channel.teardown(true);
    this.out.end(verdict, info, {
      clearTimers: this.opts.tls ? [IDLE_TIMER, HELLO_TIMER] : [IDLE_TIMER],
      ...(this.opts.tls ? { account: this.tlsAccount() } : {}),
    });
  }

  /** Send a last reply, flush and close the client, end the session. */
  private closeWith(code: number, text: string, verdict: SessionVerdict, info: string): void {
    this.replyClient(code, text);
    this.emit({ type: 'close', stream: CLIENT });
    this.finish(verdict, info);
  }

  // -------------------------------------------------------------------------------------------
  // session start, server connection

  private onStart(client: Addr, clientLocal: Addr): void {
    if (this.phase !== 'init') return;
    this.client = client;
    this.clientLocal = clientLocal ?? this.ctx.clientLocal ?? null;
    this.lastActivity = this.now;
    this.emit({ type: 'setTimer', timer: IDLE_TIMER, ms: this.opts.timeoutMs });
    if (this.nonTransparent) {
      // Zorp's non-transparent mode: the proxy greets and learns the server from USER user@host.
      this.phase = 'login';
      this.replyClient(220, this.opts.greeting);
      return;
    }
    const t = this.opts.tls;
    if (
      t &&
      (t.implicit === true || (t.implicit === 'auto' && this.clientLocal?.port === DEFAULTS.ftpsImplicitPort))
    ) {
      // Implicit FTPS: the client's ClientHello first; the server is connected once it is accepted.
      this.implicitTls = true;
      this.phase = 'connecting';
      this.startHello();
      return;
    }
    this.connectServer();
  }

  private connectServer(): void {
    this.phase = 'connecting';
    this.inflight.push(sent('Null', '', 'greeting'));
    this.emit({ type: 'connect', stream: SERVER, options: {} });
  }

  private onServerConnected(local: Addr, remote: Addr): void {
    this.serverLocal = local;
    this.serverRemote = remote;
    this.phase = 'running';
    this.log('ftp.session', 'info', 'Server connection established', {
      server_address: remote.host,
      server_port: remote.port,
      server_local: local.host,
      server_local_port: local.port,
    });
    if (this.tlsPhase === 'connect') this.startServerTls();
  }

  private onServerConnectFailed(error: string): void {
    this.log('ftp.error', 'warn', 'Server connection failed', { error });
    if (this.tlsPhase === 'connect') {
      // Implicit FTPS: the client waits for our ServerHello, and a clear-text 421 would reach its TLS
      // layer as a broken record. It gets an alert instead, as for a server that fails verification.
      this.tlsResult = 'connect_failed';
      this.tlsViolation('Server connection failed', {
        reason: this.tlsResult,
        sni: this.hello?.sni ?? null,
        error,
      });
      this.emit({ type: 'send', stream: CLIENT, data: alertRecord(ALERT.handshakeFailure) });
      this.emit({ type: 'close', stream: CLIENT });
      this.finish('DENIED_BY_CONNECTION_FAIL', error);
      return;
    }
    this.closeWith(
      421,
      'Service not available, connection to the server failed',
      'DENIED_BY_CONNECTION_FAIL',
      error,
    );
  }

  private onServerGone(info: string): void {
    if (this.inflight.some((p) => p.state === 'held')) {
      // A transfer's final reply waits for its data: end the session after it.
      this.finishWhenIdle = true;
      return;
    }
    if (this.inflight.length > 0) {
      this.replyClient(421, 'Service not available, the server closed the connection');
    }
    this.emit({ type: 'close', stream: CLIENT });
    this.finish('ACCEPTED', info);
  }

  // -------------------------------------------------------------------------------------------
  // client commands

  private onClientData(data: Uint8Array): void {
    this.cmdReader.push(data);
    this.pump();
  }

  /** Can the next client command be acted on now? (one at a time, RFC 959 §5.4 sequencing) */
  private idle(): boolean {
    return (
      (this.phase === 'running' || this.phase === 'login') &&
      this.inflight.length === 0 &&
      (this.tlsPhase === 'off' || this.tlsPhase === 'on')
    );
  }

  private transferRunning(): boolean {
    return this.inflight.some((p) => p.kind === 'transfer');
  }

  private pump(): void {
    // Re-entry (a reply released while a command is being handled) would take the next command
    // before the current one is set up; the outer loop picks it up instead.
    if (this.pumping) return;
    this.pumping = true;
    try {
      this.pumpLoop();
    } finally {
      this.pumping = false;
    }
  }

  private pumpLoop(): void {
    while (this.phase !== 'done') {
      if (this.idle()) {
        const item = this.deferred.shift() ?? this.cmdReader.next();
        if (!item) break;
        this.onItem(item);
        continue;
      }
      // A transfer is running: read ahead so ABOR (RFC 959 §4.1.3) can act at once. Everything else
      // (errors included) waits its turn, so replies keep the order of the commands.
      if (this.transferRunning() && this.deferred.length < DEFAULTS.ftpMaxDeferredCommands) {
        const item = this.cmdReader.next();
        if (!item) break;
        if ('command' in item && item.command.verb === 'ABOR' && this.deferred.length === 0)
          this.onItem(item);
        else this.deferred.push(item);
        continue;
      }
      break;
    }
    if (this.phase === 'done') return;
    // Backpressure on the control channel: stop reading while a lot is waiting.
    const waiting = this.cmdReader.buffered > 4 * this.opts.maxLineLength || this.deferred.length > 0;
    if (waiting && !this.clientPaused) {
      this.clientPaused = true;
      this.emit({ type: 'pause', stream: CLIENT });
    } else if (!waiting && this.clientPaused) {
      this.clientPaused = false;
      this.emit({ type: 'resume', stream: CLIENT });
    }
  }

  /** A command, or a line the reader refused (answered with its 500/501; the session goes on). */
  private onItem(item: CommandItem): void {
    if ('error' in item) {
      this.violation('Invalid command line', { error: item.error.message });
      this.replyClient(item.error.reply, item.error.message);
      return;
    }
    this.onCommand(item.command);
  }

  private onCommand(cmd: FtpCommand): void {
    const { verb, param } = cmd;
    this.log('ftp.request', 'debug', 'Command from client', {
      command: verb,
      parameter: verb === 'PASS' ? '***' : param,
    });
    if (verb === '') {
      if (!this.opts.permitEmptyCommand) this.replyClient(500, 'Empty command');
      return;
    }
    if (!KNOWN_COMMANDS.has(verb) && !this.opts.policy.permitUnknownCommand) {
      this.violation('Unknown command', { command: verb });
      this.replyClient(500, `${verb} not understood`);
      return;
    }
    if (this.phase === 'login') {
      this.onLoginCommand(verb, param);
      return;
    }
    let effectiveParam = param;
    if (verb === 'USER') {
      const user = this.checkUser(param);
      if (user === null) return;
      effectiveParam = user;
    }
    if (verb === 'PASS' && param.length > this.opts.maxPasswordLength) {
      this.violation('Password too long', { limit: this.opts.maxPasswordLength });
      this.replyClient(501, 'Password too long');
      return;
    }
    if (this.opts.tls && (verb === 'AUTH' || verb === 'CCC' || verb === 'PROT' || verb === 'PBSZ')) {
      if (!this.tlsCommand(verb, param)) return;
    } else if (!this.policyAllows(verb, effectiveParam)) return;

    if (DATA_SETUP_COMMANDS.has(verb)) {
      this.onDataSetup(verb, param);
      return;
    }
    const direction = TRANSFER_COMMANDS.get(verb);
    if (direction) {
      this.onTransfer(verb, effectiveParam, direction);
      return;
    }
    if (verb === 'ABOR') {
      if (this.channel && (this.channel.state === 'transfer' || this.channel.state === 'closing'))
        this.channel.teardown(true);
    }
    const kind: PendingKind = verb === 'QUIT' ? 'quit' : verb === 'FEAT' ? 'feat' : 'plain';
    this.inflight.push(sent(verb, effectiveParam, kind));
    this.sendServer(verb, effectiveParam);
  }

  /** The request policy; false when the command was answered (reject) or the session ended (abort). */
  private policyAllows(verb: string, param: string): boolean {
    const v = lookupRequest(this.opts.policy, verb, param);
    if (v.action === 'accept') return true;
    if (v.action === 'reject') {
      this.log('ftp.policy', 'info', 'Request rejected by policy', {
        command: verb,
        parameter: verb === 'PASS' ? '***' : param,
        reply: v.code,
      });
      this.replyClient(v.code, v.text);
      return false;
    }
    this.log('ftp.policy', 'warn', 'Request aborted the session by policy', { command: verb });
    this.closeWith(v.code, v.text, 'ABORTED_BY_POLICY_ACTION', `request ${verb} aborted by policy`);
    return false;
  }

  /** USER limits (Zorp max_username_length, valid_chars_username); the name to forward, or null. */
  private checkUser(param: string): string | null {
    let user = param;
    if (this.nonTransparent) {
      const at = param.lastIndexOf('@');
      if (at >= 0) {
        const target = this.parseInbandTarget(param.slice(at + 1));
        if (!target) return null;
        if (
          this.inbandTarget &&
          (target.host.toLowerCase() !== this.inbandTarget.host.toLowerCase() ||
            target.port !== this.inbandTarget.port)
        ) {
          this.replyClient(530, 'Already connected to another server; reconnect to change servers');
          return null;
        }
        user = param.slice(0, at);
      }
    }
    return this.validUsername(user) ? user : null;
  }

  private validUsername(user: string): boolean {
    if (user.length > this.opts.maxUsernameLength) {
      this.violation('Username too long', { limit: this.opts.maxUsernameLength, length: user.length });
      this.replyClient(501, 'Username too long');
      return false;
    }
    if (this.opts.validCharsUsername && !this.opts.validCharsUsername.test(user)) {
      this.violation('Invalid character in username', { username: user });
      this.replyClient(501, 'Invalid character in username');
      return false;
    }
    this.username = user;
    return true;
  }

  // -------------------------------------------------------------------------------------------
  // non-transparent mode (inband router): USER user@host[:port]

  private onLoginCommand(verb: string, param: string): void {
    if (verb === 'QUIT') {
      this.closeWith(221, 'Goodbye', 'ACCEPTED', 'client quit before login');
      return;
    }
    if (verb === 'NOOP') {
      this.replyClient(200, 'NOOP ok');
      return;
    }
    if (verb !== 'USER') {
      this.replyClient(530, 'Log in with USER user@host[:port] first');
      return;
    }
    const at = param.lastIndexOf('@');
    if (at < 0) {
      this.violation('USER without a target host in non-transparent mode');
      this.replyClient(530, 'Log in with USER user@host[:port]');
      return;
    }
    const target = this.parseInbandTarget(param.slice(at + 1));
    if (!target) return;
    const user = param.slice(0, at);
    if (!this.validUsername(user)) return;
    if (!this.policyAllows('USER', user)) return;
    this.inbandTarget = target;
    this.phase = 'connecting';
    this.inflight.push(sent('Null', '', 'inband-greeting'));
    this.inflight.push(unsent('USER', user, 'plain'));
    this.log('ftp.session', 'info', 'Inband target from USER', { host: target.host, port: target.port });
    this.emit({ type: 'connect', stream: SERVER, options: { inband: target } });
  }

  /** "host", "host:port", "[v6]" or "[v6]:port"; null after answering the client. */
  private parseInbandTarget(text: string): { host: string; port: number } | null {
    let host = text;
    let portText: string | null = null;
    const m = /^\[([^\]]+)\](?::(.*))?$/.exec(text);
    if (m) {
      host = m[1]!;
      portText = m[2] ?? null;
    } else if (text.includes(':')) {
      const i = text.lastIndexOf(':');
      host = text.slice(0, i);
      portText = text.slice(i + 1);
    }
    if (host.length === 0 || host.length > this.opts.maxHostnameLength) {
      this.violation('Hostname missing or too long', { limit: this.opts.maxHostnameLength });
      this.replyClient(501, 'Hostname missing or too long');
      return null;
    }
    const ip = canonicalAddress(host);
    const dns =
      /^(?=.{1,253}\.?$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$/;
    if (!ip && !dns.test(host)) {
      this.violation('Invalid hostname in USER', { host });
      this.replyClient(501, 'Invalid hostname');
      return null;
    }
    let port: number = DEFAULTS.ftpDefaultPort;
    if (portText !== null) {
      if (!/^\d{1,5}$/.test(portText) || Number(portText) < 1 || Number(portText) > 65535) {
        this.replyClient(501, 'Invalid port');
        return null;
      }
      port = Number(portText);
    }
    if (!this.opts.targetPortRange.some((r) => port >= r.lo && port <= r.hi)) {
      this.violation('Target port not permitted', { port });
      this.replyClient(501, `Port ${port} not permitted`);
      return null;
    }
    return { host: ip ? ip.host : host, port };
  }

  // -------------------------------------------------------------------------------------------
  // server replies

  private onServerData(data: Uint8Array): void {
    this.replyReader.push(data);
    // Every reply that came in this read is matched before the next client command goes out: two
    // finals for one command in one read must not make the second the answer to the next command
    // (review finding 11); it arrives with nothing in flight and is dropped as unsolicited.
    const outer = this.pumping;
    this.pumping = true;
    try {
      this.readReplies();
    } finally {
      this.pumping = outer;
    }
    if (!outer && this.phase !== 'done') this.pump();
  }

  private readReplies(): void {
    for (;;) {
      let reply: FtpReply | null;
      try {
        reply = this.replyReader.next();
      } catch (e) {
        if (!(e instanceof ProtocolError)) throw e;
        this.violation('Server protocol violation', { error: e.message });
        this.closeWith(
          421,
          'Service not available, the server broke the protocol',
          'DENIED_BY_POLICY',
          e.message,
        );
        return;
      }
      if (!reply) return;
      this.onReply(reply);
      if (this.phase === 'done') return;
    }
  }

  private onReply(reply: FtpReply): void {
    this.log('ftp.response', 'debug', 'Reply from server', { code: reply.code, text: replyText(reply) });
    const p = this.inflight.find((x) => x.state === 'sent');
    if (p?.state !== 'sent') {
      // Unsolicited (RFC 959 allows only 421 here: the server is going away).
      if (reply.code === '421') {
        this.sendLines(CLIENT, reply.lines);
        this.emit({ type: 'close', stream: CLIENT });
        this.finish('ACCEPTED', 'server sent 421');
        return;
      }
      this.violation('Unsolicited reply from server dropped', { code: reply.code });
      return;
    }
    const preliminary = reply.code[0] === '1';
    const v = lookupResponse(this.opts.policy, p.verb, reply.code);
    if (v.action === 'abort') {
      this.log('ftp.policy', 'warn', 'Reply aborted the session by policy', {
        command: p.verb,
        code: reply.code,
      });
      this.closeWith(v.code, v.text, 'ABORTED_BY_POLICY_ACTION', `reply ${reply.code} to ${p.verb}`);
      return;
    }
    if (preliminary) {
      this.onPreliminary(p, reply, v);
      return;
    }
    if (p.answered) {
      this.log('ftp.response', 'debug', 'Reply dropped: the client was already answered', {
        code: reply.code,
      });
      settle(p, []);
    } else if (v.action === 'reject') {
      this.log('ftp.policy', 'info', 'Reply rejected by policy', {
        command: p.verb,
        code: reply.code,
        to: v.code,
      });
      settle(p, [`${v.code} ${v.text}`]);
      if (p.channel) p.channel.teardown(true);
    } else {
      this.onFinal(settle(p, reply.lines), reply);
    }
    this.flush();
  }

  private onPreliminary(p: Extract<Pending, { state: 'sent' }>, reply: FtpReply, v: Verdict): void {
    if (p.answered) return;
    if (v.action === 'reject') {
      // The client gets the rejection as the final answer; the server's later final reply is dropped.
      this.log('ftp.policy', 'info', 'Reply rejected by policy', {
        command: p.verb,
        code: reply.code,
        to: v.code,
      });
      p.answered = true;
      this.sendLines(CLIENT, [`${v.code} ${v.text}`]);
      if (p.channel) p.channel.teardown(true);
      return;
    }
    if (p.kind === 'greeting' || p.kind === 'inband-greeting') {
      if (p.kind === 'greeting') this.sendLines(CLIENT, reply.lines);
      return;
    }
    this.sendLines(CLIENT, reply.lines);
    if (p.kind === 'transfer' && p.channel) {
      p.channel.prelim = true;
      p.channel.connectClient();
    }
  }

  /** A final reply the policy accepted: decide what the client gets (by default the reply itself). */
  private onFinal(p: Settled, reply: FtpReply): void {
    const ok = reply.code[0] === '2';
    switch (p.kind) {
      case 'greeting':
        break;
      case 'inband-greeting': {
        p.out = [];
        if (!ok) {
          this.closeWith(
            421,
            `Server refused the session: ${replyText(reply)}`,
            'DENIED_BY_CONNECTION_FAIL',
            reply.code,
          );
          return;
        }
        // Now log in on the client's behalf (RFC 959 §5.4: the greeting precedes USER).
        const user = this.inflight.find((x) => x.state === 'unsent');
        if (user) {
          Object.assign(user, { state: 'sent', answered: false });
          this.sendServer(user.verb, user.param);
        }
        break;
      }
      case 'setup':
        this.onSetupReply(p, reply);
        break;
      case 'transfer':
        this.onTransferReply(p, reply);
        break;
      case 'feat':
        p.out = ok && reply.code === '211' ? this.filterFeatures(reply) : reply.lines;
        break;
      case 'quit':
        if (ok) this.finishWhenIdle = true;
        break;
      case 'auth':
        if (reply.code === '234') {
          // The client gets the 234 and starts its handshake; nothing else is read until it is done.
          this.startHello();
        } else {
          this.log('tls.session', 'info', 'The server refused AUTH TLS; the session stays in clear', {
            code: reply.code,
          });
        }
        break;
      case 'plain':
        if (p.verb === 'PROT' && ok && this.tlsPhase === 'on') {
          this.dataProtected = p.param.trim().toUpperCase() === 'P';
          this.log('tls.session', 'debug', 'Data channel protection', { protected: this.dataProtected });
        }
        break;
      default:
        assertNever(p.kind, 'pending kind');
    }
  }

  /** Send finished replies in command order; then take the next client command. */
  private flush(): void {
    while (this.inflight.length > 0) {
      const head = this.inflight[0]!;
      if (head.state !== 'final') break;
      this.inflight.shift();
      if (head.out) this.sendLines(CLIENT, head.out);
    }
    if (this.phase === 'done') return;
    if (this.finishWhenIdle && this.inflight.length === 0) {
      this.emit({ type: 'close', stream: CLIENT });
      this.emit({ type: 'close', stream: SERVER });
      this.finish('ACCEPTED', 'session ended');
      return;
    }
    this.pump();
  }

  // -------------------------------------------------------------------------------------------
  // FEAT (RFC 2389 §3.2): features accepted, dropped or inserted by policy

  private filterFeatures(reply: FtpReply): string[] {
    const lines = reply.lines;
    const seen = new Set<string>();
    const kept: string[] = [];
    for (const l of lines.slice(1, -1)) {
      const name = l.trim().split(' ')[0]!.toUpperCase();
      if (name === '') continue;
      seen.add(name);
      const a = this.opts.tls && TLS_FEATURES.has(name) ? 'accept' : lookupFeature(this.opts.policy, name);
      if (a === 'drop') {
        this.log('ftp.policy', 'debug', 'Feature dropped', { feature: name });
        continue;
      }
      kept.push(l.startsWith(' ') ? l : ` ${l.trim()}`);
    }
    for (const [name, a] of this.opts.policy.features) {
      if (a === 'insert' && !seen.has(name)) kept.push(` ${name}`);
    }
    // tls.mode inspect: the proxy speaks RFC 4217 to the client whatever the server lists
    if (this.opts.tls) for (const [name, line] of TLS_FEATURES) if (!seen.has(name)) kept.push(` ${line}`);
    if (kept.length === 0) return ['211 No features'];
    const first = lines.length > 1 ? lines[0]! : '211-Features:';
    const last = lines.length > 1 ? lines[lines.length - 1]! : '211 End';
    return [`211-${first.slice(4)}`, ...kept, `211 ${last.slice(4)}`];
  }

  // -------------------------------------------------------------------------------------------
  // TLS (tls.mode inspect, RFC 4217): AUTH TLS or implicit FTPS on the control connection, PBSZ,
  // PROT; the data channels' own TLS is data-channel.ts's

  /** AUTH, CCC, PROT and PBSZ on a service with tls.mode inspect: true when the command goes on to the
   * server as usual, false when it was answered (or sent) here. The `tls:` block is the
   * administrator's word on TLS, so the policy sets' own AUTH refusal does not apply. */
  private tlsCommand(verb: string, param: string): boolean {
    const arg = param.trim().toUpperCase();
    if (verb === 'CCC') {
      this.replyClient(533, 'CCC denied by policy: the control connection stays encrypted');
      return false;
    }
    if (verb === 'AUTH') {
      if (this.tlsPhase !== 'off') {
        this.replyClient(503, 'TLS is already on');
        return false;
      }
      if (!['TLS', 'TLS-C', 'SSL', 'TLS-P'].includes(arg)) {
        this.replyClient(504, 'Only AUTH TLS is supported');
        return false;
      }
      this.inflight.push(sent('AUTH', 'TLS', 'auth'));
      this.sendServer('AUTH', 'TLS');
      return false;
    }
    if (this.tlsPhase !== 'on') {
      this.replyClient(503, `${verb} needs TLS first (AUTH TLS)`);
      return false;
    }
    if (verb === 'PROT' && arg !== 'C' && arg !== 'P') {
      this.replyClient(536, 'Only PROT C and PROT P are supported');
      return false;
    }
    return this.policyAllows(verb, param);
  }

  /** Collect and decide the client's ClientHello (after our 234, or from the first byte). */
  private startHello(): void {
    this.tlsPhase = 'hello';
    this.emit({ type: 'setTimer', timer: HELLO_TIMER, ms: this.opts.tls!.policy.helloTimeoutMs });
    if (this.cmdReader.buffered > 0 || this.deferred.length > 0) {
      // Bytes after AUTH TLS, before our 234: not a client that waits for the answer (RFC 4217 §4).
      this.tlsRefuse(ALERT.decodeError, 'commands sent after AUTH TLS before its reply');
    }
  }

  private onHelloData(data: Uint8Array): void {
    this.helloBytes = appendBytes(this.helloBytes, data);
    if (this.tlsPhase !== 'hello') return; // (more of the client's handshake: replayed with the rest)
    const step = helloStep(this.helloBytes, this.opts.tls!.policy);
    if (step === null) return;
    this.hello = step.hello;
    if (!step.ok) {
      this.tlsRefuse(step.alert, step.reason);
      return;
    }
    const hello = step.hello;
    this.tlsResult = 'accepted';
    this.log('tls.session', 'info', 'TLS ClientHello accepted; terminating', {
      mode: 'inspect',
      implicit: this.implicitTls,
      sni: hello.sni,
      offered_max_version: versionName(hello.maxVersion),
      alpn: hello.alpn.join(','),
      sni_allow_matched: step.matched,
    });
    if (this.implicitTls) {
      this.tlsPhase = 'connect';
      this.connectServer();
    } else this.startServerTls();
  }

  /** TLS to the server first, so that the client's certificate can carry the server's names. */
  private startServerTls(): void {
    this.tlsPhase = 'server';
    const sni = this.hello?.sni ?? null;
    this.emit({
      type: 'startTls',
      stream: SERVER,
      side: { role: 'originate', sni, verifyName: sni ?? this.serverRemote?.host ?? '' },
      endpoint: this.opts.tls!.endpoint,
    });
  }

  private onControlTls(ev: Extract<ProxyEvent, { type: 'tls' }>): void {
    const info = ev.info;
    if (ev.stream === SERVER) {
      if (this.tlsPhase !== 'server') return;
      this.serverTls = info;
      const fields = serverTlsFields(info);
      if (!ev.ok) {
        this.tlsResult = ev.reason ?? 'handshake_failure';
        this.tlsViolation('Server TLS session refused', {
          ...fields,
          reason: this.tlsResult,
          detail: ev.detail ?? null,
        });
        // The client is waiting for our ServerHello: it gets an alert, never a session.
        this.emit({ type: 'send', stream: CLIENT, data: alertRecord(ALERT.handshakeFailure) });
        this.emit({ type: 'close', stream: CLIENT });
        this.finish(
          'DENIED_BY_CONNECTION_FAIL',
          `TLS: server ${this.tlsResult}${ev.detail ? ` (${ev.detail})` : ''}`,
        );
        return;
      }
      this.log('tls.session', 'info', 'Server TLS session established', fields);
      this.tlsPhase = 'client';
      this.clientTlsNames = leafNames(this.hello?.sni ?? this.clientLocal?.host ?? '', info.altNames);
      const held = this.helloBytes;
      this.helloBytes = EMPTY;
      this.emit({
        type: 'startTls',
        stream: CLIENT,
        side: { role: 'terminate', names: this.clientTlsNames, held },
        endpoint: this.opts.tls!.endpoint,
      });
      return;
    }
    if (this.tlsPhase !== 'client') return;
    if (!ev.ok) {
      this.tlsResult = 'client_handshake';
      this.tlsViolation('Client TLS handshake failed', {
        reason: ev.detail ?? null,
        sni: this.hello?.sni ?? null,
      });
      this.emit({ type: 'close', stream: SERVER });
      this.finish('DENIED_BY_POLICY', `TLS: client handshake failed: ${ev.detail ?? ''}`);
      return;
    }
    this.clientTls = info;
    this.tlsPhase = 'on';
    this.emit({ type: 'clearTimer', timer: HELLO_TIMER });
    this.log('tls.session', 'info', 'Client TLS session established', {
      side: 'client',
      sni: info.sni,
      version: info.version,
      cipher: info.cipher,
      names: this.clientTlsNames.join(','),
    });
    this.emit({ type: 'account', fields: this.tlsAccount() });
    this.pump();
  }

  /** Refuse the client's handshake: a fatal alert, a close; the server never sees TLS from us. */
  private tlsRefuse(alert: number, reason: string): void {
    this.tlsResult = ALERT_NAMES[alert] ?? 'refused';
    this.emit({ type: 'send', stream: CLIENT, data: alertRecord(alert) });
    this.tlsViolation('TLS handshake refused', refusalFields(reason, alert, this.hello));
    this.emit({ type: 'close', stream: CLIENT });
    this.finish('DENIED_BY_POLICY', `TLS: ${reason}`);
  }

  /** A refused or failed handshake: `tls.violation`, as the TLS gates log theirs. */
  private tlsViolation(msg: string, fields: Record<string, unknown>): void {
    this.log('tls.violation', 'warn', msg, fields);
  }

  /** The session's TLS fields (the summary, `tzorp sessions --json` under tls, the metrics). */
  private tlsAccount(): Record<string, string | number> {
    return tlsAccountFields('inspect', this.hello, this.tlsResult, {
      client: this.clientTls,
      server: this.serverTls,
    });
  }

  // -------------------------------------------------------------------------------------------
  // data channel set-up: PORT, EPRT, PASV, EPSV

  private family(): 4 | 6 {
    return this.clientLocal?.family ?? this.client?.family ?? 4;
  }

  /** PORT, EPRT, PASV, EPSV: a new data channel replaces the current one (RFC 959 §3.3). */
  private onDataSetup(verb: string, param: string): void {
    const clientMode: DataMode = verb === 'PORT' || verb === 'EPRT' ? 'active' : 'passive';
    const clientPeer = clientMode === 'active' ? this.clientDataPeer(verb, param) : null;
    if (clientMode === 'active' ? clientPeer === null : !this.passiveAllowed(verb, param)) return;
    if (this.channel) this.channel.teardown(true);
    this.lastChannelFailure = null;
    const serverMode: DataMode = this.opts.dataMode === 'keep' ? clientMode : this.opts.dataMode;
    const channel = new DataChannel(this.channelHost, ++this.seq, verb, clientMode, serverMode, clientPeer);
    this.channel = channel;
    this.channels.add(channel);
    const serverFamily = this.serverRemote?.family ?? 4;
    if (serverMode === 'passive') {
      const sverb = serverFamily === 4 ? 'PASV' : 'EPSV';
      this.inflight.push(sent(sverb, '', 'setup', channel));
      this.sendServer(sverb, '');
    } else {
      // Server active: our listener first; the PORT/EPRT naming it goes out once it listens.
      const sverb = serverFamily === 4 ? 'PORT' : 'EPRT';
      this.inflight.push(unsent(sverb, '', 'setup', channel));
      channel.listen('server');
    }
  }

  /** The address of PORT/EPRT, or null after answering the client (a refusal). */
  private clientDataPeer(verb: string, param: string): Addr | null {
    if (this.epsvAll) return this.refuseAfterEpsvAll(verb);
    const peer = verb === 'PORT' ? parseHostPort(param) : parseEprt(param);
    if (!peer) {
      this.violation(`Invalid ${verb} parameter`, { parameter: param });
      this.replyClient(501, `Invalid ${verb} parameter`);
      return null;
    }
    if (peer.family !== this.family()) {
      this.replyClient(522, `Network protocol not supported, use (${this.family() === 4 ? 1 : 2})`);
      return null;
    }
    if (!this.opts.permitClientBounceAttack && peer.host !== this.client?.host) {
      // Bounce attack (RFC 2577 §3): the data connection must go back to the control peer.
      this.violation('Client bounce attempt refused', { target: peer.host, client: this.client?.host });
      this.replyClient(501, `${verb} to a third host refused`);
      return null;
    }
    if (this.opts.strictPortChecking && peer.port < 1024) {
      this.violation('Client data port below 1024 refused', { port: peer.port });
      this.replyClient(501, `${verb} to a privileged port refused`);
      return null;
    }
    return peer;
  }

  /** Can PASV/EPSV open a channel? false after answering the client (a refusal, or EPSV ALL). */
  private passiveAllowed(verb: string, param: string): boolean {
    if (this.epsvAll && verb !== 'EPSV') return this.refuseAfterEpsvAll(verb) !== null;
    if (verb === 'PASV') {
      if (this.family() === 4) return true;
      this.replyClient(501, 'PASV cannot announce an IPv6 address; use EPSV');
      return false;
    }
    const arg = param.trim().toUpperCase();
    if (arg === 'ALL') {
      this.epsvAll = true;
      this.replyClient(200, 'EPSV ALL ok');
      return false;
    }
    if (arg !== '' && arg !== String(this.family() === 4 ? 1 : 2)) {
      this.replyClient(522, `Network protocol not supported, use (${this.family() === 4 ? 1 : 2})`);
      return false;
    }
    return true;
  }

  /** RFC 2428 §4: after EPSV ALL every other data set-up command is refused. */
  private refuseAfterEpsvAll(verb: string): null {
    this.replyClient(501, `${verb} not allowed after EPSV ALL`);
    return null;
  }

  private onListening(listener: StreamId, local: Addr): void {
    const channel = this.channelFor(listener);
    if (!channel || channel !== this.channel) return;
    if (listener === channel.serverListener) {
      // Server active: tell the server where to connect (RFC 959 PORT / RFC 2428 EPRT).
      const p = this.inflight.find(
        (x) => x.channel === channel && x.kind === 'setup' && x.state === 'unsent',
      );
      if (!p) return;
      Object.assign(p, { state: 'sent', answered: false });
      const host = this.opts.masqAddressServer ?? local.host;
      const fam = canonicalAddress(host)?.family ?? local.family;
      if (p.verb === 'PORT' && fam === 4) p.param = formatHostPort({ host, port: local.port });
      else {
        p.verb = 'EPRT';
        p.param = formatEprt({ host, port: local.port, family: fam });
      }
      this.sendServer(p.verb, p.param);
    } else if (listener === channel.clientListener) {
      const p = this.inflight.find((x) => x.channel === channel && x.kind === 'setup' && x.state === 'held');
      if (p?.state !== 'held') return;
      const host = this.opts.masqAddressClient ?? local.host;
      p.out = [channel.clientVerb === 'PASV' ? format227({ host, port: local.port }) : format229(local.port)];
      release(p);
      channel.state = 'ready';
      this.log('ftp.data', 'debug', 'Client-side data listener ready', {
        host: local.host,
        port: local.port,
      });
      this.flush();
    }
  }

  private onListenFailed(listener: StreamId, error: string): void {
    const channel = this.channelFor(listener);
    if (!channel || channel !== this.channel) return;
    this.log('ftp.error', 'warn', 'Data listener failed', { error });
    const p = this.inflight.find((x) => x.channel === channel && x.kind === 'setup');
    channel.teardown(true);
    if (!p) return;
    // An unsent PORT/EPRT never reaches the server: no reply of its will come to be dropped.
    const answered = p.state === 'unsent' || p.answered;
    Object.assign(p, { state: 'final', answered, out: ['425 Cannot open data connection'] });
    this.flush();
  }

  private onSetupReply(p: Settled, reply: FtpReply): void {
    const channel = p.channel!;
    if (channel !== this.channel || channel.state !== 'setup') {
      p.out = ['425 Cannot open data connection'];
      return;
    }
    if (reply.code[0] !== '2') {
      p.out = reply.lines;
      channel.teardown(true);
      return;
    }
    if (channel.serverMode === 'passive') {
      const text = reply.lines.join(' ');
      let peer: Addr | null = null;
      if (reply.code === '227') peer = parse227(text);
      else if (reply.code === '229' && this.serverRemote) {
        const port = parse229(text);
        if (port !== null) peer = { host: this.serverRemote.host, port, family: this.serverRemote.family };
      }
      if (!peer) {
        this.violation('Unparsable passive reply from server', { code: reply.code, text: replyText(reply) });
        p.out = ['425 Cannot open data connection'];
        channel.teardown(true);
        return;
      }
      if (!this.opts.permitServerBounceAttack && peer.host !== this.serverRemote?.host) {
        this.violation('Server bounce attempt refused', {
          target: peer.host,
          server: this.serverRemote?.host,
        });
        p.out = ['425 Cannot open data connection'];
        channel.teardown(true);
        return;
      }
      if (this.opts.strictPortChecking && peer.port < 1024) {
        this.violation('Server passive data port below 1024 refused', { port: peer.port });
        p.out = ['425 Cannot open data connection'];
        channel.teardown(true);
        return;
      }
      channel.serverPeer = peer;
    }
    if (channel.clientMode === 'active') {
      p.out = [`200 ${channel.clientVerb} command successful`];
      channel.state = 'ready';
      return;
    }
    // Client passive: open our listener on the address the client dialled, answer when it is ready.
    p.state = 'held';
    p.out = null;
    channel.listen('client');
  }

  // -------------------------------------------------------------------------------------------
  // transfers

  private onTransfer(verb: string, param: string, direction: Direction): void {
    const channel = this.channel;
    if (channel?.state !== 'ready') {
      // No data channel set up (RFC 959's default data port is not supported: docs/ftp.md).
      if (this.lastChannelFailure)
        this.replyClient(425, `Can't open data connection (${this.lastChannelFailure})`);
      else this.replyClient(425, 'Use PORT, PASV, EPRT or EPSV first');
      this.lastChannelFailure = null;
      return;
    }
    this.inflight.push(sent(verb, param, 'transfer', channel));
    this.sendServer(verb, param);
    channel.startTransfer(verb, param, direction);
  }

  private onTransferReply(p: Settled, reply: FtpReply): void {
    const channel = p.channel!;
    channel.finalSeen = true;
    if (channel.state === 'done') {
      // The data channel is already gone (ABOR, failure): only the reply text may change.
      if (channel.failed) p.out = [failureLine(channel.failed)];
      return;
    }
    if (reply.code[0] !== '2') {
      // The transfer failed on the server: nothing more will be relayed, and there is no data whose
      // end the reply could overtake; the client gets it at once.
      channel.teardown(true);
      if (channel.failed) p.out = [failureLine(channel.failed)];
      return;
    }
    channel.connectClient();
    if (!channel.finished()) {
      // Hold the reply until the data is relayed and both data connections are closed (or the client
      // has closed its side: then it has every byte it will get).
      p.state = 'held';
      this.emit({ type: 'setTimer', timer: channel.timer, ms: this.opts.dataTimeoutMs });
      this.releaseIfClientDone(channel);
    } else {
      channel.complete();
    }
  }

  /** The client has finished with the data connection (FIN or closed): its held final reply may go.
   * The server side is still closed down in the background (and accounted when it is). Clients such
   * as curl close the data connection as soon as they have the announced size, before our FIN. */
  private releaseIfClientDone(channel: DataChannel): void {
    if (!(channel.clientData.ended || channel.clientData.state === 'closed')) return;
    const p = this.inflight.find((x) => x.channel === channel && x.kind === 'transfer');
    if (p?.state !== 'held') return;
    if (channel.failed && !p.answered) p.out = [failureLine(channel.failed)];
    release(p);
    this.flush();
  }

  /** The data channel is done: forget it; a transfer's held final reply goes (425/426 when the
   * client side failed). */
  private channelCompleted(channel: DataChannel): void {
    this.channels.delete(channel);
    const p = this.inflight.find((x) => x.channel === channel && x.kind === 'transfer');
    if (p?.state === 'held' || p?.state === 'final') {
      if (channel.failed && !p.answered) p.out = [failureLine(channel.failed)];
      if (p.state === 'held') {
        release(p);
        this.flush();
      }
    }
  }

  /** The data channel a stream or listener id belongs to. */
  private channelFor(id: StreamId): DataChannel | null {
    for (const channel of this.channels) if (channel.owns(id)) return channel;
    return null;
  }

  // -------------------------------------------------------------------------------------------
  // timers

  private onTimer(timer: string): void {
    if (timer === HELLO_TIMER) {
      if (this.tlsPhase === 'on' || this.tlsPhase === 'off') return;
      this.tlsResult = 'timeout';
      this.tlsViolation('TLS handshake not complete in time', {
        timeout_ms: this.opts.tls!.policy.helloTimeoutMs,
        phase: this.tlsPhase,
      });
      this.emit({ type: 'close', stream: CLIENT });
      this.finish(
        'DENIED_BY_POLICY',
        `TLS: handshake not complete within ${this.opts.tls!.policy.helloTimeoutMs} ms`,
      );
      return;
    }
    if (timer === IDLE_TIMER) {
      const idleFor = this.now - this.lastActivity;
      // A data channel on the native relay moves bytes this core does not see: the relay keeps the
      // same idle timeout for them, and the session is not idle while it runs.
      let relaying = false;
      for (const channel of this.channels) relaying ||= channel.native;
      if (relaying) {
        this.emit({ type: 'setTimer', timer: IDLE_TIMER, ms: this.opts.timeoutMs });
        return;
      }
      if (idleFor < this.opts.timeoutMs) {
        this.emit({ type: 'setTimer', timer: IDLE_TIMER, ms: this.opts.timeoutMs - idleFor });
        return;
      }
      this.log('ftp.session', 'info', 'Idle timeout', { timeout_ms: this.opts.timeoutMs });
      this.closeWith(421, 'Timeout, closing control connection', 'ACCEPTED', 'idle timeout');
      return;
    }
    for (const channel of this.channels) if (channel.timer === timer) channel.timedOut();
  }

  /** A data channel that cannot be completed: tear it down; a transfer waiting for it gets 425 now
   * (the server's own final reply, when it comes, is dropped). */
  private failChannel(channel: DataChannel, why: string): void {
    const p = this.inflight.find((x) => x.channel === channel && x.kind === 'transfer');
    channel.failed = 'connect';
    channel.teardown(true);
    if (p?.state === 'sent' && !p.answered) {
      p.answered = true;
      this.replyClient(425, `Can't open data connection (${why})`);
    } else if (!p) this.lastChannelFailure = why;
  }
}

/** The features of RFC 4217 a tls.mode inspect service offers the client (CCC is not among them). */
const TLS_FEATURES = new Map([
  ['AUTH', 'AUTH TLS'],
  ['PBSZ', 'PBSZ'],
  ['PROT', 'PROT'],
]);

function oneLine(s: string): string {
  return s.replace(/[\r\n]+/g, ' ').slice(0, 200);
}

/** RFC 959 §4.2: 425 the data connection could not be opened; 426 it broke during the transfer. */
function failureLine(f: 'connect' | 'broken'): string {
  return f === 'connect' ? "425 Can't open data connection" : '426 Connection closed; transfer aborted';
}
