// Variants grouped into tiers of equal score, each tier a set of disjoint boxes (one interval per key
// field) labelled with a rule id. A tier becomes one lookup in one nft interval verdict map, and tiers
// are tried strongest score first, so the number of lookups per new connection is bounded by the
// number of distinct scores, never by the number of rules. Inside a tier, overlapping boxes of different
// rules are split so the lowest rule id keeps the overlap (KZorp's tie rule).

import { packScore } from '../../engine/index.ts';
import { bmax, bmin, type Interval } from './intervals.ts';
import { type Field, fieldsOf, type Score, type Variant } from './variants.ts';

export interface Box {
  ruleId: number;
  /** One interval per tier field, in the tier's field order. */
  iv: Interval[];
}

export interface Tier {
  score: Score;
  packed: number;
  fields: Field[];
  boxes: Box[];
}

/** Splits box `a` into the parts outside `b` (at most 2 per field). */
function subtract(a: Interval[], b: Interval[]): Interval[][] {
  for (let i = 0; i < a.length; i++) if (a[i]![1] < b[i]![0] || b[i]![1] < a[i]![0]) return [a];
  const out: Interval[][] = [];
  const cur = [...a];
  for (let i = 0; i < a.length; i++) {
    const [lo, hi] = cur[i]!;
    const [blo, bhi] = b[i]!;
    if (lo < blo) {
      const p = [...cur];
      p[i] = [lo, blo - 1n];
      out.push(p);
    }
    if (hi > bhi) {
      const p = [...cur];
      p[i] = [bhi + 1n, hi];
      out.push(p);
    }
    cur[i] = [bmax(lo, blo), bmin(hi, bhi)];
  }
  return out;
}

function overlaps(a: Interval[], b: Interval[]): boolean {
  for (let i = 0; i < a.length; i++) if (a[i]![1] < b[i]![0] || b[i]![1] < a[i]![0]) return false;
  return true;
}

/** All boxes of a variant: the product of its fields' intervals. */
function expand(v: Variant, fields: Field[]): Interval[][] {
  let acc: Interval[][] = [[]];
  for (const f of fields) {
    let set = v.cond[f]!;
    // interface names are numbered only to be sorted; neighbouring numbers are not a range of names
    if (f === 'iifname') {
      const pts: Interval[] = [];
      for (const [lo, hi] of set) for (let x = lo; x <= hi; x++) pts.push([x, x]);
      set = pts;
    }
    const next: Interval[][] = [];
    for (const a of acc) for (const iv of set) next.push([...a, iv]);
    acc = next;
  }
  return acc;
}

/**
 * Disjoint boxes of one tier, lowest rule id first. An index on the most selective point-valued field
 * keeps this near-linear for typical policies (rules that differ in a port, a zone, an interface):
 * only boxes that share that field's value, or span it with a range, are compared.
 */
function disjointBoxes(variants: Variant[], fields: Field[]): Box[] {
  const sorted = [...variants].sort((a, b) => a.ruleId - b.ruleId);
  const expanded = sorted.map((v) => ({ ruleId: v.ruleId, boxes: expand(v, fields) }));
  // pick the index field: the one with the most distinct point values
  let keyIdx = -1;
  let best = 0;
  for (let i = 0; i < fields.length; i++) {
    const seen = new Set<bigint>();
    for (const e of expanded) for (const b of e.boxes) if (b[i]![0] === b[i]![1]) seen.add(b[i]![0]);
    if (seen.size > best) {
      best = seen.size;
      keyIdx = i;
    }
  }
  const byPoint = new Map<bigint, Box[]>();
  const wide: Box[] = [];
  const all: Box[] = [];
  const none: Box[] = [];
  // the boxes `b` may overlap, in up to two lists (no copies: this runs once per box)
  const candidates = (b: Interval[]): [Box[], Box[]] => {
    if (keyIdx < 0) return [all, none];
    const [lo, hi] = b[keyIdx]!;
    if (lo !== hi) return [all, none];
    return [byPoint.get(lo) ?? none, wide];
  };
  const insert = (box: Box): void => {
    all.push(box);
    if (keyIdx < 0) return;
    const [lo, hi] = box.iv[keyIdx]!;
    if (lo === hi) {
      const l = byPoint.get(lo);
      if (l) l.push(box);
      else byPoint.set(lo, [box]);
    } else wide.push(box);
  };
  for (const e of expanded) {
    // boxes of one variant are disjoint already (products of disjoint interval sets); a rule's several
    // variants in one tier may overlap each other, which is harmless only if we also subtract them
    const mine: Box[] = [];
    for (const b of e.boxes) {
      let pieces: Interval[][] = [b];
      for (const list of [...candidates(b), mine]) {
        for (const other of list) {
          if (!overlaps(b, other.iv)) continue;
          const next: Interval[][] = [];
          for (const p of pieces) for (const q of subtract(p, other.iv)) next.push(q);
          pieces = next;
          if (pieces.length === 0) break;
        }
        if (pieces.length === 0) break;
      }
      for (const p of pieces) mine.push({ ruleId: e.ruleId, iv: p });
    }
    for (const m of mine) insert(m);
  }
  return all;
}

function cmpBox(a: Box, b: Box): number {
  for (let i = 0; i < a.iv.length; i++) {
    const x = a.iv[i]!;
    const y = b.iv[i]!;
    if (x[0] !== y[0]) return x[0] < y[0] ? -1 : 1;
    if (x[1] !== y[1]) return x[1] < y[1] ? -1 : 1;
  }
  return a.ruleId - b.ruleId;
}

/** The tiers of one compile by packed score, each with the variants it was made of. */
export type TierCache = Map<number, { vs: Variant[]; tier: Tier }>;

function sameList<T>(a: readonly T[], b: readonly T[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Tiers, strongest first, with deterministic element order. A tier made of the very same variants
 * (the same objects, in the same order) as one in `last` is that tier again; `next` gets every tier. */
export function buildTiers(
  variants: Variant[],
  last: TierCache | null = null,
  next: TierCache | null = null,
): Tier[] {
  const groups = new Map<number, Variant[]>();
  for (const v of variants) {
    const p = packScore(v.score);
    const l = groups.get(p);
    if (l) l.push(v);
    else groups.set(p, [v]);
  }
  const tiers: Tier[] = [];
  for (const [packed, vs] of [...groups].sort((a, b) => b[0] - a[0])) {
    const before = last?.get(packed);
    let tier: Tier;
    if (before && sameList(before.vs, vs)) tier = before.tier;
    else {
      const score = vs[0]!.score;
      const fields = fieldsOf(score);
      tier = { score, packed, fields, boxes: disjointBoxes(vs, fields).sort(cmpBox) };
    }
    next?.set(packed, { vs, tier });
    tiers.push(tier);
  }
  return tiers;
}
