// Address parsing for the hot path. The engine answers questions with text addresses
// (`Connection.src`/`dst`), so parsing is part of every lookup: this is a strict, allocation-free
// parser into a reusable scratch object instead of ipaddr.js (which allocates several objects per call).
//
// Strictness (the same as the policy loader's): IPv4 is exactly four decimal parts 0..255 without
// leading zeros ("010.1.1.1" is refused: some stacks read it as octal); IPv6 is RFC 4291 §2.2 text
// (1-4 hex digits per group, at most one "::", an optional dotted IPv4 tail), no zone id.
// An IPv4-mapped IPv6 address (::ffff:a.b.c.d, RFC 4291 §2.5.5.2) is reported as the IPv4 address: a
// dual-stack listener sees IPv4 peers that way and they must land in the IPv4 zones.
//
// Addresses are written as text by the one normaliser (policy/address.ts formatAddress), so the
// engine's answers and the policy's own text always agree.
import { formatAddress } from '../policy/address.ts';
import type { Cidr, Family } from '../policy/model.ts';

export { formatAddress };

/** A parsed address: `family` 4 uses `w0`; family 6 uses w0..w3 (most significant first). */
export class ParsedAddr {
  family: 0 | Family = 0;
  w0 = 0;
  w1 = 0;
  w2 = 0;
  w3 = 0;

  copyFrom(o: ParsedAddr): this {
    this.family = o.family;
    this.w0 = o.w0;
    this.w1 = o.w1;
    this.w2 = o.w2;
    this.w3 = o.w3;
    return this;
  }

  /** The address as an unsigned integer (32 or 128 bits). */
  toBigInt(): bigint {
    if (this.family === 4) return BigInt(this.w0 >>> 0);
    return (
      (BigInt(this.w0 >>> 0) << 96n) |
      (BigInt(this.w1 >>> 0) << 64n) |
      (BigInt(this.w2 >>> 0) << 32n) |
      BigInt(this.w3 >>> 0)
    );
  }

  /** Canonical text (RFC 5952 for IPv6). */
  toString(): string {
    return formatAddress(this.family === 4 ? 4 : 6, this.toBigInt());
  }
}

const groups = new Uint16Array(8);

function hexVal(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 97 && c <= 102) return c - 87;
  if (c >= 65 && c <= 70) return c - 55;
  return -1;
}

/** Parses dotted-quad IPv4 in s[from, to) into an unsigned 32-bit number, or -1. */
function parse4(s: string, from: number, to: number): number {
  let value = 0;
  let parts = 0;
  let i = from;
  while (i <= to) {
    const start = i;
    let part = 0;
    while (i < to) {
      const c = s.charCodeAt(i);
      if (c < 48 || c > 57) break;
      part = part * 10 + (c - 48);
      i++;
    }
    const len = i - start;
    if (len === 0 || len > 3 || part > 255) return -1;
    if (len > 1 && s.charCodeAt(start) === 48) return -1; // leading zero
    value = value * 256 + part;
    parts++;
    if (i === to) break;
    if (s.charCodeAt(i) !== 46 || parts === 4) return -1;
    i++;
    if (i === to) return -1; // trailing dot
  }
  return parts === 4 ? value : -1;
}

function parse6(s: string, out: ParsedAddr): boolean {
  const n = s.length;
  if (n < 2 || n > 45) return false;
  let i = 0;
  let gi = 0;
  let dbl = -1;
  if (s.charCodeAt(0) === 58) {
    if (s.charCodeAt(1) !== 58) return false;
    dbl = 0;
    i = 2;
  }
  while (i < n) {
    const start = i;
    let val = 0;
    while (i < n) {
      const h = hexVal(s.charCodeAt(i));
      if (h < 0) break;
      val = val * 16 + h;
      i++;
    }
    if (i < n && s.charCodeAt(i) === 46) {
      // dotted IPv4 tail: the last 32 bits
      if (gi > 6) return false;
      const v4 = parse4(s, start, n);
      if (v4 < 0) return false;
      groups[gi++] = v4 >>> 16;
      groups[gi++] = v4 & 0xffff;
      i = n;
      break;
    }
    const len = i - start;
    if (len === 0 || len > 4 || gi >= 8) return false;
    groups[gi++] = val;
    if (i === n) break;
    if (s.charCodeAt(i) !== 58) return false;
    i++;
    if (i < n && s.charCodeAt(i) === 58) {
      if (dbl >= 0) return false;
      dbl = gi;
      i++;
    } else if (i === n) {
      return false; // a single trailing colon
    }
  }
  if (dbl < 0) {
    if (gi !== 8) return false;
  } else {
    if (gi > 7) return false;
    const tail = gi - dbl;
    for (let k = 0; k < tail; k++) groups[7 - k] = groups[gi - 1 - k]!;
    for (let k = dbl; k < 8 - tail; k++) groups[k] = 0;
  }
  out.w0 = ((groups[0]! << 16) | groups[1]!) >>> 0;
  out.w1 = ((groups[2]! << 16) | groups[3]!) >>> 0;
  out.w2 = ((groups[4]! << 16) | groups[5]!) >>> 0;
  out.w3 = ((groups[6]! << 16) | groups[7]!) >>> 0;
  if (out.w0 === 0 && out.w1 === 0 && out.w2 === 0xffff) {
    out.family = 4;
    out.w0 = out.w3;
    out.w1 = out.w2 = out.w3 = 0;
  } else {
    out.family = 6;
  }
  return true;
}

/** Parses `s` into `out`; false (and `out.family === 0`) when it is not a valid address. */
export function parseAddressInto(s: string, out: ParsedAddr): boolean {
  out.family = 0;
  if (typeof s !== 'string') return false;
  let ok: boolean;
  if (s.indexOf(':') >= 0) {
    ok = parse6(s, out);
  } else {
    const v = parse4(s, 0, s.length);
    ok = v >= 0;
    if (ok) {
      out.family = 4;
      out.w0 = v;
      out.w1 = out.w2 = out.w3 = 0;
    }
  }
  if (!ok) out.family = 0;
  return ok;
}

/** Parses an address; null when invalid. Allocates: not for the hot path. */
export function parseAddress(s: string): ParsedAddr | null {
  const p = new ParsedAddr();
  return parseAddressInto(s, p) ? p : null;
}

/** The four 32-bit words of a 128-bit value, most significant first. */
export function wordsOf(v: bigint): [number, number, number, number] {
  return [
    Number((v >> 96n) & 0xffffffffn),
    Number((v >> 64n) & 0xffffffffn),
    Number((v >> 32n) & 0xffffffffn),
    Number(v & 0xffffffffn),
  ];
}

/** Mask word `k` (0..3) of a prefix of length `prefix` over 128 bits (or word 0 over 32 bits). */
export function maskWord(prefix: number, k: number): number {
  const bits = prefix - 32 * k;
  if (bits <= 0) return 0;
  if (bits >= 32) return 0xffffffff;
  return (0xffffffff << (32 - bits)) >>> 0;
}

/** Is the parsed address inside the network? (families must agree) */
export function cidrContains(c: Cidr, a: ParsedAddr): boolean {
  if (c.family !== a.family) return false;
  if (c.family === 4) {
    const m = maskWord(c.prefix, 0);
    return (a.w0 & m) >>> 0 === Number(c.addr);
  }
  const w = wordsOf(c.addr);
  return (
    (a.w0 & maskWord(c.prefix, 0)) >>> 0 === w[0] &&
    (a.w1 & maskWord(c.prefix, 1)) >>> 0 === w[1] &&
    (a.w2 & maskWord(c.prefix, 2)) >>> 0 === w[2] &&
    (a.w3 & maskWord(c.prefix, 3)) >>> 0 === w[3]
  );
}
