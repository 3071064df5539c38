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
import type { ParsedAddr } from './address.ts';
import { ANC_STRIDE, type CompiledRule, type Query, type ZoneTable } from './score.ts';
import { PrefixTrie } from './zone-trie.ts';

const EMPTY = new Int32Array(0);
/** A rule whose source × destination keys exceed this is filed under its source keys × ANY instead
 * (bounded index size for rules with long zone lists; they are still found and fully checked). */
const MAX_CELLS_PER_RULE = 256;

/** The rules of one (source key, destination key) pair, split by destination port. */
interface Cell {
  /** Rules listing this single port, by port. */
  byPort: Map<number, Int32Array> | null;
  /** Rules with a port range or no port condition: candidates for every port. */
  other: Int32Array;
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
  readonly net4 = new PrefixTrie(4);
  readonly net6 = new PrefixTrie(6);
  private slots = 0;
  constructor(private readonly nz: number) {}
  /** A key for one network (shared by every rule listing the same network). */
  net(c: { family: 4 | 6; addr: bigint; prefix: number }): number {
    const t = c.family === 4 ? this.net4 : this.net6;
    const slot = this.slots;
    const old = t.insertBig(c.addr, c.prefix, slot);
    if (old >= 0) {
      t.insertBig(c.addr, c.prefix, old);
      return this.nz + old;
    }
    this.slots++;
    return this.nz + slot;
  }
}

export class RuleIndex {
  private readonly tree = new Map<number, Map<number, Cell>>();
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
    readonly rules: CompiledRule[],
    private readonly zt: ZoneTable,
  ) {
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
    for (const [s, l2b] of build) {
      const l2 = new Map<number, Cell>();
      for (const [d, c] of l2b) {
        let byPort: Map<number, Int32Array> | null = null;
        if (c.byPort.size > 0) {
          byPort = new Map();
          for (const [p, l] of c.byPort) byPort.set(p, Int32Array.from(l));
        }
        l2.set(d, { byPort, other: c.other.length ? Int32Array.from(c.other) : EMPTY });
      }
      this.tree.set(s, l2);
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
  forEachCandidateList(q: Query, visit: (l: Int32Array) => void): void {
    const ns = this.keysOf(this.src, q.srcZone, q.src, this.srcKeys);
    let nd = -1; // destination keys are computed once, on the first source branch that exists
    for (let i = 0; i < ns; i++) {
      const l2 = this.tree.get(this.srcKeys[i]!);
      if (l2 === undefined) continue;
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
        const cell = l2.get(this.dstKeys[j]!);
        if (cell === undefined) continue;
        if (cell.other.length) visit(cell.other);
        if (cell.byPort !== null) {
          const l = cell.byPort.get(q.dstPort);
          if (l !== undefined) visit(l);
        }
      }
    }
  }

  /** Number of candidate evaluations a lookup of `q` costs (for tests and the benchmark). */
  candidateCount(q: Query): number {
    let n = 0;
    this.forEachCandidateList(q, (l) => {
      n += l.length;
    });
    return n;
  }
}
