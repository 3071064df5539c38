// Host canonicalisation's fast path (a host already in canonical form is returned as it is) against
// the general path, on hosts built to sit on either side of the fast path's edges: upper case, root
// dots, empty labels, numeric and 0x-hex last labels, leading zeros, octets past 255.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ProtocolError } from '../../../../src/errors.ts';
import { canonicalHost, canonicalName } from '../../../../src/proxy/http/host.ts';

function outcome(f: () => unknown): unknown {
  try {
    return f();
  } catch (e) {
    if (e instanceof ProtocolError) return `error: ${e.message}`;
    throw e;
  }
}

const LABELS = [
  'a',
  'www',
  'example',
  'com',
  'Example',
  'COM',
  'x-1',
  '0',
  '00',
  '1',
  '01',
  '9',
  '10',
  '99',
  '100',
  '199',
  '200',
  '249',
  '250',
  '255',
  '256',
  '300',
  '0x',
  '0x1f',
  '0X1F',
  '0xg',
  '1a',
  'a1',
  '-',
  '_x',
  '~',
  "a!$&'()*+,;=",
  '',
];

/** A seeded generator: the same hosts on every run. */
function* hosts(n: number): Generator<string> {
  let seed = 0x2545f491;
  const next = (m: number) => {
    seed ^= seed << 13;
    seed ^= seed >>> 17;
    seed ^= seed << 5;
    return (seed >>> 0) % m;
  };
  for (let i = 0; i < n; i++) {
    const parts: string[] = [];
    const count = 1 + next(5);
    for (let j = 0; j < count; j++) parts.push(LABELS[next(LABELS.length)]!);
    let h = parts.join('.');
    if (next(8) === 0) h += '.';
    yield h;
  }
}

describe('canonicalHost', () => {
  it('returns what the general path returns, for every host tried (20,000 seeded hosts)', () => {
    let fast = 0;
    for (const h of hosts(20_000)) {
      if (h === '') continue;
      const got = outcome(() => canonicalHost(h, false));
      assert.deepEqual(
        got,
        outcome(() => canonicalName(h)),
        h,
      );
      if (typeof got === 'object' && (got as { host: string }).host === h) fast++;
    }
    assert.ok(fast > 1000, `only ${fast} hosts were already canonical: the test misses the fast path`);
  });

  it('keeps the general path for spellings that change or fail', () => {
    assert.equal(canonicalHost('WWW.Example.COM', false).host, 'www.example.com');
    assert.equal(canonicalHost('example.com.', false).host, 'example.com');
    assert.equal(canonicalHost('0x7f.1', false).host, '127.0.0.1');
    assert.equal(canonicalHost('010.0.0.1', false).host, '8.0.0.1');
    assert.equal(canonicalHost('198.18.2.3', false).host, '198.18.2.3');
    assert.throws(() => canonicalHost('a..com', false), /empty label/);
    assert.throws(() => canonicalHost('256.1.1.1', false), /looks like an IPv4 address/);
    assert.throws(() => canonicalHost('foo.123', false), /looks like an IPv4 address/);
  });
});
