// Zone lookup: longest-prefix match over every zone's networks, IPv4 and IPv6 in separate tries
// (zorp-semantics §2). A /0 network is simply the root's value, so it is the family's fallback and
// nothing crosses families. Subnet membership ignores the admin hierarchy (a child zone's networks need
// not lie inside its parent's).
//
// The trie is a plain binary trie kept in typed arrays (no object per node): 100,000 networks of a
// policy share most of their upper bits, so nodes stay in the low millions and a lookup is at most 32 (or
// 128) array steps with no allocation (score.ts matches subnets with it). Lookups by zone use ZoneTrie's
// hash index. The kernel compiler needs the zones as disjoint address ranges, each with its
// longest-prefix-match value (nft interval sets cannot overlap): flattenPrefixes sorts the networks
// for that; PrefixTrie.intervals() gives the same ranges from a trie (the tests' reference).
import { TzorpError } from '../errors.ts';
import type { Cidr, Family, Policy, Zone } from '../policy/model.ts';
import { ParsedAddr, parseAddressInto, wordsOf } from './address.ts';
import { LpmHash } from './lpm-hash.ts';

const INITIAL_NODES = 1024;

/** A binary trie over one address family mapping prefixes to small non-negative integers. */
export class PrefixTrie {
  readonly width: 32 | 128;
  private left: Int32Array;
  private right: Int32Array;
  private val: Int32Array;
  private count = 1; // node 0 is the root; child index 0 means "none"
  /** Prefix length of the last successful `lookup`, -1 after a miss. */
  matchedPrefix = -1;

  constructor(family: Family) {
    this.width = family === 4 ? 32 : 128;
    this.left = new Int32Array(INITIAL_NODES);
    this.right = new Int32Array(INITIAL_NODES);
    this.val = new Int32Array(INITIAL_NODES).fill(-1);
  }

  get nodeCount(): number {
    return this.count;
  }

  private grow(): void {
    const n = this.left.length * 2;
    const l = new Int32Array(n);
    l.set(this.left);
    const r = new Int32Array(n);
    r.set(this.right);
    const v = new Int32Array(n).fill(-1);
    v.set(this.val);
    this.left = l;
    this.right = r;
    this.val = v;
  }

  /** The node for the prefix (created when missing). `words` are 32-bit words, most significant first. */
  private node(words: ArrayLike<number>, prefix: number): number {
    let node = 0;
    for (let i = 0; i < prefix; i++) {
      const bit = (words[i >>> 5]! >>> (31 - (i & 31))) & 1;
      const arr = bit ? this.right : this.left;
      let next = arr[node]!;
      if (next === 0) {
        if (this.count === this.left.length) this.grow();
        next = this.count++;
        (bit ? this.right : this.left)[node] = next;
      }
      node = next;
    }
    return node;
  }

  /** Sets the value of a prefix; returns the value it replaces (-1 if none). */
  insert(words: ArrayLike<number>, prefix: number, value: number): number {
    const n = this.node(words, prefix);
    const old = this.val[n]!;
    this.val[n] = value;
    return old;
  }

  insertBig(addr: bigint, prefix: number, value: number): number {
    return this.insert(this.width === 32 ? [Number(addr)] : wordsOf(addr), prefix, value);
  }

  /** Longest-prefix match of a parsed address of this trie's family: the value, or -1. */
  lookup(a: ParsedAddr): number {
    const left = this.left;
    const right = this.right;
    const val = this.val;
    let best = val[0]!;
    let bestLen = best >= 0 ? 0 : -1;
    let node = 0;
    if (this.width === 32) {
      const w = a.w0;
      for (let i = 0; i < 32; i++) {
        node = (w >>> (31 - i)) & 1 ? right[node]! : left[node]!;
        if (node === 0) break;
        const v = val[node]!;
        if (v >= 0) {
          best = v;
          bestLen = i + 1;
        }
      }
    } else {
      outer: for (let k = 0; k < 4; k++) {
        const w = k === 0 ? a.w0 : k === 1 ? a.w1 : k === 2 ? a.w2 : a.w3;
        for (let i = 0; i < 32; i++) {
          node = (w >>> (31 - i)) & 1 ? right[node]! : left[node]!;
          if (node === 0) break outer;
          const v = val[node]!;
          if (v >= 0) {
            best = v;
            bestLen = 32 * k + i + 1;
          }
        }
      }
    }
    this.matchedPrefix = bestLen;
    return best;
  }

  /** Writes the values of every stored prefix containing the address into `out`, shortest first;
   * returns how many (at most width + 1). */
  collect(a: ParsedAddr, out: Int32Array): number {
    const left = this.left;
    const right = this.right;
    const val = this.val;
    let n = 0;
    if (val[0]! >= 0) out[n++] = val[0]!;
    let node = 0;
    const words = this.width === 32 ? 1 : 4;
    for (let k = 0; k < words; k++) {
      const w = k === 0 ? a.w0 : k === 1 ? a.w1 : k === 2 ? a.w2 : a.w3;
      for (let i = 0; i < 32; i++) {
        node = (w >>> (31 - i)) & 1 ? right[node]! : left[node]!;
        if (node === 0) return n;
        const v = val[node]!;
        if (v >= 0) out[n++] = v;
      }
    }
    return n;
  }

  /**
   * The address space flattened into disjoint, sorted, inclusive ranges, each carrying the value of the
   * longest stored prefix covering it. Ranges no prefix covers are left out; adjacent ranges with the same
   * value are merged.
   */
  intervals(): { lo: bigint; hi: bigint; value: number }[] {
    const out: { lo: bigint; hi: bigint; value: number }[] = [];
    // the block size at each depth, made once: the walk allocates a bigint only for a right child's
    // start and for the ranges it emits (a 100,000-network policy has millions of nodes)
    const sizes: bigint[] = [];
    for (let d = 0; d <= this.width; d++) sizes.push(1n << BigInt(this.width - d));
    const { left, right, val } = this;
    const push = (lo: bigint, depth: number, value: number): void => {
      if (value < 0) return;
      const size = sizes[depth]!;
      const last = out[out.length - 1];
      if (last && last.value === value && last.hi + 1n === lo) last.hi = lo + size - 1n;
      else out.push({ lo, hi: lo + size - 1n, value });
    };
    const walk = (node: number, lo: bigint, depth: number, inherited: number): void => {
      const own = val[node]!;
      const eff = own >= 0 ? own : inherited;
      const l = left[node]!;
      const r = right[node]!;
      if (l === 0 && r === 0) {
        push(lo, depth, eff);
        return;
      }
      if (l !== 0) walk(l, lo, depth + 1, eff);
      else push(lo, depth + 1, eff);
      const hiLo = lo + sizes[depth + 1]!;
      if (r !== 0) walk(r, hiLo, depth + 1, eff);
      else push(hiLo, depth + 1, eff);
    };
    walk(0, 0n, 0, -1);
    return out;
  }
}

/** Whether two network lists are the same networks in the same order (by value: address, prefix
 * length, family). What the engine's and the compiler's reuse across reloads rests on: the same zones
 * (names in order) with the same networks give the same index and the same flattened ranges. */
export function sameNetworks(a: readonly Cidr[], b: readonly Cidr[]): boolean {
  if (a === b) return true;
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) {
    const x = a[i]!;
    const y = b[i]!;
    if (x.family !== y.family || x.addr !== y.addr || x.prefix !== y.prefix) return false;
  }
  return true;
}

/** One network of `flattenPrefixes`: its first address, prefix length and value. */
export interface ValuedPrefix {
  addr: bigint;
  prefix: number;
  value: number;
}

/**
 * What PrefixTrie.intervals gives, without building the trie: the address space as disjoint, sorted,
 * inclusive ranges, each with the value of the longest prefix covering it (the later one of two equal
 * networks), uncovered ranges left out, adjacent equal values merged. Networks are nested or disjoint,
 * so sorted by start (the wider first) one pass with a stack of the enclosing networks does it
 * (sortPrefixes, then sweepPrefixes). (The trie allocates tens of MB of nodes for 100,000 networks; this
 * only sorts them.)
 */
export function flattenPrefixes(
  family: Family,
  nets: readonly ValuedPrefix[],
): { lo: bigint; hi: bigint; value: number }[] {
  return sweepPrefixes(family, sortPrefixes(family, nets));
}

/** The networks by start address, the wider first; of two equal networks only the later one (its value
 * is the one that counts). What sweepPrefixes takes. */
export function sortPrefixes(family: Family, nets: readonly ValuedPrefix[]): ValuedPrefix[] {
  const n = nets.length;
  const order = new Uint32Array(n);
  for (let i = 0; i < n; i++) order[i] = i;
  if (family === 4) {
    // on numbers: start * 64 + prefix length (exact below 2^53)
    const key = new Float64Array(n);
    for (let i = 0; i < n; i++) key[i] = Number(nets[i]!.addr) * 64 + nets[i]!.prefix;
    order.sort((a, b) => key[a]! - key[b]! || a - b);
  } else {
    order.sort((a, b) => {
      const x = nets[a]!;
      const y = nets[b]!;
      return x.addr < y.addr ? -1 : x.addr > y.addr ? 1 : x.prefix - y.prefix || a - b;
    });
  }
  const out: ValuedPrefix[] = [];
  for (let j = 0; j < n; j++) {
    const x = nets[order[j]!]!;
    const next = j + 1 < n ? nets[order[j + 1]!]! : null;
    if (next && next.addr === x.addr && next.prefix === x.prefix) continue;
    out.push(x);
  }
  return out;
}

/** Orders two networks the way sortPrefixes does (start, then the wider first); 0 for equal ones. */
export function comparePrefixes(x: ValuedPrefix, y: ValuedPrefix): number {
  return x.addr < y.addr ? -1 : x.addr > y.addr ? 1 : x.prefix - y.prefix;
}

/** flattenPrefixes' one pass over networks in sortPrefixes' order (no two equal). */
export function sweepPrefixes(
  family: Family,
  sorted: readonly ValuedPrefix[],
): { lo: bigint; hi: bigint; value: number }[] {
  return family === 4 ? sweepV4(sorted) : sweepV6(sorted);
}

function sweepV4(sorted: readonly ValuedPrefix[]): { lo: bigint; hi: bigint; value: number }[] {
  const r = sweepNumbersV4(sorted);
  const out: { lo: bigint; hi: bigint; value: number }[] = new Array(r.lo.length);
  for (let k = 0; k < r.lo.length; k++)
    out[k] = { lo: BigInt(r.lo[k]!), hi: BigInt(r.hi[k]!), value: r.value[k]! };
  return out;
}

/** sweepPrefixes of IPv4 networks on numbers (IPv4 addresses are exact doubles): the ranges as three
 * arrays, for a caller that makes bigints only where it needs new ones (BigInt() costs about 0.4 µs). */
export function sweepNumbersV4(sorted: readonly ValuedPrefix[]): {
  lo: number[];
  hi: number[];
  value: number[];
} {
  const n = sorted.length;
  const lo = new Float64Array(n);
  const hi = new Float64Array(n);
  const val = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const x = sorted[i]!;
    lo[i] = Number(x.addr);
    hi[i] = lo[i]! + 2 ** (32 - x.prefix) - 1;
    val[i] = x.value;
  }
  const outLo: number[] = [];
  const outHi: number[] = [];
  const outVal: number[] = [];
  const emit = (a: number, b: number, value: number): void => {
    if (a > b) return;
    const k = outLo.length - 1;
    if (k >= 0 && outVal[k] === value && outHi[k]! + 1 === a) outHi[k] = b;
    else {
      outLo.push(a);
      outHi.push(b);
      outVal.push(value);
    }
  };
  const stack: number[] = [];
  let cursor = 0;
  for (let i = 0; i < n; i++) {
    while (stack.length > 0 && hi[stack[stack.length - 1]!]! < lo[i]!) {
      const t = stack.pop()!;
      emit(cursor, hi[t]!, val[t]!);
      cursor = hi[t]! + 1;
    }
    const top = stack[stack.length - 1];
    if (top !== undefined) emit(cursor, lo[i]! - 1, val[top]!);
    cursor = lo[i]!;
    stack.push(i);
  }
  while (stack.length > 0) {
    const t = stack.pop()!;
    emit(cursor, hi[t]!, val[t]!);
    cursor = hi[t]! + 1;
  }
  return { lo: outLo, hi: outHi, value: outVal };
}

function sweepV6(sorted: readonly ValuedPrefix[]): { lo: bigint; hi: bigint; value: number }[] {
  const sizes: bigint[] = [];
  for (let p = 0; p <= 128; p++) sizes.push(1n << BigInt(128 - p));
  const out: { lo: bigint; hi: bigint; value: number }[] = [];
  const emit = (a: bigint, b: bigint, value: number): void => {
    if (a > b) return;
    const last = out[out.length - 1];
    if (last && last.value === value && last.hi + 1n === a) last.hi = b;
    else out.push({ lo: a, hi: b, value });
  };
  const stack: { hi: bigint; value: number }[] = [];
  let cursor = 0n;
  for (const it of sorted) {
    while (stack.length > 0 && stack[stack.length - 1]!.hi < it.addr) {
      const t = stack.pop()!;
      emit(cursor, t.hi, t.value);
      cursor = t.hi + 1n;
    }
    const top = stack[stack.length - 1];
    if (top) emit(cursor, it.addr - 1n, top.value);
    cursor = it.addr;
    stack.push({ hi: it.addr + sizes[it.prefix]! - 1n, value: it.value });
  }
  while (stack.length > 0) {
    const t = stack.pop()!;
    emit(cursor, t.hi, t.value);
    cursor = t.hi + 1n;
  }
  return out;
}

/** One flattened range of addresses and the zone its addresses look up to. */
export interface ZoneInterval {
  lo: bigint;
  hi: bigint;
  zone: string;
}

/** Longest-prefix match from an address to its zone, IPv4 and IPv6 separately. */
export class ZoneTrie {
  /** Zones by index (the lookup's values). */
  readonly zones: Zone[];
  /** Lookups use one hash probe per distinct prefix length (lpm-hash.ts: few memory accesses). */
  private readonly hash4: LpmHash;
  private readonly hash6: LpmHash;
  /** The last index built, with its zones' names and networks in index order: a reload that keeps the
   * zones (most do) gets the same index again instead of building it anew. The index maps an address
   * to a zone's position only, so the new policy's Zone objects stand in those positions. (A worker
   * that kept its zones hands in the very same network lists: compared by identity first.) */
  private static last: {
    names: string[];
    networks: (readonly Cidr[])[];
    hash4: LpmHash;
    hash6: LpmHash;
  } | null = null;
  private readonly scratch = new ParsedAddr();

  /**
   * Indexes the zones' networks. The loader guarantees no network is in two zones; if one still is,
   * the zone given later wins (as in the kernel, where the last /0 processed wins).
   */
  constructor(zones: Iterable<Zone>) {
    this.zones = [...zones];
    const names = this.zones.map((z) => z.name);
    const networks = this.zones.map((z) => z.addresses);
    const last = ZoneTrie.last;
    if (
      last &&
      last.names.length === names.length &&
      names.every((n, i) => n === last.names[i] && sameNetworks(last.networks[i]!, networks[i]!))
    ) {
      this.hash4 = last.hash4;
      this.hash6 = last.hash6;
      ZoneTrie.last = { ...last, names, networks };
      return;
    }
    this.hash4 = new LpmHash(4);
    this.hash6 = new LpmHash(6);
    this.zones.forEach((z, i) => {
      for (const c of z.addresses) {
        (c.family === 4 ? this.hash4 : this.hash6).insert(
          c.family === 4 ? [Number(c.addr)] : wordsOf(c.addr),
          c.prefix,
          i,
        );
      }
    });
    ZoneTrie.last = { names, networks, hash4: this.hash4, hash6: this.hash6 };
  }

  static fromPolicy(policy: Policy): ZoneTrie {
    return new ZoneTrie(policy.zones.values());
  }

  /** Index (into `zones`) of the parsed address's zone, or -1 for no zone. */
  lookupIndex(a: ParsedAddr): number {
    if (a.family === 4) return this.hash4.lookup(a);
    if (a.family === 6) return this.hash6.lookup(a);
    return -1;
  }

  /** The zone of an address; null when no zone covers it. Throws on an invalid address. */
  lookup(addr: string): Zone | null {
    if (!parseAddressInto(addr, this.scratch)) {
      throw new TzorpError('ENGINE_BAD_CONNECTION', `not an IP address: ${JSON.stringify(addr)}`);
    }
    const i = this.lookupIndex(this.scratch);
    return i < 0 ? null : this.zones[i]!;
  }
}

/** Disjoint sorted ranges of one family with the zone each address in them looks up to (the later
 * zone where two hold the same network, as in ZoneTrie), without building a lookup index. */
export function zoneIntervals(zones: readonly Zone[], family: Family): ZoneInterval[] {
  return zoneRanges(zones, family).map((r) => ({ lo: r.lo, hi: r.hi, zone: zones[r.value]!.name }));
}

/** As zoneIntervals, each range's value the index of its zone in `zones`. */
export function zoneRanges(
  zones: readonly Zone[],
  family: Family,
): { lo: bigint; hi: bigint; value: number }[] {
  const nets: ValuedPrefix[] = [];
  zones.forEach((z, i) => {
    for (const c of z.addresses)
      if (c.family === family) nets.push({ addr: c.addr, prefix: c.prefix, value: i });
  });
  return flattenPrefixes(family, nets);
}

/** Every address of both families flattened: disjoint sorted ranges, each with its zone by LPM. */
export function flattenZones(policy: Policy): { v4: ZoneInterval[]; v6: ZoneInterval[] } {
  const zones = [...policy.zones.values()];
  return { v4: zoneIntervals(zones, 4), v6: zoneIntervals(zones, 6) };
}

/** The zone and (with `withChildren`) every zone below it in the admin hierarchy. */
export function zoneAndDescendants(policy: Policy, zoneName: string, withChildren: boolean): Set<string> {
  const out = new Set<string>([zoneName]);
  if (!withChildren) return out;
  const stack = [zoneName];
  while (stack.length) {
    const z = policy.zones.get(stack.pop()!);
    for (const c of z?.children ?? []) {
      if (!out.has(c)) {
        out.add(c);
        stack.push(c);
      }
    }
  }
  return out;
}

/**
 * The addresses of `family` whose zone (by longest-prefix match) is `zoneName`, or, with
 * `withChildren`, that zone or one of its descendants: disjoint sorted inclusive ranges, adjacent ones
 * merged. This is what an nft interval set `zone_<name>_v4` must hold. Pass `flat` (from
 * `flattenZones`) when asking for many zones of one policy.
 */
export function zoneSubnetsFlattened(
  policy: Policy,
  zoneName: string,
  withChildren: boolean,
  family: Family,
  flat?: { v4: ZoneInterval[]; v6: ZoneInterval[] },
): { lo: bigint; hi: bigint }[] {
  const f = flat ?? flattenZones(policy);
  const want = zoneAndDescendants(policy, zoneName, withChildren);
  const out: { lo: bigint; hi: bigint }[] = [];
  for (const r of family === 4 ? f.v4 : f.v6) {
    if (!want.has(r.zone)) continue;
    const last = out[out.length - 1];
    if (last && last.hi + 1n === r.lo) last.hi = r.hi;
    else out.push({ lo: r.lo, hi: r.hi });
  }
  return out;
}
