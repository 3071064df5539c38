// Character classes of HTTP's grammar (RFC 9110 §5.1, §5.5, §5.6.2; RFC 9112 §3, §5). Heads are handled
// as latin1 strings: one char per byte, so every byte round-trips and obs-text stays what it was.

/** tchar (RFC 9110 §5.6.2). */
const TCHAR = new Uint8Array(256);
for (const c of "!#$%&'*+-.^_`|~") TCHAR[c.charCodeAt(0)] = 1;
for (let c = 0x30; c <= 0x39; c++) TCHAR[c] = 1;
for (let c = 0x41; c <= 0x5a; c++) TCHAR[c] = 1;
for (let c = 0x61; c <= 0x7a; c++) TCHAR[c] = 1;

export function isToken(s: string): boolean {
  if (s.length === 0) return false;
  for (let i = 0; i < s.length; i++) if (TCHAR[s.charCodeAt(i)] !== 1) return false;
  return true;
}

/** field-value characters: VCHAR, obs-text, SP, HTAB (RFC 9110 §5.5). Anything else (NUL, CR, LF,
 * other controls, DEL) is refused rather than replaced: a proxy must not guess what was meant. */
export function isFieldValue(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 0x09) continue;
    if (c < 0x20 || c === 0x7f || c > 0xff) return false;
  }
  return true;
}

/** The methods of RFC 9110 §9.3 and RFC 5789. */
export const STANDARD_METHODS: readonly string[] = [
  'GET',
  'HEAD',
  'POST',
  'PUT',
  'DELETE',
  'CONNECT',
  'OPTIONS',
  'TRACE',
  'PATCH',
];

/** Strip OWS (SP / HTAB) at both ends (RFC 9110 §5.5: not part of the value); from `from` on (a
 * field's value after its colon: one slice, not two). */
export function trimOws(s: string, from = 0): string {
  let a = from;
  let b = s.length;
  while (a < b && (s.charCodeAt(a) === 0x20 || s.charCodeAt(a) === 0x09)) a++;
  while (b > a && (s.charCodeAt(b - 1) === 0x20 || s.charCodeAt(b - 1) === 0x09)) b--;
  return s.slice(a, b);
}

/** Request-target characters we accept: visible US-ASCII only (RFC 9112 §3.2; RFC 3986 has no raw
 * spaces, controls or non-ASCII — Zorp's permit_unicode_url FALSE). */
export function isVisibleAscii(s: string): boolean {
  if (s.length === 0) return false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x21 || c > 0x7e) return false;
  }
  return true;
}

/** quoted-string (RFC 9110 §5.6.4) at the start of s; returns its length or -1. */
export function quotedStringLength(s: string, from: number): number {
  if (s.charCodeAt(from) !== 0x22) return -1;
  let i = from + 1;
  while (i < s.length) {
    const c = s.charCodeAt(i);
    if (c === 0x22) return i + 1 - from;
    if (c === 0x5c) {
      const n = s.charCodeAt(i + 1);
      if (Number.isNaN(n) || (n < 0x20 && n !== 0x09) || n === 0x7f) return -1;
      i += 2;
      continue;
    }
    if ((c < 0x20 && c !== 0x09) || c === 0x7f) return -1;
    i++;
  }
  return -1;
}

/** Split a comma-separated list (RFC 9110 §5.6.1) into trimmed, lower-cased elements. Empty
 * elements are returned as '' so callers that must be strict can see them. */
export function splitList(value: string): string[] {
  // (one token, the usual `keep-alive` or `chunked`: no split and no map)
  if (value.indexOf(',') < 0) return [trimOws(value).toLowerCase()];
  return value.split(',').map((x) => trimOws(x).toLowerCase());
}
