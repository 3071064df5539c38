// A rule as a set of "variants": one per choice of which of its values is the most specific match in
// each dimension. Every variant has a fixed score (the engine's score tuple, zorp-semantics §3.1) and a
// purely positive condition: a conjunction of "this key field lies in these intervals". A connection's
// true score for a rule is the best score among the rule's variants whose condition holds (the one that
// takes each dimension's most specific matching value), so trying variants in descending score order and
// stopping at the first hit reproduces the engine's best match without any negative condition.
import { type ScoreField, type ScoreTuple, zeroScore } from '../../engine/index.ts';
import type { Family, Rule } from '../../policy/model.ts';
import { big, type IntervalSet, intersect, normalize, points } from './intervals.ts';
import type { FlatZones } from './zones.ts';

/** Key fields in key order. A tier's key is the sub-list its score constrains. */
export const FIELDS = [
  'iifname',
  'iifgroup',
  'reqid',
  'l4proto',
  'icmptype',
  'icmpcode',
  'sport',
  'dport',
  'saddr',
  'szone',
  'daddr',
  'dzone',
] as const;
export type Field = (typeof FIELDS)[number];

/** A variant's score: the engine's tuple, packed the engine's way (one layout: src/engine/score.ts). */
export type Score = ScoreTuple;
/** Which key fields a score constrains (all variants of one score constrain the same fields). */
export function fieldsOf(s: Score): Field[] {
  const on: Record<Field, boolean> = {
    iifname: (s.iface & 2) !== 0 || (s.dstIface & 2) !== 0,
    iifgroup: (s.iface & 1) !== 0 || (s.dstIface & 1) !== 0,
    reqid: (s.iface & 4) !== 0,
    l4proto: s.proto > 0,
    icmptype: s.icmpType > 0,
    icmpcode: s.icmpCode > 0,
    sport: s.srcPort > 0,
    dport: s.dstPort > 0,
    saddr: s.srcSubnet > 0,
    szone: s.srcZone > 0,
    daddr: s.dstSubnet > 0,
    dzone: s.dstZone > 0,
  };
  return FIELDS.filter((f) => on[f]);
}

export interface Variant {
  ruleId: number;
  score: Score;
  /** Constrained fields only; each a non-empty interval set. */
  cond: Partial<Record<Field, IntervalSet>>;
}

/** Interface names are key values too: the compiler numbers them (sorted) and the renderer prints them. */
export class NameTable {
  private readonly ids = new Map<string, number>();
  readonly names: string[] = [];
  constructor(all: Iterable<string>) {
    for (const n of [...new Set(all)].sort()) {
      this.ids.set(n, this.names.length);
      this.names.push(n);
    }
  }
  id(n: string): number {
    return this.ids.get(n)!;
  }
}

type Partial2 = { score: Partial<Score>; cond: Partial<Record<Field, IntervalSet>> };

/** Adds `b` to `a` in place: scores field-wise (b's win), conditions intersected per field. False when
 * a condition becomes empty (the combination can never hold). */
function merge(a: Partial2, b: Partial2): boolean {
  for (const f in b.cond) {
    const v = b.cond[f as Field]!;
    const prev = a.cond[f as Field];
    const x = prev ? intersect(prev, v) : v;
    if (x.length === 0) return false;
    a.cond[f as Field] = x;
  }
  for (const k in b.score) a.score[k as ScoreField] = b.score[k as ScoreField]!;
  return true;
}

/** Combines per-dimension-group choices: scores add up field-wise, conditions intersect per field. The
 * combinations are this function's own objects: a group of one choice (most are) extends them in place. */
function product(groups: Partial2[][]): Partial2[] {
  let acc: Partial2[] = [{ score: {}, cond: {} }];
  for (const g of groups) {
    if (g === WILD) continue;
    const next: Partial2[] = [];
    if (g.length === 1) {
      for (const a of acc) if (merge(a, g[0]!)) next.push(a);
    } else {
      for (const a of acc) {
        for (const b of g) {
          const c: Partial2 = { score: { ...a.score }, cond: { ...a.cond } };
          if (merge(c, b)) next.push(c);
        }
      }
    }
    acc = next;
  }
  return acc;
}

/** Non-empty subsets of the present alternatives of an OR group, each with the OR of their bits. */
function orGroup(
  alts: { bit: number; cond: Partial<Record<Field, IntervalSet>> }[],
  key: ScoreField,
): Partial2[] {
  const out: Partial2[] = [];
  const n = alts.length;
  for (let m = 1; m < 1 << n; m++) {
    let bits = 0;
    const parts: Partial2[][] = [];
    for (let i = 0; i < n; i++) {
      if (m & (1 << i)) {
        bits |= alts[i]!.bit;
        parts.push([{ score: {}, cond: alts[i]!.cond }]);
      }
    }
    for (const p of product(parts)) out.push({ score: { [key]: bits }, cond: p.cond });
  }
  return out;
}

/** Classes of one list by score: e.g. subnets by prefix length, zones by depth. */
function classes<T>(items: T[], score: (t: T) => number): Map<number, T[]> {
  const m = new Map<number, T[]>();
  for (const it of items) {
    const s = score(it);
    const l = m.get(s);
    if (l) l.push(it);
    else m.set(s, [it]);
  }
  return m;
}

const WILD: Partial2[] = [{ score: {}, cond: {} }];

function addressClasses(
  cidrs: Rule['srcSubnet'],
  family: Family,
  field: 'saddr' | 'daddr',
  key: 'srcSubnet' | 'dstSubnet',
): Partial2[] {
  const mine = (cidrs ?? []).filter((c) => c.family === family);
  const out: Partial2[] = [];
  for (const [prefix, list] of [...classes(mine, (c) => c.prefix)].sort((a, b) => a[0] - b[0])) {
    const width = family === 4 ? 32 : 128;
    const set = normalize(list.map((c) => [c.addr, c.addr + (1n << BigInt(width - prefix)) - 1n] as const));
    out.push({ score: { [key]: prefix + 1 }, cond: { [field]: set } });
  }
  return out;
}

function zoneClasses(
  names: string[] | undefined,
  flat: FlatZones,
  field: 'szone' | 'dzone',
  key: 'srcZone' | 'dstZone',
): Partial2[] {
  const infos = (names ?? []).map((n) => flat.byName.get(n)).filter((z) => z !== undefined);
  const out: Partial2[] = [];
  for (const [depth, list] of [...classes(infos, (z) => z.depth)].sort((a, b) => a[0] - b[0])) {
    const set = normalize(list.map((z) => [big(z.id), big(z.last)] as const));
    out.push({ score: { [key]: depth }, cond: { [field]: set } });
  }
  return out;
}

function portClasses(
  ranges: Rule['srcPort'],
  field: 'sport' | 'dport',
  key: 'srcPort' | 'dstPort',
): Partial2[] {
  if (!ranges || ranges.length === 0) return WILD;
  const singles = ranges.filter((r) => r.lo === r.hi);
  const wide = ranges.filter((r) => r.lo !== r.hi);
  const out: Partial2[] = [];
  // "range" class: a wider range holds the port. Single values need no range variant: where one holds
  // the port, the rule's "single" variant (otherwise identical, higher score) is tried first and decides.
  if (wide.length > 0) {
    out.push({
      score: { [key]: 1 },
      cond: { [field]: normalize(wide.map((r) => [big(r.lo), big(r.hi)] as const)) },
    });
  }
  if (singles.length > 0)
    out.push({ score: { [key]: 2 }, cond: { [field]: points(singles.map((r) => r.lo)) } });
  return out;
}

/** At least one alternative of a source/destination group must match: a product of (class or none). */
function optionalProduct(lists: Partial2[][]): Partial2[] {
  const present = lists.filter((l) => l.length > 0);
  if (present.length === 0) return WILD;
  const withNone = present.map((l) => [{ score: {}, cond: {} } as Partial2, ...l]);
  return product(withNone).filter((p) => Object.keys(p.cond).length > 0);
}

export const PROTO_ICMP = 1;
export const PROTO_ICMPV6 = 58;

/** Every variant of a rule for one address family. A rule with no variant never matches that family. */
export function ruleVariants(rule: Rule, family: Family, flat: FlatZones, names: NameTable): Variant[] {
  const icmp = family === 4 ? PROTO_ICMP : PROTO_ICMPV6;
  const groups: Partial2[][] = [];
  // interface group: reqid 4 | iface 2 | ifgroup 1, OR-ed
  const ifAlts: { bit: number; cond: Partial<Record<Field, IntervalSet>> }[] = [];
  if (rule.reqid?.length) ifAlts.push({ bit: 4, cond: { reqid: points(rule.reqid) } });
  if (rule.iface?.length)
    ifAlts.push({ bit: 2, cond: { iifname: points(rule.iface.map((n) => names.id(n))) } });
  if (rule.ifgroup?.length) ifAlts.push({ bit: 1, cond: { iifgroup: points(rule.ifgroup) } });
  groups.push(ifAlts.length ? orGroup(ifAlts, 'iface') : WILD);
  // protocol, ICMP type and code: each a plain AND; type/code exist only for this family's ICMP
  if (rule.proto?.length) groups.push([{ score: { proto: 1 }, cond: { l4proto: points(rule.proto) } }]);
  if (rule.icmpType?.length || rule.icmpCode?.length) {
    if (rule.proto?.length && !rule.proto.includes(icmp)) return [];
  }
  if (rule.icmpType?.length)
    groups.push([{ score: { icmpType: 1 }, cond: { icmptype: points(rule.icmpType) } }]);
  if (rule.icmpCode?.length)
    groups.push([{ score: { icmpCode: 1 }, cond: { icmpcode: points(rule.icmpCode) } }]);
  groups.push(portClasses(rule.srcPort, 'sport', 'srcPort'));
  groups.push(portClasses(rule.dstPort, 'dport', 'dstPort'));
  // source: subnets OR zones
  const srcPresent = !!rule.srcSubnet?.length || !!rule.srcZone?.length;
  if (srcPresent) {
    const g = optionalProduct([
      addressClasses(rule.srcSubnet, family, 'saddr', 'srcSubnet'),
      zoneClasses(rule.srcZone, flat, 'szone', 'srcZone'),
    ]);
    if (g === WILD) return []; // conditions exist but none can hold in this family
    groups.push(g);
  }
  // destination: subnets OR dst_iface/dst_ifgroup (the address is local on the incoming interface) OR zones
  const dstPresent =
    !!rule.dstSubnet?.length ||
    !!rule.dstIface?.length ||
    !!rule.dstIfgroup?.length ||
    !!rule.dstZone?.length;
  if (dstPresent) {
    const diAlts: { bit: number; cond: Partial<Record<Field, IntervalSet>> }[] = [];
    if (rule.dstIface?.length)
      diAlts.push({ bit: 2, cond: { iifname: points(rule.dstIface.map((n) => names.id(n))) } });
    if (rule.dstIfgroup?.length) diAlts.push({ bit: 1, cond: { iifgroup: points(rule.dstIfgroup) } });
    const g = optionalProduct([
      addressClasses(rule.dstSubnet, family, 'daddr', 'dstSubnet'),
      diAlts.length ? orGroup(diAlts, 'dstIface') : [],
      zoneClasses(rule.dstZone, flat, 'dzone', 'dstZone'),
    ]);
    if (g === WILD) return [];
    groups.push(g);
  }
  return product(groups).map((p) => {
    const score = zeroScore();
    for (const k in p.score) score[k as ScoreField] = p.score[k as ScoreField]!;
    return { ruleId: rule.id, score, cond: p.cond };
  });
}
