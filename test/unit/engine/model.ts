// Brute-force reference model of KZorp's best match, written straight from the precedence rules of
// issue 2 (item 3) and zorp-semantics §2-3, independent of src/engine: addresses via ipaddr.js and
// bigint, zones by scanning every network, each rule scored as a tuple compared field by field,
// lowest id on a tie. It is slow on purpose: it is the oracle for the property tests and the baseline of
// the engine benchmark.
import ipaddr from 'ipaddr.js';
import type { Cidr, Connection, Policy, PortRange, Rule, Zone } from '../../../src/policy/model.ts';

export interface ModelAddr {
  family: 4 | 6;
  value: bigint;
}

export function modelAddr(text: string): ModelAddr {
  let a = ipaddr.parse(text);
  if (a.kind() === 'ipv6' && (a as ipaddr.IPv6).isIPv4MappedAddress()) a = (a as ipaddr.IPv6).toIPv4Address();
  let v = 0n;
  for (const b of a.toByteArray()) v = (v << 8n) | BigInt(b);
  return { family: a.kind() === 'ipv4' ? 4 : 6, value: v };
}

function inCidr(c: Cidr, a: ModelAddr): boolean {
  if (c.family !== a.family) return false;
  const shift = BigInt((c.family === 4 ? 32 : 128) - c.prefix);
  return a.value >> shift === c.addr >> shift;
}

/** Longest-prefix match over every network of every zone; /0 is just the shortest prefix. */
export function modelZoneOf(policy: Policy, addr: ModelAddr): Zone | null {
  let best: Zone | null = null;
  let bestLen = -1;
  for (const z of policy.zones.values()) {
    for (const c of z.addresses) {
      if (inCidr(c, addr) && c.prefix > bestLen) {
        best = z;
        bestLen = c.prefix;
      }
    }
  }
  return best;
}

function depthOf(policy: Policy, name: string): number {
  let d = 0;
  let cur: string | null = name;
  while (cur !== null) {
    d++;
    cur = policy.zones.get(cur)!.parent;
  }
  return d;
}

function isSelfOrAncestor(policy: Policy, listed: string, zone: string): boolean {
  let cur: string | null = zone;
  while (cur !== null) {
    if (cur === listed) return true;
    cur = policy.zones.get(cur)!.parent;
  }
  return false;
}

/** Score tuple, strongest field first. */
export type ModelScore = number[];

const NO = null;

function portScore(list: PortRange[] | undefined, p: number): number | null {
  if (!list) return 0;
  if (list.some((r) => r.lo === r.hi && r.lo === p)) return 2;
  if (list.some((r) => r.lo <= p && p <= r.hi)) return 1;
  return NO;
}

function subnetScore(list: Cidr[] | undefined, a: ModelAddr): number | null {
  if (!list) return 0;
  const m = list.filter((c) => inCidr(c, a)).map((c) => c.prefix + 1);
  return m.length ? Math.max(...m) : NO;
}

function zoneScore(policy: Policy, list: string[] | undefined, zone: Zone | null): number | null {
  if (!list) return 0;
  if (zone === null) return NO;
  const m = list.filter((l) => isSelfOrAncestor(policy, l, zone.name)).map((l) => depthOf(policy, l));
  return m.length ? Math.max(...m) : NO;
}

export interface ModelContext {
  proto: number;
  src: ModelAddr;
  dst: ModelAddr;
  srcZone: Zone | null;
  dstZone: Zone | null;
  srcPort: number;
  dstPort: number;
  iface: string | null;
  ifgroup: number;
  reqids: number[];
  dstLocal: boolean;
  icmpType: number | null;
  icmpCode: number | null;
}

export function modelContext(policy: Policy, c: Connection): ModelContext {
  const src = modelAddr(c.src);
  const dst = modelAddr(c.dst);
  const ported = c.proto === 6 || c.proto === 17;
  const icmp = c.proto === 1 || c.proto === 58;
  return {
    proto: c.proto,
    src,
    dst,
    srcZone: modelZoneOf(policy, src),
    dstZone: modelZoneOf(policy, dst),
    srcPort: ported ? (c.srcPort ?? 0) : 0,
    dstPort: ported ? (c.dstPort ?? 0) : 0,
    iface: c.iface ?? null,
    ifgroup: c.iface ? (c.ifgroup ?? 0) : -1,
    reqids: c.reqids ?? [],
    dstLocal: c.dstLocal === true,
    icmpType: icmp ? (c.icmpType ?? null) : null,
    icmpCode: icmp ? (c.icmpCode ?? null) : null,
  };
}

/** The rule's score tuple for the connection, or null when it does not match. */
export function modelScore(policy: Policy, r: Rule, x: ModelContext): ModelScore | null {
  // interface group: reqid 4 | iface 2 | ifgroup 1, any of them; nothing without an interface
  let iface = 0;
  if (r.reqid || r.iface || r.ifgroup) {
    if (x.iface === null) return null;
    if (r.reqid?.some((id) => x.reqids.includes(id))) iface += 4;
    if (r.iface?.includes(x.iface)) iface += 2;
    if (r.ifgroup?.includes(x.ifgroup)) iface += 1;
    if (iface === 0) return null;
  }
  const proto = r.proto ? (r.proto.includes(x.proto) ? 1 : NO) : 0;
  const type = r.icmpType ? (x.icmpType !== null && r.icmpType.includes(x.icmpType) ? 1 : NO) : 0;
  const code = r.icmpCode ? (x.icmpCode !== null && r.icmpCode.includes(x.icmpCode) ? 1 : NO) : 0;
  const sport = portScore(r.srcPort, x.srcPort);
  const dport = portScore(r.dstPort, x.dstPort);
  if (proto === NO || type === NO || code === NO || sport === NO || dport === NO) return null;
  // source: subnets OR zones
  let ssub = 0;
  let szone = 0;
  if (r.srcSubnet || r.srcZone) {
    const s = r.srcSubnet ? subnetScore(r.srcSubnet, x.src) : NO;
    const z = r.srcZone ? zoneScore(policy, r.srcZone, x.srcZone) : NO;
    if (s === NO && z === NO) return null;
    ssub = s ?? 0;
    szone = z ?? 0;
  }
  // destination: subnets OR dst_iface/dst_ifgroup (destination local to the incoming iface) OR zones
  let dsub = 0;
  let dif = 0;
  let dzone = 0;
  if (r.dstSubnet || r.dstIface || r.dstIfgroup || r.dstZone) {
    const s = r.dstSubnet ? subnetScore(r.dstSubnet, x.dst) : NO;
    let i: number | null = NO;
    if ((r.dstIface || r.dstIfgroup) && x.dstLocal && x.iface !== null) {
      const v = (r.dstIface?.includes(x.iface) ? 2 : 0) + (r.dstIfgroup?.includes(x.ifgroup) ? 1 : 0);
      i = v === 0 ? NO : v;
    }
    const z = r.dstZone ? zoneScore(policy, r.dstZone, x.dstZone) : NO;
    if (s === NO && i === NO && z === NO) return null;
    dsub = s ?? 0;
    dif = i ?? 0;
    dzone = z ?? 0;
  }
  return [iface, code, type, proto, sport, dport, ssub, szone, dsub, dif, dzone];
}

function compare(a: ModelScore, b: ModelScore): number {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return a[i]! - b[i]!;
  return 0;
}

export interface ModelDecision {
  clientZone: string | null;
  serverZone: string | null;
  ruleId: number | null;
  score: ModelScore | null;
}

/** Scans every rule: the highest tuple wins, the lowest id on a tie. */
export function modelDecide(policy: Policy, c: Connection): ModelDecision {
  const x = modelContext(policy, c);
  let best: Rule | null = null;
  let bestScore: ModelScore | null = null;
  for (const r of policy.rules) {
    const s = modelScore(policy, r, x);
    if (s === null) continue;
    const cmp = bestScore === null ? 1 : compare(s, bestScore);
    if (cmp > 0 || (cmp === 0 && best !== null && r.id < best.id)) {
      best = r;
      bestScore = s;
    }
  }
  return {
    clientZone: x.srcZone?.name ?? null,
    serverZone: x.dstZone?.name ?? null,
    ruleId: best?.id ?? null,
    score: bestScore,
  };
}
