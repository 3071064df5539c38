// Lint: warnings about a valid policy (codes TZ15xx). The score reasoning is KZorp's (zorp-semantics §3,
// the same tuple the engine uses: iface group, icmp code, icmp type, proto, src port, dst port, source
// subnet, source zone, destination subnet, destination iface, destination zone; most specific value of
// a dimension counts; equal scores go to the lowest id). It is kept here, self-contained (policy may not
// import engine), and conservative: every warning is provable from the conditions alone; some shadowed
// or tied rules are not found (docs/policy.md says which).
import { DEFAULTS } from '../defaults.ts';
import type { Diagnostics } from './diagnostics.ts';
import type { Cidr, Family, Policy, PortRange, Rule, Zone } from './model.ts';

const PROTO_ICMP = 1;
const PROTO_ICMPV6 = 58;
const PORT_PROTOS = [6, 17]; // only TCP and UDP connections carry ports; others have port 0

export function lintPolicy(policy: Policy, d: Diagnostics, usedZones: Set<string>): void {
  unusedZones(policy, d, usedZones);
  unusedServices(policy, d);
  const live = policy.rules.filter((r) => {
    const why = neverMatches(r);
    if (why !== null) d.warnPos('LINT_NEVER_MATCHES', `rule ${r.id} can never match: ${why}`, r.pos);
    return why === null;
  });
  pairs(policy, live, d);
}

// --- unused ----------------------------------------------------------------------------------------

function unusedZones(policy: Policy, d: Diagnostics, used: Set<string>): void {
  // a zone is in use when a reference names it, an ancestor (the reference covers it) or a descendant
  // (it groups zones in use)
  const covered = new Set<string>();
  const zones = [...policy.zones.values()].sort((a, b) => a.depth - b.depth);
  for (const z of zones)
    if (used.has(z.name) || (z.parent !== null && covered.has(z.parent))) covered.add(z.name);
  const hasUsedBelow = new Set<string>();
  for (let i = zones.length - 1; i >= 0; i--) {
    const z = zones[i] as Zone;
    if ((covered.has(z.name) || hasUsedBelow.has(z.name)) && z.parent !== null) hasUsedBelow.add(z.parent);
  }
  for (const z of policy.zones.values()) {
    if (covered.has(z.name) || hasUsedBelow.has(z.name)) continue;
    d.warnPos(
      'LINT_UNUSED_ZONE',
      `zone '${z.name}' is not used: no rule, management or bypass rule or limit_target_zones_to names it, an ancestor or a descendant`,
      z.pos,
    );
  }
}

function unusedServices(policy: Policy, d: Diagnostics): void {
  const used = new Set(policy.rules.map((r) => r.service));
  for (const s of policy.services.values()) {
    if (!used.has(s.name))
      d.warnPos('LINT_UNUSED_SERVICE', `service '${s.name}' is not used by any rule`, s.pos);
  }
}

// --- rules that cannot match -----------------------------------------------------------------------

function neverMatches(r: Rule): string | null {
  const icmp = r.icmpType !== undefined || r.icmpCode !== undefined;
  if (icmp && r.proto && !r.proto.some((p) => p === PROTO_ICMP || p === PROTO_ICMPV6)) {
    return 'icmp_type/icmp_code match ICMP and ICMPv6 only, and its proto excludes both';
  }
  const ports = [r.srcPort, r.dstPort].filter((x): x is PortRange[] => x !== undefined);
  if (ports.length > 0 && ports.some((list) => !list.some((p) => p.lo === 0))) {
    if (icmp) return 'ICMP has no ports (they count as 0) and its ports exclude 0';
    if (r.proto && !r.proto.some((p) => PORT_PROTOS.includes(p))) {
      return 'only TCP and UDP have ports (others count as 0), its proto has neither and its ports exclude 0';
    }
  }
  return null;
}

// --- shadowed rules and ties ------------------------------------------------------------------------

function presence(r: Rule): number {
  let s = 0;
  const bit = (b: boolean, i: number) => {
    if (b) s |= 1 << i;
  };
  bit(r.proto !== undefined, 0);
  bit(r.icmpType !== undefined, 1);
  bit(r.icmpCode !== undefined, 2);
  bit(r.srcPort !== undefined, 3);
  bit(r.dstPort !== undefined, 4);
  bit(r.reqid !== undefined || r.iface !== undefined || r.ifgroup !== undefined, 5);
  bit(r.srcSubnet !== undefined || r.srcZone !== undefined, 6);
  bit(
    r.dstSubnet !== undefined ||
      r.dstIface !== undefined ||
      r.dstIfgroup !== undefined ||
      r.dstZone !== undefined,
    7,
  );
  return s;
}

function pairs(policy: Policy, rules: Rule[], d: Diagnostics): void {
  // shadowing and ties both need the same dimensions present in both rules (see covers/tieWitness)
  const buckets = new Map<number, Rule[]>();
  for (const r of rules) {
    const k = presence(r);
    const b = buckets.get(k);
    if (b) b.push(r);
    else buckets.set(k, [r]);
  }
  const reach = new Reach(policy);
  let budget = DEFAULTS.maxLintPairs;
  for (const bucket of buckets.values()) {
    // ids ascending (policy.rules is sorted): a = lower id, b = higher id
    for (let j = 1; j < bucket.length; j++) {
      const b = bucket[j] as Rule;
      let tie: Rule | null = null;
      let shadowed = false;
      for (let i = 0; i < j; i++) {
        if (--budget < 0) return;
        const a = bucket[i] as Rule;
        if (covers(a, b)) {
          d.warnPos(
            'LINT_SHADOWED_RULE',
            `rule ${b.id} can never win: rule ${a.id} (line ${a.pos.line}) matches every connection it matches with at least the same score and wins ties by its lower id` +
              (a.service === b.service
                ? ' (a redundant rule)'
                : ` (so rule ${b.id} never selects '${b.service}')`),
            b.pos,
          );
          shadowed = true;
          break;
        }
        if (tie === null && tieWitness(a, b, reach)) tie = a;
      }
      if (!shadowed && tie !== null) {
        d.warnPos(
          'LINT_TIED_RULES',
          `rules ${tie.id} (line ${tie.pos.line}) and ${b.id} tie for some connections (equal score): rule ${tie.id} wins them by its lower id` +
            (tie.service === b.service ? '' : ` ('${tie.service}', not '${b.service}')`),
          b.pos,
        );
      }
    }
  }
}

// A ⊒ B: every connection B matches, A matches with a score at least as high in every field.
function covers(a: Rule, b: Rule): boolean {
  return (
    ifaceCovers(a, b) &&
    setCovers(a.proto, b.proto) &&
    setCovers(a.icmpType, b.icmpType) &&
    setCovers(a.icmpCode, b.icmpCode) &&
    portsCover(a.srcPort, b.srcPort) &&
    portsCover(a.dstPort, b.dstPort) &&
    // source: (subnet score, zone score) componentwise
    cidrsCover(a.srcSubnet, b.srcSubnet) &&
    setCovers(a.srcZone, b.srcZone, true) &&
    cidrsCover(a.dstSubnet, b.dstSubnet) &&
    setCovers(a.dstIface, b.dstIface, true) &&
    setCovers(a.dstIfgroup, b.dstIfgroup, true) &&
    setCovers(a.dstZone, b.dstZone, true)
  );
}

/** b absent -> a absent (unless `orGroup`: then a may add to a group b has too); b present -> a ⊇ b. */
function setCovers<T>(a: T[] | undefined, b: T[] | undefined, orGroup = false): boolean {
  if (b === undefined) return a === undefined || orGroup;
  if (a === undefined) return false;
  const s = new Set(a);
  return b.every((x) => s.has(x));
}

function ifaceCovers(a: Rule, b: Rule): boolean {
  // presence() already made both have the group or neither
  return (
    setCovers(a.reqid, b.reqid, true) &&
    setCovers(a.iface, b.iface, true) &&
    setCovers(a.ifgroup, b.ifgroup, true)
  );
}

function cidrsCover(a: Cidr[] | undefined, b: Cidr[] | undefined): boolean {
  if (b === undefined) return true; // group presence was checked; a's extra subnets only add score
  if (a === undefined) return false;
  const s = new Set(a.map((c) => c.text));
  return b.every((c) => s.has(c.text));
}

function portsCover(a: PortRange[] | undefined, b: PortRange[] | undefined): boolean {
  if (b === undefined) return a === undefined;
  if (a === undefined) return false;
  const singles = new Set(a.filter((r) => r.lo === r.hi).map((r) => r.lo));
  const merged = mergeRanges(a);
  for (const r of b) {
    if (r.lo === r.hi) {
      if (!singles.has(r.lo)) return false; // b scores 2 there, a must too
    } else if (!merged.some((m) => m.lo <= r.lo && r.hi <= m.hi)) return false;
  }
  return true;
}

function mergeRanges(list: PortRange[]): PortRange[] {
  const s = [...list].sort((x, y) => x.lo - y.lo);
  const out: PortRange[] = [];
  for (const r of s) {
    const last = out[out.length - 1];
    if (last && r.lo <= last.hi + 1) last.hi = Math.max(last.hi, r.hi);
    else out.push({ lo: r.lo, hi: r.hi });
  }
  return out;
}

// --- ties --------------------------------------------------------------------------------------------

const BOTH: ReadonlySet<Family> = new Set([4, 6]);

function intersect<T>(a: T[] | undefined, b: T[] | undefined): T[] | null | undefined {
  if (a === undefined && b === undefined) return undefined; // both wildcards
  if (a === undefined || b === undefined) return null; // shapes differ: scores differ
  const s = new Set(a);
  const r = b.filter((x) => s.has(x));
  return r.length > 0 ? r : null;
}

/** Is there a connection both rules match with exactly equal scores? Proven constructively. */
function tieWitness(a: Rule, b: Rule, reach: Reach): boolean {
  // interface group: same lists present, each with a common value
  for (const k of ['reqid', 'iface', 'ifgroup'] as const)
    if (intersect<unknown>(a[k], b[k]) === null) return false;
  const proto = intersect(a.proto, b.proto);
  const type = intersect(a.icmpType, b.icmpType);
  const code = intersect(a.icmpCode, b.icmpCode);
  if (proto === null || type === null || code === null) return false;
  let fams = new Set<Family>(BOTH);
  const icmp = type !== undefined || code !== undefined;
  let portZero = false;
  if (icmp) {
    const p = proto ?? [PROTO_ICMP, PROTO_ICMPV6];
    fams = new Set<Family>([
      ...(p.includes(PROTO_ICMP) ? [4 as const] : []),
      ...(p.includes(PROTO_ICMPV6) ? [6 as const] : []),
    ]);
    portZero = true;
  } else if (proto !== undefined) {
    if (!proto.some((p) => PORT_PROTOS.includes(p))) portZero = true;
    if (proto.every((p) => p === PROTO_ICMP)) fams = new Set<Family>([4]);
    if (proto.every((p) => p === PROTO_ICMPV6)) fams = new Set<Family>([6]);
  }
  if (fams.size === 0) return false;
  if (!portTie(a.srcPort, b.srcPort, portZero) || !portTie(a.dstPort, b.dstPort, portZero)) return false;
  if (a.dstIface || a.dstIfgroup || b.dstIface || b.dstIfgroup) return false; // not analysed
  const src = addressTie(a.srcSubnet, a.srcZone, b.srcSubnet, b.srcZone, reach);
  const dst = addressTie(a.dstSubnet, a.dstZone, b.dstSubnet, b.dstZone, reach);
  for (const f of fams) if (src.has(f) && dst.has(f)) return true;
  return false;
}

function portScore(list: PortRange[], p: number): number {
  let best = 0;
  for (const r of list) if (p >= r.lo && p <= r.hi) best = Math.max(best, r.lo === r.hi ? 2 : 1);
  return best;
}

function portTie(a: PortRange[] | undefined, b: PortRange[] | undefined, zeroOnly: boolean): boolean {
  if (a === undefined && b === undefined) return true;
  if (a === undefined || b === undefined) return false;
  if (zeroOnly) {
    const s = portScore(a, 0);
    return s > 0 && s === portScore(b, 0);
  }
  const singles = new Set([...a, ...b].filter((r) => r.lo === r.hi).map((r) => r.lo));
  for (const ra of a) {
    for (const rb of b) {
      const lo = Math.max(ra.lo, rb.lo);
      const hi = Math.min(ra.hi, rb.hi);
      if (lo > hi) continue;
      // a port of the overlap that is a single in neither list: both score 1
      let inside = 0;
      for (const p of singles) {
        if (p < lo || p > hi) continue;
        inside++;
        if (portScore(a, p) === portScore(b, p)) return true;
      }
      if (inside < hi - lo + 1) return true;
    }
  }
  return false;
}

/** Families in which some address gets equal, matching (subnet, zone) scores from both rules. */
function addressTie(
  sa: Cidr[] | undefined,
  za: string[] | undefined,
  sb: Cidr[] | undefined,
  zb: string[] | undefined,
  reach: Reach,
): ReadonlySet<Family> {
  if (!sa && !za && !sb && !zb) return BOTH;
  const out = new Set<Family>();
  const key = (l: Cidr[] | undefined) =>
    (l ?? [])
      .map((c) => c.text)
      .sort()
      .join(',');
  const zkey = (l: string[] | undefined) => [...(l ?? [])].sort().join(',');
  if (key(sa) === key(sb) && zkey(za) === zkey(zb)) {
    // identical conditions: equal scores for every address; one that matches is enough
    for (const c of sa ?? []) out.add(c.family);
    for (const z of za ?? []) for (const f of reach.families(z)) out.add(f);
    return out;
  }
  if (!sa && !sb && za && zb) {
    // a zone both list: an address of that zone scores its depth in both (nothing deeper can match)
    const s = new Set(za);
    for (const z of zb) if (s.has(z)) for (const f of reach.families(z)) out.add(f);
    return out;
  }
  if (!za && !zb && sa && sb) {
    // a network both list, with no longer listed network inside it: its addresses score alike
    const inB = new Set(sb.map((c) => c.text));
    for (const c of sa) {
      if (!inB.has(c.text)) continue;
      const longer = (l: Cidr[]) =>
        l.some((x) => x.family === c.family && x.prefix > c.prefix && inside(x, c));
      if (!longer(sa) && !longer(sb)) out.add(c.family);
    }
  }
  return out;
}

function inside(x: Cidr, n: Cidr): boolean {
  const bits = BigInt(n.family === 4 ? 32 : 128);
  const shift = bits - BigInt(n.prefix);
  return x.family === n.family && x.addr >> shift === n.addr >> shift;
}

/** Which families a zone really owns addresses in (longest-prefix match leaves it something). */
class Reach {
  private readonly cache = new Map<string, ReadonlySet<Family>>();
  private sorted: { 4: Owned[]; 6: Owned[] } | null = null;

  constructor(private readonly policy: Policy) {}

  families(zone: string): ReadonlySet<Family> {
    let r = this.cache.get(zone);
    if (r === undefined) {
      const z = this.policy.zones.get(zone);
      const out = new Set<Family>();
      for (const n of z?.addresses ?? []) if (!out.has(n.family) && this.owns(zone, n)) out.add(n.family);
      r = out;
      this.cache.set(zone, r);
    }
    return r;
  }

  private index(): { 4: Owned[]; 6: Owned[] } {
    if (this.sorted === null) {
      const all: { 4: Owned[]; 6: Owned[] } = { 4: [], 6: [] };
      for (const z of this.policy.zones.values()) {
        for (const c of z.addresses)
          all[c.family].push({ lo: c.addr, hi: end(c), prefix: c.prefix, zone: z.name });
      }
      for (const f of [4, 6] as const)
        all[f].sort((x, y) => (x.lo < y.lo ? -1 : x.lo > y.lo ? 1 : x.prefix - y.prefix));
      this.sorted = all;
    }
    return this.sorted;
  }

  /** Does some address of n look up to `zone`: is n not covered entirely by other zones' longer networks? */
  private owns(zone: string, n: Cidr): boolean {
    const list = this.index()[n.family];
    const hiN = end(n);
    // first entry with lo >= n.addr
    let lo = 0;
    let hi = list.length;
    while (lo < hi) {
      const m = (lo + hi) >> 1;
      if ((list[m] as Owned).lo < n.addr) lo = m + 1;
      else hi = m;
    }
    let next = n.addr; // first address not yet known to be taken by a longer foreign network
    let scanned = 0;
    for (let i = lo; i < list.length; i++) {
      const o = list[i] as Owned;
      if (o.lo > hiN) break;
      if (++scanned > DEFAULTS.maxLintReachScan) return false; // unknown: say no (conservative)
      if (o.prefix <= n.prefix) continue;
      if (o.zone === zone) continue; // its own longer networks still give the zone
      if (o.lo > next) return true; // a gap: [next, o.lo) belongs to n's zone
      if (o.hi >= next) next = o.hi + 1n;
      if (next > hiN) return false;
    }
    return next <= hiN;
  }
}

interface Owned {
  lo: bigint;
  hi: bigint;
  prefix: number;
  zone: string;
}

function end(c: Cidr): bigint {
  const bits = BigInt(c.family === 4 ? 32 : 128);
  return c.addr | ((1n << (bits - BigInt(c.prefix))) - 1n);
}
