// The HTTP proxy core (sans-IO, src/proxy/core/types.ts): Zorp's HttpProxy on a strict HTTP/1.1
// reader. One request is handled at a time per client connection; pipelined requests wait in the
// client reader's buffer and are answered in order. Heads are re-written canonically (writer.ts),
// bodies are passed through (Content-Length) or re-framed (chunked, close-delimited → chunked).
//
// Connection states (`conn`; one handler per state: inHttp for idle and exchange, inTunnel):
//
//            request head: planRequest (plan.ts)
//   ┌──────┐ ──────────────────────────────▶ ┌──────────┐  2xx to CONNECT, 101 to a permitted
//   │ idle │                                 │ exchange │  Upgrade  ┌────────┐
//   └──────┘ ◀────────────────────────────── └──────────┘ ────────▶ │ tunnel │
//      │      response relayed (or refused),      │                 └────────┘
//      │      the connection stays                │                      │
//      │ eof, error, timeout, abort               │ refusal that closes, │ both sides ended,
//      ▼                                          ▼ error, timeout, abort▼ a close, timeout, abort
//   ┌──────────────────────────────────────────────────────────────────────────┐
//   │ done (the outbox said `done`: nothing more is answered)                   │
//   └──────────────────────────────────────────────────────────────────────────┘
//
// The server connection has its own small state (`serverState`): none → connecting → open → closing
// → none; a request for another server (explicit mode) waits in `pendingConnect` until the old one
// has closed.
//
// Streams: 'client' and 'server' (the session's router picks the server; explicit mode passes the
// request's host as `inband`). Timers: 'idle' (inactivity, Zorp `timeout`), 'request' (a request head
// must arrive within timeout_request once it started), 'response' (the response head must come within
// timeout_response after the request was sent).
import { DEFAULTS } from '../../defaults.ts';
import { bug, ProtocolError } from '../../errors.ts';
import { canonicalAddress } from '../../policy/address.ts';
import {
  type Addr,
  assertNever,
  type CoreContext,
  type CoreDescription,
  dispatchByState,
  Outbox,
  type ProxyCommand,
  type ProxyCore,
  type ProxyEvent,
  type StateHandler,
  type Verdict,
} from '../core/index.ts';
import { type ErrorPage, errorResponse } from './error-page.ts';
import type { HttpOptions } from './options.ts';
import { connectionTokens, forwardable, type Plan, planRequest, type Refusal } from './plan.ts';
import { applyHeaderPolicy, responseAction } from './policy.ts';
import {
  type Framing,
  type Header,
  HttpReader,
  lowerName,
  type ReadItem,
  type RequestHead,
  type ResponseHead,
} from './reader.ts';
import { reasonOf } from './reasons.ts';
import { splitList } from './syntax.ts';
import { chunkBytes, LAST_CHUNK, responseHeadBytes } from './writer.ts';

/** Client bytes buffered beyond what we are reading before the client is paused: one full head
 * plus one relay buffer (pipelined requests, or a body waiting for the server connection). */
function pauseThreshold(opts: HttpOptions): number {
  return opts.limits.maxHeaderBytes + DEFAULTS.relayBufferBytes;
}

interface Tx {
  head: RequestHead;
  framing: Framing;
  method: string;
  /** Absolute URL for logs and the URL filter. */
  url: string;
  start: number;
  /** The client connection closes after this exchange. */
  closeAfter: boolean;
  /** Request fully read from the client (and forwarded, or discarded). */
  reqDone: boolean;
  /** Request head bytes to send once the server is connected. */
  serverHead: Buffer | null;
  sentToServer: boolean;
  /** Request body re-chunked towards the server. */
  chunkToServer: boolean;
  /** Upgrade protocol passed to the server, when the policy permits it. */
  upgrade: string | null;
  /** CONNECT without a parent proxy: the tunnel opens when the server connection does. */
  connectTunnel: boolean;
  /** The host name a CONNECT asked for (null: an address, or not a CONNECT). */
  connectName: string | null;
  respHeadSent: boolean;
  status: number | null;
  /** Response body re-chunked towards the client. */
  chunkToClient: boolean;
  /** The response is being dropped (denied/rejected response: the server connection is closed). */
  bytesToServer: number;
  bytesToClient: number;
  tunnel: boolean;
}

type ServerState = 'none' | 'connecting' | 'open' | 'closing';

/** The client connection's state (the diagram at the top of this file). */
type Conn =
  /** Between requests: the next request head is read. */
  | { state: 'idle' }
  /** One request is handled: forwarded and its response relayed, or answered by the proxy. */
  | { state: 'exchange'; tx: Tx }
  /** CONNECT or a permitted Upgrade: bytes are relayed both ways, HTTP is over. */
  | { state: 'tunnel'; tx: Tx }
  /** A CONNECT tunnel whose TLS is inspected (ctx.inspectConnect): a nested session (the TLS inspect
   * gate in front of an HTTP core) gets every event from here on. */
  | { state: 'nested'; tx: Tx; nested: NestedTunnel }
  | { state: 'done' };

export class HttpCore implements ProxyCore {
  private readonly out: Outbox;
  private now = 0;
  private verdict: Verdict = 'ACCEPTED';
  private readonly client: HttpReader;
  private server: HttpReader;
  private serverState: ServerState = 'none';
  /** The client's address (from 'start') and the server connection's (from 'connected'). */
  private clientAddr: Addr | null = null;
  private serverAddrs: { local: Addr; remote: Addr } | null = null;
  /** Which server the open connection goes to (explicit mode reuses it only for the same one). */
  private serverKey: string | null = null;
  private pendingConnect: { key: string; cmd: ProxyCommand } | null = null;
  private clientEnded = false;
  /** A tunnel copied by the native relay (after relayStarted): its idle timeout, half-close and byte
   * counts are the relay's until relayEnded. */
  private nativeTunnel = false;
  /** A request (from the client) or response (from the server) body on the native relay
   * (relayBody), until its bodyRelayed. One at a time. */
  private bodyRelay: { tx: Tx; from: 'client' | 'server' } | null = null;
  /** The transactions whose request / response body relay was answered: asked once per body (after
   * 'declined' or an early end the rest is read here). */
  private requestRelayed: Tx | null = null;
  private responseRelayed: Tx | null = null;
  /** The body relay ended with more server bytes right behind the body (see finishTx). */
  private serverMore = false;
  private clientPaused = false;
  private conn: Conn = { state: 'idle' };
  private requests = 0;
  private lastActivity = 0;
  private requestTimer = false;
  private responseTimer = false;

  constructor(
    private readonly ctx: CoreContext,
    private readonly opts: HttpOptions,
  ) {
    this.out = new Outbox('http', { service: ctx.service, session_id: ctx.sessionId });
    this.client = new HttpReader('request', opts.limits);
    this.server = new HttpReader('response', opts.limits);
  }

  handle(ev: ProxyEvent): ProxyCommand[] {
    if (this.finished) return [];
    if (this.conn.state === 'nested') return this.conn.nested.handle(ev);
    this.now = ev.now;
    // A throw here is a bug of ours: the driver logs it and ends this one session (types.ts).
    this.dispatch(ev);
    return coalesceSends(this.out.take());
  }

  describe(): CoreDescription {
    const tx = this.tx;
    return {
      proxy: 'http',
      state: this.conn.state,
      server: this.serverState,
      requests: this.requests,
      ...(tx
        ? { method: tx.method, request_done: tx.reqDone, sent_to_server: tx.sentToServer, status: tx.status }
        : {}),
    };
  }

  private get finished(): boolean {
    return this.conn.state === 'done';
  }

  private get tunnel(): boolean {
    return this.conn.state === 'tunnel';
  }

  /** The request being handled (in an exchange or a tunnel). */
  private get tx(): Tx | null {
    return this.conn.state === 'exchange' || this.conn.state === 'tunnel' ? this.conn.tx : null;
  }

  /** The exchange is over: back to reading the next request head. */
  private toIdle(): void {
    if (this.conn.state === 'exchange' || this.conn.state === 'tunnel') this.conn = { state: 'idle' };
  }

  // -------------------------------------------------------------------------------------------
  // events

  /** Each state's handler takes the stream events it cares about; the rest are the same in every
   * state (onSessionEvent). */
  private dispatch(ev: ProxyEvent): void {
    dispatchByState(this, this.conn.state, HttpCore.handlers, this.onSessionEvent, ev);
  }

  private static readonly handlers: Readonly<Record<Conn['state'], StateHandler<HttpCore> | null>> = {
    idle: HttpCore.prototype.inHttp,
    exchange: HttpCore.prototype.inHttp,
    tunnel: HttpCore.prototype.inTunnel,
    nested: null, // (handle() gives the nested session every event)
    done: null,
  };

  /** idle and exchange: bytes go through the readers; the pump makes what progress they allow. */
  private inHttp(ev: ProxyEvent): boolean {
    switch (ev.type) {
      case 'data':
        this.lastActivity = ev.now;
        if (ev.stream === 'client') this.client.push(ev.data);
        else if (ev.stream === 'server') this.server.push(ev.data);
        else return true;
        this.pump();
        return true;
      case 'end':
        this.lastActivity = ev.now;
        if (ev.stream === 'client') {
          this.clientEnded = true;
          this.client.finish();
        } else if (ev.stream === 'server') {
          this.server.finish();
        }
        this.pump();
        return true;
      case 'closed':
        this.onClosed(ev.stream, ev.error);
        return true;
      default:
        return false;
    }
  }

  /** tunnel: bytes are relayed as they come; a FIN is passed on; the session ends when both sides
   * have ended or one is gone. */
  private inTunnel(ev: ProxyEvent): boolean {
    switch (ev.type) {
      case 'data':
        this.lastActivity = ev.now;
        this.relay(ev.stream, ev.data);
        return true;
      case 'end':
        this.lastActivity = ev.now;
        this.emit({ type: 'shutdown', stream: ev.stream === 'client' ? 'server' : 'client' });
        if (ev.stream === 'client') this.clientEnded = true;
        else this.serverState = 'closing';
        if (this.clientEnded && this.serverState === 'closing') this.end('ACCEPTED');
        return true;
      case 'closed':
        if (ev.stream === 'client') this.end(this.verdict, ev.error ? `client: ${ev.error}` : undefined);
        else if (ev.stream === 'server') {
          this.serverState = 'none';
          this.serverKey = null;
          this.end('ACCEPTED');
        }
        return true;
      case 'relayStarted':
        this.nativeTunnel = true;
        this.emit({ type: 'clearTimer', timer: 'idle' });
        return true;
      case 'relayEnded':
        if (this.nativeTunnel) this.onNativeTunnelEnded(ev);
        return true;
      default:
        return false;
    }
  }

  /** The native relay of the tunnel is over (both streams are closed): its bytes are the request's. */
  private onNativeTunnelEnded(ev: Extract<ProxyEvent, { type: 'relayEnded' }>): void {
    const tx = this.tx;
    if (tx) {
      tx.bytesToServer += ev.bytes.client?.read ?? 0;
      tx.bytesToClient += ev.bytes.server?.read ?? 0;
    }
    this.clientEnded = true;
    this.serverState = 'none';
    this.serverKey = null;
    if (ev.reason === 'idle') {
      this.log('http.error', 'info', 'Idle timeout', {});
      this.end('ACCEPTED', 'idle timeout');
    } else if (ev.reason === 'error') this.end(this.verdict, `${ev.by ?? 'relay'}: ${ev.error ?? 'error'}`);
    else this.end(this.verdict);
  }

  /** Events every state treats alike: the session's start, timers, abort, the server connect. */
  private onSessionEvent(ev: ProxyEvent): void {
    switch (ev.type) {
      case 'start':
        this.lastActivity = ev.now;
        this.clientAddr = ev.client;
        this.emit({ type: 'setTimer', timer: 'idle', ms: this.opts.idleTimeoutMs });
        return;
      case 'connected':
        if (ev.stream !== 'server' || this.serverState !== 'connecting') return;
        this.serverState = 'open';
        this.serverAddrs = { local: ev.local, remote: ev.remote };
        this.server = new HttpReader('response', this.opts.limits);
        this.onServerConnected();
        return;
      case 'connectFailed':
        if (ev.stream !== 'server') return;
        this.serverState = 'none';
        this.serverKey = null;
        this.log('http.error', 'warn', 'Server connection failed', { error: ev.error });
        this.verdict = 'DENIED_BY_CONNECTION_FAIL';
        this.failTx(
          502,
          'Connection to the server failed',
          `The server could not be reached (${ev.error}).`,
          'DENIED_BY_CONNECTION_FAIL',
        );
        return;
      case 'timer':
        this.onTimer(ev.timer);
        return;
      case 'abort':
        this.log('http.info', 'info', 'Session aborted', { reason: ev.reason });
        this.end(this.verdict, ev.reason);
        return;
      case 'bodyRelayed':
        this.onBodyRelayed(ev);
        return;
      case 'data':
      case 'end':
      case 'closed':
      case 'drain':
      case 'listening':
      case 'listenFailed':
      case 'accepted':
      case 'relayStarted': // (only in a tunnel: handled there)
      case 'relayEnded':
      case 'tls': // the TLS layer in front (tls/inspect-gate.ts) keeps its own events
        return;
      default:
        assertNever(ev, 'event');
    }
  }

  private onClosed(stream: string, error?: string): void {
    if (stream === 'client') {
      // The client is gone: nothing left to answer.
      if (this.tx && !this.tunnel) this.account(this.tx, 'client closed');
      this.toIdle();
      this.end(this.verdict, error ? `client: ${error}` : undefined);
      return;
    }
    if (stream !== 'server') return;
    const was = this.serverState;
    this.serverState = 'none';
    this.serverKey = null;
    if (was === 'closing') {
      if (this.pendingConnect) {
        const p = this.pendingConnect;
        this.pendingConnect = null;
        this.serverState = 'connecting';
        this.serverKey = p.key;
        this.emit(p.cmd);
      }
      return;
    }
    // The server vanished: let the reader decide whether that ended a close-delimited body.
    this.server.finish();
    this.pump();
    if (this.tx && !this.finished) {
      this.failTx(
        502,
        'Server closed the connection',
        error ? `The server connection failed (${error}).` : 'The server closed the connection early.',
        'DENIED_BY_CONNECTION_FAIL',
      );
    }
  }

  private onTimer(timer: string): void {
    if (timer === 'idle' && this.nativeTunnel) return; // (stale: the native relay keeps the idle timeout)
    if (timer === 'idle' && this.bodyRelay) {
      // (the native relay moves a body this core does not see, and keeps the idle timeout for it)
      this.emit({ type: 'setTimer', timer: 'idle', ms: this.opts.idleTimeoutMs });
      return;
    }
    if (timer === 'idle') {
      const left = this.opts.idleTimeoutMs - (this.now - this.lastActivity);
      if (left > 0) {
        this.emit({ type: 'setTimer', timer: 'idle', ms: left });
        return;
      }
      this.log('http.error', 'info', 'Idle timeout', {});
      if (this.tx && !this.tx.respHeadSent && !this.tunnel) {
        this.failTx(504, 'Timeout', 'The connection was idle for too long.', 'DENIED_BY_LIMIT');
      } else this.end('ACCEPTED', 'idle timeout');
    } else if (timer === 'request' && this.requestTimer) {
      this.requestTimer = false;
      this.violation(408, 'request timeout', {});
      const page: ErrorPage = {
        status: 408,
        reason: reasonOf(408),
        info: 'Request timeout',
        msg: 'The request did not arrive in time.',
      };
      this.send(
        'client',
        errorResponse(this.opts.errorTemplate, page, this.opts.hostname, this.now, {
          close: true,
          headRequest: false,
        }),
      );
      this.end('DENIED_BY_LIMIT', 'request timeout');
    } else if (timer === 'response' && this.responseTimer) {
      this.responseTimer = false;
      this.failTx(504, 'Gateway timeout', 'The server did not answer in time.', 'DENIED_BY_CONNECTION_FAIL');
    }
  }

  // -------------------------------------------------------------------------------------------
  // the main loop: make as much progress as the buffered bytes allow

  private pump(): void {
    for (let guard = 0; guard < 1_000_000 && !this.finished && !this.tunnel; guard++) {
      const a = this.pumpServer();
      if (this.finished || this.tunnel) break;
      const b = this.pumpClient();
      if (!a && !b) break;
    }
    if (this.finished || this.tunnel) return;
    this.flowControl();
  }

  private flowControl(): void {
    // Request-head timer: runs from the first byte of a head until the head is complete.
    const headStarted = this.tx === null && !this.client.idle && !this.clientEnded;
    if (headStarted && !this.requestTimer) {
      this.requestTimer = true;
      this.emit({ type: 'setTimer', timer: 'request', ms: this.opts.requestTimeoutMs });
    } else if (!headStarted && this.requestTimer) {
      this.requestTimer = false;
      this.emit({ type: 'clearTimer', timer: 'request' });
    }
    const over = this.client.buffered > pauseThreshold(this.opts);
    if (over && !this.clientPaused) {
      this.clientPaused = true;
      this.emit({ type: 'pause', stream: 'client' });
    } else if (!over && this.clientPaused) {
      this.clientPaused = false;
      this.emit({ type: 'resume', stream: 'client' });
    }
  }

  /** Read from the client: the next request head (idle) or the current request's body (exchange).
   * Returns whether anything happened. */
  private pumpClient(): boolean {
    const conn = this.conn;
    if (conn.state === 'idle') return this.readRequestHead();
    if (conn.state === 'exchange') return this.readRequestBody(conn.tx);
    return false;
  }

  /** The client reader's next item; null after a protocol error (answered by clientError). */
  private readClient(): ReadItem | null {
    try {
      return this.client.read();
    } catch (e) {
      this.clientError(e);
      return null;
    }
  }

  private readRequestHead(): boolean {
    const item = this.readClient();
    if (item === null) return true;
    if (item.type === 'need') return false;
    if (item.type === 'eof') {
      this.end(this.verdict);
      return true;
    }
    if (item.type !== 'head' || item.head.kind !== 'request')
      throw bug(`reader returned ${item.type} between requests`);
    this.startRequest(item.head, item.framing);
    return true;
  }

  /** The request body goes to the server once the head went (a CONNECT has no body to read). */
  private readRequestBody(tx: Tx): boolean {
    if (tx.reqDone || !tx.sentToServer || tx.connectTunnel) return false;
    const item = this.readClient();
    if (item === null) return true;
    switch (item.type) {
      case 'need':
        this.maybeRelayBody(tx, 'client');
        return false;
      case 'body': {
        const { data, next } = this.drainBody(this.client, item.data);
        tx.bytesToServer += data.length;
        this.send('server', tx.chunkToServer ? chunkBytes(data) : data);
        if (next === null) {
          this.maybeRelayBody(tx, 'client');
          return true;
        }
        if (next.type !== 'end') throw bug(`reader returned ${next.type} inside a request`);
        tx.reqDone = true;
        if (tx.chunkToServer) this.send('server', LAST_CHUNK);
        return true;
      }
      case 'end':
        tx.reqDone = true;
        if (tx.chunkToServer) this.send('server', LAST_CHUNK);
        return true;
      default:
        throw bug(`reader returned ${item.type} inside a request`);
    }
  }

  /** Read from the server. Returns whether anything happened. */
  private pumpServer(): boolean {
    if (this.serverState !== 'open') return false;
    let item: ReturnType<HttpReader['read']>;
    try {
      item = this.server.read();
    } catch (e) {
      this.serverError(e);
      return true;
    }
    const tx = this.tx;
    switch (item.type) {
      case 'need':
        if (tx) this.maybeRelayBody(tx, 'server');
        return false;
      case 'eof':
        // Clean close between responses: forget this connection; the next request reconnects.
        this.closeServer();
        if (tx?.sentToServer) {
          this.failTx(
            502,
            'Server closed the connection',
            'The server closed the connection without answering.',
            'DENIED_BY_CONNECTION_FAIL',
          );
        }
        return true;
      case 'head':
        if (!tx) throw bug('response head without a transaction');
        this.onResponseHead(tx, item.head as ResponseHead, item.framing);
        return true;
      case 'body': {
        if (!tx) throw bug('response body without a transaction');
        const { data, next } = this.drainBody(this.server, item.data);
        tx.bytesToClient += data.length;
        this.send('client', tx.chunkToClient ? chunkBytes(data) : data);
        if (next === null) {
          this.maybeRelayBody(tx, 'server');
          return true;
        }
        if (next.type !== 'end') throw bug(`reader returned ${next.type} inside a response`);
        return this.endResponse(tx);
      }
      case 'end':
        if (!tx) throw bug('response end without a transaction');
        return this.endResponse(tx);
    }
  }

  /** A body of known length, passed on as it is (not re-chunked), with at least
   * DEFAULTS.httpBodyRelayMinBytes still to come and nothing buffered: the rest goes on the native
   * relay, the response's from the server to the client, the request's (once its head went) from the
   * client to the server. The driver may decline (bodyRelayed 'declined'). */
  private maybeRelayBody(tx: Tx, from: 'client' | 'server'): void {
    if (this.bodyRelay || this.serverState !== 'open') return;
    if (from === 'server' && (tx === this.responseRelayed || tx.chunkToClient || !tx.respHeadSent)) return;
    if (
      from === 'client' &&
      (tx === this.requestRelayed || tx.chunkToServer || !tx.sentToServer || tx.reqDone)
    )
      return;
    const left = (from === 'server' ? this.server : this.client).bodyLeft;
    if (left < DEFAULTS.httpBodyRelayMinBytes) return;
    this.bodyRelay = { tx, from };
    this.emit({
      type: 'relayBody',
      from,
      to: from === 'server' ? 'client' : 'server',
      bytes: left,
      idleMs: this.opts.idleTimeoutMs,
    });
  }

  /** The body relay's answer: its bytes are the response's (the reader skips them), then on as before.
   * The source ending early is seen by the reader at the 'end' event that follows; a failed or idle
   * relay ends the session (as a failed socket would in JavaScript). */
  private onBodyRelayed(ev: Extract<ProxyEvent, { type: 'bodyRelayed' }>): void {
    const r = this.bodyRelay;
    if (!r || r.from !== ev.from) return;
    this.bodyRelay = null;
    const { tx } = r;
    const response = r.from === 'server';
    if (ev.reason !== 'idle') this.lastActivity = ev.now;
    if (response) tx.bytesToClient += ev.written;
    else tx.bytesToServer += ev.written;
    if (ev.reason === 'error' || ev.reason === 'idle') {
      // (the reader is not told: the session ends here)
      if (ev.reason === 'idle') this.log('http.error', 'info', 'Idle timeout', {});
      else
        this.log('http.error', 'warn', `${response ? 'Response' : 'Request'} body relay failed`, {
          error: ev.error ?? 'error',
        });
      this.end(this.verdict, ev.reason === 'idle' ? 'idle timeout' : `body relay: ${ev.error ?? 'error'}`);
      return;
    }
    if (response) {
      this.responseRelayed = tx;
      this.serverMore = ev.more === true;
      this.server.skipBody(ev.read);
    } else {
      this.requestRelayed = tx;
      this.client.skipBody(ev.read);
    }
    if (ev.reason !== 'stopped') this.pump();
  }

  /** The response (or an interim one) was read to its end. */
  private endResponse(tx: Tx): boolean {
    if (tx.status !== null && tx.status < 200) return true; // an interim response ended
    if (tx.chunkToClient) this.send('client', LAST_CHUNK);
    this.finishTx(tx);
    return true;
  }

  /** Every body item already buffered, as one piece (review finding 5: a body of one-byte chunks
   * cost one command, one chunk header and one write per byte; now one per pump). Returns the
   * bytes and the item that stopped the run ('end'), or null when the reader needs more. A reader
   * error after some bytes is left for the next read() to throw (the reader repeats it). */
  private drainBody(r: HttpReader, first: Uint8Array): { data: Uint8Array; next: ReadItem | null } {
    let parts: Uint8Array[] | null = null;
    let total = first.length;
    for (;;) {
      let it: ReadItem;
      try {
        it = r.read();
      } catch {
        break;
      }
      if (it.type !== 'body') {
        if (it.type === 'need') break;
        return { data: parts ? concat(parts, total) : first, next: it };
      }
      if (parts === null) parts = [first];
      parts.push(it.data);
      total += it.data.length;
      if (total >= DEFAULTS.relayBufferBytes) break;
    }
    return { data: parts ? concat(parts, total) : first, next: null };
  }

  // -------------------------------------------------------------------------------------------
  // requests

  private startRequest(head: RequestHead, framing: Framing): void {
    this.requests++;
    const tx: Tx = {
      head,
      framing,
      method: head.method,
      url: head.target,
      start: this.now,
      closeAfter: false,
      reqDone: false,
      serverHead: null,
      sentToServer: false,
      chunkToServer: framing.type === 'chunked',
      upgrade: null,
      connectTunnel: false,
      connectName: null,
      respHeadSent: false,
      status: null,
      chunkToClient: false,
      bytesToServer: 0,
      bytesToClient: 0,
      tunnel: false,
    };
    this.conn = { state: 'exchange', tx };
    // A bodiless message's end is the reader's next item: take it now, the request is complete.
    const bodiless = framing.type === 'none' || (framing.type === 'length' && framing.length === 0);
    if (bodiless && this.client.read().type !== 'end') throw bug('no end after a bodiless head');
    tx.reqDone = bodiless;
    const decision = planRequest(head, this.opts, {
      inband: this.ctx.inband,
      ...(this.ctx.clientLocal ? { clientLocal: this.ctx.clientLocal } : {}),
      requestNumber: this.requests,
      framing,
      ...(this.ctx.tls ? { tls: true } : {}),
    });
    tx.url = decision.url;
    tx.closeAfter = decision.closeAfter;
    if (decision.kind === 'refusal') this.refuse(decision);
    else this.forward(tx, decision);
  }

  /** Carry out a refusal planRequest decided. */
  private refuse(r: Refusal): void {
    switch (r.action) {
      case 'invalid':
        this.clientError(r.error);
        return;
      case 'abort':
        this.violation(0, r.reason, r.fields);
        this.end('ABORTED_BY_POLICY_ACTION', r.info);
        return;
      case 'respond':
        this.violation(r.page.status, r.reason, r.fields);
        if (r.close) this.tx!.closeAfter = true;
        this.localResponse(r.page, r.template ?? this.opts.errorTemplate, r.verdict);
        return;
      default:
        assertNever(r, 'refusal');
    }
  }

  /** Send the planned request: on the open server connection when it goes to the same server, else
   * on a new one (after the old one has closed). */
  private forward(tx: Tx, plan: Plan): void {
    tx.upgrade = plan.upgrade;
    tx.connectTunnel = plan.connectTunnel;
    const asked = plan.connectTunnel ? plan.connect.inband?.host : undefined;
    tx.connectName = asked && canonicalAddress(asked) === null ? asked : null;
    tx.serverHead = plan.serverHead;
    const key = plan.serverKey;
    const connectOpts = plan.connect;
    if (this.serverState === 'open' && this.serverKey === key && !tx.connectTunnel) {
      this.onServerConnected();
      return;
    }
    if (this.serverState === 'open' || this.serverState === 'connecting') this.closeServer();
    const cmd: ProxyCommand = { type: 'connect', stream: 'server', options: connectOpts };
    if (this.serverState === 'closing') {
      this.pendingConnect = { key, cmd };
      return;
    }
    this.serverState = 'connecting';
    this.serverKey = key;
    this.emit(cmd);
  }

  /** The server connection is ready for the current request. */
  private onServerConnected(): void {
    const tx = this.tx;
    if (!tx || tx.sentToServer) return;
    if (tx.connectTunnel) {
      tx.sentToServer = true;
      tx.reqDone = true;
      tx.status = 200;
      tx.respHeadSent = true;
      this.send('client', responseHeadBytes(200, 'Connection established', []));
      if (this.ctx.inspectConnect && this.serverAddrs) {
        this.startNested(tx, this.serverAddrs);
        return;
      }
      this.startTunnel(tx);
      return;
    }
    tx.sentToServer = true;
    this.server.expectResponse(tx.method);
    this.send('server', tx.serverHead!);
    tx.serverHead = null;
    this.responseTimer = true;
    this.emit({ type: 'setTimer', timer: 'response', ms: this.opts.responseTimeoutMs });
    this.pump();
  }

  // -------------------------------------------------------------------------------------------
  // responses

  private onResponseHead(tx: Tx, head: ResponseHead, framing: Framing): void {
    const o = this.opts;
    const status = head.status;
    if (this.responseTimer && status >= 200) {
      this.responseTimer = false;
      this.emit({ type: 'clearTimer', timer: 'response' });
    }
    if (status === 101 && tx.upgrade === null) {
      this.serverError(
        new ProtocolError('server', 502, '101 Switching Protocols without a permitted Upgrade request'),
      );
      return;
    }
    tx.status = status;
    // A response before the whole request was read (e.g. an early 413): the rest of the request
    // cannot be skipped reliably, so the client connection closes after this response.
    if (!tx.reqDone && status >= 200) tx.closeAfter = true;

    if (status >= 200 && !this.responsePermitted(tx, status)) return;

    const conn = connectionTokens(head.headers);
    const e2e = head.headers.filter((h) => {
      return forwardable(lowerName(h), conn);
    });
    const pol = applyHeaderPolicy(e2e, o.responseHeader);
    if (!pol.ok) {
      this.violation(0, 'response header aborted by policy', { header: pol.header });
      this.end('ABORTED_BY_POLICY_ACTION', `response header ${pol.header} aborted by policy`);
      return;
    }
    const headers = pol.headers;
    const clientIs10 = tx.head.version.minor === 0;

    if (status < 200 && status !== 101) {
      // Interim responses go to HTTP/1.1 clients only (RFC 9110 §15.2).
      if (!clientIs10) this.send('client', responseHeadBytes(status, head.reason, headers));
      return;
    }
    if (framing.type === 'tunnel') {
      this.tunnelResponse(tx, head, headers);
      return;
    }
    this.relayResponseHead(tx, head, framing, conn, headers);
  }

  /** The response policy by method and status (Zorp response hash); false when the response was
   * answered in its place (deny, reject) or the session ended (abort). */
  private responsePermitted(tx: Tx, status: number): boolean {
    const act = responseAction(this.opts, tx.method, status);
    if (act.action === 'accept') return true;
    if (act.action === 'abort') {
      this.violation(0, 'response aborted by policy', { status });
      this.end('ABORTED_BY_POLICY_ACTION', `response ${status} aborted by policy`);
      return false;
    }
    // The server's body is not wanted: drop that connection and answer ourselves.
    this.closeServer();
    const page: ErrorPage =
      act.action === 'deny'
        ? {
            status: 502,
            reason: reasonOf(502),
            info: 'Response denied',
            msg: `Response ${status} to ${tx.method} denied by policy.`,
          }
        : {
            status: act.status,
            reason: reasonOf(act.status),
            info: act.text || 'Response rejected',
            msg: act.text || `Response ${status} rejected by policy.`,
          };
    this.violation(
      page.status,
      `response ${status} ${act.action === 'deny' ? 'denied' : 'rejected'} by policy`,
      {
        response_status: status,
      },
    );
    tx.status = page.status;
    if (!tx.reqDone) tx.closeAfter = true;
    this.localResponse(page, this.opts.errorTemplate, 'DENIED_BY_POLICY');
    return false;
  }

  /** 101 to a permitted Upgrade, or 2xx to a CONNECT sent to the parent proxy: the head goes to the
   * client and the connection becomes a tunnel. */
  private tunnelResponse(tx: Tx, head: ResponseHead, headers: Header[]): void {
    const status = head.status;
    if (status === 101) {
      const up = head.headers.find((h) => lowerName(h) === 'upgrade');
      if (!up) {
        this.serverError(new ProtocolError('server', 502, '101 without an Upgrade header'));
        return;
      }
      if (!upgradeWasAsked(up.value, tx.upgrade ?? '')) {
        this.serverError(
          new ProtocolError('server', 502, `101 to a protocol the client did not ask for (${up.value})`),
        );
        return;
      }
      headers.push({ name: 'Connection', value: 'Upgrade' }, { name: 'Upgrade', value: up.value });
    }
    tx.respHeadSent = true;
    this.send('client', responseHeadBytes(status, head.reason, headers));
    this.startTunnel(tx);
  }

  /** A final response head for the client, framed for it (length, chunked, or close). */
  private relayResponseHead(
    tx: Tx,
    head: ResponseHead,
    framing: Framing,
    conn: Set<string>,
    headers: Header[],
  ): void {
    const o = this.opts;
    const status = head.status;
    const clientIs10 = tx.head.version.minor === 0;
    // The server will close after this response: forget the connection once it is read.
    if (framing.type === 'close' || conn.has('close') || head.version.minor === 0) this.serverKey = null;
    switch (framing.type) {
      case 'length':
        headers.push({ name: 'Content-Length', value: String(framing.length) });
        break;
      case 'chunked':
      case 'close':
        if (clientIs10) tx.closeAfter = true;
        else {
          tx.chunkToClient = true;
          headers.push({ name: 'Transfer-Encoding', value: 'chunked' });
        }
        break;
      case 'none': {
        // HEAD and 304 may tell the length of the representation (RFC 9110 §8.6); 204 must not.
        const cl = head.headers.find((h) => lowerName(h) === 'content-length');
        if (cl && status !== 204) headers.push({ name: 'Content-Length', value: cl.value });
        break;
      }
    }
    if (tx.method === 'CONNECT') tx.closeAfter = true; // a refused CONNECT through a parent proxy
    if (tx.closeAfter) headers.push({ name: 'Connection', value: 'close' });
    else if (clientIs10) headers.push({ name: 'Connection', value: 'keep-alive' });
    if (o.addVia) headers.push({ name: 'Via', value: `1.${head.version.minor} ${o.hostname}` });
    tx.respHeadSent = true;
    this.send('client', responseHeadBytes(status, head.reason || reasonOf(status), headers));
  }

  private finishTx(tx: Tx): void {
    // The client's FIN goes right behind the response, before the accounting: the client, which reads
    // the response and closes too, then answers a FIN instead of sending one first. Closing first
    // leaves this side's end of the connection to the client's close (as HAProxy's does), where
    // closing second tears both ends down inside this side's shutdown(). Not over TLS: there the
    // close_notify first cost a fifth of the new TLS sessions per second (bench/README.md,
    // "Acknowledgements on data, the client's FIN first").
    if (tx.closeAfter && !this.ctx.tls) this.emit({ type: 'shutdown', stream: 'client' });
    this.account(tx);
    this.toIdle();
    const more = this.serverMore;
    this.serverMore = false;
    if (this.serverState === 'open' && (this.server.buffered > 0 || more)) {
      // Bytes after a complete response (a body on HEAD, 204 or 304, or junk; or behind a body the
      // native relay passed on): they would be read as the answer to the next request, so that
      // connection is not reused.
      this.log('http.violation', 'warn', 'Server sent bytes after the response; connection closed', {
        side: 'server',
        bytes: this.server.buffered,
      });
      this.closeServer();
    }
    if (this.serverKey === null && this.serverState === 'open') this.closeServer();
    // A half-closed client may still have pipelined requests buffered: the pump reads them, and
    // ends the session at the reader's 'eof'.
    if (tx.closeAfter) this.end(this.verdict);
  }

  /** CONNECT with tls inspect: the tunnel's bytes go to a nested session on the connection the
   * CONNECT opened (its server is pinned to the CONNECT target). The outer session's timers stop; the
   * nested one has its own. */
  private startNested(tx: Tx, server: { local: Addr; remote: Addr }): void {
    tx.tunnel = true;
    for (const [on, timer] of [
      [this.responseTimer, 'response'],
      [this.requestTimer, 'request'],
      [true, 'idle'],
    ] as const)
      if (on) this.emit({ type: 'clearTimer', timer });
    this.responseTimer = false;
    this.requestTimer = false;
    if (this.clientPaused) {
      this.clientPaused = false;
      this.emit({ type: 'resume', stream: 'client' });
    }
    this.log('http.info', 'info', 'Tunnel established; inspecting its TLS', {
      method: tx.method,
      url: tx.url,
    });
    this.account(tx);
    const inner = this.ctx.inspectConnect!(server.remote, tx.connectName);
    const nested = new NestedTunnel(inner, server);
    this.conn = { state: 'nested', tx, nested };
    const pending = this.client.takeRemaining();
    const start = nested.handle({
      type: 'start',
      now: this.now,
      client: this.clientAddr ?? server.local,
      clientLocal: server.remote,
    });
    for (const c of start) this.emit(c);
    if (pending.length)
      for (const c of nested.handle({ type: 'data', now: this.now, stream: 'client', data: pending }))
        this.emit(c);
  }

  private startTunnel(tx: Tx): void {
    tx.tunnel = true;
    this.conn = { state: 'tunnel', tx };
    if (this.responseTimer) {
      this.responseTimer = false;
      this.emit({ type: 'clearTimer', timer: 'response' });
    }
    if (this.requestTimer) {
      this.requestTimer = false;
      this.emit({ type: 'clearTimer', timer: 'request' });
    }
    if (this.clientPaused) {
      this.clientPaused = false;
      this.emit({ type: 'resume', stream: 'client' });
    }
    const fromServer = this.server.takeRemaining();
    const fromClient = this.client.takeRemaining();
    if (fromServer.length) this.relay('server', fromServer);
    if (fromClient.length) this.relay('client', fromClient);
    if (this.clientEnded) this.emit({ type: 'shutdown', stream: 'server' });
    this.log('http.info', 'info', 'Tunnel established', {
      method: tx.method,
      url: tx.url,
    });
    // Only bytes to copy from here on: the driver may hand both sockets to the native relay (issue 14;
    // it declines with a TLS layer or the relay off, and the tunnel is copied here as before)
    if (!this.clientEnded && this.serverState === 'open')
      this.emit({ type: 'relay', a: 'client', b: 'server', idleMs: this.opts.idleTimeoutMs });
  }

  private relay(from: string, data: Uint8Array): void {
    const tx = this.tx;
    if (from === 'client') {
      if (tx) tx.bytesToServer += data.length;
      this.send('server', data);
    } else if (from === 'server') {
      if (tx) tx.bytesToClient += data.length;
      this.send('client', data);
    }
  }

  /** Answer the current request from the proxy. The connection stays open only when the request
   * had no body left to read (otherwise we could not tell where the next request starts). */
  private localResponse(page: ErrorPage, template: string, verdict: Verdict): void {
    const tx = this.tx!;
    const keep = !tx.closeAfter && tx.reqDone && tx.method !== 'CONNECT';
    if (!tx.respHeadSent) {
      this.send(
        'client',
        errorResponse(template, page, this.opts.hostname, this.now, {
          close: !keep,
          headRequest: tx.method === 'HEAD',
        }),
      );
      tx.respHeadSent = true;
    }
    tx.status = page.status;
    if (keep) {
      this.account(tx);
      this.toIdle();
      return;
    }
    this.verdict = verdict;
    this.account(tx);
    this.toIdle();
    this.end(verdict);
  }

  /** The current exchange cannot go on (server failed, timed out): answer if we still can, close. */
  private failTx(status: number, info: string, msg: string, verdict: Verdict): void {
    const tx = this.tx;
    if (tx && !tx.respHeadSent) {
      tx.closeAfter = true;
      this.violation(status, info, {});
      this.localResponse({ status, reason: reasonOf(status), info, msg }, this.opts.errorTemplate, verdict);
      return;
    }
    if (tx) this.account(tx, info);
    this.toIdle();
    this.end(tx ? verdict : this.verdict, info);
  }

  private clientError(e: unknown): void {
    if (!(e instanceof ProtocolError)) throw e;
    const tx = this.tx;
    const verdict: Verdict = e.id === 'PROXY_LIMIT' ? 'DENIED_BY_LIMIT' : 'DENIED_BY_POLICY';
    if (tx?.respHeadSent) {
      // Broken request body after the response started: nothing to say any more.
      this.violation(e.reply, e.message, {});
      this.account(tx, e.message);
      this.toIdle();
      this.end(verdict, e.message);
      return;
    }
    this.violation(e.reply, e.message, {});
    const page: ErrorPage = {
      status: e.reply,
      reason: reasonOf(e.reply),
      info: reasonOf(e.reply),
      msg: e.message,
    };
    const head = tx?.method === 'HEAD';
    this.send(
      'client',
      errorResponse(this.opts.errorTemplate, page, this.opts.hostname, this.now, {
        close: true,
        headRequest: head,
      }),
    );
    if (tx) {
      tx.status = e.reply;
      this.account(tx, e.message);
      this.toIdle();
    }
    this.end(verdict, e.message);
  }

  private serverError(e: unknown): void {
    if (!(e instanceof ProtocolError)) throw e;
    this.log('http.violation', 'warn', 'Invalid response from the server', {
      error: e.message,
      side: 'server',
    });
    if (!this.tx) {
      // Bytes from the server while no request was outstanding: drop that connection only.
      this.closeServer();
      return;
    }
    this.closeServer();
    this.failTx(
      502,
      'Invalid response from the server',
      `The server sent an invalid response (${e.message}).`,
      'DENIED_BY_POLICY',
    );
  }

  // -------------------------------------------------------------------------------------------
  // helpers

  private closeServer(): void {
    if (this.serverState === 'open' || this.serverState === 'connecting') {
      this.emit({ type: 'close', stream: 'server' });
      this.serverState = 'closing';
    }
    this.serverKey = null;
    this.server = new HttpReader('response', this.opts.limits);
  }

  private end(verdict: Verdict, info?: string): void {
    if (this.finished) return;
    if (this.tx?.tunnel) this.account(this.tx);
    this.conn = { state: 'done' };
    this.out.end(verdict, info, {
      clearTimers: ['idle', 'request', 'response'],
      close: this.serverState !== 'none' ? ['client', 'server'] : ['client'],
    });
  }

  private send(stream: string, data: Uint8Array): void {
    this.out.send(stream, data);
  }

  private emit(c: ProxyCommand): void {
    this.out.emit(c);
  }

  private log(
    category: string,
    level: 'error' | 'warn' | 'info' | 'debug',
    msg: string,
    fields: Record<string, unknown>,
  ): void {
    this.out.log(category, level, msg, fields);
  }

  private violation(status: number, reason: string, fields: Record<string, unknown>): void {
    const tx = this.tx;
    // The daemon appends the fields Zorp-style: "Request refused; reason='…', status='403', …".
    this.out.violation('Request refused', {
      reason,
      ...(status ? { status } : {}),
      ...(tx ? { method: tx.method, url: tx.url } : {}),
      ...fields,
    });
  }

  /** Zorp's accounting line (http.accounting), one per request. */
  private account(tx: Tx, error?: string): void {
    const duration = this.now - tx.start;
    this.log('http.accounting', 'info', 'Accounting', {
      method: tx.method,
      url: tx.url,
      status: tx.status ?? 0,
      bytes: tx.bytesToClient,
      bytes_to_client: tx.bytesToClient,
      bytes_to_server: tx.bytesToServer,
      duration_ms: duration,
      ...(error ? { error } : {}),
    });
    this.emit({
      type: 'account',
      fields: {
        http_requests: 1,
        http_bytes_to_client: tx.bytesToClient,
        http_bytes_to_server: tx.bytesToServer,
      },
    });
  }
}

/** Merge sends to the same stream that only bookkeeping commands separate (a response head and its
 * body, a request head and the body bytes that came with it): one write instead of several, so a
 * small response leaves in one segment and the peer does not wait for the second write. */
function coalesceSends(cmds: ProxyCommand[]): ProxyCommand[] {
  let sends = 0;
  let first = -1;
  let second = -1;
  for (let i = 0; i < cmds.length; i++)
    if (cmds[i]!.type === 'send') {
      sends++;
      if (first < 0) first = i;
      else if (second < 0) second = i;
    }
  if (sends < 2) return cmds;
  if (sends === 2) return coalesceTwo(cmds, first, second);
  const out: ProxyCommand[] = [];
  const runs: { index: number; stream: string; parts: Uint8Array[] }[] = [];
  const open = new Map<string, (typeof runs)[number]>();
  for (const c of cmds) {
    if (c.type === 'send') {
      const o = open.get(c.stream);
      if (o) o.parts.push(c.data);
      else {
        const run = { index: out.length, stream: c.stream, parts: [c.data] };
        runs.push(run);
        open.set(c.stream, run);
        out.push(c);
      }
      continue;
    }
    // Anything but bookkeeping ends every run (sends stay ordered against closes, shutdowns,
    // connects and pauses).
    if (!isBookkeeping(c.type)) open.clear();
    out.push(c);
  }
  for (const r of runs)
    if (r.parts.length > 1) out[r.index] = { type: 'send', stream: r.stream, data: Buffer.concat(r.parts) };
  return out;
}

/** Commands that do not end a run of sends (everything else keeps sends ordered against it). */
function isBookkeeping(type: ProxyCommand['type']): boolean {
  return type === 'log' || type === 'account' || type === 'setTimer' || type === 'clearTimer';
}

/** coalesceSends for exactly two sends (a head and a body, the usual case): no run bookkeeping. */
function coalesceTwo(cmds: ProxyCommand[], i: number, j: number): ProxyCommand[] {
  const a = cmds[i] as Extract<ProxyCommand, { type: 'send' }>;
  const b = cmds[j] as Extract<ProxyCommand, { type: 'send' }>;
  if (a.stream !== b.stream) return cmds;
  for (let k = i + 1; k < j; k++) if (!isBookkeeping(cmds[k]!.type)) return cmds;
  const out = cmds.slice(0, j);
  out[i] = { type: 'send', stream: a.stream, data: Buffer.concat([a.data, b.data]) };
  for (let k = j + 1; k < cmds.length; k++) out.push(cmds[k]!);
  return out;
}

function concat(parts: Uint8Array[], total: number): Uint8Array {
  return Buffer.concat(parts, total);
}

/** A 101's Upgrade must name only protocols of the request's Upgrade (RFC 9110 §7.8), which the
 * policy already permitted. */
function upgradeWasAsked(answered: string, asked: string): boolean {
  const want = new Set(splitList(asked));
  const got = splitList(answered);
  return got.length > 0 && got.every((p) => p !== '' && want.has(p));
}

/** The nested session of an inspected CONNECT tunnel. Its server connection is the one the CONNECT
 * opened: its first `connect` of 'server' is answered at once with that connection's 'connected'; a
 * later one (the server closed a kept-alive connection) connects to the same address again. */
class NestedTunnel {
  private handed = false;

  constructor(
    private readonly inner: ProxyCore,
    private readonly server: { local: Addr; remote: Addr },
  ) {}

  handle(ev: ProxyEvent): ProxyCommand[] {
    return this.map(this.inner.handle(ev), ev.now);
  }

  private map(cmds: ProxyCommand[], now: number): ProxyCommand[] {
    const out: ProxyCommand[] = [];
    for (const c of cmds) {
      if (c.type === 'connect' && c.stream === 'server') {
        if (!this.handed) {
          this.handed = true;
          const ev: ProxyEvent = { type: 'connected', now, stream: 'server', ...this.server };
          out.push(...this.map(this.inner.handle(ev), now));
        } else out.push({ type: 'connect', stream: 'server', options: { target: this.server.remote } });
        continue;
      }
      out.push(c);
    }
    return out;
  }
}
