// Ruleset IR → nft text: the only code that writes nftables syntax. The output is deterministic (same
// IR, same bytes): every list is in a defined order and nothing depends on time or environment.
import { DEFAULTS } from '../../defaults.ts';
import { formatAddress } from '../../policy/address.ts';
import type { DenyV4, DenyV6, Family } from '../../policy/model.ts';
import { nflogPrefix } from '../nflog.ts';
import type { Interval, IntervalSet } from './intervals.ts';
import type { ClientLimitsIR, LookupIR, MatchIR, RulesetIR } from './ir.ts';
import { zoneIdent } from './names.ts';
import type { Field } from './variants.ts';
import type { LabelledRange } from './zones.ts';

export const TABLE = 'tzorp';

const hex = (n: number): string => `0x${(n >>> 0).toString(16).padStart(8, '0')}`;

/** A range as a network ("a/p") when it is one, else "a-b". */
function addrRange(f: Family, [lo, hi]: Interval): string {
  if (f === 4) {
    // on numbers (exact below 2^53): the zone maps print about 100,000 of these
    const a = Number(lo);
    const size = Number(hi) - a + 1;
    const p = 32 - Math.log2(size);
    if (Number.isInteger(p) && a % size === 0)
      return p === 32 ? formatAddress(4, lo) : `${formatAddress(4, lo)}/${p}`;
    return `${formatAddress(4, lo)}-${formatAddress(4, hi)}`;
  }
  const width = 128;
  const size = hi - lo + 1n;
  if ((size & (size - 1n)) === 0n && lo % size === 0n) {
    const p = width - (size.toString(2).length - 1);
    return p === width ? formatAddress(f, lo) : `${formatAddress(f, lo)}/${p}`;
  }
  return `${formatAddress(f, lo)}-${formatAddress(f, hi)}`;
}

/**
 * A large zone map's chunks: consecutive runs of its ranges, each covering the addresses from its first
 * range up to the next chunk's (the first from the lowest address, the last to the highest), so that
 * every address falls in exactly one chunk. A chunk starts at a range whose start address hashes to 0
 * modulo the average size: the boundaries depend only on the ranges around them, so adding or removing
 * a network changes the chunk that holds it and no other (content-defined chunking). null: small enough
 * for one map.
 */
export function zoneChunks(
  ranges: readonly LabelledRange[],
  family: Family,
  above: number = DEFAULTS.kernelZoneChunkAbove,
  average: number = DEFAULTS.kernelZoneChunkAverage,
): { lo: bigint; hi: bigint; ranges: LabelledRange[] }[] | null {
  if (ranges.length <= above) return null;
  const max = family === 4 ? 0xffffffffn : (1n << 128n) - 1n;
  const out: { lo: bigint; hi: bigint; ranges: LabelledRange[] }[] = [];
  let cur: LabelledRange[] = [];
  for (const r of ranges) {
    if (cur.length > 0 && boundaryHash(r.lo) % average === 0) {
      out.push({ lo: out.length === 0 ? 0n : cur[0]!.lo, hi: r.lo - 1n, ranges: cur });
      cur = [];
    }
    cur.push(r);
  }
  out.push({ lo: out.length === 0 ? 0n : cur[0]!.lo, hi: max, ranges: cur });
  return out;
}

/** FNV-1a over an address's decimal digits (the low bits of network addresses are mostly zeros). */
function boundaryHash(a: bigint): number {
  const s = a.toString();
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

function numRange([lo, hi]: Interval): string {
  return lo === hi ? String(lo) : `${lo}-${hi}`;
}

const quote = (s: string): string => `"${s.replace(/["\\]/g, '')}"`;

function keyExpr(field: Field, f: Family): string {
  const ip = f === 4 ? 'ip' : 'ip6';
  const icmp = f === 4 ? 'icmp' : 'icmpv6';
  switch (field) {
    case 'iifname':
      return 'iifname';
    case 'iifgroup':
      return 'meta iifgroup';
    case 'reqid':
      return 'ipsec in reqid';
    case 'l4proto':
      return 'meta l4proto';
    case 'icmptype':
      return `${icmp} type`;
    case 'icmpcode':
      return `${icmp} code`;
    case 'sport':
      return 'th sport';
    case 'dport':
      return 'th dport';
    case 'saddr':
      return `${ip} saddr`;
    case 'szone':
      return 'meta mark';
    case 'daddr':
      return `${ip} daddr`;
    case 'dzone':
      return 'meta priority';
  }
}

function keyValue(field: Field, f: Family, iv: Interval, ifnames: string[]): string {
  if (field === 'iifname') return quote(ifnames[Number(iv[0])]!);
  if (field === 'saddr' || field === 'daddr') return addrRange(f, iv);
  return numRange(iv);
}

/** Elements per `add element` command. nft 1.0.6 fails (EINVAL) on a concatenated interval map whose
 * inline element list spans several netlink messages, and the kernel inserts large inline lists far
 * more slowly; separate commands of this size stay in one message each, in the same transaction. */
export const ELEMENTS_PER_COMMAND = 256;

function l4Prefix(l: LookupIR, f: Family): string {
  const parts: string[] = [];
  if (l.l4 === 'ported') parts.push('meta l4proto { tcp, udp }');
  if (l.l4 === 'portless') parts.push('meta l4proto != { tcp, udp }');
  if (l.icmp) parts.push(f === 4 ? 'meta l4proto icmp' : 'meta l4proto ipv6-icmp');
  if (l.fibLocal) parts.push('fib daddr . iif type local');
  return parts.join(' ');
}

function scoreText(s: Record<string, number>): string {
  const parts = Object.entries(s)
    .filter(([, v]) => v > 0)
    .map(([k, v]) => `${k}=${v}`);
  return parts.length ? parts.join(' ') : 'wildcard';
}

function setOf(values: string[]): string {
  return values.length === 1 ? values[0]! : `{ ${values.join(', ')} }`;
}

const REJECT_V4: Record<Exclude<DenyV4, 'drop' | 'tcp-reset'>, string> = {
  'icmp-net-unreachable': 'net-unreachable',
  'icmp-host-unreachable': 'host-unreachable',
  'icmp-proto-unreachable': 'prot-unreachable',
  'icmp-port-unreachable': 'port-unreachable',
  'icmp-net-prohibited': 'net-prohibited',
  'icmp-host-prohibited': 'host-prohibited',
  'icmp-admin-prohibited': 'admin-prohibited',
};
const REJECT_V6: Record<Exclude<DenyV6, 'drop' | 'tcp-reset'>, string> = {
  'icmp-no-route': 'no-route',
  'icmp-admin-prohibited': 'admin-prohibited',
  'icmp-addr-unreachable': 'addr-unreachable',
  'icmp-port-unreachable': 'port-unreachable',
};

/** A management/bypass conjunction as nft matches. */
function matchText(m: MatchIR): string {
  const f = m.family;
  const ip = f === 4 ? 'ip' : 'ip6';
  const parts: string[] = [`meta nfproto ipv${f}`];
  if (m.reqid) parts.push(`ipsec in reqid ${setOf(m.reqid.map(String))}`);
  if (m.fibLocal) parts.push('fib daddr . iif type local');
  if (m.iifname) parts.push(`iifname ${setOf(m.iifname.map(quote))}`);
  if (m.iifgroup) parts.push(`meta iifgroup ${setOf(m.iifgroup.map(String))}`);
  if (m.l4proto) parts.push(`meta l4proto ${setOf(m.l4proto.map(String))}`);
  if (m.icmpType || m.icmpCode) parts.push(f === 4 ? 'meta l4proto icmp' : 'meta l4proto ipv6-icmp');
  if (m.icmpType) parts.push(`${f === 4 ? 'icmp' : 'icmpv6'} type ${setOf(m.icmpType.map(String))}`);
  if (m.icmpCode) parts.push(`${f === 4 ? 'icmp' : 'icmpv6'} code ${setOf(m.icmpCode.map(String))}`);
  // ports imply TCP/UDP; when the entry's own protocols are already TCP/UDP only, saying it twice
  // makes `nft list` print `meta l4proto { tcp, udp } tcp dport`, which nft cannot load back (the
  // snapshot of apply --confirm must load)
  if ((m.sport || m.dport) && !m.l4proto?.every((p) => p === 6 || p === 17))
    parts.push('meta l4proto { tcp, udp }');
  if (m.sport) parts.push(`th sport ${setOf(m.sport.map(numRange))}`);
  if (m.dport) parts.push(`th dport ${setOf(m.dport.map(numRange))}`);
  if (m.saddr) parts.push(`${ip} saddr ${setOf(m.saddr.map((iv) => addrRange(f, iv)))}`);
  if (m.srcZoneSet) parts.push(`${ip} saddr @${m.srcZoneSet}`);
  if (m.daddr) parts.push(`${ip} daddr ${setOf(m.daddr.map((iv) => addrRange(f, iv)))}`);
  if (m.dstZoneSet) parts.push(`${ip} daddr @${m.dstZoneSet}`);
  return parts.join(' ');
}

const commentText = (s: string): string => `comment ${quote(s.slice(0, 120))}`;

/** ICMP and ICMPv6 the firewall itself needs (errors, path MTU, neighbour and router discovery). */
const ESSENTIAL_ICMP = [
  'meta l4proto icmp icmp type { destination-unreachable, time-exceeded, parameter-problem } accept',
  'meta l4proto ipv6-icmp icmpv6 type { destination-unreachable, packet-too-big, time-exceeded, parameter-problem, nd-router-solicit, nd-router-advert, nd-neighbor-solicit, nd-neighbor-advert, nd-redirect } accept',
];

/** One transaction that turns a live tzorp table into the closed one `tzorp flush` leaves (docs/
 * operations.md, "Stop, and what happens when the daemon dies"): no decision, no diversion, no NAT,
 * nothing forwarded; the firewall itself keeps loopback, its established connections, essential ICMP
 * and the management chain (with the zone sets it uses), which stay in the table. nft checks it
 * whole: if the live table lacks a piece (a table from another version), nothing changes and the
 * caller falls back to closedTable. */
export function closedText(): string {
  const t = `inet ${TABLE}`;
  return `${[
    `delete chain ${t} prerouting`,
    `delete chain ${t} nat_prerouting`,
    `delete chain ${t} nat_postrouting`,
    `flush chain ${t} input`,
    `add rule ${t} input iif lo accept`,
    `add rule ${t} input ct state established,related accept`,
    `add rule ${t} input ct state invalid drop`,
    ...ESSENTIAL_ICMP.map((r) => `add rule ${t} input ${r}`),
    `add rule ${t} input jump management`,
    `add rule ${t} input counter comment "tzorp is stopped: closed (tzorp flush --open opens it)"`,
    `flush chain ${t} forward`,
    `add rule ${t} forward counter comment "tzorp is stopped: nothing is forwarded"`,
  ].join('\n')}\n`;
}

/** The closed table without management (nothing to keep it from): the last resort of `tzorp flush`. */
export function closedTable(): string {
  return `${[
    `table inet ${TABLE} {}`,
    `delete table inet ${TABLE}`,
    `table inet ${TABLE} {`,
    '\tchain input {',
    '\t\ttype filter hook input priority filter; policy drop;',
    '\t\tiif lo accept',
    '\t\tct state established,related accept',
    ...ESSENTIAL_ICMP.map((r) => `\t\t${r}`),
    '\t\tcounter comment "tzorp is stopped: closed, no management entries were known"',
    '\t}',
    '\tchain forward {',
    '\t\ttype filter hook forward priority filter; policy drop;',
    '\t\tcounter comment "tzorp is stopped: nothing is forwarded"',
    '\t}',
    '}',
  ].join('\n')}\n`;
}

/** One named object of the table, as nft text pieces. The model is what the renderer writes and what
 * an incremental apply compares (diff.ts): a whole-table file and a transaction of differences are two
 * ways of writing the same model. */
export interface TableObject {
  kind: 'chain' | 'set' | 'map';
  name: string;
  /** Lines of the declaration block other than rules and elements: type/hook/policy, typeof, flags,
   * comment. A changed declaration means a new object. */
  decl: string[];
  /** A chain's rules, in order. */
  rules: string[];
  /** A set's or map's elements (`key` or `key : data`), each once, in a deterministic order. */
  elements: string[];
  /** Small sets write their elements on the declaration's one line; large ones one per line. */
  inline: boolean;
  /** Per element, a `# comment` for the file only (the dispatch map names each rule). */
  notes?: string[];
  /** 1: written first, while the transaction is short (objects whose elements name chains). */
  part: 1 | 2;
}

export interface TableModel {
  header: string[];
  objects: TableObject[];
  /** The user's declarations, verbatim, at the end of the table. */
  userRules: string | null;
  /** With user rules: `define tzorp_service_<name> = <mark>` (and the mask), before the table, so
   * that user rules name services instead of numbers that change when services are added. */
  defines?: string[];
  /** A digest of everything above but the header, kept in the table as the name of an empty set
   * (`generation_<digest>`, generationSet), so an incremental apply can prove the kernel holds the
   * table it was computed against. */
  generation: string;
}

/** The table's digest is the name of an empty set: an incremental apply proves its precondition by
 * deleting that set, which (unlike an element of a set) nft 1.0.6 does without first reading every
 * interval set's elements from the kernel (docs/kernel.md, "Incremental apply"). */
export const GENERATION_PREFIX = 'generation_';

export function generationSet(generation: string): string {
  return `${GENERATION_PREFIX}${generation.replace(/^0x/, '')}`;
}

export function isGenerationSet(o: { name: string }): boolean {
  return o.name.startsWith(GENERATION_PREFIX);
}

export const GENERATION_DECL = [
  'typeof meta mark',
  'comment "its name is the digest of this table: an incremental apply checks it first"',
];

const svcChain = (name: string): string => `svc_${zoneIdent(name)}`;

/** The zone maps and chains made for a family's ranges, per chunking: objects are never changed once
 * in a model, so the next model of the same zones takes the same ones. */
const zoneSectionCache = new WeakMap<
  readonly LabelledRange[],
  Map<string, { objects: TableObject[]; lookups: string[] }>
>();

/** The chunks of the last model's zone maps, per family and chunking, by map name: their ranges and
 * their object (never changed once made). */
const lastChunks: Record<
  4 | 6,
  Map<string, Map<string, { ranges: readonly LabelledRange[]; object: TableObject }>>
> = { 4: new Map(), 6: new Map() };

/** The map made for each tier lookup (the build hands out the same LookupIR objects when it reuses a
 * tier), with the tproxy mark it was made with. */
let tierMaps = new WeakMap<LookupIR, { key: string; object: TableObject }>();

/** Forgets the last model's zone map chunks and tier maps (compile/index.ts forgetLastCompile). */
export function forgetLastRender(): void {
  lastChunks[4].clear();
  lastChunks[6].clear();
  tierMaps = new WeakMap();
}

function sameRanges(a: readonly LabelledRange[], b: readonly LabelledRange[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) {
    const x = a[i]!;
    const y = b[i]!;
    if (x.lo !== y.lo || x.hi !== y.hi || x.zone !== y.zone) return false;
  }
  return true;
}

/** The zone section of one family: the longest-match zone map (or its chunks, with the chains and
 * the map of jumps that pick a chunk), and the lookups decide_v4/_v6 run on it. It depends on the
 * ranges and the chunking alone, so it can be made (and loaded) before the rest of the model:
 * stagedApply (apply/staged.ts) does. The same ranges (a reload that kept the zones: zones.ts hands out
 * the same arrays) give the same objects: made once, and the same objects go into the next model. */
export function zoneSection(
  f: Family,
  ranges: LabelledRange[],
  zoneChunk?: { above: number; average: number },
): { objects: TableObject[]; lookups: string[] } {
  const ip = f === 4 ? 'ip' : 'ip6';
  const cacheKey = `${zoneChunk?.above ?? DEFAULTS.kernelZoneChunkAbove}/${zoneChunk?.average ?? DEFAULTS.kernelZoneChunkAverage}`;
  const cached = zoneSectionCache.get(ranges)?.get(cacheKey);
  if (cached) return cached;
  const objects: TableObject[] = [];
  const lookups: string[] = [];
  const remember = (): { objects: TableObject[]; lookups: string[] } => {
    const m = zoneSectionCache.get(ranges) ?? new Map();
    zoneSectionCache.set(ranges, m);
    const made = { objects, lookups };
    m.set(cacheKey, made);
    return made;
  };
  const chunks = zoneChunks(ranges, f, zoneChunk?.above, zoneChunk?.average);
  const name = `zones_v${f}`;
  const zoneMap = (mapName: string, part: readonly LabelledRange[]): void => {
    objects.push({
      kind: 'map',
      name: mapName,
      decl: [
        `typeof ${ip} saddr : meta length`,
        'flags interval',
        commentText('longest-match zone id of an address (pre-order ids)'),
      ],
      rules: [],
      elements: part.map((r) => `${addrRange(f, [r.lo, r.hi])} : ${r.zone}`),
      inline: false,
      part: 2,
    });
  };
  const lookupsOf = [
    [`zones_src_v${f}`, `${ip} saddr`, 'meta mark'],
    [`zones_dst_v${f}`, `${ip} daddr`, 'meta priority'],
  ] as const;
  if (chunks === null) {
    zoneMap(name, ranges);
    for (const [, expr, data] of lookupsOf) lookups.push(`${data} set ${expr} map @${name}`);
    return remember();
  }
  // a chunk whose ranges are those of the last model's chunk of the same name is that chunk's map
  // again: a moved network re-renders the chunk that holds it, not the other hundred
  const lastOf = lastChunks[f].get(cacheKey);
  const made = new Map<string, { ranges: readonly LabelledRange[]; object: TableObject }>();
  for (const c of chunks) {
    const chunkName = `${name}_c${c.ranges[0]!.lo.toString(16)}`;
    const before = lastOf?.get(chunkName);
    if (before && sameRanges(before.ranges, c.ranges)) objects.push(before.object);
    else zoneMap(chunkName, c.ranges);
    made.set(chunkName, { ranges: c.ranges, object: objects[objects.length - 1]! });
  }
  lastChunks[f].set(cacheKey, made);
  for (const [jumpMap, expr, data] of lookupsOf) {
    const jumps: string[] = [];
    for (const c of chunks) {
      const id = c.ranges[0]!.lo.toString(16);
      objects.push({
        kind: 'chain',
        name: `${jumpMap}_j${id}`,
        decl: [],
        rules: [`${data} set ${expr} map @${name}_c${id}`],
        elements: [],
        inline: false,
        part: 2,
      });
      jumps.push(`${addrRange(f, [c.lo, c.hi])} : jump ${jumpMap}_j${id}`);
    }
    objects.push({
      kind: 'map',
      name: jumpMap,
      decl: [
        `type ${f === 4 ? 'ipv4_addr' : 'ipv6_addr'} : verdict`,
        'flags interval',
        commentText(`the chunk of ${name} that holds the ${expr.split(' ')[1]}`),
      ],
      rules: [],
      elements: jumps,
      inline: false,
      part: 2,
    });
    lookups.push(`${expr} vmap @${jumpMap}`);
  }
  return remember();
}

export function renderModel(ir: RulesetIR, zoneChunk?: { above: number; average: number }): TableModel {
  const st = ir.settings;
  const mask = hex(st.serviceMarkMask);
  const keep = hex(~st.serviceMarkMask);
  const tmark = hex(st.tproxyMark);
  const objects: TableObject[] = [];
  const chain = (name: string, decl: string[], rules: string[], part: 1 | 2 = 2): void => {
    objects.push({ kind: 'chain', name, decl, rules, elements: [], inline: false, part });
  };
  const collection = (
    kind: 'set' | 'map',
    name: string,
    decl: string[],
    elements: string[],
    opts: { inline?: boolean; notes?: string[]; part?: 1 | 2 } = {},
  ): void => {
    objects.push({
      kind,
      name,
      decl,
      rules: [],
      elements,
      inline: opts.inline ?? false,
      ...(opts.notes ? { notes: opts.notes } : {}),
      part: opts.part ?? 2,
    });
  };

  // ---- part 1: the service chains and the rule → service dispatch map. Its elements are verdicts that
  // name chains, which the kernel resolves by walking the transaction so far: they go first, while
  // the transaction is short (docs/kernel.md, "Size").
  for (const c of ir.serviceChains) {
    const rules: string[] = [];
    // what can change about a service is said in its rules, never in the chain's comment: the kernel
    // keeps a chain's comment when an incremental apply rewrites its rules
    const ct = `ct mark set ct mark & ${keep} | ${hex(c.sid)} ${commentText(`${c.kind} service, service id ${hex(c.sid)}`)}`;
    if (c.kind === 'proxy') {
      // per-source backstop of the per-client limits: its sets first (the chain's rules name them)
      if (c.clientLimits) {
        for (const set of clientLimitSets(c.name, c.clientLimits))
          collection('set', set.name, set.decl, [], { inline: true, part: 1 });
        rules.push(...clientLimitRules(c.name, c.clientLimits));
      }
      // the packet mark is tproxyMark | rule id already (set by the tier lookup)
      rules.push(`counter meta priority set 0 ${ct}`);
      rules.push(
        `meta nfproto ipv4 meta l4proto { tcp, udp } tproxy ip to ${c.v4!.host}:${c.v4!.port} accept`,
      );
      rules.push(
        `meta nfproto ipv6 meta l4proto { tcp, udp } tproxy ip6 to [${c.v6!.host}]:${c.v6!.port} accept`,
      );
      rules.push('meta mark set 0x00000000 counter drop comment "no listener: fail closed"');
    } else {
      // before the mark is cleared: it still holds tproxy mark | rule id, which the log carries
      if (c.logging) {
        rules.push(
          `limit rate ${DEFAULTS.kernelLogRate}/second burst ${DEFAULTS.kernelLogBurst} packets log prefix "${nflogPrefix(c.kind as 'forward' | 'deny', c.sid)}" group ${DEFAULTS.kernelLogGroup}`,
        );
      }
      rules.push(`counter meta mark set 0x00000000 meta priority set 0 ${ct}`);
      for (const f of [4, 6] as const) {
        if (!c.families.includes(f)) rules.push(`meta nfproto ipv${f} drop comment "no IPv${f} target"`);
      }
      rules.push(c.kind === 'deny' ? 'accept comment "rejected in input/forward"' : 'accept');
    }
    chain(svcChain(c.name), [commentText(`service ${c.name}`)], rules, 1);
  }
  // nft 1.0.6 cannot parse `ipsec in reqid` as a map key in a `meta mark set ... map` statement, so
  // tiers that look at the reqid are verdict maps whose elements jump to a one-line chain per rule
  const reqidRules = new Set<number>();
  for (const f of [4, 6] as const) {
    for (const t of ir.families[f].tiers) {
      for (const l of t.lookups)
        if (l.fields.includes('reqid')) for (const e of l.elements) reqidRules.add(e.ruleId);
    }
  }
  for (const a of ir.actions) {
    if (!reqidRules.has(a.ruleId)) continue;
    chain(
      `rule_${a.ruleId}`,
      [],
      [`meta mark set ${hex(a.mark)} goto dispatch ${commentText(a.comment)}`],
      1,
    );
  }
  chain('dispatch', [], ['meta mark vmap @rule_dispatch', 'meta mark set 0x00000000 meta priority set 0'], 1);
  // rule comments go into the file only
  collection(
    'map',
    'rule_dispatch',
    ['typeof meta mark : verdict', commentText("tproxy mark | rule id -> the rule's service chain")],
    ir.actions.map((a) => `${hex(a.mark)} : goto ${svcChain(a.service)}`),
    { notes: ir.actions.map((a) => a.comment), part: 1 },
  );

  // ---- part 2: zones, tiers, service sets, base chains ----
  for (const z of ir.zones) {
    for (const f of [4, 6] as const) {
      for (const tree of [false, true]) {
        const set: IntervalSet = tree ? z.tree[f] : z.exact[f];
        // no zone id in the comment: ids move when zones are added, the set's content does not
        collection(
          'set',
          `zone_${z.ident}${tree ? '_tree' : ''}_v${f}`,
          [
            `typeof ${f === 4 ? 'ip' : 'ip6'} saddr`,
            'flags interval',
            commentText(`zone ${z.name}${tree ? ' and its descendants' : ''}`),
          ],
          set.map((iv) => addrRange(f, iv)),
        );
      }
    }
  }
  // the longest-match zone map, one per family for both lookups: its data is typed `meta length` (a
  // plain 32-bit integer), which nft 1.0.6 lets either register take, the packet mark (source zone) and
  // the priority (destination zone); a map typed as one of them would be refused for the other. The
  // names start with `zones_`, which no published zone set (`zone_<ident>_v4`) can take. A large map is
  // split into chunks (zoneChunks) behind a small map of jumps per lookup, so that a changed network
  // re-creates one chunk of about a thousand ranges, not the map.
  const zoneLookups: Record<4 | 6, string[]> = { 4: [], 6: [] };
  for (const f of [4, 6] as const) {
    const section = zoneSection(f, ir.families[f].zoneRanges, zoneChunk);
    objects.push(...section.objects);
    zoneLookups[f] = section.lookups;
  }
  const markOf = new Map(ir.actions.map((a) => [a.ruleId, a.mark]));
  // a tier the build reused (the same lookup objects: same rules, zone numbering and interface names)
  // gives the same map as long as the marks are made the same way
  const tierKey = `${st.tproxyMark}`;
  for (const f of [4, 6] as const) {
    for (const t of ir.families[f].tiers) {
      for (const l of t.lookups) {
        if (l.fields.length === 0) continue;
        const known = tierMaps.get(l);
        if (known?.key === tierKey) {
          objects.push(known.object);
          continue;
        }
        const verdict = l.fields.includes('reqid');
        collection(
          'map',
          l.map,
          [
            `typeof ${l.fields.map((x) => keyExpr(x, f)).join(' . ')} : ${verdict ? 'verdict' : 'meta mark'}`,
            ...(l.interval ? ['flags interval'] : []),
            commentText(`score ${scoreText(t.score)}`),
          ],
          l.elements.map(
            (e) =>
              `${e.key.map((iv, i) => keyValue(l.fields[i]!, f, iv, ir.ifnames)).join(' . ')} : ${verdict ? `goto rule_${e.ruleId}` : hex(markOf.get(e.ruleId)!)}`,
          ),
        );
        tierMaps.set(l, { key: tierKey, object: objects[objects.length - 1]! });
      }
    }
  }

  const sidSet = (name: string, sids: number[], comment: string): void => {
    collection('set', name, ['typeof ct mark', commentText(comment)], sids.map(hex), { inline: true });
  };
  sidSet(
    'forward_services',
    ir.forwards.map((s) => s.sid),
    'service ids (ct mark & mask) of forward services',
  );
  sidSet(
    'masquerade_services',
    ir.forwards.filter((s) => s.masquerade).map((s) => s.sid),
    'forward services without forge_addr: SNAT to the outgoing interface',
  );
  for (const d of ir.denies) {
    const rules = [`counter ${commentText(`IPv4 ${d.v4}, IPv6 ${d.v6}`)}`];
    for (const [f, how] of [
      [4, d.v4],
      [6, d.v6],
    ] as const) {
      if (how === 'drop') continue;
      if (how === 'tcp-reset') rules.push(`meta nfproto ipv${f} meta l4proto tcp reject with tcp reset`);
      else if (f === 4)
        rules.push(`meta nfproto ipv4 reject with icmp type ${REJECT_V4[how as keyof typeof REJECT_V4]}`);
      else
        rules.push(`meta nfproto ipv6 reject with icmpv6 type ${REJECT_V6[how as keyof typeof REJECT_V6]}`);
    }
    rules.push('drop');
    chain(`deny_${zoneIdent(d.name)}`, [commentText(`deny service ${d.name}`)], rules);
  }
  const directed = ir.forwards.filter((s) => s.dnat[4] || s.dnat[6]);
  for (const d of directed) {
    // the target port applies to TCP/UDP; other protocols are sent to the target address only
    const rules: string[] = [];
    if (d.dnat[4]) {
      rules.push(
        `meta nfproto ipv4 meta l4proto { tcp, udp } dnat ip to ${d.dnat[4].host}:${d.dnat[4].port}`,
      );
      rules.push(`meta nfproto ipv4 dnat ip to ${d.dnat[4].host}`);
    }
    if (d.dnat[6]) {
      rules.push(
        `meta nfproto ipv6 meta l4proto { tcp, udp } dnat ip6 to [${d.dnat[6].host}]:${d.dnat[6].port}`,
      );
      rules.push(`meta nfproto ipv6 dnat ip6 to ${d.dnat[6].host}`);
    }
    chain(`dnat_${zoneIdent(d.name)}`, [commentText(`directed forward service ${d.name}`)], rules);
  }
  const vmap = (name: string, entries: [number, string][], comment: string): void => {
    collection(
      'map',
      name,
      ['typeof ct mark : verdict', commentText(comment)],
      entries.map(([k, v]) => `${hex(k)} : goto ${v}`),
      { inline: true },
    );
  };
  vmap(
    'deny_services',
    ir.denies.map((d) => [d.sid, `deny_${zoneIdent(d.name)}`]),
    'deny services by service id',
  );
  vmap(
    'dnat_services',
    directed.map((d) => [d.sid, `dnat_${zoneIdent(d.name)}`]),
    'directed forward services',
  );

  chain(
    'prerouting',
    ['type filter hook prerouting priority mangle; policy accept;'],
    [
      'iif lo accept comment "the firewall talking to itself is not decided"',
      // The seed's `-m socket --transparent` first: a packet for one of tzorp's own transparent
      // sockets (a forged FTP data listener, a proxied connection) is never decided by the policy, so
      // a catch-all deny cannot refuse a data connection and a catch-all forward cannot route it
      // around the proxy. `socket wildcard 0` skips TIME_WAIT and request sockets (not full sockets:
      // the expression breaks) and listeners bound to a wildcard address (as xt_socket does): a SYN
      // that reuses the 4-tuple of a finished proxied connection is decided below, where tproxy
      // retires the TIME_WAIT (linux-tproxy pitfall 2), and the main listeners never catch traffic
      // for their own port numbers.
      `socket transparent 1 socket wildcard 0 meta mark set meta mark | ${tmark} counter accept comment "tzorp's own transparent sockets, before any decision"`,
      'ct state new jump decide comment "first packets, pure SYNs included, are decided before the TIME_WAIT socket match"',
      `socket transparent 1 meta mark set meta mark | ${tmark} counter accept comment "the rest: handshakes completing, TIME_WAIT after the decision"`,
    ],
  );

  chain(
    'decide',
    [],
    [
      ...ir.bypass.map(
        (b) =>
          `${matchText(b)} counter ct mark set ct mark & ${keep} | ${hex(ir.bypassValue)} accept ${commentText(b.comment)}`,
      ),
      // Management wins for traffic to the firewall itself: no rule (a catch-all deny, a proxy rule on
      // the same port) is consulted for it; input accepts it by the same match (docs/kernel.md).
      ...ir.management.map(
        (m) =>
          `${matchText(m)} fib daddr type local meta mark set 0x00000000 meta priority set 0 accept ${commentText(`${m.comment} (not decided)`)}`,
      ),
      // the blocklist wins over every rule (it is not a rule: no score can beat it)
      ...ir.block.map((b) => `${matchText(b)} counter drop ${commentText(b.comment)}`),
      'meta nfproto ipv4 goto decide_v4',
      'meta nfproto ipv6 goto decide_v6',
    ],
  );

  for (const f of [4, 6] as const) {
    // scratch registers: the source zone id in the packet mark, the destination zone id in the priority
    const rules = ['meta mark set 0x00000000 meta priority set 0', ...zoneLookups[f]];
    for (const t of ir.families[f].tiers) {
      for (const l of t.lookups) {
        const prefix = l4Prefix(l, f);
        const pre = prefix ? `${prefix} ` : '';
        if (l.fields.length === 0) {
          // a tier that constrains no key field (a wildcard rule, or ports only for portless traffic)
          const m = hex(markOf.get(l.elements[0]!.ruleId)!);
          rules.push(
            `${pre}meta mark set ${m} goto dispatch ${commentText(`tier ${t.index}: ${scoreText(t.score)}`)}`,
          );
        } else {
          const key = l.fields.map((x) => keyExpr(x, f)).join(' . ');
          if (l.fields.includes('reqid')) {
            rules.push(`${pre}${key} vmap @${l.map}`);
          } else {
            rules.push(`${pre}meta mark set ${key} map @${l.map}`);
            rules.push(`meta mark & ${tmark} == ${tmark} goto dispatch`);
          }
        }
      }
    }
    rules.push('meta mark set 0x00000000 meta priority set 0 counter comment "no rule: undecided"');
    chain(
      `decide_v${f}`,
      [commentText('best match: tiers strongest score first, the first hit decides')],
      rules,
    );
  }

  // its own chain: `tzorp flush` (closed) keeps it when it empties the base chains (closedText)
  chain(
    'management',
    [commentText("the policy's management entries: traffic to the firewall itself")],
    ir.management.map((m) => `${matchText(m)} counter accept ${commentText(m.comment)}`),
  );
  chain(
    'input',
    ['type filter hook input priority filter; policy drop;'],
    [
      'iif lo accept',
      `meta mark & ${tmark} == ${tmark} accept comment "diverted to a tzorp listener"`,
      // before the deny services: a rule cannot lock the administrator out
      'jump management',
      `ct state new ct mark & ${mask} vmap @deny_services`,
      'ct state established,related accept',
      'ct state invalid drop',
      `ct mark & ${mask} == ${hex(ir.bypassValue)} accept comment "bypass"`,
      ...ESSENTIAL_ICMP,
      'counter comment "dropped by policy"',
    ],
  );

  chain(
    'forward',
    ['type filter hook forward priority filter; policy drop;'],
    [
      'ct state invalid counter drop',
      `ct mark & ${mask} == ${hex(ir.bypassValue)} accept comment "bypass"`,
      `ct state new ct mark & ${mask} vmap @deny_services`,
      `ct mark & ${mask} @forward_services counter accept`,
      `ct state established,related ct mark & ${mask} != 0x00000000 accept comment "connections a decision let through, also across reloads"`,
      'counter comment "dropped by policy"',
    ],
  );

  chain(
    'nat_prerouting',
    ['type nat hook prerouting priority dstnat; policy accept;'],
    [`ct mark & ${mask} vmap @dnat_services`],
  );
  chain(
    'nat_postrouting',
    ['type nat hook postrouting priority srcnat; policy accept;'],
    [`ct mark & ${mask} @masquerade_services masquerade`],
  );

  const userRules = ir.userRules === null ? null : ir.userRules.replace(/\s+$/, '');
  const generation = digest(objects, userRules);
  collection('set', generationSet(generation), GENERATION_DECL, [], { inline: true });
  const defines =
    userRules === null
      ? undefined
      : [
          `define tzorp_service_mask = ${mask}`,
          ...ir.serviceChains.map((s) => `define tzorp_service_${zoneIdent(s.name)} = ${hex(s.sid)}`),
        ];
  return { header: ir.header, objects, userRules, generation, ...(defines ? { defines } : {}) };
}

/** 32 bits of a content digest (FNV-1a over each object's digest, in order, and the user rules), as a
 * mark value. Not a security measure: it tells "the table we computed the differences against" from
 * another one. An object's own digest is kept with it (objects never change once made, and a reload
 * hands most of them on). */
function digest(objects: TableObject[], userRules: string | null): string {
  let h = FNV_BASIS;
  for (const o of objects) {
    let d = objectDigests.get(o);
    if (d === undefined) {
      d = fnv(FNV_BASIS, `${o.kind} ${o.name}`);
      for (const l of o.decl) d = fnv(d, l);
      for (const l of o.rules) d = fnv(d, l);
      for (const l of o.elements) d = fnv(d, l);
      objectDigests.set(o, d);
    }
    h = Math.imul(h ^ d, 0x01000193);
  }
  return hex(fnv(h, userRules ?? ''));
}
const FNV_BASIS = 0x811c9dc5;
const objectDigests = new WeakMap<TableObject, number>();

/** FNV-1a of a line (and its end) continuing from `h`. */
function fnv(h: number, s: string): number {
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  h ^= 10;
  return Math.imul(h, 0x01000193);
}

export function declBlock(o: TableObject, line: (s: string) => void): void {
  line(`\t${o.kind} ${o.name} {`);
  for (const d of o.decl) line(`\t\t${d}`);
  for (const r of o.rules) line(`\t\t${r}`);
  if (o.elements.length > 0 && o.inline) line(`\t\telements = { ${o.elements.join(', ')} }`);
  else if (o.elements.length > 0) {
    line('\t\telements = {');
    line(elementLines('\t\t\t', o.elements, 0, o.elements.length, o.notes));
    line('\t\t}');
  }
  line('\t}');
}

/** Elements `from` to `to` (exclusive), one per line after `indent`, comma-separated, each with its
 * file-only note. */
function elementLines(indent: string, els: string[], from: number, to: number, notes?: string[]): string {
  // without notes (every map but the dispatch map): one native join, no string per element
  if (!notes)
    return indent + (from === 0 && to === els.length ? els : els.slice(from, to)).join(`,\n${indent}`);
  const body: string[] = [];
  for (let k = from; k < to; k++) {
    const note = notes?.[k];
    body.push(`${indent}${els[k]}${k < to - 1 ? ',' : ''}${note ? ` # ${note}` : ''}`);
  }
  return body.join('\n');
}

/** `add element` commands of at most ELEMENTS_PER_COMMAND elements (what an incremental apply adds
 * element by element, diff.ts). */
export function addElementCommands(name: string, els: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < els.length; i += ELEMENTS_PER_COMMAND) {
    const to = Math.min(i + ELEMENTS_PER_COMMAND, els.length);
    out.push(`add element inet ${TABLE} ${name} {`, elementLines('\t', els, i, to), '}');
  }
  return out;
}

/** The whole-table file: one transaction that deletes and re-creates `table inet tzorp`. Every set's
 * elements are inside its declaration: `add element` commands would make nft 1.0.6 first read every
 * interval set of the table being replaced, and take twice as long (docs/kernel.md, "Size").
 * With `loaded`: the rest of the table, for a table that holds exactly those objects already (a
 * staged first apply, apply/staged.ts): nothing is deleted and those objects are not written. */
export function renderTable(m: TableModel, loaded?: ReadonlySet<TableObject>): string {
  const o: string[] = [];
  const line = (s: string): void => {
    o.push(s);
  };
  for (const h of m.header) line(`# ${h}`);
  line('# Generated by `tzorp compile`: do not edit, re-apply the policy instead (docs/kernel.md).');
  // the service marks by name, for the user rules (nft resolves them when it reads this file)
  for (const d of m.defines ?? []) line(d);
  if (!loaded) {
    // one file = one transaction: the empty declaration makes the delete valid when the table is absent
    line(`table inet ${TABLE} {}`);
    line(`delete table inet ${TABLE}`);
  }
  // part 1 first: its elements name chains, resolved by walking the transaction so far
  for (const part of [1, 2] as const) {
    const objs = m.objects.filter((x) => x.part === part && !loaded?.has(x));
    line(`table inet ${TABLE} {`);
    for (const x of objs) declBlock(x, line);
    if (part === 2 && m.userRules !== null) {
      line('\t# ---- user rules (--user-rules), verbatim ----');
      line(m.userRules);
    }
    line('}');
  }
  return `${o.join('\n')}\n`;
}

/** `objects` as one transaction that adds them to `table inet tzorp` (made when absent), in order: a
 * staged first apply loads the zone section this way while the rest compiles. */
export function renderObjects(objects: readonly TableObject[]): string {
  const o: string[] = [`table inet ${TABLE} {`];
  for (const x of objects) declBlock(x, (s) => o.push(s));
  o.push('}');
  return `${o.join('\n')}\n`;
}

/** The declarations of the table without the large sets' elements: what `nft -c` needs to check the
 * user rules against (they can name every set and chain, but the elements are ours). */
export function renderSkeleton(m: TableModel): string {
  return renderTable({
    ...m,
    objects: m.objects.map((x) => (x.inline ? x : { ...x, elements: [], notes: [] })),
  });
}

export function renderRuleset(ir: RulesetIR): string {
  return renderTable(renderModel(ir));
}

/** Per-source sets of a proxy service's kernel client limits (dynamic: the kernel adds sources). */
function clientLimitSets(service: string, l: ClientLimitsIR): { name: string; decl: string[] }[] {
  const out: { name: string; decl: string[] }[] = [];
  for (const f of [4, 6] as const) {
    const type = `type ${f === 4 ? 'ipv4_addr' : 'ipv6_addr'}`;
    const size = `size ${DEFAULTS.kernelClientSetEntries}`;
    if (l.maxConnections !== null)
      out.push({ name: clientSetName(service, 'conn', f), decl: [type, size, 'flags dynamic'] });
    if (l.rate !== null)
      out.push({
        name: clientSetName(service, 'rate', f),
        decl: [type, size, 'flags dynamic,timeout', `timeout ${l.rate.timeoutS}s`],
      });
  }
  return out;
}

/** New TCP connections (a SYN without ACK) from a source over the limits are dropped and counted. */
function clientLimitRules(service: string, l: ClientLimitsIR): string[] {
  const out: string[] = [];
  const syn = 'tcp flags & (syn | ack) == syn';
  for (const f of [4, 6] as const) {
    const saddr = f === 4 ? 'ip saddr' : 'ip6 saddr';
    if (l.maxConnections !== null)
      out.push(
        `meta nfproto ipv${f} ${syn} add @${clientSetName(service, 'conn', f)} { ${saddr} ct count over ${l.maxConnections} } counter drop comment "max_sessions_per_client backstop"`,
      );
    if (l.rate !== null)
      out.push(
        `meta nfproto ipv${f} ${syn} update @${clientSetName(service, 'rate', f)} { ${saddr} limit rate over ${l.rate.n}/${l.rate.unit} burst ${l.rate.burst} packets } counter drop comment "new_sessions_per_client backstop"`,
      );
  }
  return out;
}

function clientSetName(service: string, kind: 'conn' | 'rate', f: 4 | 6): string {
  return `client_${kind}_${zoneIdent(service)}_v${f}`;
}
