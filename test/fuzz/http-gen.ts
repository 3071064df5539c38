// Generators and the read loop for the HTTP reader fuzz tests (http-reader.test.ts).
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ProtocolError } from '../../src/errors.ts';
import { HttpReader, type ReaderLimits } from '../../src/proxy/http/index.ts';

export const LIMITS: ReaderLimits = {
  maxLineLength: 64,
  maxUrlLength: 40,
  maxHostnameLength: 20,
  maxHeaderLines: 5,
  maxHeaderBytes: 200,
  maxBodyLength: 120,
  maxChunkLength: 50,
  maxChunkExtensionBytes: 30,
};
/** The most a drained reader may keep: a head in progress (or one chunk-size line). */
export const BOUND = LIMITS.maxHeaderBytes + 2;

type Outcome = { items: string[]; error: number | null };

function drain(r: HttpReader, o: Outcome): void {
  for (;;) {
    let it: ReturnType<HttpReader['read']>;
    try {
      it = r.read();
    } catch (e) {
      if (!(e instanceof ProtocolError)) throw e; // anything else is a bug
      o.error = e.reply;
      return;
    }
    if (it.type === 'need') return;
    if (it.type === 'body') {
      const last = o.items[o.items.length - 1];
      const text = Buffer.from(it.data).toString('latin1');
      if (last?.startsWith('body:')) o.items[o.items.length - 1] = last + text;
      else o.items.push(`body:${text}`);
    } else if (it.type === 'head') {
      o.items.push(`head:${JSON.stringify(it.head)}:${JSON.stringify(it.framing)}`);
      if (it.framing.type === 'tunnel') {
        o.items.push(`tunnel:${Buffer.from(r.takeRemaining()).toString('latin1')}`);
        return;
      }
    } else if (it.type === 'end') o.items.push(`end:${JSON.stringify(it.trailers)}`);
    else {
      o.items.push('eof');
      return;
    }
  }
}

export function run(
  kind: 'request' | 'response',
  methods: string[],
  input: Buffer,
  cuts: number[],
  eof: boolean,
): Outcome {
  const r = new HttpReader(kind, LIMITS);
  for (const m of methods) r.expectResponse(m);
  const o: Outcome = { items: [], error: null };
  const tunnelled = () => o.items[o.items.length - 1]?.startsWith('tunnel:') === true;
  let prev = 0;
  for (const cut of [...cuts, input.length]) {
    if (o.error !== null) break;
    const piece = input.subarray(prev, cut);
    prev = cut;
    if (tunnelled()) {
      // After a tunnel head the core relays raw bytes: do the same so splits compare equal.
      o.items[o.items.length - 1] += piece.toString('latin1');
      continue;
    }
    r.push(piece);
    drain(r, o);
    if (o.error === null && !tunnelled()) {
      assert.ok(r.buffered <= BOUND, `reader holds ${r.buffered} bytes after draining`);
    }
  }
  if (eof && o.error === null && !tunnelled()) {
    r.finish();
    drain(r, o);
  }
  return o;
}

export const REQ_PIECES = [
  'GET / HTTP/1.1\r\n',
  'POST /a?b=c HTTP/1.1\r\n',
  'HEAD / HTTP/1.0\r\n',
  'CONNECT h:443 HTTP/1.1\r\n',
  'GET http://h/x HTTP/1.1\r\n',
  'Host: h\r\n',
  'Host: [::1]:8080\r\n',
  'Content-Length: 5\r\n',
  'Content-Length: 0\r\n',
  'Content-Length: 500\r\n',
  'Transfer-Encoding: chunked\r\n',
  'Transfer-Encoding: gzip, chunked\r\n',
  'X-A: b\r\n',
  ' folded\r\n',
  'X-B : c\r\n',
  '\r\n',
  '\n',
  '\r',
  '5\r\nhello\r\n',
  '3;e=1\r\nabc\r\n',
  '0\r\n\r\n',
  '0\r\nT: t\r\n\r\n',
  'ffffffffffffffffff\r\n',
  'hello',
  '\x00',
  'x'.repeat(70),
];
export const RESP_PIECES = [
  'HTTP/1.1 200 OK\r\n',
  'HTTP/1.1 100 Continue\r\n',
  'HTTP/1.1 101 Switching Protocols\r\n',
  'HTTP/1.1 204 No Content\r\n',
  'HTTP/1.1 304 Not Modified\r\n',
  'HTTP/1.0 200 OK\r\n',
  'HTTP/1.1 200\r\n',
  'HTTP/2 200\r\n',
  ...REQ_PIECES.slice(5),
];

/** Random byte strings from pieces (mostly junk: exercises the error paths). */
export function inputArb(pieces: string[]) {
  return fc
    .array(
      fc.oneof(
        { weight: 5, arbitrary: fc.constantFrom(...pieces) },
        {
          weight: 1,
          arbitrary: fc.uint8Array({ maxLength: 6 }).map((a) => Buffer.from(a).toString('latin1')),
        },
      ),
      { maxLength: 14 },
    )
    .map((xs) => Buffer.from(xs.join(''), 'latin1'));
}

const headerArb = fc.constantFrom(
  'X-A: b',
  'Accept: */*',
  'Connection: close',
  'Expect: 100-continue',
  'X-Empty:',
  'Upgrade: websocket',
);
const bodyArb = fc.oneof(
  fc.constant({ h: [] as string[], b: '' }),
  fc.string({ maxLength: 30 }).map((x) => ({ h: [`Content-Length: ${x.length}`], b: x })),
  fc
    .array(
      fc.tuple(fc.string({ minLength: 1, maxLength: 12 }), fc.constantFrom('', ';e', ';e=v', ';e="q v"')),
      { maxLength: 4 },
    )
    .chain((chunks) =>
      fc.constantFrom('', 'T: t\r\n').map((tr) => ({
        h: ['Transfer-Encoding: chunked'],
        b: `${chunks.map(([d, e]) => `${d.length.toString(16)}${e}\r\n${d}\r\n`).join('')}0\r\n${tr}\r\n`,
      })),
    ),
);

function messageArb(kind: 'request' | 'response') {
  const start =
    kind === 'request'
      ? fc.constantFrom(
          'GET / HTTP/1.1',
          'POST /up?x=1 HTTP/1.1',
          'HEAD /h HTTP/1.1',
          'GET / HTTP/1.0',
          'OPTIONS * HTTP/1.1',
          'CONNECT h:443 HTTP/1.1',
        )
      : fc.constantFrom(
          'HTTP/1.1 200 OK',
          'HTTP/1.1 204 No Content',
          'HTTP/1.1 304 Not Modified',
          'HTTP/1.1 100 Continue',
          'HTTP/1.1 101 Switching Protocols',
          'HTTP/1.0 404 Not Found',
          'HTTP/1.1 500',
        );
  return fc
    .tuple(
      start,
      fc.array(headerArb, { maxLength: 3 }),
      bodyArb,
      fc.oneof({ weight: 9, arbitrary: fc.constant(true) }, { weight: 1, arbitrary: fc.constant(false) }),
    )
    .map(
      ([s, hs, body, host]) =>
        `${s}\r\n${!host || kind === 'response' ? '' : 'Host: h\r\n'}${[...hs, ...body.h].map((h) => `${h}\r\n`).join('')}\r\n${body.b}`,
    );
}

/** Mostly well-formed message sequences, sometimes with one byte inserted, removed or replaced. */
export function messagesArb(kind: 'request' | 'response') {
  return fc
    .tuple(
      fc.array(messageArb(kind), { minLength: 1, maxLength: 3 }),
      fc.option(fc.tuple(fc.nat(), fc.constantFrom('ins', 'del', 'rep'), fc.integer({ min: 0, max: 255 })), {
        freq: 2,
      }),
    )
    .map(([msgs, mut]) => {
      let s = Buffer.from(msgs.join(''), 'latin1');
      if (mut && s.length > 0) {
        const [pos, op, byte] = mut;
        const i = pos % s.length;
        const b = Buffer.of(byte);
        if (op === 'ins') s = Buffer.concat([s.subarray(0, i), b, s.subarray(i)]);
        else if (op === 'del') s = Buffer.concat([s.subarray(0, i), s.subarray(i + 1)]);
        else s = Buffer.concat([s.subarray(0, i), b, s.subarray(i + 1)]);
      }
      return s;
    });
}

export const methodsArb = fc.array(fc.constantFrom('GET', 'HEAD', 'POST', 'CONNECT'), {
  minLength: 1,
  maxLength: 4,
});
