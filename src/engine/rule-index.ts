// Candidate index. Rules are filed in a three-level tree keyed by what nearly every real rule names:
//   source key (a source zone, a source subnet, or ANY) → destination key (a destination zone, subnet,
//   dst_iface name/group, or ANY) → destination port (exact port, or "other": ranges and no port).
// A rule is filed under every key of its lists (the cross product of its source and destination keys) or
// under ANY for a dimension it leaves open. A lookup walks only the keys the connection can match: its
// zones and their ancestors, the rule subnets containing its addresses, ANY; and only branches that
// exist. So it touches the rules that share the connection's zones/subnets and port, not the rule count.
//
// Each walked cell is a superset of the rules that can match through it, and every candidate is then
// checked in full by `evalRule`: the index makes a lookup faster and never changes its answer. A rule
// may be reached twice (e.g. listing a zone and its parent); evaluating it twice is harmless.
import { type ParsedAddr, wordsOf } from './address.ts';
import { LpmHash } from './lpm-hash.ts';
import { ANC_STRIDE, HOT_STRIDE, type Query, type RuleTable, type ZoneTable } from './score.ts';

const EMPTY = new Int32Array(0);
/** A rule whose source × destination keys exceed this is filed under its source keys × ANY instead
 * (bounded index size for rules with long zone lists; they are still found and fully checked). */
const MAX_CELLS_PER_RULE = 256;

/** Receives a slice of rule indexes: pool[off .. off + len). */
export type CandidateVisitor = (pool: Int32Array, off: number, len: number) => void;

/** 2^18 bits = 32 KiB: about 8% false positives with the ~22,000 cells of 10,000 rules. */
const FILTER_BITS_LOG2 = 18;

/** tP value of an empty slot (ports are -1 or 0..65535). */
const EMPTY_SLOT = -2;

function cellHash(s: number, d: number, p: number): number {
  let h = Math.imul(s ^ 0x9e3779b9, 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13) ^ d, 0xc2b2ae35);
  h = Math.imul(h ^ (h >>> 16) ^ p, 0x27d4eb2f);
  return (h ^ (h >>> 15)) >>> 0;
}

interface CellBuilder {
  byPort: Map<number, number[]>;
  other: number[];
}

function pushOnce(l: number[], i: number): void {
  if (l[l.length - 1] !== i) l.push(i);
}

/** Key spaces: zones [0, nz), source/destination subnet slots [nz, nz + slots), then the extras. */
class Keys {
  readonly net4 = new LpmHash(4);
  readonly net6 = new LpmHash(6);
  slots = 0;
  constructor(private readonly nz: number) {}
  /** A key for one network (shared by every rule listing the same network). */
  net(c: { family: 4 | 6; addr: bigint; prefix: number }): number {
    const t = c.family === 4 ? this.net4 : this.net6;
    const slot = this.slots;
    const words = c.family === 4 ? [Number(c.addr)] : wordsOf(c.addr);
    const old = t.insert(words, c.prefix, slot);
    if (old >= 0) {
      t.insert(words, c.prefix, old);
      return this.nz + old;
    }
    this.slots++;
    return this.nz + slot;
  }
}

export class RuleIndex {
  // the cell table (see the constructor)
  private mask = 0;
  private tS = EMPTY;
  private tD = EMPTY;
  private tP = EMPTY;
  private tOff = EMPTY;
  private tLen = EMPTY;
  private pool = EMPTY;
  /** The rule table's hot row of every pool entry (HOT_STRIDE ints each), in pool order: the candidates
   * of a cell are read sequentially instead of one random row of the rule table each. */
  poolHot = EMPTY;
  /** Source keys some cell uses, by key + 1 (ANY is -1): the others need no probe. */
  private srcUsed = new Uint8Array(0);
  /** A Bloom filter (one hash: the top bits of the cell's hash) of the cells in use: small enough to
   * stay in cache, it spares most probes of the big table for cells that do not exist. */
  private readonly cellBits = new Uint32Array((1 << FILTER_BITS_LOG2) >>> 5);
  private readonly src: Keys;
  private readonly dst: Keys;
  private readonly ANY = -1;
  private readonly dstIfaceKey = new Map<string, number>();
  private readonly dstIfgroupKey = new Map<number, number>();
  // per-lookup scratch
  private readonly srcKeys = new Int32Array(ANC_STRIDE + 130 + 1);
  private readonly dstKeys = new Int32Array(ANC_STRIDE + 130 + 3);
  private readonly netHits = new Int32Array(130);

  constructor(
    table: RuleTable,
    private readonly zt: ZoneTable,
  ) {
    const rules = table.rules;
    const nz = zt.depth.length;
    this.src = new Keys(nz);
    this.dst = new Keys(nz);
    // dst_iface / dst_ifgroup keys live below -1 (ANY) so they never collide with zones or subnets
    let extra = -2;
    for (const r of rules) {
      for (const n of r.dstIface ?? []) if (!this.dstIfaceKey.has(n)) this.dstIfaceKey.set(n, extra--);
      for (const g of r.dstIfgroup ?? []) if (!this.dstIfgroupKey.has(g)) this.dstIfgroupKey.set(g, extra--);
    }
    const build = new Map<number, Map<number, CellBuilder>>();
    for (const r of rules) {
      const sk: number[] = [];
      if (r.srcZone === null && r.srcNet === null) sk.push(this.ANY);
      for (const z of r.srcZone ?? []) sk.push(z);
      for (const c of r.srcNet?.cidrs ?? []) sk.push(this.src.net(c));
      let dk: number[] = [];
      if (r.dstZone === null && r.dstNet === null && r.dstIface === null && r.dstIfgroup === null) {
        dk.push(this.ANY);
      }
      for (const z of r.dstZone ?? []) dk.push(z);
      for (const c of r.dstNet?.cidrs ?? []) dk.push(this.dst.net(c));
      for (const n of r.dstIface ?? []) dk.push(this.dstIfaceKey.get(n)!);
      for (const g of r.dstIfgroup ?? []) dk.push(this.dstIfgroupKey.get(g)!);
      if (sk.length * dk.length > MAX_CELLS_PER_RULE) dk = [this.ANY];
      for (const s of new Set(sk)) {
        let l2 = build.get(s);
        if (!l2) {
          l2 = new Map();
          build.set(s, l2);
        }
        for (const d of new Set(dk)) {
          let cell = l2.get(d);
          if (!cell) {
            cell = { byPort: new Map(), other: [] };
            l2.set(d, cell);
          }
          const ports = r.dstPort;
          let ranged = ports === null;
          if (ports !== null) {
            for (let i = 0; i < ports.length; i += 2) {
              if (ports[i] === ports[i + 1]) {
                let l = cell.byPort.get(ports[i]!);
                if (!l) {
                  l = [];
                  cell.byPort.set(ports[i]!, l);
                }
                pushOnce(l, r.index);
              } else {
                ranged = true;
              }
            }
          }
          if (ranged) pushOnce(cell.other, r.index);
        }
      }
    }
    // flatten into one open-addressing table keyed by (source key, destination key, port or -1 for
    // "other") whose values are slices of one pool: a probe is a few reads of typed arrays
    const entries: [number, number, number, number[]][] = [];
    for (const [sk2, l2b] of build) {
      for (const [d, c] of l2b) {
        if (c.other.length) entries.push([sk2, d, -1, c.other]);
        for (const [port, l] of c.byPort) entries.push([sk2, d, port, l]);
      }
    }
    let cap = 16;
    while (cap < entries.length * 2) cap *= 2;
    this.mask = cap - 1;
    this.tS = new Int32Array(cap);
    this.tD = new Int32Array(cap);
    this.tP = new Int32Array(cap).fill(EMPTY_SLOT);
    this.tOff = new Int32Array(cap);
    this.tLen = new Int32Array(cap);
    this.pool = new Int32Array(entries.reduce((n, e) => n + e[3].length, 0));
    this.srcUsed = new Uint8Array(nz + this.src.slots + 1);
    let off = 0;
    for (const [sk2, d, port, l] of entries) {
      let slot = cellHash(sk2, d, port) & this.mask;
      while (this.tP[slot] !== EMPTY_SLOT) slot = (slot + 1) & this.mask;
      this.tS[slot] = sk2;
      this.tD[slot] = d;
      this.tP[slot] = port;
      this.tOff[slot] = off;
      this.tLen[slot] = l.length;
      this.pool.set(l, off);
      off += l.length;
      this.srcUsed[sk2 + 1] = 1;
      const h = cellHash(sk2, d, port) >>> (32 - FILTER_BITS_LOG2);
      this.cellBits[h >>> 5]! |= 1 << (h & 31);
    }
    this.poolHot = new Int32Array(this.pool.length * HOT_STRIDE);
    for (let k = 0; k < this.pool.length; k++) {
      const r = this.pool[k]! * HOT_STRIDE;
      this.poolHot.set(table.hot.subarray(r, r + HOT_STRIDE), k * HOT_STRIDE);
    }
  }

  /** Visits the pool slice of cell (s, d, p), if it exists. */
  private probe(s: number, d: number, p: number, visit: CandidateVisitor): void {
    const m = this.mask;
    const tP = this.tP;
    const hash = cellHash(s, d, p);
    const f = hash >>> (32 - FILTER_BITS_LOG2);
    if ((this.cellBits[f >>> 5]! & (1 << (f & 31))) === 0) return;
    let slot = hash & m;
    for (;;) {
      const tp = tP[slot]!;
      if (tp === EMPTY_SLOT) return;
      if (tp === p && this.tS[slot] === s && this.tD[slot] === d) {
        visit(this.pool, this.tOff[slot]!, this.tLen[slot]!);
        return;
      }
      slot = (slot + 1) & m;
    }
  }

  /** Keys of one side for a connection: ANY, its zone and ancestors, rule subnets holding the address. */
  private keysOf(keys: Keys, z: number, a: ParsedAddr, out: Int32Array): number {
    let n = 0;
    out[n++] = this.ANY;
    if (z >= 0) {
      const d = this.zt.depth[z]!;
      const base = z * ANC_STRIDE;
      for (let k = 0; k < d; k++) out[n++] = this.zt.anc[base + k]!;
    }
    const t = a.family === 4 ? keys.net4 : a.family === 6 ? keys.net6 : null;
    if (t !== null) {
      const hits = t.collect(a, this.netHits);
      const nz = this.zt.depth.length;
      for (let k = 0; k < hits; k++) out[n++] = nz + this.netHits[k]!;
    }
    return n;
  }

  /**
   * Calls `visit(list)` for every candidate list of the connection. Lists hold rule indexes; the
   * union of the lists holds every rule that can match.
   */
  forEachCandidateList(q: Query, visit: CandidateVisitor): void {
    const ns = this.keysOf(this.src, q.srcZone, q.src, this.srcKeys);
    let nd = -1; // destination keys are computed once, on the first source key in use
    for (let i = 0; i < ns; i++) {
      const sk = this.srcKeys[i]!;
      if (this.srcUsed[sk + 1] !== 1) continue;
      if (nd < 0) {
        nd = this.keysOf(this.dst, q.dstZone, q.dst, this.dstKeys);
        if (q.dstLocal && q.iface !== null) {
          const k1 = this.dstIfaceKey.get(q.iface);
          if (k1 !== undefined) this.dstKeys[nd++] = k1;
          const k2 = this.dstIfgroupKey.get(q.ifgroup);
          if (k2 !== undefined) this.dstKeys[nd++] = k2;
        }
      }
      for (let j = 0; j < nd; j++) {
        const dk = this.dstKeys[j]!;
        this.probe(sk, dk, -1, visit);
        this.probe(sk, dk, q.dstPort, visit);
      }
    }
  }

  /** Number of candidate evaluations a lookup of `q` costs (for tests and the benchmark). */
  candidateCount(q: Query): number {
    let n = 0;
    this.forEachCandidateList(q, (_pool, _off, len) => {
      n += len;
    });
    return n;
  }
}
