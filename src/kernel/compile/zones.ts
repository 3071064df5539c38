// Zones flattened for the kernel (zorp-semantics §2). nft interval maps cannot hold overlapping
// networks, so every family's zone networks become disjoint address ranges, each labelled with the zone
// that wins the longest-prefix match there (the engine's flattening, src/engine/zone-trie.ts). Zone ids are given in depth-first (pre-)order, so the zone
// and all its descendants are one contiguous id range: a rule's "zone Z or below" is one interval.
import {
  comparePrefixes,
  sameNetworks,
  sortPrefixes,
  sweepNumbersV4,
  sweepPrefixes,
  type ValuedPrefix,
} from '../../engine/index.ts';
import type { Cidr, Family, Policy, Zone } from '../../policy/model.ts';
import { type Interval, type IntervalSet, normalize } from './intervals.ts';

export interface ZoneInfo {
  name: string;
  /** 1-based, pre-order; 0 means "no zone". */
  id: number;
  /** Last id of the subtree: descendants are id+1 .. last. */
  last: number;
  depth: number;
  zone: Zone;
}

/** An address range and the zone id whose network is the longest match in it. */
export interface LabelledRange {
  lo: bigint;
  hi: bigint;
  zone: number;
}

export interface FlatZones {
  /** Pre-order; `byName` indexes it. */
  list: ZoneInfo[];
  byName: Map<string, ZoneInfo>;
  /** Disjoint ranges sorted by address, adjacent ranges of the same zone merged. */
  ranges: Record<Family, LabelledRange[]>;
}

export function familyMax(f: Family): bigint {
  return f === 4 ? (1n << 32n) - 1n : (1n << 128n) - 1n;
}

/** The last flattening (one entry: the daemon compiles one policy after the other): the zones in
 * pre-order with their networks, each family's networks sorted (sortPrefixes, valued by position) and
 * the ranges. Never changed after it is made: every user of the ranges only reads them. */
interface LastFlattening {
  names: string[];
  addresses: (readonly Cidr[])[];
  sorted: Record<Family, ValuedPrefix[]>;
  ranges: Record<Family, LabelledRange[]>;
  /** The IPv4 ranges' bounds as numbers (compared without making bigints). */
  v4: { lo: number[]; hi: number[] };
}
let lastFlat: LastFlattening | null = null;

/** Forgets the last flattening: the next compile starts from nothing (tests compare with that). */
export function forgetFlattening(): void {
  lastFlat = null;
}

/** The networks of the zones at `positions` as sortPrefixes takes them (valued by position). */
function valued(zones: readonly (readonly Cidr[])[], positions: number[], f: Family): ValuedPrefix[] {
  const out: ValuedPrefix[] = [];
  for (const i of positions)
    for (const c of zones[i]!) if (c.family === f) out.push({ addr: c.addr, prefix: c.prefix, value: i });
  return out;
}

/** Where `x` is or would go in `sorted` (the first entry not before it). */
function lowerBound(sorted: readonly ValuedPrefix[], x: ValuedPrefix): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (comparePrefixes(sorted[mid]!, x) < 0) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** The last sorted networks without `gone` and with `come` (each sorted), or null when an entry to
 * remove is not there or one to add equals one kept (then the order of equal networks matters, which
 * only a sort from nothing gets right). Found by binary search, copied in one pass. */
function patchSorted(
  last: readonly ValuedPrefix[],
  gone: readonly ValuedPrefix[],
  come: readonly ValuedPrefix[],
): ValuedPrefix[] | null {
  const goneAt = new Set<number>();
  for (const g of gone) {
    const i = lowerBound(last, g);
    const x = last[i];
    if (!x || comparePrefixes(x, g) !== 0 || x.value !== g.value) return null;
    goneAt.add(i);
  }
  const comeAt: number[] = [];
  for (const c of come) {
    const i = lowerBound(last, c);
    const x = last[i];
    if (x && comparePrefixes(x, c) === 0 && !goneAt.has(i)) return null;
    comeAt.push(i);
  }
  for (let k = 1; k < come.length; k++) if (comparePrefixes(come[k - 1]!, come[k]!) === 0) return null;
  const out: ValuedPrefix[] = [];
  let c = 0;
  for (let i = 0; i <= last.length; i++) {
    while (c < come.length && comeAt[c] === i) out.push(come[c++]!);
    if (i < last.length && !goneAt.has(i)) out.push(last[i]!);
  }
  return out;
}

/** The ranges of a sweep as LabelledRanges, the last ones' objects where they are equal. */
function labelled(
  ranges: { lo: bigint; hi: bigint; value: number }[],
  last: readonly LabelledRange[] | null,
): LabelledRange[] {
  const out: LabelledRange[] = new Array(ranges.length);
  let j = 0;
  for (let k = 0; k < ranges.length; k++) {
    const r = ranges[k]!;
    const zone = r.value + 1; // pre-order ids are positions + 1
    if (last) {
      while (j < last.length && last[j]!.lo < r.lo) j++;
      const o = last[j];
      if (o && o.lo === r.lo && o.hi === r.hi && o.zone === zone) {
        out[k] = o;
        continue;
      }
    }
    out[k] = { lo: r.lo, hi: r.hi, zone };
  }
  return out;
}

/** labelled for IPv4 from sweepNumbersV4, comparing numbers: bigints only for new ranges. */
function labelledV4(
  r: { lo: number[]; hi: number[]; value: number[] },
  last: { ranges: readonly LabelledRange[]; lo: number[]; hi: number[] } | null,
): LabelledRange[] {
  const out: LabelledRange[] = new Array(r.lo.length);
  let j = 0;
  for (let k = 0; k < r.lo.length; k++) {
    const lo = r.lo[k]!;
    const zone = r.value[k]! + 1; // pre-order ids are positions + 1
    if (last) {
      while (j < last.lo.length && last.lo[j]! < lo) j++;
      if (
        j < last.lo.length &&
        last.lo[j] === lo &&
        last.hi[j] === r.hi[k] &&
        last.ranges[j]!.zone === zone
      ) {
        out[k] = last.ranges[j]!;
        continue;
      }
    }
    out[k] = { lo: BigInt(lo), hi: BigInt(r.hi[k]!), zone };
  }
  return out;
}

export function flattenZones(policy: Policy): FlatZones {
  const list: ZoneInfo[] = [];
  const byName = new Map<string, ZoneInfo>();
  const roots = [...policy.zones.values()].filter((z) => z.parent === null).map((z) => z.name);
  roots.sort();
  // iterative pre-order walk (zone depth is bounded, but a stack keeps it obviously safe)
  const visit = (root: string): void => {
    const stack: { name: string; info?: ZoneInfo; childIdx: number }[] = [{ name: root, childIdx: 0 }];
    while (stack.length > 0) {
      const top = stack[stack.length - 1]!;
      const zone = policy.zones.get(top.name)!;
      if (!top.info) {
        top.info = { name: zone.name, id: list.length + 1, last: 0, depth: zone.depth, zone };
        list.push(top.info);
        byName.set(zone.name, top.info);
      }
      const children = [...zone.children].sort();
      if (top.childIdx < children.length) {
        stack.push({ name: children[top.childIdx++]!, childIdx: 0 });
      } else {
        top.info.last = list.length;
        stack.pop();
      }
    }
  };
  for (const r of roots) visit(r);
  // the engine's flattening (one longest-prefix match for lookup, lint and kernel), each range's zone
  // (its position in `list`) turned into this numbering
  const names = list.map((i) => i.name);
  const addresses = list.map((i) => i.zone.addresses);
  const ranges = flattenAgain(names, addresses) ?? flattenAnew(names, addresses);
  return { list, byName, ranges };
}

/** Every network sorted and swept (a start, or zones that changed too much to patch). */
function flattenAnew(names: string[], addresses: (readonly Cidr[])[]): Record<Family, LabelledRange[]> {
  const all = addresses.map((_, i) => i);
  const sorted = {
    4: sortPrefixes(4, valued(addresses, all, 4)),
    6: sortPrefixes(6, valued(addresses, all, 6)),
  };
  const swept4 = sweepNumbersV4(sorted[4]);
  const ranges = { 4: labelledV4(swept4, null), 6: labelled(sweepPrefixes(6, sorted[6]), null) };
  lastFlat = { names, addresses, sorted, ranges, v4: swept4 };
  return ranges;
}

/**
 * A reload mostly keeps the zones as they were, or changes a few networks. The same zones (names in
 * the same order, the same networks) give the last ranges again, the same arrays, so the renderer's
 * zone maps are reused whole. A few networks added to or removed from zones are patched into the last
 * sorted networks instead of sorting all of them again, and the sweep's unchanged ranges are the last
 * objects (so the renderer's unchanged chunks compare equal at once). null: flatten from nothing.
 */
function flattenAgain(
  names: string[],
  addresses: (readonly Cidr[])[],
): Record<Family, LabelledRange[]> | null {
  const last = lastFlat;
  if (!last || last.names.length !== names.length || last.names.some((n, i) => n !== names[i])) return null;
  const changed: number[] = [];
  let moved = 0;
  let total = 0;
  for (let i = 0; i < names.length; i++) {
    total += addresses[i]!.length;
    if (sameNetworks(last.addresses[i]!, addresses[i]!)) continue;
    changed.push(i);
    moved += last.addresses[i]!.length + addresses[i]!.length;
  }
  if (changed.length === 0) {
    lastFlat = { ...last, addresses };
    return last.ranges;
  }
  // the changed zones' networks are sorted twice (before and after): when they are more than all the
  // networks, one sort of everything costs less
  if (moved > total) return null;
  const sorted = {} as Record<Family, ValuedPrefix[]>;
  const ranges = {} as Record<Family, LabelledRange[]>;
  for (const f of [4, 6] as const) {
    const before = valued(last.addresses, changed, f);
    const after = valued(addresses, changed, f);
    const gone = sortPrefixes(f, before);
    const come = sortPrefixes(f, after);
    // a network written twice in the changed zones: sortPrefixes kept one, which the patch cannot
    // tell apart from the other
    if (gone.length !== before.length || come.length !== after.length) return null;
    const patched = patchSorted(last.sorted[f], gone, come);
    if (!patched) return null;
    sorted[f] = patched;
  }
  const swept4 = sweepNumbersV4(sorted[4]);
  ranges[4] = labelledV4(swept4, { ranges: last.ranges[4], ...last.v4 });
  ranges[6] = labelled(sweepPrefixes(6, sorted[6]), last.ranges[6]);
  lastFlat = { names, addresses, sorted, ranges, v4: swept4 };
  return ranges;
}

/** Per family, the ranges of each zone id (index = id), so a zone's or a subtree's addresses are
 * gathered without scanning every range once per zone. */
export function rangesByZone(flat: FlatZones, f: Family): Interval[][] {
  // the same ranges (a reload that kept the zones: flattenZones gave the last arrays) give the same
  // lists, which nothing changes
  const known = byZoneOf.get(flat.ranges[f]);
  if (known) return known;
  const by: Interval[][] = Array.from({ length: flat.list.length + 1 }, () => []);
  for (const r of flat.ranges[f]) by[r.zone]!.push([r.lo, r.hi]);
  byZoneOf.set(flat.ranges[f], by);
  return by;
}
const byZoneOf = new WeakMap<LabelledRange[], Interval[][]>();

/** The addresses whose longest-match zone has an id in [lo, hi] (one zone, or a subtree). */
export function zoneAddresses(by: Interval[][], lo: number, hi: number): IntervalSet {
  let known = addressesOf.get(by);
  if (!known) {
    known = new Map();
    addressesOf.set(by, known);
  }
  const key = `${lo}:${hi}`;
  let set = known.get(key);
  if (!set) {
    set = gather(by, lo, hi);
    known.set(key, set);
  }
  return set;
}
/** zoneAddresses' answers per rangesByZone lists (read only, like the lists). */
const addressesOf = new WeakMap<Interval[][], Map<string, IntervalSet>>();

function gather(by: Interval[][], lo: number, hi: number): IntervalSet {
  if (lo === hi) return normalize(by[lo]!);
  const out: Interval[] = [];
  for (let z = lo; z <= hi; z++) for (const iv of by[z]!) out.push(iv);
  return normalize(out);
}
