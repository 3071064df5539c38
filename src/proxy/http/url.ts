// Request-target forms (RFC 9112 §3.2), authority and Host parsing (RFC 9110 §4.2.3, §7.2; RFC 3986
// §3.2), and the canonical path the proxy filters on and forwards (RFC 3986 §6.2.2: percent-encoding
// of unreserved characters decoded, escapes upper-cased, dot-segments removed, §5.2.4). Filtering and
// forwarding the same canonical form means the server cannot read a path other than the one checked.
import { ProtocolError, TzorpError } from '../../errors.ts';
import { canonicalHost } from './host.ts';

export interface Authority {
  /** Lower-cased reg-name, dotted IPv4, or IPv6 without brackets. */
  host: string;
  /** Port as written, or null when absent. */
  port: number | null;
  ipv6: boolean;
}

export type RequestTarget =
  | { form: 'origin'; path: string; query: string | null }
  | { form: 'absolute'; scheme: 'http'; authority: Authority; path: string; query: string | null }
  | { form: 'authority'; authority: Authority }
  | { form: 'asterisk' };

const REG_NAME = /^[A-Za-z0-9\-._~!$&'()*+,;=]*$/; // pct-encoded host names are refused (Zorp too)
/** Parse `host[:port]` (Host header value or authority-form). Throws 400 when malformed. */
export function parseAuthority(s: string, maxHostnameLength: number, what = 'Host'): Authority {
  let host: string;
  let rest: string;
  let ipv6 = false;
  if (s.startsWith('[')) {
    const close = s.indexOf(']');
    if (close < 0) throw new ProtocolError('client', 400, `${what}: unterminated IPv6 literal`);
    host = s.slice(1, close);
    ipv6 = true;
    rest = s.slice(close + 1);
  } else {
    const colon = s.indexOf(':');
    host = colon < 0 ? s : s.slice(0, colon);
    rest = colon < 0 ? '' : s.slice(colon);
    if (!REG_NAME.test(host)) throw new ProtocolError('client', 400, `${what}: invalid host name`);
  }
  if (host.length > maxHostnameLength)
    throw new ProtocolError('client', 400, `${what}: host name longer than max_hostname_length`, {
      limit: true,
    });
  // Rules, the destination check and the router see one spelling of each host (host.ts).
  const canon = canonicalHost(host, ipv6, what);
  host = canon.host;
  ipv6 = canon.ipv6;
  let port: number | null = null;
  if (rest !== '') {
    if (!/^:\d{0,5}$/.test(rest)) throw new ProtocolError('client', 400, `${what}: invalid port`);
    if (rest.length > 1) {
      port = Number(rest.slice(1));
      if (port < 1 || port > 65535) throw new ProtocolError('client', 400, `${what}: port out of range`);
    }
  }
  return { host, port, ipv6 };
}

export function formatAuthority(a: { host: string; port: number | null }, defaultPort = 80): string {
  const h = a.host.includes(':') ? `[${a.host}]` : a.host;
  return a.port === null || a.port === defaultPort ? h : `${h}:${a.port}`;
}

const HEX = /^[0-9A-Fa-f]{2}$/;
const UNRESERVED = /[A-Za-z0-9\-._~]/;
// pchar plus '/' and '?': unreserved, pct-encoded, sub-delims, ':' '@' (RFC 3986 §3.3, §3.4).
const PATH_CHARS = /^[A-Za-z0-9\-._~!$&'()*+,;=:@/%]*$/;
const QUERY_CHARS = /^[A-Za-z0-9\-._~!$&'()*+,;=:@/?%]*$/;

/** Normalise percent-encoding: decode unreserved, upper-case the rest; refuse invalid escapes
 * (Zorp's permit_invalid_hex_escape FALSE). */
function normalisePct(s: string, what: string): string {
  if (!s.includes('%')) return s;
  let out = '';
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!;
    if (c !== '%') {
      out += c;
      continue;
    }
    const hex = s.slice(i + 1, i + 3);
    if (!HEX.test(hex)) throw new ProtocolError('client', 400, `invalid percent-escape in ${what}`);
    const ch = String.fromCharCode(Number.parseInt(hex, 16));
    out += UNRESERVED.test(ch) ? ch : `%${hex.toUpperCase()}`;
    i += 2;
  }
  return out;
}

/** RFC 3986 §5.2.4 remove_dot_segments. */
export function removeDotSegments(path: string): string {
  const input = path.split('/');
  const out: string[] = [];
  for (let i = 0; i < input.length; i++) {
    const seg = input[i]!;
    const last = i === input.length - 1;
    if (seg === '.' || seg === '..') {
      if (seg === '..' && out.length > 1) out.pop();
      if (last) out.push('');
      continue;
    }
    out.push(seg);
  }
  const joined = out.join('/');
  return joined.startsWith('/') ? joined : `/${joined}`;
}

function splitPathQuery(s: string): { path: string; query: string | null } {
  const q = s.indexOf('?');
  const path = q < 0 ? s : s.slice(0, q);
  const query = q < 0 ? null : s.slice(q + 1);
  if (s.includes('#')) throw new ProtocolError('client', 400, 'fragment in request-target');
  if (!PATH_CHARS.test(path)) throw new ProtocolError('client', 400, 'invalid character in path');
  if (query !== null && !QUERY_CHARS.test(query))
    throw new ProtocolError('client', 400, 'invalid character in query');
  return {
    path: canonicalPath(normalisePct(path === '' ? '/' : path, 'path')),
    query: query === null ? null : normalisePct(query, 'query'),
  };
}

/** Escapes that servers decode into path structure (`%2F`, `%5C` as a separator on Windows servers)
 * or that end a C string (`%00`): a rule on `/private/*` would not see `/private%2Fx` as below it. */
const STRUCTURAL_ESCAPE = /%(2F|5C|00)/;
/** A dot segment with path parameters (`..;x`, `.;`): Tomcat strips `;…` and then walks up. */
const DOT_PARAM_SEGMENT = /(^|\/)\.\.?;/;

/** The path the proxy filters and forwards (review findings 1 and 8): no repeated slashes (nginx and
 * Apache merge them, so `//admin` is `/admin` there, yet no rule for `/admin` would match it), no dot
 * segments, nothing a server would decode into another path. The same text goes to the server, so it
 * has nothing left to re-interpret. */
export function canonicalPath(pctNormalised: string): string {
  // Already canonical: no escape left, no repeated slash, no segment starting with a dot (so no dot
  // segment, with or without parameters). Most paths are.
  if (
    pctNormalised.charCodeAt(0) === 0x2f &&
    !pctNormalised.includes('%') &&
    !pctNormalised.includes('//') &&
    !pctNormalised.includes('/.')
  )
    return pctNormalised;
  if (STRUCTURAL_ESCAPE.test(pctNormalised))
    throw new ProtocolError('client', 400, 'encoded slash, backslash or NUL in path');
  if (DOT_PARAM_SEGMENT.test(pctNormalised))
    throw new ProtocolError('client', 400, 'dot segment with parameters in path');
  // Merge first, then remove dot segments: `/x/..//admin` is `/admin`, as nginx reads it.
  const path = removeDotSegments(pctNormalised.replace(/\/{2,}/g, '/'));
  if (path.includes('//')) throw new TzorpError('INTERNAL', `canonical path with '//': ${path}`); // a bug of ours
  return path;
}

/** Parse a request-target (RFC 9112 §3.2) for `method`. Throws ProtocolError (client, 400) when malformed. */
export function parseRequestTarget(target: string, method: string, maxHostnameLength: number): RequestTarget {
  if (method === 'CONNECT') {
    // authority-form: host and a port, nothing else (RFC 9112 §3.2.3).
    const a = parseAuthority(target, maxHostnameLength, 'CONNECT target');
    if (a.port === null) throw new ProtocolError('client', 400, 'CONNECT target needs a port');
    if (a.host === '') throw new ProtocolError('client', 400, 'CONNECT target needs a host');
    return { form: 'authority', authority: a };
  }
  if (target === '*') {
    if (method !== 'OPTIONS') throw new ProtocolError('client', 400, 'asterisk-form is only for OPTIONS');
    return { form: 'asterisk' };
  }
  if (target.startsWith('/')) {
    if (target.startsWith('//')) throw new ProtocolError('client', 400, 'request-target starts with //');
    return { form: 'origin', ...splitPathQuery(target) };
  }
  const m = /^([A-Za-z][A-Za-z0-9+.-]*):\/\/([^/?#]*)(.*)$/.exec(target);
  if (!m) throw new ProtocolError('client', 400, 'request-target is neither origin-form nor absolute-form');
  if (m[1]!.toLowerCase() !== 'http')
    throw new ProtocolError('client', 400, `unsupported URI scheme '${m[1]}'`);
  if (m[2]!.includes('@')) throw new ProtocolError('client', 400, 'userinfo in request-target'); // RFC 9110 §4.2.4
  const authority = parseAuthority(m[2]!, maxHostnameLength, 'request-target');
  if (authority.host === '') throw new ProtocolError('client', 400, 'http URI without a host'); // RFC 9110 §4.2.1
  return { form: 'absolute', scheme: 'http', authority, ...splitPathQuery(m[3]!) };
}

export function pathAndQuery(t: { path: string; query: string | null }): string {
  return t.query === null ? t.path : `${t.path}?${t.query}`;
}

export { globToRegExp } from '../core/glob.ts';
