// Lint's score reasoning is written independently of the engine (policy may not import engine). This
// test holds the two against each other on random policies: every "shadowed" warning must mean the
// engine never picks that rule, and every "tie" warning must have a connection where the engine scores
// both rules equally. (Lint may miss cases; it must never be wrong.)
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { Engine, packScore } from '../../../src/engine/index.ts';
import type { Connection } from '../../../src/policy/index.ts';
import { loadPolicyText } from '../../../src/policy/index.ts';

const RUNS = Number(process.env.TZORP_FUZZ_RUNS ?? 150);

const ZONES = `zones:
  a: { addresses: [198.18.0.0/16, "2001:db8:a::/48"] }
  a.x: { parent: a, addresses: [198.18.1.0/24] }
  a.x.y: { parent: a.x, addresses: [198.18.1.128/25] }
  b: { addresses: [198.19.0.0/16] }
  b.full: { parent: b, addresses: [198.19.0.0/17, 198.19.128.0/17] }
  net: { addresses: [0.0.0.0/0, "::/0"] }
`;
const SUBNETS = [
  '198.18.0.0/16',
  '198.18.1.0/24',
  '198.18.1.128/25',
  '198.19.0.0/16',
  '2001:db8:a::/48',
  '198.18.1.7',
];
const PORTS = ['80', '443', '"1-1023"', '"80-90"', '"1000-2000"', '0'];
const ADDRS = [
  '198.18.0.5',
  '198.18.1.5',
  '198.18.1.200',
  '198.18.1.7',
  '198.19.0.9',
  '198.19.200.9',
  '198.20.0.1',
  '2001:db8:a::5',
  '2001:db8:b::5',
];
const CONN_PORTS = [0, 1, 80, 85, 90, 91, 443, 1000, 1023, 1500, 2000, 2001, 5000];

const dims = {
  proto: fc.constantFrom('tcp', 'udp', 'icmp', '[tcp, udp]'),
  icmp_type: fc.constantFrom('8', '[0, 8]'),
  src_port: fc.constantFrom(...PORTS),
  dst_port: fc.oneof(
    fc.constantFrom(...PORTS),
    fc.subarray(PORTS, { minLength: 1, maxLength: 3 }).map((l) => `[${l.join(', ')}]`),
  ),
  iface: fc.constantFrom('eth0', '[eth0, eth1]'),
  src_zone: fc
    .subarray(['a', 'a.x', 'a.x.y', 'b', 'b.full', 'net'], { minLength: 1, maxLength: 2 })
    .map((l) => `[${l.join(', ')}]`),
  dst_zone: fc
    .subarray(['a', 'a.x', 'a.x.y', 'b', 'b.full', 'net'], { minLength: 1, maxLength: 2 })
    .map((l) => `[${l.join(', ')}]`),
  src_subnet: fc
    .subarray(SUBNETS, { minLength: 1, maxLength: 2 })
    .map((l) => `[${l.map((s) => `"${s}"`).join(', ')}]`),
  dst_subnet: fc
    .subarray(SUBNETS, { minLength: 1, maxLength: 2 })
    .map((l) => `[${l.map((s) => `"${s}"`).join(', ')}]`),
};
type DimName = keyof typeof dims;
const rule = fc.record(
  Object.fromEntries(Object.entries(dims).map(([k, v]) => [k, fc.option(v, { freq: 2 })])) as {
    [K in DimName]: fc.Arbitrary<string | null>;
  },
);

/** Rules that resemble each other (copies of one base with one or two dimensions redrawn), so that
 * shadowing and ties actually occur, mixed with unrelated rules. */
const dimNames = Object.keys(dims) as DimName[];
const variant = fc.record({
  copy: fc.boolean(),
  changes: fc.array(
    fc.constantFrom(...dimNames).chain((d) => fc.tuple(fc.constant(d), fc.option(dims[d], { freq: 3 }))),
    { maxLength: 2 },
  ),
  other: rule,
});
const rulesArb = fc.tuple(rule, fc.array(variant, { minLength: 1, maxLength: 4 })).map(([base, vs]) => [
  base,
  ...vs.map((v) => {
    if (!v.copy) return v.other;
    const r = { ...base };
    for (const [d, val] of v.changes) r[d] = val;
    return r;
  }),
]);

function policyText(rules: Record<DimName, string | null>[]): string {
  const lines = rules.map((r, i) => {
    const parts = [`id: ${i + 1}`, `service: ${i % 2 ? 's' : 't'}`];
    for (const [k, v] of Object.entries(r)) if (v !== null) parts.push(`${k}: ${v}`);
    return `  - { ${parts.join(', ')} }`;
  });
  return `${ZONES}services:\n  s: { type: deny }\n  t: { type: deny }\nrules:\n${lines.join('\n')}\n`;
}

function* connections(): Generator<Connection> {
  for (const src of ADDRS) {
    for (const dst of ADDRS) {
      if (src.includes(':') !== dst.includes(':')) continue;
      for (const proto of [6, 17, 1, 58]) {
        if ((proto === 1 && src.includes(':')) || (proto === 58 && !src.includes(':'))) continue;
        const portful = proto === 6 || proto === 17;
        for (const iface of ['eth0', 'eth2', undefined]) {
          if (portful) {
            for (const sp of [5000, 80, 0]) {
              for (const dp of CONN_PORTS) yield { proto, src, dst, srcPort: sp, dstPort: dp, iface };
            }
          } else {
            for (const t of [0, 8]) yield { proto, src, dst, iface, icmpType: t, icmpCode: 0 };
          }
        }
      }
    }
  }
}

describe('lint agrees with the engine', () => {
  it('shadowed rules never win; tied rules tie somewhere', () => {
    const conns = [...connections()];
    let shadowSeen = 0;
    let tieSeen = 0;
    fc.assert(
      fc.property(rulesArb, (rules) => {
        const text = policyText(rules);
        const r = loadPolicyText(text, 'p.yaml');
        assert.deepEqual(r.errors, [], text);
        const policy = r.policy;
        assert.ok(policy);
        const shadowed = r.warnings.filter((w) => w.code === 'TZ1501');
        const ties = r.warnings.filter((w) => w.code === 'TZ1502');
        if (shadowed.length === 0 && ties.length === 0) return;
        const engine = new Engine(policy);
        const ruleAt = (line: number | undefined) => policy.rules.find((x) => x.pos.line === line)?.id;
        const never = new Set(shadowed.map((w) => ruleAt(w.pos?.line)));
        const pairs = ties.map((w) => {
          const m = /rules (\d+) \(line \d+\) and (\d+) tie/.exec(w.message);
          assert.ok(m, w.message);
          return [Number(m[1]), Number(m[2])] as const;
        });
        const tied = new Set<string>();
        for (const c of conns) {
          const ex = engine.explain(c);
          if (ex.rule && never.has(ex.rule.id)) {
            assert.fail(`rule ${ex.rule.id} was warned as shadowed but wins ${JSON.stringify(c)}\n${text}`);
          }
          for (const [a, b] of pairs) {
            if (tied.has(`${a},${b}`)) continue;
            const ca = ex.candidates.find((x) => x.rule === a);
            const cb = ex.candidates.find((x) => x.rule === b);
            if (
              ca?.matched &&
              cb?.matched &&
              ca.score &&
              cb.score &&
              packScore(ca.score) === packScore(cb.score)
            ) {
              tied.add(`${a},${b}`);
            }
          }
        }
        for (const [a, b] of pairs)
          assert.ok(tied.has(`${a},${b}`), `no connection ties rules ${a} and ${b}\n${text}`);
        shadowSeen += shadowed.length;
        tieSeen += ties.length;
      }),
      // A fixed seed (override with FC_SEED): the coverage checks below need the runs to produce both
      // warnings, and with a random seed a run of RUNS policies now and then produced no tie.
      { numRuns: RUNS, seed: Number(process.env.FC_SEED ?? 20261126) },
    );
    // the generator must exercise both warnings, or the test proves nothing
    assert.ok(shadowSeen > 0, 'no shadowed rule was generated');
    assert.ok(tieSeen > 0, 'no tie was generated');
  });
});
