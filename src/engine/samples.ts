// Representative connections for a policy: for every rule, in each address family its conditions allow,
// a connection built to satisfy that rule (an address whose zone is the rule's zone, a port it lists,
// ...), plus connections no rule matches. The engine then says what really happens to each (a more
// specific rule may win). Used by `tzorp demo` to show a policy's decisions without a hand-made list.
import type { Conditions, Connection, Family, Policy, Rule } from '../policy/model.ts';
import { formatAddress } from './address.ts';
import type { Decision, Engine } from './engine.ts';
import { PROTO_ICMP, PROTO_ICMPV6, PROTO_TCP } from './score.ts';
import { flattenZones, type ZoneInterval, zoneAndDescendants } from './zone-trie.ts';

/** Addresses used when a rule does not constrain a side (TEST-NET-2 and the documentation prefix). */
const FREE: Record<Family, string[]> = {
  4: ['198.51.100.7', '203.0.113.9'],
  6: ['2001:db8:ffff::7', '3fff::9'],
};

export interface Sample {
  conn: Connection;
  /** The rule it was built for (null for the no-match probes). */
  builtFor: number | null;
  decision: Decision;
}

const WELL_KNOWN = [80, 443, 22, 21, 25, 53];

/** A port the list holds: a well-known one when a range allows, else the first. */
function portIn(list: Rule['dstPort']): number | undefined {
  if (!list || list.length === 0) return undefined;
  for (const p of WELL_KNOWN) if (list.some((r) => r.lo <= p && p <= r.hi)) return p;
  return list[0]!.lo;
}

/** An address inside [lo, hi]: not the network address when there is room. */
function inside(family: Family, lo: bigint, hi: bigint): string {
  return formatAddress(family, hi - lo >= 2n ? lo + 1n : lo);
}

function sideAddress(
  engine: Engine,
  policy: Policy,
  flat: { v4: ZoneInterval[]; v6: ZoneInterval[] },
  family: Family,
  subnets: Rule['srcSubnet'],
  zones: string[] | undefined,
  side: 0 | 1,
): string | null {
  const net = subnets?.find((c) => c.family === family);
  if (net) {
    const width = family === 4 ? 32 : 128;
    const size = 1n << BigInt(width - net.prefix);
    return inside(family, net.addr, net.addr + size - 1n);
  }
  if (subnets && !zones) return null; // the rule only names networks of the other family
  if (zones) {
    for (const z of zones) {
      const want = zoneAndDescendants(policy, z, true);
      // a documentation address when it lands in the zone (a /0 zone's first range starts at 0.0.0.0)
      const free = [FREE[family][side]!, ...FREE[family]].find((a) => want.has(engine.zoneOf(a)?.name ?? ''));
      if (free) return free;
      // prefer the zone itself over a descendant, so the shown zone is the one the rule names
      const list = family === 4 ? flat.v4 : flat.v6;
      const hit = list.find((r) => r.zone === z) ?? list.find((r) => want.has(r.zone));
      if (hit) return inside(family, hit.lo, hit.hi);
    }
    return null;
  }
  return FREE[family][side]!;
}

/** A connection that satisfies the conditions (a rule's, or conditions built for a lint), in one
 * family; null when they only name addresses of the other family. */
export function connectionForConditions(
  engine: Engine,
  policy: Policy,
  flat: { v4: ZoneInterval[]; v6: ZoneInterval[] },
  r: Conditions,
  family: Family,
): Connection | null {
  const src = sideAddress(engine, policy, flat, family, r.srcSubnet, r.srcZone, 0);
  const dst = sideAddress(engine, policy, flat, family, r.dstSubnet, r.dstZone, 1);
  if (src === null || dst === null) return null;
  const icmp = r.icmpType !== undefined || r.icmpCode !== undefined;
  let proto = r.proto?.[0] ?? (icmp ? (family === 4 ? PROTO_ICMP : PROTO_ICMPV6) : PROTO_TCP);
  if (icmp && r.proto === undefined) proto = family === 4 ? PROTO_ICMP : PROTO_ICMPV6;
  const c: Connection = {
    proto,
    src,
    dst,
    srcPort: r.srcPort?.[0]?.lo ?? 40000,
    dstPort: portIn(r.dstPort) ?? 80,
  };
  if (icmp) {
    c.icmpType = r.icmpType?.[0] ?? 8;
    c.icmpCode = r.icmpCode?.[0] ?? 0;
  }
  if (r.iface || r.ifgroup || r.reqid || r.dstIface || r.dstIfgroup) {
    c.iface = r.iface?.[0] ?? r.dstIface?.[0] ?? 'eth0';
    if (r.ifgroup || r.dstIfgroup) c.ifgroup = r.ifgroup?.[0] ?? r.dstIfgroup?.[0] ?? 0;
    if (r.reqid) c.reqids = [r.reqid[0]!];
    if (r.dstIface || r.dstIfgroup) c.dstLocal = true;
  }
  return c;
}

/**
 * Connections covering every service a rule can pick, in IPv4 and IPv6 where the rule allows, plus
 * a no-match probe per family when one exists. At most `perService` samples per service and family.
 */
export function sampleConnections(engine: Engine, perService = 1): Sample[] {
  const policy = engine.policy;
  const flat = flattenZones(policy);
  const out: Sample[] = [];
  const seen = new Map<string, number>();
  for (const r of policy.rules) {
    for (const family of [4, 6] as const) {
      const conn = connectionForConditions(engine, policy, flat, r, family);
      if (conn === null) continue;
      const decision = engine.decide(conn);
      const key = `${decision.service?.name ?? '-'}/${family}`;
      const n = seen.get(key) ?? 0;
      if (n >= perService) continue;
      seen.set(key, n + 1);
      out.push({ conn, builtFor: r.id, decision });
    }
  }
  // no-match probes: unusual protocol and port between unlisted addresses, then between zones
  for (const family of [4, 6] as const) {
    const addrs = [
      ...FREE[family],
      ...(family === 4 ? flat.v4 : flat.v6).slice(0, 8).map((i) => inside(family, i.lo, i.hi)),
    ];
    let found: Sample | null = null;
    search: for (const proto of [PROTO_TCP, 17, 132]) {
      for (const src of addrs) {
        for (const dst of addrs) {
          if (dst === src) continue;
          const conn: Connection = { proto, src, dst, srcPort: 40000, dstPort: 9 };
          const decision = engine.decide(conn);
          if (decision.rule === null) {
            found = { conn, builtFor: null, decision };
            break search;
          }
        }
      }
    }
    if (found) out.push(found);
  }
  return out;
}
