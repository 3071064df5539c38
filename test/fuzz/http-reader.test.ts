// Fuzzing the HTTP reader: for any input, reading it whole, split at every byte position, or byte by
// byte gives the same messages (heads, body bytes, ends) and the same protocol error, nothing else;
// and the reader never holds more than one head's worth of bytes (bounded memory).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import type { ProtocolError } from '../../src/errors.ts';
import { HttpReader } from '../../src/proxy/http/index.ts';
import { parseRequestLine, parseStatusLine } from '../../src/proxy/http/reader.ts';
import {
  BOUND,
  inputArb,
  LIMITS,
  messagesArb,
  methodsArb,
  REQ_PIECES,
  RESP_PIECES,
  run,
} from './http-gen.ts';

for (const kind of ['request', 'response'] as const) {
  test(`http reader (${kind}s): same outcome whole, split at every byte, and byte by byte`, () => {
    fc.assert(
      fc.property(
        fc.oneof(messagesArb(kind), inputArb(kind === 'request' ? REQ_PIECES : RESP_PIECES)),
        methodsArb,
        fc.boolean(),
        (input, methods, eof) => {
          const whole = run(kind, methods, input, [], eof);
          for (let i = 1; i < input.length; i++) {
            assert.deepEqual(run(kind, methods, input, [i], eof), whole, `split at ${i}`);
          }
          const bytes = Array.from({ length: Math.max(0, input.length - 1) }, (_, i) => i + 1);
          assert.deepEqual(run(kind, methods, input, bytes, eof), whole, 'byte by byte');
        },
      ),
      { numRuns: 400 },
    );
  });
}

test('http reader: random bytes give messages or a protocol error, nothing else', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 600 }), fc.constantFrom('request', 'response'), (bytes, kind) => {
      const o = run(kind as 'request' | 'response', ['GET'], Buffer.from(bytes), [], true);
      assert.ok(o.error === null || (o.error >= 400 && o.error <= 505));
    }),
    { numRuns: 2000 },
  );
});

test('http reader: a long head trickled byte by byte stays bounded and fails with 431', () => {
  const r = new HttpReader('request', LIMITS);
  const head = Buffer.from(`GET / HTTP/1.1\r\n${'X-A: 0123456789\r\n'.repeat(20)}\r\n`, 'latin1');
  let status = 0;
  for (const b of head) {
    r.push(Uint8Array.of(b));
    try {
      if (r.read().type !== 'need') break;
    } catch (e) {
      status = (e as ProtocolError).reply;
      break;
    }
    assert.ok(r.buffered <= BOUND);
  }
  assert.equal(status, 431);
});

// The start lines are read by offsets (reader.ts parseRequestLine / parseStatusLine), not split and
// matched: they must give what the grammar as regular expressions gives (the reader's earlier code,
// kept here as the reference), the same fields or the same error, for lines made of near misses.
type StartOutcome = { fields: unknown[] } | { reply: number; message: string };

function refRequestLine(line: string, maxUrl: number): StartOutcome {
  const parts = line.split(' ');
  const vm = parts.length === 3 ? /^HTTP\/(\d)\.(\d)$/.exec(parts[2]!) : null;
  if (parts.length === 3 && !vm && /^HTTP\/\d+(\.\d+)?$/.test(parts[2]!))
    return { reply: 505, message: `unsupported HTTP version '${parts[2]}'` };
  if (!vm) return { reply: 400, message: 'malformed request line' };
  const [method, target] = parts as [string, string];
  if (!/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(method)) return { reply: 400, message: 'invalid method' };
  if (vm[1] !== '1') return { reply: 505, message: `unsupported HTTP version '${parts[2]}'` };
  if (!/^[\x21-\x7e]+$/.test(target)) return { reply: 400, message: 'invalid request-target' };
  if (target.length > maxUrl) return { reply: 414, message: 'request-target longer than max_url_length' };
  return { fields: [method, target, 1, Number(vm[2])] };
}

function refStatusLine(line: string): StartOutcome {
  const m = /^HTTP\/(\d)\.(\d) (\d{3})(?: (.*))?$/.exec(line);
  if (!m) return { reply: 502, message: 'malformed status line' };
  if (m[1] !== '1') return { reply: 502, message: 'response is not HTTP/1.x' };
  const status = Number(m[3]);
  if (status < 100 || status > 599) return { reply: 502, message: `invalid status code ${m[3]}` };
  const reason = m[4] ?? '';
  if (/[\x00-\x08\x0a-\x1f\x7f]/.test(reason))
    return { reply: 502, message: 'control character in reason phrase' };
  return { fields: [1, Number(m[2]), status, reason] };
}

function readStart(kind: 'request' | 'response', line: string): StartOutcome {
  try {
    if (kind === 'request') {
      const l = parseRequestLine(line, LIMITS.maxUrlLength);
      return { fields: [l.method, l.target, l.version.major, l.version.minor] };
    }
    const l = parseStatusLine(line);
    return { fields: [l.version.major, l.version.minor, l.status, l.reason] };
  } catch (e) {
    const p = e as ProtocolError;
    return { reply: p.reply, message: p.message };
  }
}

const startPiece = (xs: string[]) => fc.constantFrom(...xs);
const versionArb = startPiece([
  'HTTP/1.1',
  'HTTP/1.0',
  'HTTP/1.9',
  'HTTP/2.0',
  'HTTP/0.9',
  'HTTP/11',
  'HTTP/1.10',
  'HTTP/1.',
  'http/1.1',
  'HTTP/1.1 ',
  'HTTP/1a1',
  'HTTP/',
  '',
]);

test('http reader: request lines read by offsets agree with the grammar as regular expressions', () => {
  const arb = fc.tuple(
    startPiece([
      'GET',
      'HEAD',
      'POST',
      'CONNECT',
      'GETX',
      'GE',
      'get',
      'M-SEARCH',
      'G@T',
      '',
      'TRACE',
      'DELETE',
    ]),
    startPiece([' ', '  ', '\t', '']),
    startPiece(['/', '/a?b=c', 'http://x/y', '*', '', '/\x7f', '/é', `/${'a'.repeat(45)}`, 'a b']),
    startPiece([' ', '  ', '']),
    versionArb,
  );
  fc.assert(
    fc.property(arb, (pieces) => {
      const line = pieces.join('');
      assert.deepEqual(
        readStart('request', line),
        refRequestLine(line, LIMITS.maxUrlLength),
        JSON.stringify(line),
      );
    }),
    { numRuns: 3000 },
  );
});

test('http reader: status lines read by offsets agree with the grammar as regular expressions', () => {
  const arb = fc.tuple(
    versionArb,
    startPiece([' ', '  ', '']),
    startPiece(['200', '404', '099', '100', '599', '600', '20', '2000', '2a0', '']),
    startPiece(['', ' ', ' OK', '  OK', 'OK', ' O\x01K', ' Fine\tthen', ' é', ' \x7f']),
  );
  fc.assert(
    fc.property(arb, (pieces) => {
      const line = pieces.join('');
      assert.deepEqual(readStart('response', line), refStatusLine(line), JSON.stringify(line));
    }),
    { numRuns: 3000 },
  );
});
