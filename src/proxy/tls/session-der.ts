// A kept TLS session without the server's certificate. node:tls offers a session to resume only as the
// DER of OpenSSL's SSL_SESSION, and reading it back (`setSession`, once per server connection) parses
// the certificate inside, whose public key OpenSSL 3.0 decodes slowly: 250-300 µs of a resumed
// connection's CPU, against 6 µs for the session without it (bench/README.md, "TLS inspection").
// Resuming needs only the session's secrets; the certificate was verified when the session was made,
// and inspect.ts keeps what it showed (subject, issuer, names) beside the session. Pure.

/** The element of an SSL_SESSION that holds the peer's certificate: `[3] EXPLICIT Certificate`. */
const PEER_TAG = 0xa3;

/** A DER element's header at `at`: its tag, the length of its content and where the content starts;
 * null when it is not a definite-length element of one-byte tag inside `end`. */
function header(b: Uint8Array, at: number, end: number): { tag: number; start: number; len: number } | null {
  if (at + 2 > end) return null;
  const tag = b[at]!;
  if ((tag & 0x1f) === 0x1f) return null; // multi-byte tags do not occur at this level
  let len = b[at + 1]!;
  let start = at + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n === 0 || n > 3 || start + n > end) return null; // indefinite, or over 16 MiB
    len = 0;
    for (let k = 0; k < n; k++) len = len * 256 + b[start + k]!;
    start += n;
  }
  return start + len <= end ? { tag, start, len } : null;
}

function lengthBytes(len: number): number[] {
  if (len < 0x80) return [len];
  const out: number[] = [];
  for (let l = len; l > 0; l = Math.floor(l / 256)) out.unshift(l & 0xff);
  return [0x80 | out.length, ...out];
}

/** `session` (the DER node:tls gives in its 'session' event) without the peer's certificate; the
 * session itself when it has none or is not the SEQUENCE of elements this expects. */
export function withoutPeerCertificate(session: Buffer): Buffer {
  const outer = header(session, 0, session.length);
  if (outer?.tag !== 0x30 || outer.start + outer.len !== session.length) return session;
  const keep: [number, number][] = [];
  let dropped = false;
  for (let at = outer.start; at < session.length; ) {
    const e = header(session, at, session.length);
    if (!e) return session;
    const next = e.start + e.len;
    if (e.tag === PEER_TAG) dropped = true;
    else keep.push([at, next]);
    at = next;
  }
  if (!dropped) return session;
  const bodyLen = keep.reduce((n, [a, b]) => n + b - a, 0);
  const head = Buffer.from([0x30, ...lengthBytes(bodyLen)]);
  return Buffer.concat([head, ...keep.map(([a, b]) => session.subarray(a, b))], head.length + bodyLen);
}
