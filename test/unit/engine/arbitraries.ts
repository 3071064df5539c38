// fast-check generators of random policies and connections for the engine's property tests. Values
// come from small pools so that networks nest and overlap, rules collide, and ties happen.
import fc from 'fast-check';
import type { Connection } from '../../../src/policy/model.ts';
import { cidr, type PolicySpec, type RuleSpec } from './fixtures.ts';

export const v4Addr = fc
  .tuple(
    fc.constantFrom(10, 192),
    fc.integer({ min: 0, max: 1 }),
    fc.integer({ min: 0, max: 3 }),
    fc.constantFrom(0, 1, 5, 128, 255),
  )
  .map(([a, b, c, d]) => `${a}.${b}.${c}.${d}`);

export const v6Addr = fc
  .tuple(
    fc.integer({ min: 0, max: 1 }),
    fc.integer({ min: 0, max: 3 }),
    fc.constantFrom('0', '1', '5', 'ffff'),
  )
  .map(([a, b, d]) => `2001:db8:${a}:${b}::${d}`);

export const anyAddr = fc.oneof(
  { weight: 4, arbitrary: v4Addr },
  { weight: 3, arbitrary: v6Addr },
  { weight: 1, arbitrary: v4Addr.map((a) => `::ffff:${a}`) },
);

const v4Net = fc
  .tuple(v4Addr, fc.constantFrom(0, 8, 15, 16, 23, 24, 25, 31, 32))
  .map(([a, p]) => cidr(`${a}/${p}`).text);
const v6Net = fc
  .tuple(v6Addr, fc.constantFrom(0, 32, 47, 48, 63, 64, 100, 128))
  .map(([a, p]) => cidr(`${a}/${p}`).text);
const anyNet = fc.oneof(v4Net, v6Net);

const IFACES = ['eth0', 'eth1', 'wg0'];
const PORTS = [0, 21, 80, 443, 1024];
const portVal = fc.oneof(
  fc.constantFrom(...PORTS),
  fc
    .constantFrom(...PORTS)
    .chain((lo) =>
      fc.constantFrom(...PORTS.filter((p) => p >= lo)).map((hi) => [lo, hi] as [number, number]),
    ),
);

function opt<T>(a: fc.Arbitrary<T>): fc.Arbitrary<T | undefined> {
  // a dimension is present in about one rule of six, so that rules often match and often tie
  return fc.oneof({ weight: 5, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: a });
}

function list<T>(a: fc.Arbitrary<T>, max = 3): fc.Arbitrary<T[] | undefined> {
  return opt(fc.array(a, { minLength: 1, maxLength: max }));
}

export interface Scenario {
  spec: PolicySpec;
  conns: Connection[];
}

/** A random policy: up to 8 zones (random hierarchy, occasional /0 fallbacks) and up to 25 rules. */
export const policySpec: fc.Arbitrary<PolicySpec> = fc
  .record({
    zoneNets: fc.array(fc.array(anyNet, { maxLength: 4 }), { minLength: 1, maxLength: 8 }),
    parents: fc.array(fc.nat(), { minLength: 8, maxLength: 8 }),
  })
  .chain(({ zoneNets, parents }) => {
    const names = zoneNets.map((_, i) => `z${i}`);
    const zones: NonNullable<PolicySpec['zones']> = {};
    const seen = new Set<string>();
    zoneNets.forEach((nets, i) => {
      // the loader refuses a network in two zones: keep the first
      const own = nets.filter((n) => !seen.has(n));
      for (const n of own) seen.add(n);
      const p = parents[i]! % (i + 1); // == i means root; else an earlier zone (no cycles)
      zones[names[i]!] = p === i ? { addresses: own } : { parent: names[p]!, addresses: own };
    });
    const zoneName = fc.constantFrom(...names);
    const rule: fc.Arbitrary<Omit<RuleSpec, 'id'>> = fc.record(
      {
        service: fc.constantFrom('a', 'b', 'c'),
        reqid: list(fc.integer({ min: 1, max: 3 }), 2),
        iface: list(fc.constantFrom(...IFACES), 2),
        ifgroup: list(fc.integer({ min: 0, max: 2 }), 2),
        proto: list(fc.constantFrom(6, 17, 1, 58, 47), 2),
        icmpType: list(fc.integer({ min: 0, max: 3 }), 2),
        icmpCode: list(fc.integer({ min: 0, max: 2 }), 2),
        srcPort: list(portVal),
        dstPort: list(portVal),
        srcSubnet: list(anyNet),
        srcZone: list(zoneName),
        dstSubnet: list(anyNet),
        dstIface: list(fc.constantFrom(...IFACES), 2),
        dstIfgroup: list(fc.integer({ min: 0, max: 2 }), 2),
        dstZone: list(zoneName),
      },
      { requiredKeys: ['service'] },
    ) as fc.Arbitrary<Omit<RuleSpec, 'id'>>;
    return fc
      .tuple(fc.array(rule, { maxLength: 25 }), fc.shuffledSubarray([...Array(60).keys()].map((i) => i + 1)))
      .map(([rules, ids]) => {
        const withIds = rules.slice(0, ids.length).map((r, i) => {
          const out: RuleSpec = { id: ids[i]!, service: r.service };
          for (const [k, v] of Object.entries(r))
            if (v !== undefined) (out as unknown as Record<string, unknown>)[k] = v;
          return out;
        });
        return {
          zones,
          services: { a: 'proxy', b: 'forward', c: 'deny' },
          rules: withIds,
        } satisfies PolicySpec;
      });
  });

export const connection: fc.Arbitrary<Connection> = fc
  .record(
    {
      proto: fc.constantFrom(6, 6, 6, 17, 1, 58, 47),
      src: anyAddr,
      dst: anyAddr,
      srcPort: fc.constantFrom(...PORTS, 40000),
      dstPort: fc.constantFrom(...PORTS),
      iface: fc.constantFrom(...IFACES),
      ifgroup: fc.integer({ min: 0, max: 2 }),
      reqids: fc.array(fc.integer({ min: 1, max: 3 }), { maxLength: 2 }),
      dstLocal: fc.boolean(),
      icmpType: fc.integer({ min: 0, max: 3 }),
      icmpCode: fc.integer({ min: 0, max: 2 }),
    },
    { requiredKeys: ['proto', 'src', 'dst'] },
  )
  .map((c) => {
    const out: Connection = { proto: c.proto, src: c.src, dst: c.dst };
    for (const [k, v] of Object.entries(c))
      if (v !== undefined) (out as unknown as Record<string, unknown>)[k] = v;
    return out;
  });

export const scenario: fc.Arbitrary<Scenario> = fc.record({
  spec: policySpec,
  conns: fc.array(connection, { minLength: 1, maxLength: 20 }),
});
