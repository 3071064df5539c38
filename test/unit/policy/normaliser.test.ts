// The one address normaliser (policy/address.ts canonicalAddress): RFC 5952 text, IPv4 never mapped,
// and every module that writes or compares addresses gives the same text for every spelling.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import ipaddr from 'ipaddr.js';
import { parseAddress as engineParse } from '../../../src/engine/index.ts';
import { canonicalHost } from '../../../src/net/index.ts';
import { canonicalAddress } from '../../../src/policy/index.ts';
import { parseEprt } from '../../../src/proxy/ftp/index.ts';
import { canonicalHost as httpHost } from '../../../src/proxy/http/host.ts';

describe('canonicalAddress', () => {
  const table: [string, string, 4 | 6][] = [
    ['198.18.1.2', '198.18.1.2', 4],
    ['::ffff:198.18.1.2', '198.18.1.2', 4], // RFC 4291 §2.5.5.2: a dual-stack socket's IPv4 peer
    ['::FFFF:C612:0102', '198.18.1.2', 4],
    ['0:0:0:0:0:ffff:198.18.1.2', '198.18.1.2', 4],
    ['2001:0DB8:0000:0000:0000:0000:0000:0001', '2001:db8::1', 6], // §4.1 no leading zeros, §4.3 lower case
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1', 6], // §4.2.3 the first of equal runs
    ['2001:db8:0:1:0:0:0:1', '2001:db8:0:1::1', 6], // §4.2.3 the longest run
    ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1', 6], // §4.2.2 never a single group
    ['::', '::', 6],
    ['::1', '::1', 6],
    ['::198.18.1.2', '::c612:102', 6], // IPv4-compatible (deprecated) is not IPv4-mapped
    ['64:ff9b::198.18.1.2', '64:ff9b::c612:102', 6],
  ];
  for (const [input, host, family] of table) {
    it(`${input} -> ${host}`, () => assert.deepEqual(canonicalAddress(input), { family, host }));
  }
  for (const bad of [
    'example.org',
    '010.1.1.1',
    '127.1',
    '0x7f.0.0.1',
    'fe80::1%eth0',
    '1.2.3.4.5',
    '',
    ':::',
  ]) {
    it(`${JSON.stringify(bad)} is not an address literal`, () => assert.equal(canonicalAddress(bad), null));
  }
});

/** Another spelling of the same IPv6 value: upper/lower case, leading zeros, :: anywhere it fits. */
function spell(groups: number[], upper: boolean[], pad: boolean[], cut: [number, number] | null): string {
  const g = groups.map((x, i) => {
    let t = x.toString(16);
    if (pad[i]) t = t.padStart(4, '0');
    return upper[i] ? t.toUpperCase() : t;
  });
  if (cut && cut[1] > cut[0] && groups.slice(cut[0], cut[1]).every((x) => x === 0)) {
    return `${g.slice(0, cut[0]).join(':')}::${g.slice(cut[1]).join(':')}`;
  }
  return g.join(':');
}

describe('every module normalises the same way', () => {
  it('any spelling of an IPv6 address: policy, engine, net, HTTP and FTP agree with RFC 5952 (ipaddr.js)', () => {
    // zero groups are frequent so that compression choices are exercised
    const group = fc.oneof(fc.constant(0), fc.constant(0), fc.integer({ min: 0, max: 0xffff }));
    fc.assert(
      fc.property(
        fc.array(group, { minLength: 8, maxLength: 8 }),
        fc.array(fc.boolean(), { minLength: 8, maxLength: 8 }),
        fc.array(fc.boolean(), { minLength: 8, maxLength: 8 }),
        fc.option(fc.tuple(fc.integer({ min: 0, max: 8 }), fc.integer({ min: 0, max: 8 }))),
        (groups, upper, pad, cut) => {
          const text = spell(groups, upper, pad, cut);
          const ref = ipaddr.parse(text) as ipaddr.IPv6;
          const want = ref.isIPv4MappedAddress() ? ref.toIPv4Address().toString() : ref.toRFC5952String();
          assert.equal(canonicalAddress(text)?.host, want, text);
          assert.equal(engineParse(text)?.toString(), want, text);
          assert.equal(canonicalHost(text), want, text);
          assert.equal(httpHost(text, true).host, want, text); // Host: [v6]
          assert.equal(parseEprt(`|2|${text}|21|`)?.host, want, text); // RFC 2428 EPRT
        },
      ),
      { numRuns: 2000, seed: Number(process.env.FC_SEED ?? 20261203) },
    );
  });

  it('an IPv4 address, plain or mapped, is the dotted quad everywhere', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 0xffffffff }), fc.boolean(), (n, mapped) => {
        const quad = [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
        const text = mapped ? `::ffff:${quad}` : quad;
        assert.deepEqual(canonicalAddress(text), { family: 4, host: quad });
        assert.equal(engineParse(text)?.toString(), quad);
        assert.equal(canonicalHost(text), quad);
        assert.equal(httpHost(quad, false).host, quad);
        assert.equal(parseEprt(`|${mapped ? 2 : 1}|${text}|21|`)?.host, quad);
      }),
      { numRuns: 500, seed: Number(process.env.FC_SEED ?? 20261203) },
    );
  });
});
