// The TLS ClientHello reader: sans-IO, strict and bounded. It reads the first bytes a client sends on a
// TLS connection and returns what a policy decides on (server name, ALPN, offered versions) before any
// byte reaches a server, without decrypting anything (there is nothing encrypted yet).
//
// Input is everything the client has sent so far; the reader parses from the start each time it is
// called (a hello is a few KiB at most and bounded by `maxBytes`), so the answer cannot depend on how
// the bytes were split into reads. It returns the hello, `null` for "need more", or throws a
// ProtocolError whose `reply` is the TLS alert to send (RFC 8446 §6.2).
//
// What it reads (RFC 8446 §4.1.2, RFC 5246 §7.4.1.2):
//   TLSPlaintext records of type handshake (22), version 3.x, length 1..2^14 (§5.1); the ClientHello
//   handshake message may span several records and ends where its 24-bit length says.
//   ClientHello: legacy_version, random[32], session_id<0..32>, cipher_suites<2..2^16-2>,
//   compression_methods<1..2^8-1>, extensions<0..2^16-1> (absent in very old hellos).
//   Extensions: server_name (RFC 6066 §3), ALPN (RFC 7301 §3.1), supported_versions (RFC 8446 §4.2.1).
//   Each extension type at most once (RFC 8446 §4.2). GREASE values (RFC 8701) are ignored wherever
//   they may appear (extension types, versions, ALPN is not greased but is taken as sent).
// Refused: SSLv2-compatible hellos (RFC 6101 appendix E.2 style, first byte with the high bit set),
// any other record type first, a second host_name, a host name that is not LDH text, and anything
// longer than its own length fields say.
import { isIP } from 'node:net';
import { ProtocolError } from '../../errors.ts';

/** TLS alert descriptions we send (RFC 8446 §6.2). */
export const ALERT = {
  handshakeFailure: 40,
  illegalParameter: 47,
  accessDenied: 49,
  decodeError: 50,
  protocolVersion: 70,
  internalError: 80,
  unrecognizedName: 112,
  noApplicationProtocol: 120,
} as const;

export const TLS_VERSION_NAMES: Readonly<Record<number, string>> = {
  768: 'SSLv3',
  769: 'TLSv1',
  770: 'TLSv1.1',
  771: 'TLSv1.2',
  772: 'TLSv1.3',
};

export function versionName(v: number): string {
  return TLS_VERSION_NAMES[v] ?? `0x${v.toString(16).padStart(4, '0')}`;
}

export interface ClientHello {
  /** The server name (host_name of server_name), lower case, without a trailing dot; null if absent. */
  sni: string | null;
  /** ALPN protocol names as offered, in the client's order. */
  alpn: string[];
  /** Versions offered in supported_versions (GREASE removed), in the client's order; empty without it. */
  supportedVersions: number[];
  /** ClientHello.legacy_version. */
  legacyVersion: number;
  /** The highest version the client offers: max(supported_versions), else legacy_version. */
  maxVersion: number;
  /** Bytes of the input up to the end of the record that completed the ClientHello. */
  consumed: number;
}

const RECORD_HANDSHAKE = 22;
const HANDSHAKE_CLIENT_HELLO = 1;
const RECORD_HEADER_BYTES = 5;
/** RFC 8446 §5.1: a TLSPlaintext fragment is at most 2^14 bytes. */
const MAX_RECORD_BYTES = 2 ** 14;
const EXT_SERVER_NAME = 0;
const EXT_ALPN = 16;
const EXT_SUPPORTED_VERSIONS = 43;
/** RFC 1035 §2.3.4: a name is at most 253 characters of text (255 octets on the wire). */
const MAX_HOST_NAME_CHARS = 253;
const LDH_LABEL = /^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$/;

/** RFC 8701: GREASE values are 0x?A?A with both bytes equal. */
export function isGrease(v: number): boolean {
  return (v & 0x0f0f) === 0x0a0a && v >> 8 === (v & 0xff);
}

const fail = (alert: number, message: string): never => {
  throw new ProtocolError('client', alert, `TLS ClientHello: ${message}`);
};

/**
 * Reads the ClientHello at the start of `input` (everything the client sent so far).
 * @returns the hello, or null when more bytes are needed.
 * @throws ProtocolError (side 'client', reply = alert) when the bytes are not an acceptable hello, or
 *   when `maxBytes` were read without a complete hello (PROXY_LIMIT).
 */
export function readClientHello(input: Uint8Array, maxBytes: number): ClientHello | null {
  if (input.length > 0 && (input[0]! & 0x80) !== 0) {
    fail(ALERT.protocolVersion, 'an SSLv2-compatible hello is not accepted');
  }
  // Gather the handshake bytes from consecutive handshake records until the hello's length is known
  // and reached.
  const parts: Uint8Array[] = [];
  let have = 0;
  let need = -1; // total handshake bytes of the ClientHello (4-byte header + body), once known
  let off = 0;
  while (need < 0 || have < need) {
    if (off + RECORD_HEADER_BYTES > input.length) return needMore(input, maxBytes);
    const type = input[off]!;
    const major = input[off + 1]!;
    const len = (input[off + 3]! << 8) | input[off + 4]!;
    if (type !== RECORD_HANDSHAKE) {
      fail(ALERT.decodeError, `expected a handshake record (22), got record type ${type}`);
    }
    if (major !== 3) fail(ALERT.protocolVersion, `record version ${major}.${input[off + 2]} is not TLS`);
    if (len === 0) fail(ALERT.decodeError, 'empty handshake record');
    if (len > MAX_RECORD_BYTES)
      fail(ALERT.decodeError, `record of ${len} bytes (at most ${MAX_RECORD_BYTES})`);
    if (off + RECORD_HEADER_BYTES + len > input.length) return needMore(input, maxBytes);
    const frag = input.subarray(off + RECORD_HEADER_BYTES, off + RECORD_HEADER_BYTES + len);
    off += RECORD_HEADER_BYTES + len;
    parts.push(frag);
    have += frag.length;
    if (need < 0 && have >= 4) {
      const hs = concat(parts, 4);
      if (hs[0] !== HANDSHAKE_CLIENT_HELLO)
        fail(ALERT.decodeError, `first handshake message is type ${hs[0]}, not ClientHello`);
      need = 4 + ((hs[1]! << 16) | (hs[2]! << 8) | hs[3]!);
      if (need > maxBytes) {
        throw new ProtocolError(
          'client',
          ALERT.handshakeFailure,
          `TLS ClientHello of ${need} bytes is larger than ${maxBytes}`,
          {
            limit: true,
          },
        );
      }
    }
    if (off > maxBytes) {
      throw new ProtocolError(
        'client',
        ALERT.handshakeFailure,
        `no complete TLS ClientHello in ${maxBytes} bytes`,
        {
          limit: true,
        },
      );
    }
  }
  const hs = concat(parts, need);
  return { ...parseBody(hs.subarray(4)), consumed: off };
}

function needMore(input: Uint8Array, maxBytes: number): null {
  if (input.length >= maxBytes) {
    throw new ProtocolError(
      'client',
      ALERT.handshakeFailure,
      `no complete TLS ClientHello in ${maxBytes} bytes`,
      {
        limit: true,
      },
    );
  }
  return null;
}

function concat(parts: Uint8Array[], n: number): Uint8Array {
  if (parts.length === 1 && parts[0]!.length >= n) return parts[0]!.subarray(0, n);
  const out = new Uint8Array(n);
  let at = 0;
  for (const p of parts) {
    if (at >= n) break;
    const take = Math.min(p.length, n - at);
    out.set(p.subarray(0, take), at);
    at += take;
  }
  return out;
}

/** A bounds-checked cursor over one length-delimited piece of the hello. */
class Cursor {
  private at = 0;
  constructor(
    private readonly b: Uint8Array,
    private readonly what: string,
  ) {}
  get left(): number {
    return this.b.length - this.at;
  }
  private take(n: number): number {
    if (this.at + n > this.b.length) fail(ALERT.decodeError, `${this.what} is truncated`);
    const at = this.at;
    this.at += n;
    return at;
  }
  u8(): number {
    return this.b[this.take(1)]!;
  }
  u16(): number {
    const at = this.take(2);
    return (this.b[at]! << 8) | this.b[at + 1]!;
  }
  bytes(n: number): Uint8Array {
    const at = this.take(n);
    return this.b.subarray(at, at + n);
  }
  /** A vector with a 1- or 2-byte length prefix, as its own cursor. */
  vec(lenBytes: 1 | 2, what: string): Cursor {
    const n = lenBytes === 1 ? this.u8() : this.u16();
    return new Cursor(this.bytes(n), what);
  }
  end(): void {
    if (this.left !== 0) fail(ALERT.decodeError, `${this.left} unexpected bytes after ${this.what}`);
  }
}

function parseBody(body: Uint8Array): Omit<ClientHello, 'consumed'> {
  const c = new Cursor(body, 'ClientHello');
  const legacyVersion = c.u16();
  if (legacyVersion >> 8 !== 3)
    fail(ALERT.protocolVersion, `legacy_version 0x${legacyVersion.toString(16)} is not TLS`);
  c.bytes(32); // random
  const sid = c.vec(1, 'legacy_session_id');
  if (sid.left > 32) fail(ALERT.decodeError, `legacy_session_id of ${sid.left} bytes (at most 32)`);
  const suites = c.vec(2, 'cipher_suites');
  if (suites.left < 2 || suites.left % 2 !== 0)
    fail(ALERT.decodeError, 'cipher_suites has an odd or zero length');
  const comp = c.vec(1, 'compression_methods');
  if (comp.left < 1) fail(ALERT.decodeError, 'compression_methods is empty');
  const hello: Omit<ClientHello, 'consumed'> = {
    sni: null,
    alpn: [],
    supportedVersions: [],
    legacyVersion,
    maxVersion: legacyVersion,
  };
  if (c.left === 0) return hello; // no extensions: a pre-TLS 1.2 style hello
  const exts = c.vec(2, 'extensions');
  c.end();
  const seen = new Set<number>();
  while (exts.left > 0) {
    const type = exts.u16();
    const data = exts.vec(2, `extension ${type}`);
    if (seen.has(type)) fail(ALERT.illegalParameter, `extension ${type} appears twice`);
    seen.add(type);
    if (type === EXT_SERVER_NAME) hello.sni = readServerName(data);
    else if (type === EXT_ALPN) hello.alpn = readAlpn(data);
    else if (type === EXT_SUPPORTED_VERSIONS) hello.supportedVersions = readVersions(data);
  }
  if (hello.supportedVersions.length > 0) hello.maxVersion = Math.max(...hello.supportedVersions);
  return hello;
}

function readServerName(data: Cursor): string | null {
  const list = data.vec(2, 'server_name list');
  data.end();
  let name: string | null = null;
  while (list.left > 0) {
    const nameType = list.u8();
    const v = list.vec(2, 'server name');
    if (nameType !== 0) continue; // only host_name (0) is defined; others are skipped (RFC 6066 §3)
    if (name !== null) fail(ALERT.illegalParameter, 'server_name has two host names');
    name = hostName(v.bytes(v.left)) ?? '';
  }
  // '' = an address literal (below): no server name
  return name === '' ? null : name;
}

/** The host name, lower case; '' for an IP address literal, which RFC 6066 §3 does not permit but
 * real clients send (GnuTLS, lftp's library, names an IPv6 server by its address): taken as no name,
 * so `sni.missing` decides, rather than refusing those clients outright. */
function hostName(raw: Uint8Array): string {
  if (raw.length === 0) fail(ALERT.decodeError, 'empty host name in server_name');
  let s = '';
  for (const b of raw) {
    if (b < 0x21 || b > 0x7e) fail(ALERT.illegalParameter, 'host name in server_name is not printable ASCII');
    s += String.fromCharCode(b);
  }
  s = s.toLowerCase();
  // RFC 6066 says no trailing dot; some clients send one. Taken off so that a policy sees one spelling.
  if (s.endsWith('.')) s = s.slice(0, -1);
  if (s.length === 0 || s.length > MAX_HOST_NAME_CHARS)
    fail(ALERT.illegalParameter, 'host name length out of range');
  if (isIP(s.startsWith('[') && s.endsWith(']') ? s.slice(1, -1) : s) !== 0) return '';
  for (const label of s.split('.')) {
    if (!LDH_LABEL.test(label)) fail(ALERT.illegalParameter, `host name '${s}' is not a DNS name`);
  }
  return s;
}

function readAlpn(data: Cursor): string[] {
  const list = data.vec(2, 'ALPN list');
  data.end();
  const out: string[] = [];
  while (list.left > 0) {
    const p = list.vec(1, 'ALPN protocol');
    if (p.left === 0) fail(ALERT.decodeError, 'empty ALPN protocol name');
    out.push(Buffer.from(p.bytes(p.left)).toString('latin1'));
  }
  if (out.length === 0) fail(ALERT.decodeError, 'empty ALPN list');
  return out;
}

function readVersions(data: Cursor): number[] {
  const list = data.vec(1, 'supported_versions');
  data.end();
  if (list.left < 2 || list.left % 2 !== 0)
    fail(ALERT.decodeError, 'supported_versions has an odd or zero length');
  const out: number[] = [];
  while (list.left > 0) {
    const v = list.u16();
    if (!isGrease(v)) out.push(v);
  }
  return out;
}

/** A fatal TLS alert record (RFC 8446 §6): what we send before closing a refused handshake. */
export function alertRecord(description: number): Uint8Array {
  return Uint8Array.of(21, 3, 3, 0, 2, 2, description);
}
