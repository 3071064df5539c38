// Strict address and network parsing for the policy language. Written out instead of using a library's
// lenient parser on purpose: `010.1.1.1` (octal in inet_aton), `1.2.3` (short forms), `1.2.3.4/33` and
// zone ids must be refused, not guessed at. IPv4-mapped IPv6 (`::ffff:a.b.c.d`, prefix >= 96) is
// normalised to the IPv4 form, because the kernel sees those packets as IPv4.
//
// This is also tzorp's one address normaliser (canonicalAddress, formatAddress): the engine, the
// kernel renderer, the net driver, the daemon and the HTTP and FTP proxies all write and compare
// addresses in the text it gives, so two spellings of one address always compare equal. It lives here
// because the policy module is the one every other module may import.
import type { Cidr, Family } from './model.ts';

export interface ParsedAddr {
  family: Family;
  addr: bigint;
}

const V4_PART = /^(0|[1-9][0-9]{0,2})$/;

export function parseIPv4(text: string): bigint | null {
  const parts = text.split('.');
  if (parts.length !== 4) return null;
  let v = 0; // on a number (exact: below 2^32), one bigint at the end
  for (const p of parts) {
    if (!V4_PART.test(p)) return null;
    const n = Number(p);
    if (n > 255) return null;
    v = v * 256 + n;
  }
  return BigInt(v);
}

const HEX_GROUP = /^[0-9a-fA-F]{1,4}$/;

export function parseIPv6(text: string): bigint | null {
  if (text.length === 0 || text.length > 45) return null;
  let groups: string[];
  let tailV4: bigint | null = null;
  let head = text;
  // an embedded dotted IPv4 address may end the text (RFC 4291 §2.2, form 3)
  const lastColon = text.lastIndexOf(':');
  if (lastColon >= 0 && text.indexOf('.', lastColon) > lastColon) {
    tailV4 = parseIPv4(text.slice(lastColon + 1));
    if (tailV4 === null) return null;
    head = text.slice(0, lastColon + 1);
    // "::1.2.3.4" keeps "::"; "x:1.2.3.4" keeps "x:" -> give the v4 part a placeholder group
    head = head.endsWith('::') ? head : head.slice(0, -1);
  }
  const want = tailV4 === null ? 8 : 6;
  const dbl = head.indexOf('::');
  if (dbl >= 0) {
    if (head.indexOf('::', dbl + 1) >= 0) return null;
    const left = head.slice(0, dbl);
    const right = head.slice(dbl + 2);
    const l = left === '' ? [] : left.split(':');
    const r = right === '' ? [] : right.split(':');
    if (l.length + r.length > want - 1) return null;
    groups = [...l, ...new Array<string>(want - l.length - r.length).fill('0'), ...r];
  } else {
    groups = head.split(':');
    if (groups.length !== want) return null;
  }
  // the groups as one hex number: one bigint made, not eight shifted in
  let hex = '0x';
  for (const g of groups) {
    if (!HEX_GROUP.test(g)) return null;
    hex += g.padStart(4, '0');
  }
  const v = BigInt(hex);
  return tailV4 === null ? v : (v << 32n) | tailV4;
}

const V4_MAPPED_PREFIX = 0xffffn << 32n;
const V4_MAPPED_MASK = ((1n << 96n) - 1n) << 32n;

/** A bare address in either family; IPv4-mapped IPv6 becomes IPv4. */
export function parseAddress(text: string): ParsedAddr | null {
  if (text.includes(':')) {
    const v = parseIPv6(text);
    if (v === null) return null;
    if ((v & V4_MAPPED_MASK) === V4_MAPPED_PREFIX) return { family: 4, addr: v & 0xffffffffn };
    return { family: 6, addr: v };
  }
  const v = parseIPv4(text);
  return v === null ? null : { family: 4, addr: v };
}

export function bits(family: Family): number {
  return family === 4 ? 32 : 128;
}

const masks = (width: number): bigint[] =>
  Array.from({ length: width + 1 }, (_, p) => ((1n << BigInt(p)) - 1n) << BigInt(width - p));
/** Every prefix length's mask, made once (100,000 zone networks each asked for one). */
const MASKS4 = masks(32);
const MASKS6 = masks(128);

export function maskOf(family: Family, prefix: number): bigint {
  return (family === 4 ? MASKS4 : MASKS6)[prefix]!;
}

export type CidrResult = { ok: true; cidr: Cidr; hostBits: boolean } | { ok: false; reason: string };

const PREFIX = /^(0|[1-9][0-9]{0,2})$/;

/** "a.b.c.d[/n]" or "v6[/n]"; a bare address is /32 or /128. Host bits are masked (reported). */
export function parseCidr(text: string): CidrResult {
  const slash = text.indexOf('/');
  const addrText = slash < 0 ? text : text.slice(0, slash);
  const a = parseAddress(addrText);
  if (a === null) {
    if (addrText.includes('%')) return { ok: false, reason: 'zone ids (%iface) are not allowed' };
    return {
      ok: false,
      reason: addrText.includes(':')
        ? 'not an IPv6 address'
        : 'not an IPv4 address (four decimal numbers 0-255, no leading zeros)',
    };
  }
  let prefix = bits(a.family);
  if (slash >= 0) {
    const pt = text.slice(slash + 1);
    if (!PREFIX.test(pt)) return { ok: false, reason: `bad prefix length '${pt}'` };
    prefix = Number(pt);
    const mapped = a.family === 4 && addrText.includes(':');
    if (mapped) {
      // ::ffff:a.b.c.d/n covers IPv4 space only when n >= 96
      if (prefix > 128) return { ok: false, reason: `prefix length ${prefix} is larger than 128` };
      if (prefix < 96) return { ok: false, reason: 'an IPv4-mapped network needs a prefix length >= 96' };
      prefix -= 96;
    } else if (prefix > bits(a.family)) {
      return { ok: false, reason: `prefix length ${prefix} is larger than ${bits(a.family)}` };
    }
  }
  const masked = a.addr & maskOf(a.family, prefix);
  return {
    ok: true,
    cidr: { family: a.family, addr: masked, prefix, text: `${formatAddress(a.family, masked)}/${prefix}` },
    hostBits: masked !== a.addr,
  };
}

/** The one canonical text of an IP address literal, with its family: a dotted quad for IPv4 and for
 * IPv4-mapped IPv6 (RFC 4291 §2.5.5.2: how a dual-stack socket shows an IPv4 peer; IPv4 is never
 * written mapped), RFC 5952 §4 for IPv6 (lower case, no leading zeros, the longest run of two or more
 * zero groups compressed, the first one on a tie). null when `text` is not an address literal: a host
 * name, a zone id (`%eth0`), or a legacy IPv4 form such as `010.1.1.1` or `127.1`. */
export function canonicalAddress(text: string): { family: Family; host: string } | null {
  const a = parseAddress(text);
  return a === null ? null : { family: a.family, host: formatAddress(a.family, a.addr) };
}

/** Canonical text of an address value: dotted quad, or RFC 5952 (lower case, longest zero run
 * compressed). */
export function formatAddress(family: Family, addr: bigint): string {
  if (family === 4) {
    const n = Number(addr); // below 2^32: exact, and >>> reads it as an unsigned 32-bit number
    return `${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
  }
  // one conversion to 32 hex digits, then the eight groups (no bigint arithmetic per group)
  const digits = addr.toString(16).padStart(32, '0');
  const g: number[] = [];
  for (let i = 0; i < 8; i++) g.push(Number.parseInt(digits.slice(i * 4, i * 4 + 4), 16));
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = g.map((x) => x.toString(16));
  if (bestLen < 2) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLen).join(':')}`;
}

/** "198.18.20.254:80" or "[2001:db8::1]:80". */
export function parseEndpoint(
  text: string,
): { ok: true; family: Family; host: string; port: number } | { ok: false; reason: string } {
  let hostText: string;
  let portText: string;
  if (text.startsWith('[')) {
    const close = text.indexOf(']');
    if (close < 0 || text[close + 1] !== ':') return { ok: false, reason: 'expected [IPv6]:port' };
    hostText = text.slice(1, close);
    portText = text.slice(close + 2);
  } else {
    const colon = text.lastIndexOf(':');
    if (colon < 0) return { ok: false, reason: 'expected address:port' };
    hostText = text.slice(0, colon);
    portText = text.slice(colon + 1);
    if (hostText.includes(':')) return { ok: false, reason: 'write IPv6 endpoints as [address]:port' };
  }
  const a = parseAddress(hostText);
  if (a === null) return { ok: false, reason: `'${hostText}' is not an IP address` };
  if (!/^[1-9][0-9]{0,4}$/.test(portText) || Number(portText) > 65535) {
    return { ok: false, reason: `'${portText}' is not a port 1-65535` };
  }
  return { ok: true, family: a.family, host: formatAddress(a.family, a.addr), port: Number(portText) };
}
