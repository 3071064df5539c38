// Longest-prefix match by one hash probe per distinct prefix length, longest first (the classic
// "binary search on prefix lengths" without the binary search). A policy's networks use few distinct
// lengths (/24, /28, /32, /48, /64, /0, ...), so a lookup is a handful of probes into one flat
// open-addressing table: a few memory accesses instead of the 32 to 128 dependent steps of a binary
// trie walk, which is what a lookup over 100,000 networks is bound by (memory latency, not arithmetic).
// The binary trie (zone-trie.ts) stays for flattening, where the order of prefixes matters.
import type { Family } from '../policy/model.ts';
import { maskWord, type ParsedAddr } from './address.ts';

/** Load factor at most 1/2 (open addressing with linear probing stays short). */
const MIN_CAPACITY = 16;
/** A slot is one row of int32s: [prefix length (-1 = empty), value, word 0 (, words 1..3 for IPv6)],
 * padded to 16 bytes (IPv4) or 32 bytes (IPv6) so that a probe reads one cache line, not three (the
 * table of 100,000 networks is several MB: a lookup is bound by these misses). Words are stored as
 * int32 (`| 0`) so comparisons stay on small integers. */
const L = 0;
const V = 1;
const W = 2;

function mix(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x7feb352d);
  h ^= h >>> 15;
  h = Math.imul(h, 0x846ca68b);
  h ^= h >>> 16;
  return h >>> 0;
}

export class LpmHash {
  readonly family: Family;
  private readonly k: 1 | 4;
  /** Ints per slot: 4 (IPv4) or 8 (IPv6). */
  private readonly stride: 4 | 8;
  private cap = MIN_CAPACITY;
  private slots: Int32Array;
  private count = 0;
  /** Distinct prefix lengths present, longest first, and their masks (k words each, as int32). */
  private lengths = new Int32Array(0);
  private masks = new Int32Array(0);
  private readonly lengthCounts: Int32Array;
  /** Prefix length of the last successful lookup, -1 after a miss. */
  matchedPrefix = -1;
  /** Value of the /0 prefix, -1 if none. */
  private zeroVal = -1;

  constructor(family: Family) {
    this.family = family;
    this.k = family === 4 ? 1 : 4;
    this.stride = family === 4 ? 4 : 8;
    this.slots = this.emptySlots(this.cap);
    this.lengthCounts = new Int32Array(family === 4 ? 33 : 129);
  }

  private emptySlots(cap: number): Int32Array {
    const t = new Int32Array(cap * this.stride);
    for (let s = 0; s < t.length; s += this.stride) t[s + L] = -1;
    return t;
  }

  get size(): number {
    return this.count;
  }

  /** Words beyond the prefix are zero after masking: only the words a prefix covers are mixed. */
  private hash(w0: number, w1: number, w2: number, w3: number, len: number): number {
    let h = mix(len + 0x9e3779b9);
    h = mix(h ^ w0);
    if (len > 32) {
      h = mix(h ^ w1);
      if (len > 64) {
        h = mix(h ^ w2);
        if (len > 96) h = mix(h ^ w3);
      }
    }
    return h;
  }

  private rebuildLengths(): void {
    const ls: number[] = [];
    // length 0 (a /0 network) is not probed: it holds every address, its value is `zeroVal`
    for (let l = this.lengthCounts.length - 1; l >= 1; l--) if (this.lengthCounts[l]! > 0) ls.push(l);
    this.lengths = Int32Array.from(ls);
    this.masks = new Int32Array(ls.length * this.k);
    ls.forEach((l, i) => {
      for (let j = 0; j < this.k; j++) this.masks[i * this.k + j] = maskWord(l, j) | 0;
    });
  }

  private grow(): void {
    const old = this.slots;
    const st = this.stride;
    this.cap *= 2;
    this.slots = this.emptySlots(this.cap);
    this.count = 0;
    for (let b = 0; b < old.length; b += st) {
      const len = old[b + L]!;
      if (len < 0) continue;
      const six = st === 8;
      this.put(
        old[b + W]!,
        six ? old[b + W + 1]! : 0,
        six ? old[b + W + 2]! : 0,
        six ? old[b + W + 3]! : 0,
        len,
        old[b + V]!,
      );
    }
  }

  /** Inserts masked words (int32); returns the value replaced, or -1. */
  private put(w0: number, w1: number, w2: number, w3: number, len: number, value: number): number {
    const t = this.slots;
    const st = this.stride;
    const m = this.cap - 1;
    let s = this.hash(w0, w1, w2, w3, len) & m;
    for (;;) {
      const b = s * st;
      const l = t[b + L]!;
      if (l < 0) {
        t[b + L] = len;
        t[b + V] = value;
        t[b + W] = w0;
        if (st === 8) {
          t[b + W + 1] = w1;
          t[b + W + 2] = w2;
          t[b + W + 3] = w3;
        }
        this.count++;
        return -1;
      }
      if (
        l === len &&
        t[b + W] === w0 &&
        (st === 4 || (t[b + W + 1] === w1 && t[b + W + 2] === w2 && t[b + W + 3] === w3))
      ) {
        const old = t[b + V]!;
        t[b + V] = value;
        return old;
      }
      s = (s + 1) & m;
    }
  }

  /** Sets the value of a prefix (words most significant first); returns the value it replaces or -1. */
  insert(words: ArrayLike<number>, prefix: number, value: number): number {
    if ((this.count + 1) * 2 > this.cap) this.grow();
    const w = (j: number) => (j < words.length ? words[j]! & maskWord(prefix, j) : 0);
    const old = this.put(
      w(0),
      this.k === 4 ? w(1) : 0,
      this.k === 4 ? w(2) : 0,
      this.k === 4 ? w(3) : 0,
      prefix,
      value,
    );
    if (prefix === 0) this.zeroVal = value;
    if (old < 0) {
      this.lengthCounts[prefix]!++;
      if (this.lengthCounts[prefix] === 1) this.rebuildLengths();
    }
    return old;
  }

  /** Writes the values of every stored prefix holding the address into `out`; returns how many. */
  collect(a: ParsedAddr, out: Int32Array): number {
    const lengths = this.lengths;
    const masks = this.masks;
    const t = this.slots;
    const st = this.stride;
    const m = this.cap - 1;
    const k = this.k;
    let n = 0;
    if (this.zeroVal >= 0) out[n++] = this.zeroVal;
    for (let i = 0; i < lengths.length; i++) {
      const len = lengths[i]!;
      const mb = i * k;
      const w0 = a.w0 & masks[mb]!;
      const w1 = k === 4 ? a.w1 & masks[mb + 1]! : 0;
      const w2 = k === 4 ? a.w2 & masks[mb + 2]! : 0;
      const w3 = k === 4 ? a.w3 & masks[mb + 3]! : 0;
      let s = this.hash(w0, w1, w2, w3, len) & m;
      for (;;) {
        const b = s * st;
        const l = t[b + L]!;
        if (l < 0) break;
        if (
          l === len &&
          t[b + W] === w0 &&
          (k === 1 || (t[b + W + 1] === w1 && t[b + W + 2] === w2 && t[b + W + 3] === w3))
        ) {
          out[n++] = t[b + V]!;
          break;
        }
        s = (s + 1) & m;
      }
    }
    return n;
  }

  /** The value of the longest stored prefix holding the address (of this family), or -1. */
  lookup(a: ParsedAddr): number {
    const lengths = this.lengths;
    const masks = this.masks;
    const t = this.slots;
    const m = this.cap - 1;
    if (this.k === 1) {
      for (let i = 0; i < lengths.length; i++) {
        const len = lengths[i]!;
        const w0 = a.w0 & masks[i]!;
        let s = this.hash(w0, 0, 0, 0, len) & m;
        for (;;) {
          const b = s << 2;
          const l = t[b]!;
          if (l < 0) break;
          if (l === len && t[b + W] === w0) {
            this.matchedPrefix = len;
            return t[b + V]!;
          }
          s = (s + 1) & m;
        }
      }
    } else {
      for (let i = 0; i < lengths.length; i++) {
        const len = lengths[i]!;
        const mb = i * 4;
        const w0 = a.w0 & masks[mb]!;
        const w1 = a.w1 & masks[mb + 1]!;
        const w2 = a.w2 & masks[mb + 2]!;
        const w3 = a.w3 & masks[mb + 3]!;
        let s = this.hash(w0, w1, w2, w3, len) & m;
        for (;;) {
          const b = s << 3;
          const l = t[b]!;
          if (l < 0) break;
          if (
            l === len &&
            t[b + W] === w0 &&
            t[b + W + 1] === w1 &&
            t[b + W + 2] === w2 &&
            t[b + W + 3] === w3
          ) {
            this.matchedPrefix = len;
            return t[b + V]!;
          }
          s = (s + 1) & m;
        }
      }
    }
    if (this.zeroVal >= 0) {
      this.matchedPrefix = 0;
      return this.zeroVal;
    }
    this.matchedPrefix = -1;
    return -1;
  }
}
