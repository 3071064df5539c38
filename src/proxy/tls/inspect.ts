// TLS termination and origination for inspect mode (docs/tls.md): the client side is terminated with a
// certificate made for the requested name and signed by the service's CA (certs.ts LeafCache); the server
// side is originated and verified by us, so that the failure reason (unknown issuer, expired, wrong name,
// handshake failure) can be logged and never reaches the client as success. Both sides speak TLS 1.2 and
// 1.3 from `minVersion` up; ALPN offers and accepts only what the inner proxy speaks.
//
// Used by the HTTP proxy (HTTPS and CONNECT inspection), plug (decrypted relay) and FTP (AUTH TLS, data
// channels). The module does I/O (node:tls) and decides nothing: the SNI policy is sni-policy.ts's.
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { Duplex } from 'node:stream';
import tls from 'node:tls';
import type { TlsEndpoint, TlsHandshakeInfo } from '../core/types.ts';
import { withoutPeerCertificate } from './session-der.ts';

export type TlsVersionName = 'TLSv1.2' | 'TLSv1.3';

/** Why a server handshake did not give a verified session (a small fixed set: a metric label). */
export type ServerFailure =
  | 'unknown_issuer'
  | 'expired'
  | 'not_yet_valid'
  | 'wrong_name'
  | 'handshake_failure'
  | 'connect_failed';

/** What a server handshake gave (the `tls` event's info), its verification result narrowed. */
export interface TlsSessionInfo extends TlsHandshakeInfo {
  /** 'ok', 'disabled' (server_verify: false) or the failure. */
  verify: 'ok' | 'disabled' | ServerFailure;
}

export interface TerminateOptions {
  /** The certificate to show for `names` (TlsEndpoint.leaf: a LeafCache of the service's CA). */
  leaf: TlsEndpoint['leaf'];
  /** Names for the leaf (first = CN): the SNI, plus the server certificate's names when known. */
  names: readonly string[];
  minVersion: TlsVersionName;
  /** ALPN protocols the inner proxy speaks (['http/1.1'] for HTTP); none = no ALPN. */
  alpn?: readonly string[];
  /** Bytes already read from the client (the ClientHello read by the gate), replayed first. */
  held?: Uint8Array;
  /** Milliseconds since the epoch, for leaf validity (tests). */
  nowMs?: number;
}

/**
 * Terminate TLS on a client connection: resolves with the secure socket once the handshake is done,
 * rejects with the handshake error (the client got an alert from node:tls).
 */
export async function terminateClient(socket: net.Socket, opts: TerminateOptions): Promise<tls.TLSSocket> {
  const leaf = await opts.leaf(opts.names, opts.nowMs ?? Date.now());
  const alpn = opts.alpn ? [...opts.alpn] : undefined;
  const secure = new tls.TLSSocket(replayed(socket, opts.held), {
    isServer: true,
    secureContext: leafContext(leaf, opts.minVersion),
    // A client offering h2 and http/1.1 gets http/1.1; one offering only h2 gets a no_application_protocol alert.
    ...(alpn
      ? { ALPNCallback: ({ protocols }: { protocols: string[] }) => protocols.find((p) => alpn.includes(p)) }
      : {}),
  });
  return new Promise((resolve, reject) => {
    const fail = (e: Error): void => {
      secure.destroy();
      reject(e);
    };
    secure.once('error', fail);
    secure.once('secure', () => {
      secure.off('error', fail);
      resolve(secure);
    });
  });
}

/** The socket with the held bytes put back in front of what it reads next. A net.Socket with its
 * native handle takes them back (unshift): node's TLS layer feeds a wrapped socket's buffered bytes to
 * the handshake and then works on the handle itself, with no JavaScript stream between (several
 * times faster than the Duplex below, which stays for other sockets). */
function replayed(socket: net.Socket, held: Uint8Array | undefined): Duplex {
  if (!held || held.length === 0) return socket;
  if (socket instanceof net.Socket && (socket as net.Socket & { _handle?: unknown })._handle) {
    socket.unshift(Buffer.from(held));
    return socket;
  }
  return withHeld(socket, held);
}

/** A stream that gives the held bytes first, then the socket's. */
function withHeld(socket: net.Socket, held: Uint8Array): Duplex {
  const d = new Duplex({
    read() {
      socket.resume();
    },
    write(chunk: Buffer, _enc, cb) {
      socket.write(chunk, cb);
    },
    final(cb) {
      socket.end();
      cb();
    },
    destroy(err, cb) {
      socket.destroy(err ?? undefined);
      cb(err);
    },
  });
  d.push(Buffer.from(held));
  socket.on('data', (b: Buffer) => {
    if (!d.push(b)) socket.pause();
  });
  socket.on('end', () => d.push(null));
  socket.on('error', (e) => d.destroy(e));
  socket.on('close', () => d.destroy());
  return d;
}

export interface OriginateOptions {
  /** The name sent as SNI (null: none, e.g. an IP address target). */
  sni: string | null;
  /** The name the certificate must carry: the SNI, or the Host / CONNECT target without one. */
  verifyName: string;
  /** false = server_verify: false (the session is made whatever the certificate). */
  verify: boolean;
  /** Trusted CAs in PEM (server_ca_file); undefined = node's bundled roots. */
  ca?: string | Buffer;
  minVersion: TlsVersionName;
  alpn?: readonly string[];
  /** A session to offer instead of the kept one for this server: another connection's to the same
   * server, verified there (an FTP data channel offers its control connection's). Nothing of this
   * connection is kept for later ones. */
  resume?: KeptSession;
}

export type OriginateResult =
  | { ok: true; socket: tls.TLSSocket; info: TlsSessionInfo }
  | { ok: false; reason: ServerFailure; detail: string; info: TlsSessionInfo };

/**
 * Originate TLS to a server over a connected socket (or connect options) and verify it ourselves. Never
 * rejects: a failure comes back with its reason, the socket destroyed.
 */
export function originateServer(
  target: net.Socket | { host: string; port: number },
  opts: OriginateOptions,
): Promise<OriginateResult> {
  const info: TlsSessionInfo = {
    sni: opts.sni,
    version: null,
    cipher: null,
    alpn: null,
    subject: null,
    issuer: null,
    verify: 'handshake_failure',
    altNames: [],
  };
  const context = serverContext(opts.ca, opts.minVersion);
  const remote =
    target instanceof net.Socket
      ? `${target.remoteAddress}:${target.remotePort}`
      : `${target.host}:${target.port}`;
  // sessions are resumed only with what verified them: the same server, names, trust and setting
  const resumeKey = `${remote} ${opts.sni ?? ''} ${opts.verifyName} ${opts.verify ? 1 : 0} ${opts.minVersion}`;
  const resume = opts.resume ?? context.sessions.get(resumeKey);
  const keep = opts.resume === undefined;
  const s = tls.connect({
    ...(target instanceof net.Socket ? { socket: target } : { host: target.host, port: target.port }),
    ...(opts.sni !== null && !net.isIP(opts.sni) ? { servername: opts.sni } : {}),
    secureContext: context.secure,
    ...(resume ? { session: resume.session } : {}),
    ...(opts.alpn ? { ALPNProtocols: [...opts.alpn] } : {}),
    minVersion: opts.minVersion,
    rejectUnauthorized: false, // checked below, so that the reason is ours to log
    checkServerIdentity: () => undefined,
  });
  return new Promise((resolve) => {
    const failed = (reason: ServerFailure, detail: string): void => {
      info.verify = reason;
      s.destroy();
      resolve({ ok: false, reason, detail, info });
    };
    s.once('error', (e: NodeJS.ErrnoException) => {
      const connecting = s.connecting || e.syscall === 'connect';
      failed(connecting ? 'connect_failed' : 'handshake_failure', e.message);
    });
    s.once('secureConnect', () => {
      s.removeAllListeners('error');
      const cert = s.getPeerCertificate();
      info.version = s.getProtocol();
      info.cipher = s.getCipher()?.name ?? null;
      info.alpn = s.alpnProtocol || null;
      if (cert && Object.keys(cert).length > 0) {
        info.subject = dnLine(cert.subject);
        info.issuer = dnLine(cert.issuer);
        info.altNames = altNames(cert.subjectaltname);
      }
      if (!opts.verify) {
        info.verify = 'disabled';
        resolve({ ok: true, socket: s, info });
        return;
      }
      if (resume && s.isSessionReused()) {
        // A session this server issued after a handshake we verified under the same key (server,
        // names, trust): its certificate was checked then (a kept session holds none: session-der.ts).
        info.subject = resume.subject;
        info.issuer = resume.issuer;
        info.altNames = resume.altNames;
        info.verify = 'ok';
        if (keep) keepSession(context, resumeKey, s, info);
        resolve({ ok: true, socket: s, info });
        return;
      }
      const err = s.authorizationError as unknown as string | Error | null;
      if (err) {
        const code = typeof err === 'string' ? err : ((err as NodeJS.ErrnoException).code ?? err.message);
        failed(chainFailure(code), String(code));
        return;
      }
      const nameErr = tls.checkServerIdentity(opts.verifyName, cert);
      if (nameErr) {
        failed('wrong_name', nameErr.message);
        return;
      }
      info.verify = 'ok';
      if (keep) keepSession(context, resumeKey, s, info);
      resolve({ ok: true, socket: s, info });
    });
  });
}

/** Client-side contexts, one per certificate (parsing a key and certificate per handshake costs more
 * than the handshake's own signature). Weakly held: a certificate the leaf cache dropped goes too. */
const LEAF_CONTEXTS = new WeakMap<object, Map<string, tls.SecureContext>>();

function leafContext(
  leaf: { certPem: string; keyPem: string },
  minVersion: TlsVersionName,
): tls.SecureContext {
  let byVersion = LEAF_CONTEXTS.get(leaf);
  if (!byVersion) {
    byVersion = new Map();
    LEAF_CONTEXTS.set(leaf, byVersion);
  }
  let c = byVersion.get(minVersion);
  if (!c) {
    c = tls.createSecureContext({ cert: leaf.certPem, key: leaf.keyPem, minVersion });
    renewTickets(c);
    byVersion.set(minVersion, c);
  }
  return c;
}

/** The part of node's native SecureContext that renewTickets uses (not in node's typings). */
interface TicketHook {
  enableTicketKeyCallback?: () => void;
  onticketkeycallback?: (
    name: Buffer,
    iv: Buffer,
    enc: boolean,
  ) => [number, Buffer, Buffer, Buffer?, Buffer?];
}

/**
 * A new session ticket for every resumed client session too, as HAProxy (OpenSSL's default ticket
 * handling) gives. node's own ticket callback never asks OpenSSL to renew, and in TLS 1.3 OpenSSL then
 * sends no ticket after a resumed handshake: a client that uses each ticket once (RFC 8446 advises it;
 * wrk, browsers) resumes only every other connection and makes a full handshake (signature,
 * certificate, two tickets) in between (bench/README.md, "TLS inspection"). The callback is node's
 * SecureContext hook (enableTicketKeyCallback, in node since 0.x for its ticket-renewal test): the keys
 * are this context's own, random, as node's are, so a ticket resumes only on the context (the leaf
 * certificate) that issued it, as before; a ticket of any other key gets a full handshake (0). Without
 * the hook (another node) tickets stay node's.
 */
function renewTickets(c: tls.SecureContext): void {
  const hook = (c as tls.SecureContext & { context?: TicketHook }).context;
  if (typeof hook?.enableTicketKeyCallback !== 'function') return;
  const name = randomBytes(16);
  const hmac = randomBytes(16);
  const aes = randomBytes(16);
  hook.onticketkeycallback = (got: Buffer, _iv: Buffer, enc: boolean) =>
    enc ? [1, hmac, aes, name, randomBytes(16)] : [got.equals(name) ? 2 : 0, hmac, aes];
  hook.enableTicketKeyCallback();
}

/** Server-side contexts, one per trust bundle (a CA bundle of 140 certificates would otherwise be
 * parsed for every connection), each with the TLS sessions of verified servers to resume (HAProxy
 * resumes too), bounded. A few bundles at most: one per inspect service's server_ca_file. */
interface ServerContext {
  secure: tls.SecureContext;
  sessions: Map<string, KeptSession>;
}
/** A TLS session of a verified server, and what its verification showed. */
export interface KeptSession {
  session: Buffer;
  subject: string | null;
  issuer: string | null;
  altNames: string[];
}
/** By minVersion, then by the bundle text itself (the same string object every time: its hash is
 * computed once, so a lookup does not read a 200 KB bundle per connection). */
const SERVER_CONTEXTS = new Map<TlsVersionName, Map<string | Buffer | undefined, ServerContext>>();
const MAX_SERVER_CONTEXTS = 16;
const MAX_SESSIONS = 1024;

function serverContext(ca: string | Buffer | undefined, minVersion: TlsVersionName): ServerContext {
  let byCa = SERVER_CONTEXTS.get(minVersion);
  if (!byCa) {
    byCa = new Map();
    SERVER_CONTEXTS.set(minVersion, byCa);
  }
  let c = byCa.get(ca);
  if (!c) {
    c = {
      secure: tls.createSecureContext({ ...(ca !== undefined ? { ca } : {}), minVersion }),
      sessions: new Map(),
    };
    byCa.set(ca, c);
    while (byCa.size > MAX_SERVER_CONTEXTS) byCa.delete(byCa.keys().next().value);
  }
  return c;
}

/** Keeps the session of a verified connection for the next one to the same server. */
function keepSession(c: ServerContext, key: string, s: tls.TLSSocket, info: TlsHandshakeInfo): void {
  followSessions(s, info, (kept) => {
    c.sessions.delete(key);
    c.sessions.set(key, kept);
    while (c.sessions.size > MAX_SESSIONS) c.sessions.delete(c.sessions.keys().next().value!);
  });
}

/** Each resumable session a verified server connection gives (TLS 1.3 sends its tickets after the
 * handshake: taken when they come), with what verified it. */
export function followSessions(
  s: tls.TLSSocket,
  info: TlsHandshakeInfo,
  keep: (kept: KeptSession) => void,
): void {
  // kept without the server's certificate: reading it back on each resumption costs more than the rest
  // of the session (session-der.ts); what it showed is kept beside the session
  const take = (session: Buffer): void =>
    keep({
      session: withoutPeerCertificate(session),
      subject: info.subject,
      issuer: info.issuer,
      altNames: info.altNames,
    });
  s.on('session', take);
  // (TLS 1.2's session is there at once; asked only then: getSession serializes the whole session)
  if (s.getProtocol() === 'TLSv1.3') return;
  const now = s.getSession();
  if (now) take(now);
}

function chainFailure(code: string): ServerFailure {
  switch (code) {
    case 'CERT_HAS_EXPIRED':
      return 'expired';
    case 'CERT_NOT_YET_VALID':
      return 'not_yet_valid';
    case 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY':
    case 'UNABLE_TO_GET_ISSUER_CERT':
    case 'UNABLE_TO_VERIFY_LEAF_SIGNATURE':
    case 'SELF_SIGNED_CERT_IN_CHAIN':
    case 'DEPTH_ZERO_SELF_SIGNED_CERT':
      return 'unknown_issuer';
    default:
      return 'handshake_failure';
  }
}

function dnLine(dn: tls.Certificate | undefined): string | null {
  if (!dn) return null;
  return Object.entries(dn)
    .map(([k, v]) => `${k}=${Array.isArray(v) ? v.join('+') : v}`)
    .join(', ');
}

/** "DNS:a.example, IP Address:198.18.0.1" → ["a.example", "198.18.0.1"]. */
function altNames(san: string | undefined): string[] {
  if (!san) return [];
  const out: string[] = [];
  for (const part of san.split(', ')) {
    const m = /^(DNS|IP Address):(.+)$/.exec(part);
    if (m) out.push(m[2]!);
  }
  return out;
}
