import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import {
  flattenPrefixes,
  flattenZones,
  PrefixTrie,
  ZoneTrie,
  zoneSubnetsFlattened,
} from '../../../src/engine/index.ts';
import { makePolicy } from './fixtures.ts';

const policy = makePolicy({
  zones: {
    internet: { addresses: ['0.0.0.0/0'] },
    clients: { addresses: ['198.18.10.0/23', '2001:db8:10::/48'] },
    servers: { addresses: ['198.18.20.0/23'] },
    'servers.audit': { parent: 'servers', addresses: ['198.18.21.1'] },
    'servers.audit.deep': { parent: 'servers.audit', addresses: ['198.18.22.0/24'] },
    v6only: { addresses: ['2001:db8::/32'] },
  },
});

test('longest-prefix match per family, /0 fallback, no zone otherwise, no cross-family fallback', () => {
  const t = ZoneTrie.fromPolicy(policy);
  assert.equal(t.lookup('198.18.10.1')?.name, 'clients');
  assert.equal(t.lookup('198.18.11.255')?.name, 'clients');
  assert.equal(t.lookup('198.18.12.0')?.name, 'internet');
  assert.equal(t.lookup('198.18.21.1')?.name, 'servers.audit');
  assert.equal(t.lookup('198.18.21.2')?.name, 'servers');
  // subnet membership ignores the hierarchy: a child outside its parent's networks
  assert.equal(t.lookup('198.18.22.7')?.name, 'servers.audit.deep');
  assert.equal(t.lookup('2001:db8:10::5')?.name, 'clients');
  assert.equal(t.lookup('2001:db8:11::5')?.name, 'v6only');
  // IPv4's /0 does not cover IPv6
  assert.equal(t.lookup('2001:db9::1'), null);
  assert.equal(t.lookup('::ffff:198.18.10.1')?.name, 'clients');
  assert.throws(() => t.lookup('010.1.1.1'));
});

test('no /0 zone: addresses outside every zone have no zone', () => {
  const t = ZoneTrie.fromPolicy(makePolicy({ zones: { a: { addresses: ['10.0.0.0/8'] } } }));
  assert.equal(t.lookup('11.0.0.1'), null);
  assert.equal(t.lookup('10.255.255.255')?.name, 'a');
});

test('holds 100,000 networks', () => {
  // networks built as values (cidr() parses text with ipaddr.js: too slow for 100,000)
  const policy100k = makePolicy({
    zones: Object.fromEntries([...Array(100).keys()].map((z) => [`z${z}`, {}])),
  });
  for (let n = 0; n < 100_000; n++) {
    const z = policy100k.zones.get(`z${Math.floor(n / 1000)}`)!;
    if (n % 2) z.addresses.push({ family: 4, addr: (10n << 24n) | BigInt(n), prefix: 32, text: '' });
    else
      z.addresses.push({ family: 6, addr: (0x20010db8n << 96n) | (BigInt(n) << 64n), prefix: 64, text: '' });
  }
  const t = ZoneTrie.fromPolicy(policy100k);
  assert.equal(t.lookup('10.0.3.233')?.name, 'z1'); // n = 1001
  assert.equal(t.lookup('2001:db8:1:86a0::1'), null); // n = 100000 is outside
  assert.equal(t.lookup('2001:db8:1:869e::1')?.name, 'z99'); // n = 99998
  assert.equal(t.lookup('10.1.134.159')?.name, 'z99'); // n = 99999
});

test('flattening: disjoint ranges with their LPM zone; per-zone sets with and without children', () => {
  const flat = flattenZones(policy);
  const v4 = flat.v4.map((r) => [r.lo.toString(16), r.hi.toString(16), r.zone]);
  assert.deepEqual(v4, [
    ['0', 'c61209ff', 'internet'],
    ['c6120a00', 'c6120bff', 'clients'],
    ['c6120c00', 'c61213ff', 'internet'],
    ['c6121400', 'c6121500', 'servers'],
    ['c6121501', 'c6121501', 'servers.audit'],
    ['c6121502', 'c61215ff', 'servers'],
    ['c6121600', 'c61216ff', 'servers.audit.deep'],
    ['c6121700', 'ffffffff', 'internet'],
  ]);
  const servers = zoneSubnetsFlattened(policy, 'servers', false, 4, flat);
  assert.deepEqual(
    servers.map((r) => [r.lo.toString(16), r.hi.toString(16)]),
    [
      ['c6121400', 'c6121500'],
      ['c6121502', 'c61215ff'],
    ],
  );
  const withChildren = zoneSubnetsFlattened(policy, 'servers', true, 4, flat);
  assert.deepEqual(
    withChildren.map((r) => [r.lo.toString(16), r.hi.toString(16)]),
    [['c6121400', 'c61216ff']],
  );
  assert.deepEqual(zoneSubnetsFlattened(policy, 'servers', true, 6, flat), []);
  assert.deepEqual(
    zoneSubnetsFlattened(policy, 'v6only', false, 6, flat).map((r) => [r.lo.toString(16), r.hi.toString(16)]),
    [
      ['20010db8000000000000000000000000', '20010db8000fffffffffffffffffffff'],
      ['20010db8001100000000000000000000', '20010db8ffffffffffffffffffffffff'],
    ],
  );
});

test('flattening gives every address its longest-prefix match (brute force over 256 addresses)', () => {
  // networks inside 0.0.0.0/24 (prefix 24..32), so the 256 addresses there are the whole story
  fc.assert(
    fc.property(
      fc.uniqueArray(fc.tuple(fc.integer({ min: 0, max: 255 }), fc.integer({ min: 0, max: 8 })), {
        selector: ([a, p]) => `${a >> (8 - p)}/${p}`,
        maxLength: 12,
      }),
      (raw) => {
        const t = new PrefixTrie(4);
        const nets = raw.map(([a, p], i) => {
          const lo = BigInt((a >> (8 - p)) << (8 - p));
          t.insertBig(lo, 24 + p, i);
          return { lo, hi: lo + (1n << BigInt(8 - p)) - 1n, value: i, p };
        });
        const ranges = t.intervals();
        for (let x = 0n; x < 256n; x++) {
          let best = -1;
          let bestP = -1;
          for (const n of nets) if (n.lo <= x && x <= n.hi && n.p > bestP) [best, bestP] = [n.value, n.p];
          const r = ranges.find((q) => q.lo <= x && x <= q.hi);
          assert.equal(r?.value ?? -1, best, `address ${x}`);
        }
        for (let i = 1; i < ranges.length; i++) {
          assert.ok(ranges[i - 1]!.hi < ranges[i]!.lo, 'disjoint and sorted');
          if (ranges[i - 1]!.hi + 1n === ranges[i]!.lo)
            assert.notEqual(ranges[i - 1]!.value, ranges[i]!.value, 'merged');
        }
        assert.ok(ranges.every((r) => r.hi < 256n));
      },
    ),
  );
});

test('flattenPrefixes (the sort and sweep the compiler uses) gives what the binary trie gives, IPv4 and IPv6', () => {
  // networks drawn near each other so that they nest, touch and repeat (a repeated network: the later wins)
  const net = (width: 32 | 128) =>
    fc.tuple(fc.integer({ min: 0, max: 63 }), fc.integer({ min: 0, max: 10 })).map(([a, len]) => {
      const prefix = width - 10 + len;
      const host = BigInt(a) << BigInt(width - prefix > 6 ? 0 : 6 - (width - prefix));
      const base = width === 32 ? 0xc6120000n : 0x20010db8n << 96n;
      const size = 1n << BigInt(width - prefix);
      return { addr: ((base + host * 16n) / size) * size, prefix };
    });
  for (const [family, width] of [
    [4, 32],
    [6, 128],
  ] as const) {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(net(width), fc.integer({ min: 0, max: 3 })), { maxLength: 30 }),
        (raw) => {
          const t = new PrefixTrie(family);
          const nets = raw.map(([n, value]) => {
            t.insertBig(n.addr, n.prefix, value);
            return { ...n, value };
          });
          assert.deepEqual(flattenPrefixes(family, nets), t.intervals());
        },
      ),
      { numRuns: 300 },
    );
  }
});

test('a zone index made again for the same zones is the last one (reloads), and new Zone objects stand in it', () => {
  const zones = (second: string) =>
    makePolicy({
      zones: {
        a: { addresses: ['198.18.1.0/24', '2001:db8:1::/48'] },
        b: { addresses: [second] },
        c: { parent: 'b', addresses: ['198.18.2.128/25'] },
      },
    });
  const probe = (t: ZoneTrie) =>
    ['198.18.1.5', '198.18.2.5', '198.18.2.200', '198.18.3.1', '2001:db8:1::1', '2001:db8:2::1'].map(
      (x) => t.lookup(x)?.name ?? '-',
    );
  const p1 = zones('198.18.2.0/24');
  const t1 = new ZoneTrie(p1.zones.values());
  const p1again = zones('198.18.2.0/24'); // a reload of the same zones: fresh objects
  const t2 = new ZoneTrie(p1again.zones.values());
  assert.deepEqual(probe(t2), ['a', 'b', 'c', '-', 'a', '-']);
  assert.deepEqual(probe(t2), probe(t1));
  assert.equal(t2.lookup('198.18.2.5'), p1again.zones.get('b'), "the new policy's Zone object");
  // the same names with another network: a new index, not the last one
  const t3 = new ZoneTrie(zones('198.18.3.0/24').zones.values());
  assert.deepEqual(probe(t3), ['a', '-', 'c', 'b', 'a', '-']);
  // and back: built again, same answers as the first
  assert.deepEqual(probe(new ZoneTrie(zones('198.18.2.0/24').zones.values())), probe(t1));
});
