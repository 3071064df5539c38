// ClientHellos for the TLS tests: real ones written by node:tls (captured from an in-memory stream, no
// socket), and hand-built ones for what a real client never sends.
import { Duplex } from 'node:stream';
import tls from 'node:tls';

/** The first flight node:tls writes as a client (its ClientHello record). */
export function captureHello(opts: tls.ConnectionOptions): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const wire = new Duplex({
      read() {},
      write(chunk: Buffer, _enc, cb) {
        resolve(Buffer.from(chunk));
        cb();
        queueMicrotask(() => s.destroy());
      },
    });
    const s = tls.connect({ ...opts, socket: wire });
    s.on('error', () => {});
    setTimeout(() => reject(new Error('node:tls wrote no ClientHello')), 5000).unref();
  });
}

const u16 = (n: number) => [n >> 8, n & 0xff];
const u24 = (n: number) => [(n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff];

export interface HelloSpec {
  legacyVersion?: number;
  /** Extensions as [type, body bytes], in order. */
  extensions?: [number, number[]][];
  noExtensions?: boolean;
}

export function sniExt(...names: string[]): [number, number[]] {
  const list = names.flatMap((n) => [0, ...u16(n.length), ...Buffer.from(n, 'latin1')]);
  return [0, [...u16(list.length), ...list]];
}
export function alpnExt(...protos: string[]): [number, number[]] {
  const list = protos.flatMap((p) => [p.length, ...Buffer.from(p, 'latin1')]);
  return [16, [...u16(list.length), ...list]];
}
export function versionsExt(...v: number[]): [number, number[]] {
  return [43, [v.length * 2, ...v.flatMap(u16)]];
}

/** The ClientHello handshake message (4-byte header + body). */
export function helloMessage(spec: HelloSpec = {}): number[] {
  const body = [
    ...u16(spec.legacyVersion ?? 0x0303),
    ...new Array(32).fill(7), // random
    0, // empty session id
    ...u16(2),
    0x13,
    0x01, // TLS_AES_128_GCM_SHA256
    1,
    0, // compression: null
  ];
  if (!spec.noExtensions) {
    const exts = (spec.extensions ?? []).flatMap(([t, b]) => [...u16(t), ...u16(b.length), ...b]);
    body.push(...u16(exts.length), ...exts);
  }
  return [1, ...u24(body.length), ...body];
}

/** Wraps handshake bytes in records of at most `fragment` bytes. */
export function records(hs: number[], fragment = 16384): Buffer {
  const out: number[] = [];
  for (let i = 0; i < hs.length; i += fragment) {
    const part = hs.slice(i, i + fragment);
    out.push(22, 3, 1, ...u16(part.length), ...part);
  }
  return Buffer.from(out);
}

export function helloRecord(spec: HelloSpec = {}, fragment?: number): Buffer {
  return records(helloMessage(spec), fragment);
}
