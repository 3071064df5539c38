// Data-channel endpoints as FTP writes them: PORT and the 227 reply (RFC 959 §4.1.2, RFC 1123
// §4.1.2.6), EPRT and the 229 reply (RFC 2428 §2, §3). Pure text <-> Addr conversion; the caller does
// the bounce and port checks.
//
// Addresses go through the project's one normaliser (policy/address.ts canonicalAddress: strict
// dotted quads, RFC 5952 IPv6, IPv4-mapped IPv6 as IPv4), the same one the driver's Addr of the
// control connection comes from: the bounce checks compare two texts of one normaliser.

import { canonicalAddress } from '../../policy/address.ts';
import type { Addr } from '../core/index.ts';

function byte(s: string): number | null {
  if (!/^\d{1,3}$/.test(s)) return null;
  const n = Number(s);
  return n <= 255 ? n : null;
}

/** RFC 959 §4.1.2 host-port: "h1,h2,h3,h4,p1,p2" (decimal bytes). Surrounding blanks are tolerated. */
export function parseHostPort(text: string): Addr | null {
  const parts = text.trim().split(',');
  if (parts.length !== 6) return null;
  const b: number[] = [];
  for (const p of parts) {
    const v = byte(p.trim());
    if (v === null) return null;
    b.push(v);
  }
  return { host: `${b[0]}.${b[1]}.${b[2]}.${b[3]}`, port: b[4]! * 256 + b[5]!, family: 4 };
}

export function formatHostPort(a: { host: string; port: number }): string {
  return `${a.host.split('.').join(',')},${a.port >> 8},${a.port & 255}`;
}

/** The 227 reply text: RFC 1123 §4.1.2.6 says to scan for the six numbers, not to rely on the
 * parentheses (servers write "=h1,..." or no parentheses at all). */
export function parse227(text: string): Addr | null {
  const m = /(\d{1,3}),\s*(\d{1,3}),\s*(\d{1,3}),\s*(\d{1,3}),\s*(\d{1,3}),\s*(\d{1,3})/.exec(text);
  if (!m) return null;
  return parseHostPort(m.slice(1, 7).join(','));
}

export function format227(a: { host: string; port: number }): string {
  return `227 Entering Passive Mode (${formatHostPort(a)}).`;
}

/** RFC 2428 §2: EPRT <d><net-prt><d><net-addr><d><tcp-port><d>, d any of ASCII 33-126. */
export function parseEprt(param: string): Addr | null {
  if (param.length < 7) return null;
  const d = param.charCodeAt(0);
  if (d < 33 || d > 126) return null;
  const parts = param.split(param[0]!);
  // "|2|::1|21|" splits into ["", "2", "::1", "21", ""]
  if (parts.length !== 5 || parts[0] !== '' || parts[4] !== '') return null;
  const proto = parts[1];
  if (proto !== '1' && proto !== '2') return null;
  const port = parsePortNumber(parts[3]!);
  if (port === null) return null;
  const c = canonicalAddress(parts[2]!);
  if (!c) return null;
  // RFC 2428: protocol 1 carries an IPv4 address, 2 an IPv6 one. An IPv4-mapped IPv6 address under 2
  // is an IPv4 endpoint for our purposes (canonicalAddress unmaps it).
  if (proto === '1' && (c.family !== 4 || parts[2]!.includes(':'))) return null;
  if (proto === '2' && !parts[2]!.includes(':')) return null;
  return { host: c.host, port, family: c.family };
}

export function formatEprt(a: Addr): string {
  return `|${a.family === 6 ? 2 : 1}|${a.host}|${a.port}|`;
}

function parsePortNumber(s: string): number | null {
  if (!/^\d{1,5}$/.test(s)) return null;
  const n = Number(s);
  return n >= 1 && n <= 65535 ? n : null;
}

/** RFC 2428 §3: the 229 reply carries "(<d><d><d><tcp-port><d>)"; the address is the control peer's. */
export function parse229(text: string): number | null {
  const open = text.indexOf('(');
  if (open < 0) return null;
  const close = text.indexOf(')', open);
  if (close < 0) return null;
  const inner = text.slice(open + 1, close);
  if (inner.length < 5) return null;
  const d = inner[0]!;
  const dc = d.charCodeAt(0);
  if (dc < 33 || dc > 126) return null;
  if (inner[1] !== d || inner[2] !== d || inner[inner.length - 1] !== d) return null;
  return parsePortNumber(inner.slice(3, -1));
}

export function format229(port: number): string {
  return `229 Entering Extended Passive Mode (|||${port}|)`;
}
