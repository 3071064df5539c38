// Zones flattened for the kernel (zorp-semantics §2). nft interval maps cannot hold overlapping
// networks, so every family's zone networks become disjoint address ranges, each labelled with the zone
// that wins the longest-prefix match there (the engine's flattening, src/engine/zone-trie.ts). Zone ids are given in depth-first (pre-)order, so the zone
// and all its descendants are one contiguous id range: a rule's "zone Z or below" is one interval.
import { zoneRanges, zonesDigest } from '../../engine/index.ts';
import type { Family, Policy, Zone } from '../../policy/model.ts';
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

/** The last flattening (one entry: the daemon compiles one policy after the other). Never changed
 * after it is made: every user of the ranges only reads them. */
let lastRanges: { key: string; ranges: Record<Family, LabelledRange[]> } | null = null;

/** Forgets the last flattening: the next compile starts from nothing (tests compare with that). */
export function forgetFlattening(): void {
  lastRanges = null;
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
  const zones = list.map((i) => i.zone);
  // A reload mostly keeps the zones as they were: the ranges of the same zones (same ids, same
  // networks) are the last ones again, the same arrays, so the renderer's zone maps are reused too.
  const key = zonesDigest(zones);
  if (lastRanges?.key === key) return { list, byName, ranges: lastRanges.ranges };
  const ranges: Record<Family, LabelledRange[]> = { 4: [], 6: [] };
  for (const f of [4, 6] as const)
    ranges[f] = zoneRanges(zones, f).map((r) => ({ lo: r.lo, hi: r.hi, zone: list[r.value]!.id }));
  lastRanges = { key, ranges };
  return { list, byName, ranges };
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
