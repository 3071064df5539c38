// Inclusive integer intervals over one key field (ports, protocol numbers, addresses, zone ids). The
// kernel compiler reasons in these: nft interval maps take ranges, and disjointness is what they need.
// bigint so one type covers 128-bit IPv6 addresses.

export type Interval = readonly [lo: bigint, hi: bigint];

/** Sorted, disjoint, non-adjacent intervals (the canonical form of a set of integers). */
export type IntervalSet = Interval[];

export function normalize(list: readonly Interval[]): IntervalSet {
  if (list.length === 1) return [[list[0]![0], list[0]![1]]];
  const s = [...list].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  const out: [bigint, bigint][] = [];
  for (const [lo, hi] of s) {
    const last = out[out.length - 1];
    if (last && lo <= last[1] + 1n) {
      if (hi > last[1]) last[1] = hi;
    } else out.push([lo, hi]);
  }
  return out;
}

export const bmax = (a: bigint, b: bigint): bigint => (a > b ? a : b);
export const bmin = (a: bigint, b: bigint): bigint => (a < b ? a : b);

export function intersect(a: IntervalSet, b: IntervalSet): IntervalSet {
  const out: Interval[] = [];
  let i = 0;
  let j = 0;
  while (i < a.length && j < b.length) {
    const x = a[i]!;
    const y = b[j]!;
    const lo = bmax(x[0], y[0]);
    const hi = bmin(x[1], y[1]);
    if (lo <= hi) out.push([lo, hi]);
    if (x[1] < y[1]) i++;
    else j++;
  }
  return out;
}

export function contains(a: IntervalSet, v: bigint): boolean {
  for (const [lo, hi] of a) if (lo <= v && v <= hi) return true;
  return false;
}

export function points(values: readonly (number | bigint)[]): IntervalSet {
  return normalize(values.map((v) => [big(v), big(v)] as const));
}

/** BigInt(v), the same bigint each time for the small numbers a policy is full of (ports, protocols,
 * zone ids, interface numbers): BigInt() of a number costs about 0.4 µs. */
export function big(v: number | bigint): bigint {
  if (typeof v === 'bigint') return v;
  if (v >= 0 && v < SMALL.length && Number.isInteger(v)) {
    let b = SMALL[v];
    if (b === undefined) {
      b = BigInt(v);
      SMALL[v] = b;
    }
    return b;
  }
  return BigInt(v);
}
const SMALL: (bigint | undefined)[] = new Array(65536);
