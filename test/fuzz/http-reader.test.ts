// Fuzzing the HTTP reader: for any input, reading it whole, split at every byte position, or byte by
// byte gives the same messages (heads, body bytes, ends) and the same protocol error, nothing else;
// and the reader never holds more than one head's worth of bytes (bounded memory).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import type { ProtocolError } from '../../src/errors.ts';
import { HttpReader } from '../../src/proxy/http/index.ts';
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
