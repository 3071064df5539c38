// Zones flattened for the kernel (zorp-semantics §2). nft interval maps cannot hold overlapping
// networks, so every family's zone networks become disjoint address ranges, each labelled with the zone
// that wins the longest-prefix match there. Zone ids are given in depth-first (pre-)order, so the zone
// and all its descendants are one contiguous id range: a rule's "zone Z or below" is one interval.
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
  const ranges: Record<Family, LabelledRange[]> = { 4: [], 6: [] };
  for (const f of [4, 6] as const) {
    const nets: { lo: bigint; hi: bigint; zone: number }[] = [];
    for (const info of list) {
      for (const c of info.zone.addresses) {
        if (c.family !== f) continue;
        const size = 1n << BigInt((f === 4 ? 32 : 128) - c.prefix);
        nets.push({ lo: c.addr, hi: c.addr + size - 1n, zone: info.id });
      }
    }
    ranges[f] = lpmRanges(nets);
  }
  return { list, byName, ranges };
}

/** Longest-prefix-match flattening of (possibly nested, never partially overlapping) networks. */
export function lpmRanges(nets: { lo: bigint; hi: bigint; zone: number }[]): LabelledRange[] {
  // outer networks first at equal start, so the stack always holds a chain of nested networks
  const sorted = [...nets].sort((a, b) =>
    a.lo < b.lo ? -1 : a.lo > b.lo ? 1 : a.hi > b.hi ? -1 : a.hi < b.hi ? 1 : 0,
  );
  const out: LabelledRange[] = [];
  const emit = (lo: bigint, hi: bigint, zone: number): void => {
    if (lo > hi) return;
    const last = out[out.length - 1];
    if (last && last.zone === zone && last.hi + 1n === lo) last.hi = hi;
    else out.push({ lo, hi, zone });
  };
  const stack: { lo: bigint; hi: bigint; zone: number }[] = [];
  let pos = 0n;
  for (const n of sorted) {
    while (stack.length > 0 && stack[stack.length - 1]!.hi < n.lo) {
      const top = stack.pop()!;
      emit(pos, top.hi, top.zone);
      pos = top.hi + 1n;
    }
    const top = stack[stack.length - 1];
    if (top) emit(pos, n.lo - 1n, top.zone);
    pos = n.lo;
    stack.push(n);
  }
  while (stack.length > 0) {
    const top = stack.pop()!;
    emit(pos, top.hi, top.zone);
    pos = top.hi + 1n;
  }
  return out;
}

/** Per family, the ranges of each zone id (index = id), so a zone's or a subtree's addresses are
 * gathered without scanning every range once per zone. */
export function rangesByZone(flat: FlatZones, f: Family): Interval[][] {
  const by: Interval[][] = Array.from({ length: flat.list.length + 1 }, () => []);
  for (const r of flat.ranges[f]) by[r.zone]!.push([r.lo, r.hi]);
  return by;
}

/** The addresses whose longest-match zone has an id in [lo, hi] (one zone, or a subtree). */
export function zoneAddresses(by: Interval[][], lo: number, hi: number): IntervalSet {
  if (lo === hi) return normalize(by[lo]!);
  const out: Interval[] = [];
  for (let z = lo; z <= hi; z++) for (const iv of by[z]!) out.push(iv);
  return normalize(out);
}
