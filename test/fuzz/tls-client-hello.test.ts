// Property tests of the TLS ClientHello reader (fast-check): any bytes give a hello, "need more" or a
// ProtocolError, never anything else; the answer does not depend on how much arrived beyond the hello;
// mutated real hellos stay within the same three answers; memory is bounded by the limit.
import assert from 'node:assert/strict';
import { isIP } from 'node:net';
import { test } from 'node:test';
import fc from 'fast-check';
import { ProtocolError } from '../../src/errors.ts';
import { readClientHello } from '../../src/proxy/tls/index.ts';
import { alpnExt, helloMessage, records, sniExt, versionsExt } from '../unit/proxy/tls/hello-fixtures.ts';

const SEED = Number(process.env.FC_SEED ?? 20261203);
const MAX = 4096;

function answer(b: Uint8Array): string {
  try {
    const h = readClientHello(b, MAX);
    return h === null ? 'need' : JSON.stringify(h);
  } catch (e) {
    assert.ok(e instanceof ProtocolError, `not a ProtocolError: ${String(e)}`);
    assert.equal(e.side, 'client');
    assert.ok(Number.isInteger(e.reply) && e.reply > 0 && e.reply < 256);
    return `error ${e.reply}`;
  }
}

const label = fc.stringMatching(/^[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?$/);
const hostName = fc.array(label, { minLength: 1, maxLength: 4 }).map((l) => l.join('.'));
const helloBytes = fc
  .record({
    sni: fc.option(hostName, { nil: undefined }),
    alpn: fc.array(fc.constantFrom('h2', 'http/1.1', 'ftp'), { maxLength: 3 }),
    versions: fc.array(fc.constantFrom(0x0304, 0x0303, 0x0a0a, 0x7a7a), { maxLength: 4 }),
    fragment: fc.integer({ min: 1, max: 300 }),
  })
  .map(({ sni, alpn, versions, fragment }) => {
    const exts: [number, number[]][] = [];
    if (sni) exts.push(sniExt(sni));
    if (alpn.length) exts.push(alpnExt(...alpn));
    if (versions.length) exts.push(versionsExt(...versions));
    return { bytes: records(helloMessage({ extensions: exts }), fragment), sni: sni ?? null };
  });

test('random bytes: a hello, need more, or a ProtocolError with an alert', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 600 }), (b) => {
      answer(b);
    }),
    { seed: SEED, numRuns: 3000 },
  );
});

test('generated hellos read back what was written, however they are fragmented', () => {
  fc.assert(
    fc.property(helloBytes, ({ bytes, sni }) => {
      const h = readClientHello(bytes, MAX);
      assert.ok(h);
      // (an address literal, which the generator can write, is taken as no name)
      assert.equal(h.sni, sni !== null && isIP(sni) !== 0 ? null : sni);
      assert.equal(h.consumed, bytes.length);
    }),
    { seed: SEED, numRuns: 500 },
  );
});

test('a prefix of a hello is need more; bytes beyond it change nothing', () => {
  fc.assert(
    fc.property(helloBytes, fc.nat(), fc.uint8Array({ maxLength: 64 }), ({ bytes }, cut, extra) => {
      const k = cut % bytes.length;
      assert.equal(answer(bytes.subarray(0, k)), 'need');
      const whole = answer(bytes);
      assert.equal(answer(Buffer.concat([bytes, extra])), whole);
    }),
    { seed: SEED, numRuns: 500 },
  );
});

test('mutated hellos (a byte changed, dropped or added): still one of the three answers', () => {
  fc.assert(
    fc.property(
      helloBytes,
      fc.nat(),
      fc.integer({ min: 0, max: 255 }),
      fc.constantFrom('set', 'drop', 'add'),
      ({ bytes }, at, v, op) => {
        const b = [...bytes];
        const i = at % b.length;
        if (op === 'set') b[i] = v;
        else if (op === 'drop') b.splice(i, 1);
        else b.splice(i, 0, v);
        answer(Uint8Array.from(b));
      },
    ),
    { seed: SEED, numRuns: 2000 },
  );
});

test('bounded: input beyond the limit without a complete hello is refused, not buffered', () => {
  const endless = Buffer.alloc(MAX + 10);
  endless.set([22, 3, 1, 0x3f, 0xff, 1, 0xff, 0xff, 0xff]); // a record and a hello announcing 16 MiB
  assert.match(answer(endless), /^error 40$/);
});
