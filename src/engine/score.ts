// The specification of a rule's match and score (zorp-semantics §3.1), written once and used by the
// lookup (`evalRule`), by `explain` (`describeRule`) and, through index.ts, by the kernel compiler's
// differential tests.
//
// A rule's score is a tuple compared lexicographically, strongest first (issue 2, item 3):
//   iface (reqid 4 | name 2 | group 1), icmpCode, icmpType, proto, srcPort, dstPort,
//   srcSubnet (prefix+1), srcZone (depth), dstSubnet (prefix+1), dstIface (name 2 | group 1), dstZone (depth)
// Each field has a fixed width (3,1,1,1,2,2,8,5,8,2,5 bits = 38 bits), so the tuple packs into one
// exact JavaScript number and lexicographic comparison is `>`. That is KZorp's bit layout; the one
// difference is that KZorp's evaluation-order quirk for proto/type/code is not reproduced
// (docs/semantics.md).
import { TzorpError } from '../errors.ts';
import type { Cidr, Rule, Service } from '../policy/model.ts';
import { maskWord, type ParsedAddr, wordsOf } from './address.ts';
import { PrefixTrie } from './zone-trie.ts';

export const PROTO_TCP = 6;
export const PROTO_UDP = 17;
export const PROTO_ICMP = 1;
export const PROTO_ICMPV6 = 58;

/** The score tuple's layout: its fields, strongest first, and the radix each is packed with (the field's
 * largest value + 1, rounded up to a power of two: KZorp's bit widths). The one layout of the engine,
 * `explain` and the kernel compiler's tiers. */
export const SCORE_FIELDS = [
  ['iface', 8],
  ['icmpCode', 2],
  ['icmpType', 2],
  ['proto', 2],
  ['srcPort', 4],
  ['dstPort', 4],
  ['srcSubnet', 256],
  ['srcZone', 32],
  ['dstSubnet', 256],
  ['dstIface', 4],
  ['dstZone', 32],
] as const;
export type ScoreField = (typeof SCORE_FIELDS)[number][0];
export type ScoreTuple = Record<ScoreField, number>;

/** Packs a tuple into one number whose numeric order is the tuple's lexicographic order. */
export function packScore(t: ScoreTuple): number {
  let s = 0;
  for (const [f, radix] of SCORE_FIELDS) s = s * radix + t[f];
  return s;
}

export function unpackScore(s: number): ScoreTuple {
  const t = {} as ScoreTuple;
  for (let i = SCORE_FIELDS.length - 1; i >= 0; i--) {
    const [f, radix] = SCORE_FIELDS[i]!;
    t[f] = s % radix;
    s = Math.floor(s / radix);
  }
  // fields in precedence order (strongest first), so Object.values gives the tuple
  return Object.fromEntries(SCORE_FIELDS.map(([f]) => [f, t[f]])) as ScoreTuple;
}

/** The tuple of a rule with no conditions (every field 0). */
export function zeroScore(): ScoreTuple {
  // a literal in SCORE_FIELDS order: one object shape for every tuple (compiled once, no dictionary
  // object; the kernel compiler makes one per rule variant)
  return {
    iface: 0,
    icmpCode: 0,
    icmpType: 0,
    proto: 0,
    srcPort: 0,
    dstPort: 0,
    srcSubnet: 0,
    srcZone: 0,
    dstSubnet: 0,
    dstIface: 0,
    dstZone: 0,
  };
}

/** The first field (strongest first) where `a` beats `b`, or null when they are equal. */
export function decidingField(a: ScoreTuple, b: ScoreTuple): ScoreField | null {
  for (const [f] of SCORE_FIELDS) if (a[f] !== b[f]) return f;
  return null;
}

/** A connection prepared for matching: parsed addresses, zones as indexes, ports/ICMP normalised. */
export class Query {
  proto = 0;
  src!: ParsedAddr;
  dst!: ParsedAddr;
  srcZone = -1;
  dstZone = -1;
  /** 0 unless proto is TCP or UDP (zorp-semantics §3.1, dimension 7). */
  srcPort = 0;
  dstPort = 0;
  /** Incoming interface; null = locally generated. */
  iface: string | null = null;
  /** The incoming interface's netdev group (Linux default 0); -1 without an interface. */
  ifgroup = -1;
  reqids: number[] | null = null;
  dstLocal = false;
  /** -1 = unset (not ICMP/ICMPv6, or not given). */
  icmpType = -1;
  icmpCode = -1;
}

/** Per-zone data the zone dimensions need: depth and ancestors (ancestor at depth d, 1-based, of zone z
 * is `anc[z * 32 + d - 1]`). */
export interface ZoneTable {
  depth: Int32Array;
  anc: Int32Array;
  names: string[];
}

export const ANC_STRIDE = 32;

/** A rule's subnets of one side, split by family. Long lists get a trie (value = prefix length). */
export interface SubnetList {
  /** (addr, mask, prefix) triples, longest prefix first. */
  v4: Uint32Array;
  /** (w0..w3, m0..m3, prefix) 9-tuples, longest prefix first. */
  v6: Uint32Array;
  trie4: PrefixTrie | null;
  trie6: PrefixTrie | null;
  cidrs: Cidr[];
}

/** Lists longer than this get a trie instead of a scan. */
const SUBNET_SCAN_MAX = 16;

export function compileSubnets(cidrs: Cidr[]): SubnetList {
  const sorted = [...cidrs].sort((a, b) => b.prefix - a.prefix);
  const v4 = sorted.filter((c) => c.family === 4);
  const v6 = sorted.filter((c) => c.family === 6);
  const a4 = new Uint32Array(v4.length * 3);
  v4.forEach((c, i) => {
    a4[i * 3] = Number(c.addr);
    a4[i * 3 + 1] = maskWord(c.prefix, 0);
    a4[i * 3 + 2] = c.prefix;
  });
  const a6 = new Uint32Array(v6.length * 9);
  v6.forEach((c, i) => {
    const w = wordsOf(c.addr);
    for (let k = 0; k < 4; k++) {
      a6[i * 9 + k] = w[k]!;
      a6[i * 9 + 4 + k] = maskWord(c.prefix, k);
    }
    a6[i * 9 + 8] = c.prefix;
  });
  let trie4: PrefixTrie | null = null;
  let trie6: PrefixTrie | null = null;
  if (v4.length > SUBNET_SCAN_MAX) {
    trie4 = new PrefixTrie(4);
    for (const c of v4) trie4.insertBig(c.addr, c.prefix, c.prefix);
  }
  if (v6.length > SUBNET_SCAN_MAX) {
    trie6 = new PrefixTrie(6);
    for (const c of v6) trie6.insertBig(c.addr, c.prefix, c.prefix);
  }
  return { v4: a4, v6: a6, trie4, trie6, cidrs: sorted };
}

/** Index into `SubnetList.cidrs` of the longest network containing the address, or -1. */
function subnetMatchIndex(l: SubnetList, a: ParsedAddr): number {
  if (a.family === 4) {
    const v = l.v4;
    for (let i = 0; i < v.length; i += 3) if ((a.w0 & v[i + 1]!) >>> 0 === v[i]) return i / 3;
    return -1;
  }
  if (a.family === 6) {
    const v = l.v6;
    for (let i = 0; i < v.length; i += 9) {
      if (
        (a.w0 & v[i + 4]!) >>> 0 === v[i] &&
        (a.w1 & v[i + 5]!) >>> 0 === v[i + 1] &&
        (a.w2 & v[i + 6]!) >>> 0 === v[i + 2] &&
        (a.w3 & v[i + 7]!) >>> 0 === v[i + 3]
      )
        return l.v4.length / 3 + i / 9;
    }
  }
  return -1;
}

/** prefix+1 of the longest listed network containing the address; -1 when none does. */
export function subnetScore(l: SubnetList, a: ParsedAddr): number {
  if (a.family === 4) {
    if (l.trie4) return l.trie4.lookup(a) + 1 || -1;
    const v = l.v4;
    for (let i = 0; i < v.length; i += 3) if ((a.w0 & v[i + 1]!) >>> 0 === v[i]) return v[i + 2]! + 1;
    return -1;
  }
  if (a.family === 6) {
    if (l.trie6) return l.trie6.lookup(a) + 1 || -1;
    const v = l.v6;
    for (let i = 0; i < v.length; i += 9) {
      if (
        (a.w0 & v[i + 4]!) >>> 0 === v[i] &&
        (a.w1 & v[i + 5]!) >>> 0 === v[i + 1] &&
        (a.w2 & v[i + 6]!) >>> 0 === v[i + 2] &&
        (a.w3 & v[i + 7]!) >>> 0 === v[i + 3]
      )
        return v[i + 8]! + 1;
    }
  }
  return -1;
}

/** 2 when a single-port value (lo == hi) holds the port, 1 when only a wider range does, -1 otherwise.
 * KZorp takes the first containing range in start order; the issue asks for the most specific value. */
export function portScore(pairs: Int32Array, p: number): number {
  let best = -1;
  for (let i = 0; i < pairs.length; i += 2) {
    const lo = pairs[i]!;
    const hi = pairs[i + 1]!;
    if (p >= lo && p <= hi) {
      if (lo === hi) return 2;
      best = 1;
    }
  }
  return best;
}

/** Depth of the deepest listed zone that is the packet's zone or one of its ancestors; -1 if none. */
export function zoneScore(zones: Int32Array, z: number, t: ZoneTable): number {
  if (z < 0) return -1; // no zone never matches a zone list
  const dz = t.depth[z]!;
  const base = z * ANC_STRIDE - 1;
  let best = -1;
  for (let i = 0; i < zones.length; i++) {
    const l = zones[i]!;
    const d = t.depth[l]!;
    if (d <= dz && d > best && t.anc[base + d] === l) best = d;
  }
  return best;
}

function includes(list: number[], v: number): boolean {
  for (let i = 0; i < list.length; i++) if (list[i] === v) return true;
  return false;
}

/** A rule prepared for matching. Absent dimensions are null (wildcards). */
export interface CompiledRule {
  index: number;
  id: number;
  rule: Rule;
  service: Service | null;
  hasIfaceGroup: boolean;
  reqid: number[] | null;
  iface: string[] | null;
  ifgroup: number[] | null;
  proto: number[] | null;
  icmpType: number[] | null;
  icmpCode: number[] | null;
  srcPort: Int32Array | null;
  dstPort: Int32Array | null;
  srcNet: SubnetList | null;
  srcZone: Int32Array | null;
  dstNet: SubnetList | null;
  dstIface: string[] | null;
  dstIfgroup: number[] | null;
  dstZone: Int32Array | null;
  // Scalar shortcuts of the common shapes, read without following a pointer (a lookup is bound by
  // memory latency, not arithmetic). -1: no condition; -2: use the list above; else the value.
  proto1: number;
  /** The only dst_port range (lo, hi), or -1 / -2 in dport1Lo. */
  dport1Lo: number;
  dport1Hi: number;
  /** The only source condition is this one zone (and its depth); -1 none; -2 general. */
  srcZone1: number;
  srcZone1Depth: number;
  dstZone1: number;
  dstZone1Depth: number;
  /** Any iface-group, ICMP or src_port condition (rare in policies: checked on a slower path). */
  rare: boolean;
}

/** Per-rule scalars in one flat array (HOT_STRIDE ints per rule, by rule index): a lookup reads a
 * rule's common conditions from one cache line and follows `rules[i]` only for the rare ones. */
export const HOT_STRIDE = 8;
const H_PROTO = 0;
const H_DLO = 1;
const H_DHI = 2;
const H_SZ = 3;
const H_SZD = 4;
const H_DZ = 5;
const H_DZD = 6;
const H_RARE = 7;

export interface RuleTable {
  rules: CompiledRule[];
  hot: Int32Array;
}

export function buildRuleTable(rules: CompiledRule[]): RuleTable {
  const hot = new Int32Array(rules.length * HOT_STRIDE);
  rules.forEach((r, i) => {
    const b = i * HOT_STRIDE;
    hot[b + H_PROTO] = r.proto1;
    hot[b + H_DLO] = r.dport1Lo;
    hot[b + H_DHI] = r.dport1Hi;
    hot[b + H_SZ] = r.srcZone1;
    hot[b + H_SZD] = r.srcZone1Depth;
    hot[b + H_DZ] = r.dstZone1;
    hot[b + H_DZD] = r.dstZone1Depth;
    hot[b + H_RARE] = r.rare ? 1 : 0;
  });
  return { rules, hot };
}

function ports(list: { lo: number; hi: number }[] | undefined): Int32Array | null {
  if (!list || list.length === 0) return null;
  const sorted = [...list].sort((a, b) => a.lo - b.lo || a.hi - b.hi);
  const out = new Int32Array(sorted.length * 2);
  sorted.forEach((r, i) => {
    out[i * 2] = r.lo;
    out[i * 2 + 1] = r.hi;
  });
  return out;
}

function nonEmpty<T>(l: T[] | undefined): T[] | null {
  return l && l.length > 0 ? [...l] : null;
}

export function compileRule(
  rule: Rule,
  index: number,
  zoneIndex: Map<string, number>,
  services: Map<string, Service>,
  depthOf: (zone: number) => number,
): CompiledRule {
  const zones = (names: string[] | undefined): Int32Array | null => {
    if (!names || names.length === 0) return null;
    // an unknown name (the loader rejects those) can never match: it is dropped, like KZorp drops
    // references to deleted zones; a list left empty this way matches nothing
    return Int32Array.from(names.map((n) => zoneIndex.get(n) ?? -1).filter((i) => i >= 0));
  };
  const reqid = nonEmpty(rule.reqid);
  const iface = nonEmpty(rule.iface);
  const ifgroup = nonEmpty(rule.ifgroup);
  const proto = nonEmpty(rule.proto);
  const icmpType = nonEmpty(rule.icmpType);
  const icmpCode = nonEmpty(rule.icmpCode);
  const srcPort = ports(rule.srcPort);
  const dstPort = ports(rule.dstPort);
  const srcNet = rule.srcSubnet && rule.srcSubnet.length > 0 ? compileSubnets(rule.srcSubnet) : null;
  const srcZone = zones(rule.srcZone);
  const dstNet = rule.dstSubnet && rule.dstSubnet.length > 0 ? compileSubnets(rule.dstSubnet) : null;
  const dstIface = nonEmpty(rule.dstIface);
  const dstIfgroup = nonEmpty(rule.dstIfgroup);
  const dstZone = zones(rule.dstZone);
  const one = (l: ArrayLike<number> | null): number => (l === null ? -1 : l.length === 1 ? l[0]! : -2);
  const srcZone1 = srcNet !== null ? -2 : srcZone === null ? -1 : one(srcZone);
  const dstOnlyZone = dstNet === null && dstIface === null && dstIfgroup === null;
  const dstZone1 = !dstOnlyZone ? -2 : dstZone === null ? -1 : one(dstZone);
  return {
    proto1: one(proto),
    dport1Lo: dstPort === null ? -1 : dstPort.length === 2 ? dstPort[0]! : -2,
    dport1Hi: dstPort !== null && dstPort.length === 2 ? dstPort[1]! : -1,
    srcZone1,
    srcZone1Depth: srcZone1 >= 0 ? depthOf(srcZone1) : 0,
    dstZone1,
    dstZone1Depth: dstZone1 >= 0 ? depthOf(dstZone1) : 0,
    rare:
      reqid !== null ||
      iface !== null ||
      ifgroup !== null ||
      icmpType !== null ||
      icmpCode !== null ||
      srcPort !== null,
    index,
    id: rule.id,
    rule,
    service: services.get(rule.service) ?? null,
    hasIfaceGroup: reqid !== null || iface !== null || ifgroup !== null,
    reqid,
    iface,
    ifgroup,
    proto,
    icmpType,
    icmpCode,
    srcPort,
    dstPort,
    srcNet,
    srcZone,
    dstNet,
    dstIface,
    dstIfgroup,
    dstZone,
  };
}

/** The iface group: OR of reqid 4, iface name 2, ifgroup 1; 0 = no such condition; -1 = no match.
 * Without an incoming interface (locally generated) a rule with any of the three never matches. */
export function ifaceGroupScore(r: CompiledRule, q: Query): number {
  if (!r.hasIfaceGroup) return 0;
  if (q.iface === null) return -1;
  let s = 0;
  if (r.reqid !== null && q.reqids !== null) {
    for (const id of q.reqids) {
      if (includes(r.reqid, id)) {
        s = 4;
        break;
      }
    }
  }
  if (r.iface?.includes(q.iface)) s |= 2;
  if (r.ifgroup !== null && includes(r.ifgroup, q.ifgroup)) s |= 1;
  return s === 0 ? -1 : s;
}

/** dst_iface name 2 | dst_ifgroup 1, only when the destination is an address of the incoming interface. */
export function dstIfaceScore(r: CompiledRule, q: Query): number {
  if (!q.dstLocal || q.iface === null) return -1;
  let s = 0;
  if (r.dstIface?.includes(q.iface)) s = 2;
  if (r.dstIfgroup !== null && includes(r.dstIfgroup, q.ifgroup)) s |= 1;
  return s === 0 ? -1 : s;
}

/** `depth` when `zone` (a zone at that depth) is zone `z` or one of its ancestors, else -1 (also for no
 * zone, z < 0). */
function ancestorDepth(zt: ZoneTable, z: number, zone: number, depth: number): number {
  return z >= 0 && depth <= zt.depth[z]! && zt.anc[z * ANC_STRIDE + depth - 1] === zone ? depth : -1;
}

/** Whether the rule matches and its packed score: -1 when it does not match. */
export function evalRule(r: CompiledRule, q: Query, zt: ZoneTable, t: RuleTable): number {
  return evalAt(t, r.index, q, zt);
}

/** `evalRule` for the rule at index `i` of the table. */
export function evalAt(t: RuleTable, i: number, q: Query, zt: ZoneTable): number {
  return evalRow(t.hot, i * HOT_STRIDE, t.rules, i, q, zt);
}

/** The hot path of every lookup: rule `i` whose scalars are the row at `hot[b .. b + HOT_STRIDE)` (the
 * rule table's row, or a copy of it laid out next to the other candidates of an index cell, so that the
 * candidates of one lookup are read sequentially). */
export function evalRow(
  hot: Int32Array,
  b: number,
  rules: CompiledRule[],
  i: number,
  q: Query,
  zt: ZoneTable,
): number {
  let x: number;
  // cheap scalar dimensions first: most candidates fail here
  let proto = 0;
  const p1 = hot[b + H_PROTO]!;
  if (p1 !== -1) {
    if (p1 >= 0 ? p1 !== q.proto : !includes(rules[i]!.proto!, q.proto)) return -1;
    proto = 1;
  }
  let dport = 0;
  const dlo = hot[b + H_DLO]!;
  if (dlo >= 0) {
    const p = q.dstPort;
    const dhi = hot[b + H_DHI]!;
    if (p < dlo || p > dhi) return -1;
    dport = dlo === dhi ? 2 : 1;
  } else if (dlo === -2) {
    dport = portScore(rules[i]!.dstPort!, q.dstPort);
    if (dport < 0) return -1;
  }
  let sport = 0;
  let type = 0;
  let code = 0;
  let iface = 0;
  if (hot[b + H_RARE] === 1) {
    const r = rules[i]!;
    if (r.srcPort !== null) {
      sport = portScore(r.srcPort, q.srcPort);
      if (sport < 0) return -1;
    }
    if (r.icmpType !== null) {
      if (q.icmpType < 0 || !includes(r.icmpType, q.icmpType)) return -1;
      type = 1;
    }
    if (r.icmpCode !== null) {
      if (q.icmpCode < 0 || !includes(r.icmpCode, q.icmpCode)) return -1;
      code = 1;
    }
    iface = ifaceGroupScore(r, q);
    if (iface < 0) return -1;
  }
  // source group: subnets OR zones
  let ssub = 0;
  let szone = 0;
  const sz1 = hot[b + H_SZ]!;
  if (sz1 >= 0) {
    // one zone: it must be the source zone or one of its ancestors
    szone = ancestorDepth(zt, q.srcZone, sz1, hot[b + H_SZD]!);
    if (szone < 0) return -1;
  } else if (sz1 === -2) {
    const r = rules[i]!;
    x = r.srcNet !== null ? subnetScore(r.srcNet, q.src) : -1;
    const y = r.srcZone !== null ? zoneScore(r.srcZone, q.srcZone, zt) : -1;
    if (x < 0 && y < 0) return -1;
    if (x > 0) ssub = x;
    if (y > 0) szone = y;
  }
  // destination group: subnets OR dst_iface/dst_ifgroup OR zones
  let dsub = 0;
  let dif = 0;
  let dzone = 0;
  const dz1 = hot[b + H_DZ]!;
  if (dz1 >= 0) {
    dzone = ancestorDepth(zt, q.dstZone, dz1, hot[b + H_DZD]!);
    if (dzone < 0) return -1;
  } else if (dz1 === -2) {
    const r = rules[i]!;
    x = r.dstNet !== null ? subnetScore(r.dstNet, q.dst) : -1;
    const w = r.dstIface !== null || r.dstIfgroup !== null ? dstIfaceScore(r, q) : -1;
    const y = r.dstZone !== null ? zoneScore(r.dstZone, q.dstZone, zt) : -1;
    if (x < 0 && w < 0 && y < 0) return -1;
    if (x > 0) dsub = x;
    if (w > 0) dif = w;
    if (y > 0) dzone = y;
  }
  // the packed tuple (see the header); the same arithmetic as packScore, unrolled
  let s = iface * 2 + code;
  s = s * 2 + type;
  s = s * 2 + proto;
  s = s * 4 + sport;
  s = s * 4 + dport;
  s = s * 256 + ssub;
  s = s * 32 + szone;
  s = s * 256 + dsub;
  s = s * 4 + dif;
  return s * 32 + dzone;
}

// ---- explanation (not the hot path; built from the same scorers) ----

/** The rule dimension groups that must each match (a rule fails on the first that does not). */
export const MATCH_GROUPS = [
  'iface',
  'proto',
  'icmpType',
  'icmpCode',
  'srcPort',
  'dstPort',
  'source',
  'destination',
] as const;
export type MatchGroup = (typeof MATCH_GROUPS)[number];

/** What one condition of a rule did with the connection. */
export interface DimensionResult {
  /** Policy-language name: reqid, iface, ifgroup, proto, icmp_type, ..., dst_zone. */
  dimension: string;
  group: MatchGroup;
  /** `any`: the rule has no such condition. `match`/`miss`: the connection's value is/is not listed. */
  status: 'any' | 'match' | 'miss';
  /** The rule's most specific listed value that matched (text), when status is match. */
  value?: string;
  /** The dimension's contribution to the score (0 when any or miss). */
  score: number;
  /** The connection's value for this dimension, as text (null = none). */
  actual: string | null;
}

export interface RuleDescription {
  matched: boolean;
  /** Groups that failed (empty when matched). */
  failed: MatchGroup[];
  dimensions: DimensionResult[];
  /** The score tuple when matched. */
  score: ScoreTuple | null;
}

function portText(lo: number, hi: number): string {
  return lo === hi ? String(lo) : `${lo}-${hi}`;
}

/** The per-dimension story of one rule and one connection, consistent with `evalRule`. */
export function describeRule(r: CompiledRule, q: Query, zt: ZoneTable, t: RuleTable): RuleDescription {
  const dims: DimensionResult[] = [];
  const add = (
    dimension: string,
    group: MatchGroup,
    present: boolean,
    score: number,
    value: string | undefined,
    actual: string | null,
  ): void => {
    const d: DimensionResult = {
      dimension,
      group,
      status: !present ? 'any' : score > 0 ? 'match' : 'miss',
      score: Math.max(score, 0),
      actual,
    };
    if (score > 0 && value !== undefined) d.value = value;
    dims.push(d);
  };
  const zoneName = (z: number): string | null => (z < 0 ? null : zt.names[z]!);
  const ifaceActual = q.iface;
  // iface group: each of the three scored on its own for the story
  const reqHit =
    r.reqid !== null && q.iface !== null ? (q.reqids ?? []).find((x) => r.reqid!.includes(x)) : undefined;
  add(
    'reqid',
    'iface',
    r.reqid !== null,
    reqHit !== undefined ? 4 : -1,
    String(reqHit),
    q.reqids ? q.reqids.join(',') : null,
  );
  const ifHit = r.iface !== null && q.iface !== null && r.iface.includes(q.iface);
  add('iface', 'iface', r.iface !== null, ifHit ? 2 : -1, q.iface ?? undefined, ifaceActual);
  const grHit = r.ifgroup !== null && q.iface !== null && r.ifgroup.includes(q.ifgroup);
  add(
    'ifgroup',
    'iface',
    r.ifgroup !== null,
    grHit ? 1 : -1,
    String(q.ifgroup),
    q.iface === null ? null : String(q.ifgroup),
  );
  const protoHit = r.proto?.includes(q.proto) === true;
  add('proto', 'proto', r.proto !== null, protoHit ? 1 : -1, String(q.proto), String(q.proto));
  const typeHit = r.icmpType !== null && q.icmpType >= 0 && r.icmpType.includes(q.icmpType);
  add(
    'icmp_type',
    'icmpType',
    r.icmpType !== null,
    typeHit ? 1 : -1,
    String(q.icmpType),
    q.icmpType < 0 ? null : String(q.icmpType),
  );
  const codeHit = r.icmpCode !== null && q.icmpCode >= 0 && r.icmpCode.includes(q.icmpCode);
  add(
    'icmp_code',
    'icmpCode',
    r.icmpCode !== null,
    codeHit ? 1 : -1,
    String(q.icmpCode),
    q.icmpCode < 0 ? null : String(q.icmpCode),
  );
  const portDim = (name: string, group: MatchGroup, pairs: Int32Array | null, p: number): void => {
    if (pairs === null) {
      add(name, group, false, 0, undefined, String(p));
      return;
    }
    const s = portScore(pairs, p);
    let value: string | undefined;
    for (let i = 0; i < pairs.length; i += 2) {
      const lo = pairs[i]!;
      const hi = pairs[i + 1]!;
      if (p >= lo && p <= hi && (s === 1 || lo === hi)) {
        value = portText(lo, hi);
        break;
      }
    }
    add(name, group, true, s, value, String(p));
  };
  portDim('src_port', 'srcPort', r.srcPort, q.srcPort);
  portDim('dst_port', 'dstPort', r.dstPort, q.dstPort);
  const subnetDim = (name: string, group: MatchGroup, l: SubnetList | null, a: ParsedAddr): void => {
    if (l === null) {
      add(name, group, false, 0, undefined, a.toString());
      return;
    }
    const i = subnetMatchIndex(l, a);
    add(name, group, true, subnetScore(l, a), i >= 0 ? l.cidrs[i]!.text : undefined, a.toString());
  };
  const zoneDim = (name: string, group: MatchGroup, zones: Int32Array | null, z: number): void => {
    if (zones === null) {
      add(name, group, false, 0, undefined, zoneName(z));
      return;
    }
    const s = zoneScore(zones, z, zt);
    let value: string | undefined;
    if (s > 0) value = zt.names[zt.anc[z * ANC_STRIDE + s - 1]!];
    add(name, group, true, s, value, zoneName(z));
  };
  subnetDim('src_subnet', 'source', r.srcNet, q.src);
  zoneDim('src_zone', 'source', r.srcZone, q.srcZone);
  subnetDim('dst_subnet', 'destination', r.dstNet, q.dst);
  const dstLocalIface = q.dstLocal && q.iface !== null;
  const diHit = r.dstIface !== null && dstLocalIface && r.dstIface.includes(q.iface!);
  add(
    'dst_iface',
    'destination',
    r.dstIface !== null,
    diHit ? 2 : -1,
    q.iface ?? undefined,
    dstLocalIface ? q.iface : null,
  );
  const dgHit = r.dstIfgroup !== null && dstLocalIface && r.dstIfgroup.includes(q.ifgroup);
  add(
    'dst_ifgroup',
    'destination',
    r.dstIfgroup !== null,
    dgHit ? 1 : -1,
    String(q.ifgroup),
    dstLocalIface ? String(q.ifgroup) : null,
  );
  zoneDim('dst_zone', 'destination', r.dstZone, q.dstZone);

  // a group fails when it has conditions and none of them matched (iface: also without an interface)
  const failed: MatchGroup[] = [];
  for (const g of MATCH_GROUPS) {
    const ds = dims.filter((d) => d.group === g);
    if (ds.some((d) => d.status !== 'any') && !ds.some((d) => d.status === 'match')) failed.push(g);
  }
  const packed = evalRule(r, q, zt, t);
  if (packed < 0 !== failed.length > 0) {
    // describeRule and evalRule are two readings of one specification; disagreeing is a bug here
    throw new TzorpError('INTERNAL', `engine: explanation disagrees with lookup for rule ${r.id}`);
  }
  return { matched: packed >= 0, failed, dimensions: dims, score: packed >= 0 ? unpackScore(packed) : null };
}
