import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { zeroScore } from '../../../src/engine/index.ts';
import { forgetLastCompile } from '../../../src/kernel/compile/index.ts';
import { intersect, normalize } from '../../../src/kernel/compile/intervals.ts';
import { zoneIdent } from '../../../src/kernel/compile/names.ts';
import { buildTiers } from '../../../src/kernel/compile/tiers.ts';
import type { Variant } from '../../../src/kernel/compile/variants.ts';
import { flattenZones, rangesByZone, zoneAddresses } from '../../../src/kernel/compile/zones.ts';
import { compilePolicy } from '../../../src/kernel/index.ts';
import { makePolicy, type RuleSpec } from './fixtures.ts';
import { type RandomCase, randomEdit, randomPolicy } from './random-policy.ts';

test('intervals: normalize merges overlapping and adjacent ranges; intersect is exact', () => {
  assert.deepEqual(
    normalize([
      [5n, 9n],
      [1n, 2n],
      [3n, 4n],
      [20n, 30n],
      [25n, 26n],
    ]),
    [
      [1n, 9n],
      [20n, 30n],
    ],
  );
  assert.deepEqual(
    intersect(
      [
        [1n, 10n],
        [20n, 30n],
      ],
      [[5n, 25n]],
    ),
    [
      [5n, 10n],
      [20n, 25n],
    ],
  );
  assert.deepEqual(intersect([[1n, 2n]], [[3n, 4n]]), []);
});

test('tiers: boxes are disjoint and every point belongs to the lowest rule id whose variant holds it', () => {
  const iv = fc
    .tuple(fc.integer({ min: 0, max: 7 }), fc.integer({ min: 0, max: 7 }))
    .map(([a, b]) => (a <= b ? ([BigInt(a), BigInt(b)] as const) : ([BigInt(b), BigInt(a)] as const)));
  fc.assert(
    fc.property(
      fc.array(fc.tuple(fc.integer({ min: 1, max: 20 }), iv, iv), { minLength: 1, maxLength: 10 }),
      (specs) => {
        const score = { ...zeroScore(), dstPort: 1, srcPort: 1 };
        const variants: Variant[] = specs.map(([id, a, b]) => ({
          ruleId: id,
          score,
          cond: { sport: [a], dport: [b] },
        }));
        const [tier] = buildTiers(variants);
        for (let x = 0n; x < 8n; x++) {
          for (let y = 0n; y < 8n; y++) {
            const holders = tier!.boxes.filter(
              (b) => b.iv[0]![0] <= x && x <= b.iv[0]![1] && b.iv[1]![0] <= y && y <= b.iv[1]![1],
            );
            assert.ok(holders.length <= 1, 'boxes overlap');
            const want = variants
              .filter(
                (v) =>
                  v.cond.sport![0]![0] <= x &&
                  x <= v.cond.sport![0]![1] &&
                  v.cond.dport![0]![0] <= y &&
                  y <= v.cond.dport![0]![1],
              )
              .map((v) => v.ruleId);
            assert.equal(holders[0]?.ruleId ?? null, want.length ? Math.min(...want) : null);
          }
        }
      },
    ),
  );
});

test('tiers are ordered by score, strongest first, and a single port outranks a range', () => {
  const p = makePolicy({
    services: { a: { type: 'forward' }, b: { type: 'forward' } },
    rules: [
      { id: 1, service: 'a', dstPort: [{ lo: 1, hi: 1000 }] },
      { id: 2, service: 'b', dstPort: [{ lo: 80, hi: 80 }] },
    ],
  });
  const { ir } = compilePolicy(p);
  const t = ir.families[4].tiers;
  assert.equal(t.length, 2);
  assert.equal(t[0]!.score.dstPort, 2);
  assert.deepEqual(
    t[0]!.lookups[0]!.elements.map((e) => e.ruleId),
    [2],
  );
  assert.equal(t[1]!.score.dstPort, 1);
});

test('zone names map to nft identifiers injectively', () => {
  assert.equal(zoneIdent('servers.audit'), 'servers.audit');
  assert.equal(zoneIdent('dmz_a'), 'dmz_5f_a');
  assert.equal(zoneIdent('büro'), 'b_fc_ro');
  assert.notEqual(zoneIdent('a_5f_'), zoneIdent('a_'));
});

test('compile is deterministic and names rules and services in comments', () => {
  const mk = () =>
    makePolicy({
      zones: { c: { addresses: ['198.18.10.0/24'] }, 'c.x': { parent: 'c', addresses: ['198.18.10.7'] } },
      services: { p: { type: 'proxy' }, d: { type: 'deny', ipv4: 'tcp-reset' } },
      rules: [
        { id: 7, service: 'p', srcZone: ['c'], dstPort: [{ lo: 80, hi: 80 }], proto: [6] },
        { id: 3, service: 'd', srcZone: ['c.x'] },
      ],
    });
  const a = compilePolicy(mk()).text;
  assert.equal(a, compilePolicy(mk()).text);
  assert.match(a, /0x80000007 : goto svc_p,? # rule 7 -> p \(proxy\)/);
  assert.match(a, /tproxy ip to 127\.0\.0\.1:50001 accept/);
  assert.match(a, /reject with tcp reset/);
});

test('zone sets: published when referenced (user rules, management, bypass), listed, or all', () => {
  const mk = (publishZoneSets: 'referenced' | 'all' | string[], management = false) =>
    makePolicy({
      zones: {
        c: { addresses: ['198.18.10.0/24'] },
        'c.x': { parent: 'c', addresses: ['198.18.10.7'] },
        under_score: { addresses: ['198.18.11.0/24'] },
        d: { addresses: ['2001:db8:1::/64'] },
      },
      services: { p: { type: 'proxy' } },
      rules: [{ id: 1, service: 'p', srcZone: ['c'] }],
      ...(management ? { management: [{ srcZone: ['d'], dstPort: [{ lo: 22, hi: 22 }] }] } : {}),
      publishZoneSets,
    });
  const sets = (text: string): string[] =>
    [...text.matchAll(/^\tset (zone_\S+) \{/gm)].map((m) => m[1]!).sort();
  const four = (ident: string): string[] => [
    `zone_${ident}_tree_v4`,
    `zone_${ident}_tree_v6`,
    `zone_${ident}_v4`,
    `zone_${ident}_v6`,
  ];
  assert.deepEqual(sets(compilePolicy(mk('referenced')).text), []);
  const user = 'chain u {\n\tip saddr @zone_c.x_tree_v4 ip daddr @zone_under_5f_score_v6 counter\n}';
  assert.deepEqual(
    sets(compilePolicy(mk('referenced'), { userRules: user }).text),
    [...four('c.x'), ...four('under_5f_score')].sort(),
  );
  assert.deepEqual(sets(compilePolicy(mk('referenced', true)).text), four('d'));
  assert.deepEqual(sets(compilePolicy(mk(['c'])).text), four('c'));
  assert.equal(sets(compilePolicy(mk('all')).text).length, 16);
  // the sets' content does not depend on what else is published
  const all = compilePolicy(mk('all')).text;
  const one = compilePolicy(mk(['c.x'])).text;
  const body = (t: string, n: string) => new RegExp(`\tset ${n} \\{\n[^}]*\\}`).exec(t)?.[0];
  assert.ok(body(one, 'zone_c\\.x_tree_v4'));
  assert.equal(body(one, 'zone_c\\.x_tree_v4'), body(all, 'zone_c\\.x_tree_v4'));
});

test('listener ports: option, then listen_port, then listenPortBase + id - 1; bad names are refused', () => {
  const p = makePolicy({
    services: {
      a: { type: 'proxy' },
      b: { type: 'proxy', listenPort: 6000 },
      c: { type: 'proxy' },
      f: { type: 'forward' },
    },
    rules: [],
  });
  const l = compilePolicy(p, { listenPorts: { c: 7000 } }).listeners;
  assert.deepEqual(
    [...l].map(([n, x]) => [n, x.v4.port, x.v6.host]),
    [
      ['a', 50000, '::1'],
      ['b', 6000, '::1'],
      ['c', 7000, '::1'],
    ],
  );
  assert.throws(() => compilePolicy(p, { listenPorts: { f: 1 } }), /not a proxy service/);
});

test('a compile that reuses the last one (rule variants, tiers, zone lists) gives what a compile from nothing gives', () => {
  const ifaces = ['eth0', 'eth2'];
  let reused = 0;
  for (let seed = 1; seed <= 25; seed++) {
    // even seeds publish every zone's sets too (the zone lists reused with the same flattening)
    const publish = (c: RandomCase): RandomCase => {
      if (seed % 2 === 0) c.policy.settings.publishZoneSets = 'all';
      return c;
    };
    let cur = publish(randomPolicy(seed, { ifaces }));
    forgetLastCompile();
    compilePolicy(cur.policy);
    for (let e = 1; e <= 4; e++) {
      cur = publish(randomEdit(seed * 100 + e, cur, ifaces));
      const warm = compilePolicy(cur.policy).text;
      forgetLastCompile();
      const cold = compilePolicy(cur.policy).text;
      assert.equal(warm, cold, `seed ${seed} edit ${e}`);
      // and with the last compile being the same policy: everything is reused
      const again = compilePolicy(cur.policy).text;
      assert.equal(again, cold, `seed ${seed} edit ${e}, compiled again`);
      reused++;
    }
  }
  assert.equal(reused, 100);
});

test('reuse of the last compile: a change in any one condition of a rule, or of a zone parent alone, is seen', () => {
  const zones = {
    a: { addresses: ['198.18.1.0/24', '2001:db8:1::/48'] },
    b: { addresses: ['198.18.2.0/24'] },
  };
  const services = { fwd: { type: 'forward' as const }, no: { type: 'deny' as const } };
  const base: RuleSpec = {
    id: 1,
    service: 'fwd',
    proto: [6],
    srcZone: ['a'],
    dstSubnet: ['198.18.9.0/24'],
    dstPort: [{ lo: 80, hi: 80 }],
  };
  const other: RuleSpec = { id: 2, service: 'no', srcZone: ['b'] };
  // each a one-condition change of rule 1 (every dimension the compiler reads)
  const changes: Partial<RuleSpec>[] = [
    { reqid: [7] },
    { iface: ['eth0'] },
    { ifgroup: [3] },
    { proto: [17] },
    { proto: [1], icmpType: [8], dstPort: undefined },
    { proto: [1], icmpCode: [0], dstPort: undefined },
    { srcPort: [{ lo: 1024, hi: 65535 }] },
    { dstPort: [{ lo: 81, hi: 81 }] },
    { srcSubnet: ['198.18.1.128/25'] },
    { srcZone: ['b'] },
    { dstSubnet: ['198.18.8.0/24'] },
    { dstIface: ['eth2'] },
    { dstIfgroup: [4] },
    { dstZone: ['b'] },
  ];
  const compile = (
    rules: RuleSpec[],
    z: typeof zones | Record<string, { parent?: string; addresses: string[] }> = zones,
  ) => compilePolicy(makePolicy({ zones: z, services, rules })).text;
  for (const change of changes) {
    forgetLastCompile();
    const before = compile([base, other]);
    const changed = { ...base, ...change };
    const warm = compile([changed, other]);
    forgetLastCompile();
    const cold = compile([changed, other]);
    assert.equal(warm, cold, JSON.stringify(change));
    assert.notEqual(warm, before, `${JSON.stringify(change)} changes the table`);
  }
  // an interface name another rule brings in that sorts first: rule 1 is the same, eth0's number is not
  {
    const withIface = { ...base, iface: ['eth0'] };
    forgetLastCompile();
    const before = compile([withIface, other]);
    const third: RuleSpec = { id: 3, service: 'no', iface: ['dummy0'] };
    const warm = compile([withIface, other, third]);
    forgetLastCompile();
    assert.equal(warm, compile([withIface, other, third]));
    assert.notEqual(warm, before);
  }
  // the same rules with another tproxy_mark: the same tiers, every element's mark another
  {
    forgetLastCompile();
    const before = compilePolicy(makePolicy({ zones, services, rules: [base, other] })).text;
    const marked = makePolicy({ zones, services, rules: [base, other] });
    marked.settings.tproxyMark = 0x40000000;
    const warm = compilePolicy(marked).text;
    forgetLastCompile();
    assert.equal(warm, compilePolicy(marked).text);
    assert.notEqual(warm, before);
  }
  // b under a: the same zone names and ids, but a's subtree (rule 1's "zone a or below") grows
  forgetLastCompile();
  const flat = compile([base, other]);
  const nested = { ...zones, b: { parent: 'a', addresses: zones.b.addresses } };
  const warm = compile([base, other], nested);
  forgetLastCompile();
  assert.equal(warm, compile([base, other], nested));
  assert.notEqual(warm, flat);
});

test("zone map chunks: a moved network re-renders the chunks that change; the others are the last model's objects, and the text is a cold compile's", () => {
  // 600 host networks in six zones, chunked small (above 64 ranges, about 16 each); IPv6 too
  // the moved network goes to the next network's zone or to the previous one's (then it joins that
  // network's range: same start, same zone, a new end)
  let shift = 1;
  const nets = (z: number, moved: number | null) => {
    const out: string[] = [];
    for (let i = 0; i < 600; i++) {
      const owner = i === moved ? (i + shift) % 6 : i % 6;
      if (owner === z) out.push(`198.18.${i >> 6}.${(i & 63) * 4}/30`, `2001:db8:${i.toString(16)}::/48`);
    }
    return out;
  };
  const policyWith = (moved: number | null) =>
    makePolicy({
      zones: Object.fromEntries([0, 1, 2, 3, 4, 5].map((z) => [`z${z}`, { addresses: nets(z, moved) }])),
      services: { fwd: { type: 'forward' as const } },
      rules: [{ id: 1, service: 'fwd', srcZone: ['z0'], dstZone: ['z1'] }],
    });
  const zoneChunk = { above: 64, average: 16 };
  const chunkMaps = (m: ReturnType<typeof compilePolicy>['model']) =>
    m.objects.filter((o) => /^zones_v[46]_c/.test(o.name));
  for (const [moved, by] of [
    [7, 1],
    [300, 1],
    [599, 1],
    [7, 5],
    [301, 5],
  ] as const) {
    shift = by;
    forgetLastCompile();
    const before = compilePolicy(policyWith(null), { zoneChunk });
    const warm = compilePolicy(policyWith(moved), { zoneChunk });
    forgetLastCompile();
    const cold = compilePolicy(policyWith(moved), { zoneChunk });
    assert.equal(warm.text, cold.text, `network ${moved}`);
    const old = new Set(chunkMaps(before.model));
    const all = chunkMaps(warm.model);
    const fresh = all.filter((o) => !old.has(o));
    assert.ok(all.length > 40, `${all.length} chunk maps`);
    // one chunk per family holds the moved network (two when it started a chunk)
    assert.ok(
      fresh.length >= 1 && fresh.length <= 4,
      `network ${moved}: ${fresh.length} of ${all.length} made anew`,
    );
    assert.ok(
      chunkMaps(cold.model).every((o) => !old.has(o)),
      'a forgotten compile makes every chunk anew',
    );
  }
});

test('zone lists: a zone and its subtree, asked in any order and again, are the ranges labelled with those ids', () => {
  for (let seed = 1; seed <= 10; seed++) {
    const { policy } = randomPolicy(seed, { ifaces: ['eth0'] });
    forgetLastCompile();
    const flat = flattenZones(policy);
    for (const f of [4, 6] as const) {
      const by = rangesByZone(flat, f);
      const naive = (lo: number, hi: number) =>
        normalize(
          flat.ranges[f].filter((r) => r.zone >= lo && r.zone <= hi).map((r) => [r.lo, r.hi] as const),
        );
      // trees first for odd seeds, exact zones first for even ones; then all again (the kept answers)
      const asks = flat.list.flatMap((z) => [
        [z.id, z.id],
        [z.id, z.last],
      ]);
      if (seed % 2 === 1) asks.reverse();
      for (const round of [1, 2])
        for (const [lo, hi] of asks)
          assert.deepEqual(
            zoneAddresses(by, lo!, hi!),
            naive(lo!, hi!),
            `seed ${seed} v${f} ${lo}-${hi} round ${round}`,
          );
      assert.equal(rangesByZone(flat, f), by, 'the same flattening gives the same lists');
    }
  }
});
