// Canonical host text for the URL filter, the Host-matches-destination check and the inband router
// (review finding 2). Browsers and resolvers accept many spellings of one address (WHATWG URL
// "IPv4 parser": `2130706433`, `127.1`, `0x7f.0.0.1`, `0177.0.0.1`; a trailing root dot `evil.com.`;
// IPv6 in any RFC 4291 text form, IPv4-mapped IPv6), so a rule written for the canonical form must see
// the canonical form. Address text comes from the policy's own parser and formatter (one normaliser
// for the project: src/policy/address.ts), so a rule's address and a request's address compare as text.

import { ProtocolError } from '../../errors.ts';
import { canonicalAddress, formatAddress } from '../../policy/address.ts';

export interface CanonicalHost {
  /** Lower-case name without the root dot, dotted-quad IPv4, or RFC 5952 IPv6 (no brackets). */
  host: string;
  ipv6: boolean;
}

/** One WHATWG IPv4 number: decimal, 0x hex, or 0-prefixed octal. null when it is not a number. */
function ipv4Number(label: string): number | null {
  let s = label;
  let radix = 10;
  if (/^0x/i.test(s)) {
    s = s.slice(2);
    radix = 16;
    if (s === '') return 0;
  } else if (s.length > 1 && s.startsWith('0')) {
    s = s.slice(1);
    radix = 8;
  }
  const digits = radix === 16 ? /^[0-9a-f]+$/i : radix === 8 ? /^[0-7]+$/ : /^[0-9]+$/;
  if (!digits.test(s)) return null;
  const n = Number.parseInt(s, radix);
  // Number.parseInt loses precision past 2^53: anything that long is out of range anyway.
  return s.length > 16 ? Number.POSITIVE_INFINITY : n;
}

/** The WHATWG IPv4 parser's answer for a name whose last label is numeric; throws when such a
 * name is not a valid address (`1.2.3.4.5`, `256.1.1.1`, `foo.123`): ambiguous, so refused. */
function numericIPv4(labels: string[], what: string): string {
  const bad = () =>
    new ProtocolError('client', 400, `${what}: host looks like an IPv4 address but is not one`);
  if (labels.length > 4) throw bad();
  const nums = labels.map(ipv4Number);
  if (nums.some((n) => n === null)) throw bad();
  const ns = nums as number[];
  const last = ns[ns.length - 1]!;
  if (ns.slice(0, -1).some((n) => n > 255)) throw bad();
  if (last >= 256 ** (5 - ns.length)) throw bad();
  let v = last;
  for (let i = 0; i < ns.length - 1; i++) v += ns[i]! * 256 ** (3 - i);
  return formatAddress(4, BigInt(v));
}

/** Names the general path returns as they are: lower case, no empty label, no root dot, and a last
 * label that starts with a letter (so it is not a number, nor 0x-hex). */
const CANONICAL_NAME = /^(?:[a-z0-9\-_~!$&'()*+,;=]+\.)*[a-z][a-z0-9\-_~!$&'()*+,;=]*$/;
/** A dotted quad in decimal without leading zeros: what the WHATWG IPv4 parser would format it as. */
const CANONICAL_IPV4 = /^(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$/;

/** Canonicalise a host already split from its port. `bracketed`: it was written as `[v6]`. */
export function canonicalHost(raw: string, bracketed: boolean, what = 'Host'): CanonicalHost {
  if (bracketed) {
    const a = raw.includes(':') ? canonicalAddress(raw) : null;
    if (a === null) throw new ProtocolError('client', 400, `${what}: invalid IPv6 literal`);
    // ::ffff:a.b.c.d is the IPv4 address a.b.c.d (the kernel sees such packets as IPv4).
    return { host: a.host, ipv6: a.family === 6 };
  }
  // Already canonical (the usual case: a lower-case name ending in a letter label, or a dotted quad
  // without leading zeros): the general path below would return it unchanged.
  if (CANONICAL_NAME.test(raw) || CANONICAL_IPV4.test(raw)) return { host: raw, ipv6: false };
  return canonicalName(raw, what);
}

/** The general path for a name or IPv4 text that is not bracketed (exported for the test that the
 * fast path above agrees with it). */
export function canonicalName(raw: string, what = 'Host'): CanonicalHost {
  if (raw === '') return { host: '', ipv6: false };
  let name = raw.toLowerCase();
  // A fully qualified name's root dot (`evil.com.`) names the same host (RFC 1034 §3.1).
  if (name.endsWith('.')) name = name.slice(0, -1);
  const labels = name.split('.');
  if (labels.some((l) => l === ''))
    throw new ProtocolError('client', 400, `${what}: empty label in host name`);
  const lastLabel = labels[labels.length - 1]!;
  // WHATWG URL: a host whose last label is a number is an IPv4 address or invalid.
  if (/^(0x[0-9a-f]*|[0-9]+)$/.test(lastLabel)) return { host: numericIPv4(labels, what), ipv6: false };
  return { host: name, ipv6: false };
}
