// Canonical serialisation of heads and body framing (RFC 9112 §3, §4, §5, §7.1). The proxy never
// forwards the bytes of a head it received: it writes its own from the parsed (and policed) fields,
// so whatever a peer smuggled in odd spacing, folding or casing does not reach the other side.
import type { Header } from './reader.ts';

export function requestHeadBytes(method: string, target: string, headers: Header[]): Buffer {
  let s = `${method} ${target} HTTP/1.1\r\n`;
  for (const h of headers) s += `${h.name}: ${h.value}\r\n`;
  return Buffer.from(`${s}\r\n`, 'latin1');
}

export function responseHeadBytes(status: number, reason: string, headers: Header[]): Buffer {
  let s = `HTTP/1.1 ${status} ${reason}\r\n`;
  for (const h of headers) s += `${h.name}: ${h.value}\r\n`;
  return Buffer.from(`${s}\r\n`, 'latin1');
}

/** One chunk (RFC 9112 §7.1) holding `data`; never called with empty data (that is the last chunk). */
export function chunkBytes(data: Uint8Array): Buffer {
  const head = Buffer.from(`${data.length.toString(16)}\r\n`, 'latin1');
  const out = Buffer.allocUnsafe(head.length + data.length + 2);
  head.copy(out, 0);
  out.set(data, head.length);
  out[out.length - 2] = 0x0d;
  out[out.length - 1] = 0x0a;
  return out;
}

/** The last chunk and an empty trailer section (trailers are not forwarded, docs/leniency.md). */
export const LAST_CHUNK = Buffer.from('0\r\n\r\n', 'latin1');
