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
  private cap = MIN_CAPACITY;
  private keys: Uint32Array;
  /** Prefix length of the slot; -1 = empty. */
  private lens: Int16Array;
  private vals: Int32Array;
  private count = 0;
  /** Distinct prefix lengths present, longest first, and their masks (k words each). */
  private lengths = new Int32Array(0);
  private masks = new Uint32Array(0);
  private readonly lengthCounts: Int32Array;
  /** Prefix length of the last successful lookup, -1 after a miss. */
  matchedPrefix = -1;
  /** Value of the /0 prefix, -1 if none. */
  private zeroVal = -1;

  constructor(family: Family) {
    this.family = family;
    this.k = family === 4 ? 1 : 4;
    this.keys = new Uint32Array(this.cap * this.k);
    this.lens = new Int16Array(this.cap).fill(-1);
    this.vals = new Int32Array(this.cap);
    this.lengthCounts = new Int32Array(family === 4 ? 33 : 129);
  }

  get size(): number {
    return this.count;
  }

  private hash(w0: number, w1: number, w2: number, w3: number, len: number): number {
    let h = mix(len + 0x9e3779b9);
    h = mix(h ^ w0);
    if (this.k === 4) {
      h = mix(h ^ w1);
      h = mix(h ^ w2);
      h = mix(h ^ w3);
    }
    return h;
  }

  private rebuildLengths(): void {
    const ls: number[] = [];
    // length 0 (a /0 network) is not probed: it holds every address, its value is `zeroVal`
    for (let l = this.lengthCounts.length - 1; l >= 1; l--) if (this.lengthCounts[l]! > 0) ls.push(l);
    this.lengths = Int32Array.from(ls);
    this.masks = new Uint32Array(ls.length * this.k);
    ls.forEach((l, i) => {
      for (let j = 0; j < this.k; j++) this.masks[i * this.k + j] = maskWord(l, j);
    });
  }

  private grow(): void {
    const oldKeys = this.keys;
    const oldLens = this.lens;
    const oldVals = this.vals;
    const oldCap = this.cap;
    this.cap *= 2;
    this.keys = new Uint32Array(this.cap * this.k);
    this.lens = new Int16Array(this.cap).fill(-1);
    this.vals = new Int32Array(this.cap);
    this.count = 0;
    const k = this.k;
    for (let s = 0; s < oldCap; s++) {
      const len = oldLens[s]!;
      if (len < 0) continue;
      const b = s * k;
      this.put(
        oldKeys[b]!,
        k === 4 ? oldKeys[b + 1]! : 0,
        k === 4 ? oldKeys[b + 2]! : 0,
        k === 4 ? oldKeys[b + 3]! : 0,
        len,
        oldVals[s]!,
      );
    }
  }

  /** Inserts masked words; returns the value replaced, or -1. */
  private put(w0: number, w1: number, w2: number, w3: number, len: number, value: number): number {
    const k = this.k;
    const m = this.cap - 1;
    let s = this.hash(w0, w1, w2, w3, len) & m;
    for (;;) {
      const l = this.lens[s]!;
      if (l < 0) {
        this.lens[s] = len;
        const b = s * k;
        this.keys[b] = w0;
        if (k === 4) {
          this.keys[b + 1] = w1;
          this.keys[b + 2] = w2;
          this.keys[b + 3] = w3;
        }
        this.vals[s] = value;
        this.count++;
        return -1;
      }
      const b = s * k;
      if (
        l === len &&
        this.keys[b] === w0 &&
        (k === 1 || (this.keys[b + 1] === w1 && this.keys[b + 2] === w2 && this.keys[b + 3] === w3))
      ) {
        const old = this.vals[s]!;
        this.vals[s] = value;
        return old;
      }
      s = (s + 1) & m;
    }
  }

  /** Sets the value of a prefix (words most significant first); returns the value it replaces or -1. */
  insert(words: ArrayLike<number>, prefix: number, value: number): number {
    if ((this.count + 1) * 2 > this.cap) this.grow();
    const w = (j: number) => (j < words.length ? (words[j]! & maskWord(prefix, j)) >>> 0 : 0);
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
    const keys = this.keys;
    const lens = this.lens;
    const m = this.cap - 1;
    const k = this.k;
    let n = 0;
    if (this.zeroVal >= 0) out[n++] = this.zeroVal;
    for (let i = 0; i < lengths.length; i++) {
      const len = lengths[i]!;
      const mb = i * k;
      const w0 = (a.w0 & masks[mb]!) >>> 0;
      const w1 = k === 4 ? (a.w1 & masks[mb + 1]!) >>> 0 : 0;
      const w2 = k === 4 ? (a.w2 & masks[mb + 2]!) >>> 0 : 0;
      const w3 = k === 4 ? (a.w3 & masks[mb + 3]!) >>> 0 : 0;
      let s = this.hash(w0, w1, w2, w3, len) & m;
      for (;;) {
        const l = lens[s]!;
        if (l < 0) break;
        const b = s * k;
        if (
          l === len &&
          keys[b] === w0 &&
          (k === 1 || (keys[b + 1] === w1 && keys[b + 2] === w2 && keys[b + 3] === w3))
        ) {
          out[n++] = this.vals[s]!;
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
    const keys = this.keys;
    const lens = this.lens;
    const m = this.cap - 1;
    if (this.k === 1) {
      for (let i = 0; i < lengths.length; i++) {
        const len = lengths[i]!;
        const w0 = (a.w0 & masks[i]!) >>> 0;
        let s = this.hash(w0, 0, 0, 0, len) & m;
        for (;;) {
          const l = lens[s]!;
          if (l < 0) break;
          if (l === len && keys[s] === w0) {
            this.matchedPrefix = len;
            return this.vals[s]!;
          }
          s = (s + 1) & m;
        }
      }
    } else {
      for (let i = 0; i < lengths.length; i++) {
        const len = lengths[i]!;
        const mb = i * 4;
        const w0 = (a.w0 & masks[mb]!) >>> 0;
        const w1 = (a.w1 & masks[mb + 1]!) >>> 0;
        const w2 = (a.w2 & masks[mb + 2]!) >>> 0;
        const w3 = (a.w3 & masks[mb + 3]!) >>> 0;
        let s = this.hash(w0, w1, w2, w3, len) & m;
        for (;;) {
          const l = lens[s]!;
          if (l < 0) break;
          const b = s * 4;
          if (l === len && keys[b] === w0 && keys[b + 1] === w1 && keys[b + 2] === w2 && keys[b + 3] === w3) {
            this.matchedPrefix = len;
            return this.vals[s]!;
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
