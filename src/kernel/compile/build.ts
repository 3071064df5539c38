// Policy → Ruleset IR. Pure: no I/O.
import { DEFAULTS } from '../../defaults.ts';
import { TzorpError } from '../../errors.ts';
import {
  type Conditions,
  DIMENSIONS,
  type Family,
  type Policy,
  type Rule,
  type Service,
} from '../../policy/model.ts';
import { big, type Interval, intersect, normalize, points } from './intervals.ts';
import type {
  ClientLimitsIR,
  DenyServiceIR,
  FamilyIR,
  ForwardServiceIR,
  LookupIR,
  MatchIR,
  RuleActionIR,
  RulesetIR,
  ServiceChainIR,
  TierIR,
  ZoneSetIR,
} from './ir.ts';
import { referencedZoneIdents, zoneIdent, zoneSetName } from './names.ts';
import { buildTiers, type Tier, type TierCache } from './tiers.ts';
import { type Field, NameTable, ruleVariants, type Variant } from './variants.ts';
import { flattenZones, forgetFlattening, rangesByZone, zoneAddresses } from './zones.ts';

export interface CompileOptions {
  /** Listener port per proxy service name (what the daemon actually opened). */
  listenPorts?: Map<string, number> | Record<string, number>;
  /** The user's own nft declarations (chains, sets), placed inside `table inet tzorp` so they can use
   * the zone sets and are re-created with the table on every apply (docs/kernel.md). */
  userRules?: string;
  /** Split longest-match zone maps of more than `above` ranges into chunks of about `average` (render.ts
   * zoneChunks; default DEFAULTS.kernelZoneChunkAbove/Average; tests make small policies use chunks). */
  zoneChunk?: { above: number; average: number };
}

export interface Listener {
  v4: { host: string; port: number };
  v6: { host: string; port: number };
}

const PORT_FIELDS: Field[] = ['sport', 'dport'];

/** The listener of every proxy service: option, else the service's listen_port, else the default
 * allocation listenPortBase + service.id - 1. */
export function listenersOf(policy: Policy, opts: CompileOptions = {}): Map<string, Listener> {
  const given =
    opts.listenPorts instanceof Map ? opts.listenPorts : new Map(Object.entries(opts.listenPorts ?? {}));
  for (const name of given.keys()) {
    const s = policy.services.get(name);
    if (s?.type !== 'proxy') {
      throw new TzorpError(
        'KERNEL_BAD_OPTION',
        `--listen-port names ${JSON.stringify(name)}, which is not a proxy service`,
      );
    }
  }
  const out = new Map<string, Listener>();
  for (const s of [...policy.services.values()].sort((a, b) => a.id - b.id)) {
    if (s.type !== 'proxy') continue;
    const port = given.get(s.name) ?? s.listenPort ?? policy.settings.listenPortBase + s.id - 1;
    if (!Number.isInteger(port) || port < 1 || port > 65535) {
      throw new TzorpError(
        'KERNEL_BAD_OPTION',
        `listener port ${port} of service ${s.name} is not in 1..65535`,
      );
    }
    out.set(s.name, {
      v4: { host: policy.settings.listenV4, port },
      v6: { host: policy.settings.listenV6, port },
    });
  }
  return out;
}

function lookupsOf(family: Family, tier: Tier): LookupIR[] {
  // a tier of the last compile (buildTiers' reuse) has its lookups already: one family's tiers only
  const known = lookupsOfTier.get(tier);
  if (known) return known;
  const lookups = lookupsOfRaw(family, tier).map((l) => ({
    ...l,
    interval: l.elements.some((e) => e.key.some((iv) => iv[0] !== iv[1])),
  }));
  lookupsOfTier.set(tier, lookups);
  return lookups;
}
const lookupsOfTier = new WeakMap<Tier, LookupIR[]>();

function lookupsOfRaw(family: Family, tier: Tier): Omit<LookupIR, 'interval'>[] {
  // named by score, not position: a tier keeps its map when others come or go (incremental apply)
  const base = `v${family}_tier_${tier.packed.toString(16)}`;
  const icmp = tier.score.icmpType > 0 || tier.score.icmpCode > 0;
  const fibLocal = tier.score.dstIface > 0;
  const portIdx = tier.fields.map((f, i) => (PORT_FIELDS.includes(f) ? i : -1)).filter((i) => i >= 0);
  const l4Idx = tier.fields.indexOf('l4proto');
  const elements = tier.boxes.map((b) => ({ key: b.iv, ruleId: b.ruleId }));
  if (portIdx.length === 0) return [{ map: base, l4: 'any', icmp, fibLocal, fields: tier.fields, elements }];
  // non-TCP/UDP traffic has port 0 (zorp-semantics §3.1): those connections meet only the boxes that
  // hold port 0, with the port fields left out of their key (nft must not read ports of an ICMP packet)
  const tcpUdp = points([6, 17]);
  const portless = elements
    .filter((e) => portIdx.every((i) => e.key[i]![0] === 0n))
    .filter(
      (e) =>
        l4Idx < 0 || intersect([e.key[l4Idx]!], tcpUdp).length < e.key[l4Idx]![1] - e.key[l4Idx]![0] + 1n,
    )
    .map((e) => ({ key: e.key.filter((_, i) => !portIdx.includes(i)), ruleId: e.ruleId }));
  const portlessFields = tier.fields.filter((f) => !PORT_FIELDS.includes(f));
  const out: Omit<LookupIR, 'interval'>[] = [];
  if (!icmp) {
    const ported = elements.filter((e) => l4Idx < 0 || intersect([e.key[l4Idx]!], tcpUdp).length > 0);
    if (ported.length > 0)
      out.push({ map: base, l4: 'ported', icmp, fibLocal, fields: tier.fields, elements: ported });
  }
  if (portless.length > 0) {
    out.push({
      map: `${base}_portless`,
      l4: icmp ? 'any' : 'portless',
      icmp,
      fibLocal,
      fields: portlessFields,
      elements: portless,
    });
  }
  return out;
}

/**
 * What the last compile made per family, for the next one (a reload mostly changes a rule or two of
 * thousands): each rule's variants by the rule's conditions, and each tier by the variants it was made
 * of. Valid only for the same zone numbering and interface names (`context`). Nothing in it is changed
 * after it is made: tiers, lookups and the renderer only read variants and boxes.
 */
interface FamilyCache {
  context: string;
  variants: Map<string, Variant[]>;
  tiers: TierCache;
}
const lastCompile: Record<Family, FamilyCache | null> = { 4: null, 6: null };

/** Forgets what the last IR build made (its variants, tiers and zone flattening). */
export function forgetLastBuild(): void {
  lastCompile[4] = null;
  lastCompile[6] = null;
  forgetFlattening();
}

/** Everything of a rule that its variants depend on, besides the zones and interface names. */
function ruleKey(r: Rule): string {
  // both families ask for the same rule's key: made once per rule object
  const known = ruleKeys.get(r);
  if (known !== undefined) return known;
  const parts: (string | number)[] = [r.id];
  for (const d of DIMENSIONS) {
    parts.push('\x01');
    const v = r[d];
    if (!v) continue;
    for (const x of v) {
      if (typeof x !== 'object') parts.push(x, '\0');
      else if ('text' in x) parts.push(x.text, '\0');
      else parts.push(x.lo, '-', x.hi, '\0');
    }
  }
  const k = parts.join('');
  ruleKeys.set(r, k);
  return k;
}
const ruleKeys = new WeakMap<Rule, string>();

/** The zone numbering (ids, subtree ends, depths) and interface numbering variants are made with. */
function variantContext(flat: ReturnType<typeof flattenZones>, names: NameTable): string {
  let k = names.names.join('\0');
  for (const z of flat.list) k += `\x01${z.name}\0${z.id}\0${z.last}\0${z.depth}`;
  return k;
}

function familyIR(
  policy: Policy,
  family: Family,
  flat: ReturnType<typeof flattenZones>,
  names: NameTable,
  context: string,
): FamilyIR {
  const last = lastCompile[family]?.context === context ? lastCompile[family] : null;
  const cache: FamilyCache = { context, variants: new Map(), tiers: new Map() };
  const variants: Variant[] = [];
  for (const r of policy.rules) {
    if (!policy.services.has(r.service)) continue;
    const key = ruleKey(r);
    let vs = cache.variants.get(key) ?? last?.variants.get(key);
    if (!vs) vs = ruleVariants(r, family, flat, names);
    cache.variants.set(key, vs);
    for (const v of vs) variants.push(v);
  }
  const tiers: TierIR[] = [];
  buildTiers(variants, last?.tiers ?? null, cache.tiers).forEach((t, i) => {
    const lookups = lookupsOf(family, t);
    if (lookups.length > 0) tiers.push({ index: i, score: t.score, lookups });
  });
  lastCompile[family] = cache;
  return { family, tiers, zoneRanges: flat.ranges[family] };
}

function ifnamesOf(policy: Policy): string[] {
  const all: string[] = [];
  const add = (c: Conditions): void => {
    all.push(...(c.iface ?? []), ...(c.dstIface ?? []));
  };
  policy.rules.forEach(add);
  policy.management.forEach(add);
  policy.bypass.forEach(add);
  policy.block.forEach(add);
  return all;
}

function cidrIntervals(c: Conditions['srcSubnet'], family: Family): Interval[] {
  const width = family === 4 ? 32 : 128;
  return normalize(
    (c ?? [])
      .filter((x) => x.family === family)
      .map((x) => [x.addr, x.addr + (1n << BigInt(width - x.prefix)) - 1n] as const),
  );
}

/** A management or bypass rule as conjunctions of nft matches (its OR groups multiplied out). */
export function matchAlternatives(c: Conditions, family: Family, comment: string): MatchIR[] {
  type Part = Partial<MatchIR>;
  const groups: Part[][] = [];
  const ifg: Part[] = [];
  if (c.reqid?.length) ifg.push({ reqid: [...c.reqid] });
  if (c.iface?.length) ifg.push({ iifname: [...c.iface] });
  if (c.ifgroup?.length) ifg.push({ iifgroup: [...c.ifgroup] });
  if (ifg.length) groups.push(ifg);
  const base: Part = {};
  if (c.proto?.length) base.l4proto = [...c.proto];
  if (c.icmpType?.length) base.icmpType = [...c.icmpType];
  if (c.icmpCode?.length) base.icmpCode = [...c.icmpCode];
  if (c.srcPort?.length) base.sport = normalize(c.srcPort.map((p) => [big(p.lo), big(p.hi)] as const));
  if (c.dstPort?.length) base.dport = normalize(c.dstPort.map((p) => [big(p.lo), big(p.hi)] as const));
  groups.push([base]);
  if (c.srcSubnet?.length || c.srcZone?.length) {
    const g: Part[] = [];
    const nets = cidrIntervals(c.srcSubnet, family);
    if (nets.length) g.push({ saddr: nets });
    for (const z of c.srcZone ?? []) g.push({ srcZoneSet: zoneSetName(z, true, family) });
    if (g.length === 0) return [];
    groups.push(g);
  }
  if (c.dstSubnet?.length || c.dstZone?.length || c.dstIface?.length || c.dstIfgroup?.length) {
    const g: Part[] = [];
    const nets = cidrIntervals(c.dstSubnet, family);
    if (nets.length) g.push({ daddr: nets });
    if (c.dstIface?.length) g.push({ fibLocal: true, iifname: [...c.dstIface] });
    if (c.dstIfgroup?.length) g.push({ fibLocal: true, iifgroup: [...c.dstIfgroup] });
    for (const z of c.dstZone ?? []) g.push({ dstZoneSet: zoneSetName(z, true, family) });
    if (g.length === 0) return [];
    groups.push(g);
  }
  let acc: Part[] = [{}];
  for (const g of groups) {
    const next: Part[] = [];
    for (const a of acc) {
      for (const b of g) {
        // iifname/iifgroup can come from both the interface group and dst_iface: both must hold
        const m: Part = { ...a, ...b };
        let empty = false;
        for (const k of ['iifname', 'iifgroup'] as const) {
          if (a[k] && b[k]) {
            const bs = new Set<string | number>(b[k]);
            const both = (a[k] as (string | number)[]).filter((x) => bs.has(x));
            if (both.length === 0) empty = true;
            (m as Record<string, unknown>)[k] = both;
          }
        }
        if (!empty) next.push(m);
      }
    }
    acc = next;
  }
  return acc.map((m) => ({ ...m, family, comment }));
}

function ruleComment(r: Rule, s: Service): string {
  return `rule ${r.id} -> ${s.name} (${s.type})${r.description ? `: ${r.description}` : ''}`;
}

/** The zones whose sets the table holds (settings.publish_zone_sets): every zone with `all`; otherwise
 * those the user rules name (`@zone_<ident>_v4` ...), those management, bypass and block entries match on (the
 * ruleset's own references) and, with a list, the listed ones. Most of a large table's elements are
 * these sets, so a zone nobody reads is left out. */
export function publishedZones(policy: Policy, userRules: string): Set<string> {
  const setting = policy.settings.publishZoneSets;
  if (setting === 'all') return new Set(policy.zones.keys());
  const out = new Set<string>(setting === 'referenced' ? [] : setting);
  for (const c of [...policy.management, ...policy.bypass, ...policy.block]) {
    for (const z of [...(c.srcZone ?? []), ...(c.dstZone ?? [])]) out.add(z);
  }
  const idents = referencedZoneIdents(userRules);
  if (idents.size > 0) {
    for (const name of policy.zones.keys()) if (idents.has(zoneIdent(name))) out.add(name);
  }
  return out;
}

export function buildIR(
  policy: Policy,
  opts: CompileOptions = {},
): { ir: RulesetIR; listeners: Map<string, Listener> } {
  const st = policy.settings;
  if ((st.tproxyMark & st.serviceMarkMask) !== 0) {
    throw new TzorpError('KERNEL_BAD_OPTION', 'settings: tproxy_mark and service_mark_mask overlap');
  }
  // the service id must fit in the mask, and the all-ones value of the mask is kept for "bypassed"
  const shift = st.serviceMarkMask === 0 ? 0 : Math.log2(st.serviceMarkMask & -st.serviceMarkMask);
  const maxSid = Math.floor(st.serviceMarkMask / 2 ** shift);
  for (const s of policy.services.values()) {
    if (s.id >= maxSid) {
      throw new TzorpError(
        'KERNEL_BAD_OPTION',
        `service ${s.name}: id ${s.id} does not fit in service_mark_mask`,
      );
    }
  }
  const sidMark = (id: number): number => id * 2 ** shift;
  const listeners = listenersOf(policy, opts);
  const flat = flattenZones(policy);
  const names = new NameTable(ifnamesOf(policy));
  const published = publishedZones(policy, opts.userRules ?? '');
  const shown = flat.list.filter((z) => published.has(z.name));
  // each zone's ranges only when a zone set is published (most large policies publish none)
  const by4 = shown.length > 0 ? rangesByZone(flat, 4) : [];
  const by6 = shown.length > 0 ? rangesByZone(flat, 6) : [];
  const zones: ZoneSetIR[] = shown.map((z) => ({
    name: z.name,
    ident: zoneIdent(z.name),
    id: z.id,
    last: z.last,
    exact: { 4: zoneAddresses(by4, z.id, z.id), 6: zoneAddresses(by6, z.id, z.id) },
    tree: { 4: zoneAddresses(by4, z.id, z.last), 6: zoneAddresses(by6, z.id, z.last) },
  }));
  // A tier lookup writes tproxyMark | ruleId into the packet mark; the tproxy bit tells a hit from the
  // zone id the mark holds before (zone ids stay below that bit), and the dispatch map sends the rule
  // on to its service's chain. Proxied packets keep that mark: the daemon reads the rule id from it.
  const lowBit = (st.tproxyMark & -st.tproxyMark) >>> 0;
  if (flat.list.length >= lowBit) {
    throw new TzorpError(
      'KERNEL_BAD_OPTION',
      'settings: tproxy_mark must be above the zone ids (use a high bit)',
    );
  }
  const actions: RuleActionIR[] = [];
  for (const r of policy.rules) {
    const s = policy.services.get(r.service);
    if (!s) continue;
    if (r.id > 0x7fffffff || (r.id & st.tproxyMark) !== 0) {
      throw new TzorpError('KERNEL_BAD_OPTION', `rule ${r.id}: the id overlaps the tproxy mark`);
    }
    actions.push({
      ruleId: r.id,
      service: s.name,
      sid: sidMark(s.id),
      comment: ruleComment(r, s),
      mark: (st.tproxyMark | r.id) >>> 0,
    });
  }
  const serviceChains: ServiceChainIR[] = [];
  for (const s of [...policy.services.values()].sort((a, b) => a.id - b.id)) {
    const base = { name: s.name, sid: sidMark(s.id) };
    if (s.type === 'proxy') {
      const l = listeners.get(s.name)!;
      const limits = kernelClientLimits(s);
      serviceChains.push({
        ...base,
        kind: 'proxy',
        v4: l.v4,
        v6: l.v6,
        families: [4, 6],
        ...(limits ? { clientLimits: limits } : {}),
      });
    } else if (s.type === 'forward') {
      const fams: Family[] =
        s.router.type === 'directed'
          ? ([4, 6] as const).filter(
              (f) => s.router.type === 'directed' && s.router.targets.some((t) => t.family === f),
            )
          : [4, 6];
      serviceChains.push({ ...base, kind: 'forward', families: fams, logging: s.logging });
    } else serviceChains.push({ ...base, kind: 'deny', families: [4, 6], logging: s.logging });
  }
  const forwards: ForwardServiceIR[] = [];
  const denies: DenyServiceIR[] = [];
  for (const s of [...policy.services.values()].sort((a, b) => a.id - b.id)) {
    if (s.type === 'forward') {
      const dnat: ForwardServiceIR['dnat'] = {};
      if (s.router.type === 'directed') {
        for (const t of s.router.targets) if (!dnat[t.family]) dnat[t.family] = t;
      }
      forwards.push({ name: s.name, sid: sidMark(s.id), masquerade: !s.router.forgeAddr, dnat });
    } else if (s.type === 'deny') {
      denies.push({ name: s.name, sid: sidMark(s.id), v4: s.ipv4, v6: s.ipv6 });
    }
  }
  const management: MatchIR[] = [];
  const bypass: MatchIR[] = [];
  const block: MatchIR[] = [];
  for (const f of [4, 6] as const) {
    policy.block.forEach((m, i) => {
      block.push(...matchAlternatives(m, f, `block ${i + 1}${m.description ? `: ${m.description}` : ''}`));
    });
    policy.management.forEach((m, i) => {
      management.push(
        ...matchAlternatives(m, f, `management ${i + 1}${m.description ? `: ${m.description}` : ''}`),
      );
    });
    policy.bypass.forEach((m, i) => {
      bypass.push(...matchAlternatives(m, f, `bypass ${i + 1}${m.description ? `: ${m.description}` : ''}`));
    });
  }
  const context = variantContext(flat, names);
  const families = {
    4: familyIR(policy, 4, flat, names, context),
    6: familyIR(policy, 6, flat, names, context),
  };
  const header = [
    `tzorp ruleset for ${policy.source.file} (sha256 ${policy.source.sha256.slice(0, 16)})`,
    `${policy.rules.length} rules, ${policy.services.size} services, ${policy.zones.size} zones;` +
      ` decision tiers: IPv4 ${families[4].tiers.length}, IPv6 ${families[6].tiers.length}`,
  ];
  return {
    ir: {
      settings: st,
      bypassValue: st.serviceMarkMask,
      ifnames: names.names,
      zones,
      families,
      actions,
      serviceChains,
      forwards,
      denies,
      management,
      bypass,
      block,
      header,
      userRules: opts.userRules ?? null,
    },
    listeners,
  };
}

/** The kernel's share of a proxy service's per-client limits: tzorp itself refuses (logs and counts)
 * a client over max_sessions_per_client or new_sessions_per_client; the ruleset drops what is far
 * beyond them (DEFAULTS.kernelClientLimitFactor times), so a flood from one address never reaches it. */
export function kernelClientLimits(s: {
  maxSessionsPerClient?: number | undefined;
  newSessionsPerClient?: { rate: number; perSeconds: number } | null | undefined;
}): ClientLimitsIR | null {
  const k = DEFAULTS.kernelClientLimitFactor;
  const max = s.maxSessionsPerClient ?? 0;
  const r = s.newSessionsPerClient ?? null;
  if (max === 0 && r === null) return null;
  let rate: ClientLimitsIR['rate'] = null;
  if (r) {
    const n = r.rate * k;
    // nft's limit takes a whole number per second, minute or hour: the smallest unit that keeps the
    // rate exact, else the hour rounded up (never stricter than the policy).
    const [per, unit] =
      r.perSeconds === 1
        ? [n, 'second' as const]
        : (n * 60) % r.perSeconds === 0
          ? [(n * 60) / r.perSeconds, 'minute' as const]
          : [Math.ceil((n * 3600) / r.perSeconds), 'hour' as const];
    rate = { n: per, unit, burst: n, timeoutS: Math.max(60, r.perSeconds * 2) };
  }
  return { maxConnections: max > 0 ? max * k : null, rate };
}
