// The sans-IO contract between a protocol core and the socket driver (src/net/driver.ts).
//
// A core is a state machine: the driver feeds it events (bytes arrived, a stream ended, a connect
// finished, a timer fired) and it answers with commands (send bytes, connect, listen, close, set a
// timer, log, finish). A core never touches a socket, a timer or the clock itself; `now` comes with
// every event. That keeps every core testable with scripted event/command sequences and fuzzable.
//
// Streams are named by the core. Two are always there: 'client' (the accepted, diverted connection)
// and 'server' (opened by the core with `connect` and no explicit target: the session's router and
// chainer pick the server). A core may open more streams (FTP data channels) with explicit targets.

/** An address as sockets see it (canonical text, IPv4 never in ::ffff: form). */
export interface Addr {
  host: string;
  port: number;
  family: 4 | 6;
}

export type StreamId = string;
export type TimerId = string;

export type LogLevel = 'error' | 'warn' | 'info' | 'debug' | 'trace';

// ---------------------------------------------------------------------------------------------
// Events: driver -> core

export type ProxyEvent =
  /** The session starts: the client stream is open. */
  | { type: 'start'; now: number; client: Addr; clientLocal: Addr }
  /** Bytes from a stream. The core owns the buffer (the driver does not reuse it). */
  | { type: 'data'; now: number; stream: StreamId; data: Uint8Array }
  /** The peer half-closed its sending side (FIN). */
  | { type: 'end'; now: number; stream: StreamId }
  /** A stream is fully closed (after close, reset or error). `error` says why when it was not clean. */
  | { type: 'closed'; now: number; stream: StreamId; error?: string }
  /** A stream's send buffer has drained below its limit after `send` returned backpressure. */
  | { type: 'drain'; now: number; stream: StreamId }
  /** An outgoing connect finished. */
  | { type: 'connected'; now: number; stream: StreamId; local: Addr; remote: Addr }
  | { type: 'connectFailed'; now: number; stream: StreamId; error: string; target?: Addr }
  /** A `listen` is ready (port allocated). */
  | { type: 'listening'; now: number; listener: StreamId; local: Addr }
  | { type: 'listenFailed'; now: number; listener: StreamId; error: string }
  /** A listener accepted a connection; it becomes stream `stream`. */
  | { type: 'accepted'; now: number; listener: StreamId; stream: StreamId; local: Addr; remote: Addr }
  | { type: 'timer'; now: number; timer: TimerId }
  /** The daemon asks the session to end (stop, session kill). */
  | { type: 'abort'; now: number; reason: string }
  /** The driver took the streams of a `relay` command over: it copies their bytes natively now. No
   * data/end/closed/drain events come for them any more, only `relayEnded` (or nothing, if the driver
   * declined the relay: then the core keeps getting the usual events and copies in JavaScript). */
  | { type: 'relayStarted'; now: number; a: StreamId; b: StreamId }
  /** The native relay is over and both streams are closed. `by` closed (EOF) or failed first; `bytes`
   * are what each stream read and had written during the relay (the core's own sends excluded).
   * Reason 'stopped': the core closed one of the streams itself (the relay ended there and then; the
   * event follows the core's commands of that event). */
  | {
      type: 'relayEnded';
      now: number;
      reason: 'closed' | 'idle' | 'error' | 'stopped';
      by: StreamId | null;
      error?: string;
      bytes: Record<StreamId, { read: number; written: number }>;
    }
  /** The answer to `relayBody`. `read` bytes were taken from `from` (the core's reader skips them)
   * and `written` reached `to`. done: all of them; declined: none, the core reads `from` as before;
   * closed: `from` ended first (its 'end' event follows); error / idle: the relay failed (the core
   * gives up on both streams); stopped: the core closed one of them meanwhile. */
  | {
      type: 'bodyRelayed';
      now: number;
      from: StreamId;
      to: StreamId;
      reason: 'done' | 'declined' | 'closed' | 'error' | 'idle' | 'stopped';
      read: number;
      written: number;
      error?: string;
      /** done: more bytes were in `from` right behind the relayed ones (as if read with them). */
      more?: boolean;
    }
  /** A `startTls` finished: from now on the stream's data/end/closed events are the plaintext of the
   * TLS session (ok), or the handshake failed and the stream is closed (a `closed` event follows). */
  | {
      type: 'tls';
      now: number;
      stream: StreamId;
      ok: boolean;
      /** Why not (a small fixed set, a metric label): server-side ServerFailure, or 'client_handshake'. */
      reason?: string;
      detail?: string;
      info: TlsHandshakeInfo;
    };

/** What a handshake showed (the `tls.session` log line, `tzorp sessions --json` under `tls`). */
export interface TlsHandshakeInfo {
  sni: string | null;
  version: string | null;
  cipher: string | null;
  alpn: string | null;
  /** The peer certificate's subject and issuer, one line each (server side only). */
  subject: string | null;
  issuer: string | null;
  /** Server side: 'ok', 'disabled' (server_verify: false) or the failure; client side: null. */
  verify: string | null;
  /** Server side: the certificate's DNS names and IP addresses. */
  altNames: string[];
}

/** How a service's TLS handshakes are made (inspect mode): built once per generation (bind.ts) and
 * carried by `startTls` commands as it is; the driver uses it, the core only passes it on. */
export interface TlsEndpoint {
  minVersion: 'TLSv1.2' | 'TLSv1.3';
  /** server_verify. */
  verify: boolean;
  /** server_ca_file's PEM; undefined = node's bundled roots. */
  serverCa?: string;
  /** Leaf certificates for names, signed by the service's CA (certs.ts LeafCache). */
  leaf(names: readonly string[], nowMs: number): Promise<{ certPem: string; keyPem: string }>;
}

/** One side of a TLS layer on a stream. */
export type TlsSide =
  /** The client side: we are the TLS server, with a certificate for `names`; `held` are bytes already
   * read from the stream (the ClientHello), replayed into the handshake first. */
  | { role: 'terminate'; names: string[]; held?: Uint8Array; alpn?: string[] }
  /** The server side: we are the TLS client; `sni` sent (null: none), the certificate checked against
   * `verifyName`. */
  | { role: 'originate'; sni: string | null; verifyName: string; alpn?: string[] }
  /** The server side of another connection to the same server (an FTP data channel): made as stream
   * `from`'s origination was (its SNI, name check and trust) and offering `from`'s TLS session
   * (servers such as vsftpd refuse a data connection that does not resume the control connection's
   * session). A resumed session was verified on `from`; one the server does not resume is verified
   * again. */
  | { role: 'resume'; from: StreamId };

// ---------------------------------------------------------------------------------------------
// Commands: core -> driver

export interface ConnectOptions {
  /** Explicit target; absent for 'server' = ask the session's router/chainer. For an inband router
   * (HTTP absolute URI, FTP USER user@host) the core passes the target it read as `inband`. */
  target?: Addr;
  inband?: { host: string; port: number };
  /** Local address/port to bind before connecting; `transparent` allows a foreign address (forging). */
  local?: { host: string; port: number; transparent: boolean };
  /** The core writes on this stream as soon as it is connected (an HTTP request): the handshake's
   * last ACK may wait for those bytes and ride on them. Never for a server that may speak first. */
  sendsFirst?: boolean;
}

export type ProxyCommand =
  | { type: 'send'; stream: StreamId; data: Uint8Array }
  /** Half-close: send FIN after the queued data; keep reading. */
  | { type: 'shutdown'; stream: StreamId }
  /** Close the stream (after flushing queued data unless `reset`). */
  | { type: 'close'; stream: StreamId; reset?: boolean }
  /** Stop / start reading from a stream (backpressure, or a core that is not ready for more). */
  | { type: 'pause'; stream: StreamId }
  | { type: 'resume'; stream: StreamId }
  | { type: 'connect'; stream: StreamId; options: ConnectOptions }
  /** Open a (transparent) listener; `port` 0 = any, or a range to pick from. */
  | {
      type: 'listen';
      listener: StreamId;
      host: string;
      port: number | { min: number; max: number };
      transparent: boolean;
      /** Accept only connections from this host (bounce protection); others are closed at once. */
      acceptFrom?: string;
      /** Accept at most this many connections, then close the listener. */
      maxAccepts?: number;
    }
  | { type: 'unlisten'; listener: StreamId }
  | { type: 'setTimer'; timer: TimerId; ms: number }
  | { type: 'clearTimer'; timer: TimerId }
  | { type: 'log'; category: string; level: LogLevel; msg: string; fields?: Record<string, unknown> }
  /** Count bytes or events for the session summary and metrics. */
  | { type: 'account'; fields: Record<string, number | string> }
  /** From now on only copy bytes between streams a and b, both ways, with half-close and an idle
   * timeout (ms, 0 = none): the driver may hand both to the native relay (it says so with
   * `relayStarted`) or decline silently. The core sends nothing more to a or b itself afterwards; a
   * `close` of either ends the relay. Issued when the core's own buffers toward a and b are sent. */
  | { type: 'relay'; a: StreamId; b: StreamId; idleMs: number }
  /** The next `bytes` bytes of `from` only go to `to` (a body of known length): the driver may copy
   * them natively. Exactly one `bodyRelayed` answers; until then no data event comes from `from`
   * and sends to `to` wait (they go after the relayed bytes). Both streams stay the core's. */
  | { type: 'relayBody'; from: StreamId; to: StreamId; bytes: number; idleMs: number }
  /** Put TLS on an open stream (inspect mode): its socket is taken out of the session until the handshake
   * is done; sends meanwhile are queued; a `tls` event tells how it went. */
  | { type: 'startTls'; stream: StreamId; side: TlsSide; endpoint: TlsEndpoint }
  /** The session is over: the driver closes what is still open and writes the connection summary. */
  | { type: 'done'; verdict: Verdict; info?: string };

/** Zorp's connection-summary verdicts. */
export type Verdict =
  | 'ACCEPTED'
  | 'DENIED_BY_POLICY'
  | 'DENIED_BY_LIMIT'
  | 'DENIED_BY_CONNECTION_FAIL'
  | 'DENIED_BY_UNKNOWN_FAIL'
  | 'ABORTED_BY_POLICY_ACTION'
  | 'INVALID_POLICY_CALL';

/** A protocol core. `handle` is called for every event, in order, and returns the commands to run,
 * in order. It must not throw for anything a peer can send (that is a protocol reply + close); a throw
 * is a bug in the core (an 'ours' error): the driver logs it and ends that one session. */
export interface ProxyCore {
  handle(event: ProxyEvent): ProxyCommand[];
  /** Where the core is (its state, what it waits for), for the driver's log line when the session
   * ends in an internal error. Small and free of payload bytes and credentials. */
  describe(): CoreDescription;
}

/** A core's own account of its state: the proxy, its state name, and a few fields of its choosing. */
export interface CoreDescription {
  proxy: string;
  state: string;
  [field: string]: unknown;
}

/** What a core is built from: the session's decision. (Its options come typed, bound once per
 * generation: module.ts.) */
export interface CoreContext {
  sessionId: string;
  service: string;
  clientZone: string | null;
  /** Whether the service's router is inband (the core must supply the target). */
  inband: boolean;
  /** Client-side local address the client dialled (transparent: the original destination). */
  clientLocal?: Addr;
  /** The client stream is TLS the proxy terminates (tls.mode inspect): the core sees plaintext. */
  tls?: boolean;
  /** An explicit HTTP proxy with tls.mode inspect: the session that inspects a CONNECT tunnel to
   * `target` (the TLS inspect gate in front of an HTTP core), made when the tunnel opens. `name`: the
   * host name the CONNECT asked for (null when it was an address): without SNI from the client, the
   * server is verified against it and the client's certificate names it. */
  inspectConnect?: (target: Addr, name: string | null) => ProxyCore;
}

export type CoreFactory = (ctx: CoreContext) => ProxyCore;
