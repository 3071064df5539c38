// The decision engine: which zones a connection is between and which rule (and so which service)
// KZorp's best match picks for it (zorp-semantics §2-3; issue 2 item 3). Pure: no I/O.
import { TzorpError } from '../errors.ts';
import type { Connection, Policy, Rule, Service, ServiceType, Zone } from '../policy/model.ts';
import { ParsedAddr, parseAddressInto } from './address.ts';
import { RuleIndex } from './rule-index.ts';
import {
  ANC_STRIDE,
  buildRuleTable,
  type CompiledRule,
  compileRule,
  type DimensionResult,
  decidingField,
  describeRule,
  evalRow,
  evalRule,
  HOT_STRIDE,
  type MatchGroup,
  PROTO_ICMP,
  PROTO_ICMPV6,
  PROTO_TCP,
  PROTO_UDP,
  Query,
  type RuleTable,
  type ScoreField,
  type ScoreTuple,
  type ZoneTable,
} from './score.ts';
import { ZoneTrie } from './zone-trie.ts';

export interface Decision {
  clientZone: string | null;
  serverZone: string | null;
  rule: Rule | null;
  service: Service | null;
}

/** One rule's part in an explanation. */
export interface Candidate {
  rule: number;
  service: string;
  /** The winner; a matching rule that lost; or a rule that does not match. */
  outcome: 'winner' | 'lost' | 'no-match';
  matched: boolean;
  /** Groups that failed (first one decides, all are listed): a near miss has exactly one. */
  failed: MatchGroup[];
  score: ScoreTuple | null;
  /** For a losing match: the strongest score field where the winner is higher, or 'id' on a tie. */
  decidedBy: ScoreField | 'id' | null;
  /** One sentence saying why. */
  reason: string;
  dimensions: DimensionResult[];
}

export interface Explanation extends Decision {
  serviceType: ServiceType | null;
  /** The connection as the engine saw it (normalised: ports 0 for non-TCP/UDP, ICMP only for ICMP). */
  connection: {
    proto: number;
    src: string;
    dst: string;
    srcPort: number;
    dstPort: number;
    iface: string | null;
    ifgroup: number | null;
    reqids: number[];
    dstLocal: boolean;
    icmpType: number | null;
    icmpCode: number | null;
  };
  /** Every rule of the policy, winner first, then the other matches best first, then the rest by id. */
  candidates: Candidate[];
}

function bad(msg: string): TzorpError {
  return new TzorpError('ENGINE_BAD_CONNECTION', msg);
}

function checkInt(v: unknown, what: string, max: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > max) {
    throw bad(`${what} must be an integer 0..${max}, got ${String(v)}`);
  }
  return v;
}

const FIELD_LABEL: Record<ScoreField, string> = {
  iface: 'interface (reqid > iface > ifgroup)',
  icmpCode: 'ICMP code',
  icmpType: 'ICMP type',
  proto: 'protocol',
  srcPort: 'source port (single > range)',
  dstPort: 'destination port (single > range)',
  srcSubnet: 'source subnet (longer prefix)',
  srcZone: 'source zone (deeper)',
  dstSubnet: 'destination subnet (longer prefix)',
  dstIface: 'destination interface (name > group)',
  dstZone: 'destination zone (deeper)',
};

export class Engine {
  readonly policy: Policy;
  readonly zoneTrie: ZoneTrie;
  readonly rules: CompiledRule[];
  private readonly zt: ZoneTable;
  private readonly index: RuleIndex;
  private readonly table: RuleTable;
  private readonly q = new Query();

  constructor(policy: Policy) {
    this.policy = policy;
    this.zoneTrie = ZoneTrie.fromPolicy(policy);
    const zones = this.zoneTrie.zones;
    const zoneIndex = new Map<string, number>();
    zones.forEach((z, i) => {
      zoneIndex.set(z.name, i);
    });
    const depth = new Int32Array(zones.length);
    const anc = new Int32Array(zones.length * ANC_STRIDE).fill(-1);
    zones.forEach((z, i) => {
      // walk up to the root; the loader guarantees no cycle and depth <= MAX_ZONE_DEPTH, this bound only
      // keeps a hand-built policy from looping
      const chain: number[] = [];
      let cur: Zone | undefined = z;
      while (cur && chain.length < ANC_STRIDE) {
        chain.push(zoneIndex.get(cur.name)!);
        cur = cur.parent === null ? undefined : policy.zones.get(cur.parent);
      }
      chain.reverse();
      depth[i] = chain.length;
      chain.forEach((a, d) => {
        anc[i * ANC_STRIDE + d] = a;
      });
    });
    this.zt = { depth, anc, names: zones.map((z) => z.name) };
    // rules in id order: the index order is the tie-break order
    const sorted = [...policy.rules].sort((a, b) => a.id - b.id);
    this.rules = sorted.map((r, i) => compileRule(r, i, zoneIndex, policy.services, (z) => depth[z]!));
    this.table = buildRuleTable(this.rules);
    this.index = new RuleIndex(this.table, this.zt);
    this.q.src = new ParsedAddr();
    this.q.dst = new ParsedAddr();
  }

  /** The zone of an address (longest-prefix match, per family); null when none. */
  zoneOf(addr: string): Zone | null {
    const a = new ParsedAddr();
    if (!parseAddressInto(addr, a)) throw bad(`not an IP address: ${JSON.stringify(addr)}`);
    const i = this.zoneTrie.lookupIndex(a);
    return i < 0 ? null : this.zoneTrie.zones[i]!;
  }

  /** Fills `q` from a connection; throws ENGINE_BAD_CONNECTION on malformed input. */
  private prepare(conn: Connection, q: Query): void {
    q.proto = checkInt(conn.proto, 'proto', 255);
    if (!parseAddressInto(conn.src, q.src))
      throw bad(`src is not an IP address: ${JSON.stringify(conn.src)}`);
    if (!parseAddressInto(conn.dst, q.dst))
      throw bad(`dst is not an IP address: ${JSON.stringify(conn.dst)}`);
    q.srcZone = this.zoneTrie.lookupIndex(q.src);
    q.dstZone = this.zoneTrie.lookupIndex(q.dst);
    const ported = q.proto === PROTO_TCP || q.proto === PROTO_UDP;
    q.srcPort = ported && conn.srcPort !== undefined ? checkInt(conn.srcPort, 'srcPort', 65535) : 0;
    q.dstPort = ported && conn.dstPort !== undefined ? checkInt(conn.dstPort, 'dstPort', 65535) : 0;
    const icmp = q.proto === PROTO_ICMP || q.proto === PROTO_ICMPV6;
    q.icmpType = icmp && conn.icmpType !== undefined ? checkInt(conn.icmpType, 'icmpType', 255) : -1;
    q.icmpCode = icmp && conn.icmpCode !== undefined ? checkInt(conn.icmpCode, 'icmpCode', 255) : -1;
    if (conn.iface !== undefined && conn.iface !== null) {
      if (typeof conn.iface !== 'string' || conn.iface === '') throw bad('iface must be a non-empty string');
      q.iface = conn.iface;
      q.ifgroup = conn.ifgroup !== undefined ? checkInt(conn.ifgroup, 'ifgroup', 0xffffffff) : 0;
    } else {
      q.iface = null;
      q.ifgroup = -1;
    }
    q.reqids = conn.reqids && conn.reqids.length > 0 ? conn.reqids : null;
    q.dstLocal = conn.dstLocal === true;
  }

  // best-match state of the running lookup (a closure per lookup would allocate)
  private bestIdx = -1;
  private bestScore = -1;
  private curQ: Query = this.q;
  private readonly visit = (pool: Int32Array, off: number, len: number): void => {
    const rules = this.rules;
    const hot = this.index.poolHot;
    const q = this.curQ;
    const zt = this.zt;
    for (let j = off; j < off + len; j++) {
      const i = pool[j]!;
      const s = evalRow(hot, j * HOT_STRIDE, rules, i, q, zt);
      // higher score wins; on equal score the lower rule id (= lower index) wins
      if (s > this.bestScore || (s === this.bestScore && s >= 0 && i < this.bestIdx)) {
        this.bestScore = s;
        this.bestIdx = i;
      }
    }
  };

  /** Index of the best-matching rule for a prepared query, or -1. */
  private best(q: Query): number {
    this.bestIdx = -1;
    this.bestScore = -1;
    this.curQ = q;
    this.index.forEachCandidateList(q, this.visit);
    return this.bestIdx;
  }

  /** How many rule evaluations the index needs for a connection (the rest are never looked at). */
  candidateCount(conn: Connection): number {
    const q = new Query();
    q.src = new ParsedAddr();
    q.dst = new ParsedAddr();
    this.prepare(conn, q);
    return this.index.candidateCount(q);
  }

  decide(conn: Connection): Decision {
    const q = this.q;
    this.prepare(conn, q);
    const i = this.best(q);
    const r = i < 0 ? null : this.rules[i]!;
    return {
      clientZone: q.srcZone < 0 ? null : this.zt.names[q.srcZone]!,
      serverZone: q.dstZone < 0 ? null : this.zt.names[q.dstZone]!,
      rule: r === null ? null : r.rule,
      service: r === null ? null : r.service,
    };
  }

  /** The decision plus every rule's per-dimension result and why the winner won. */
  explain(conn: Connection): Explanation {
    const q = new Query();
    q.src = new ParsedAddr();
    q.dst = new ParsedAddr();
    this.prepare(conn, q);
    const bestIdx = this.best(q);
    const descs = this.rules.map((r) => describeRule(r, q, this.zt, this.table));
    const winner = bestIdx < 0 ? null : this.rules[bestIdx]!;
    const winScore = bestIdx < 0 ? null : descs[bestIdx]!.score;
    const candidates: Candidate[] = this.rules.map((r, i) => {
      const d = descs[i]!;
      let outcome: Candidate['outcome'];
      let decidedBy: Candidate['decidedBy'] = null;
      let reason: string;
      if (!d.matched) {
        outcome = 'no-match';
        const miss = d.dimensions.filter((x) => x.status === 'miss').map((x) => x.dimension);
        reason = `does not match: ${d.failed.join(', ')} (${miss.join(', ')} not satisfied${
          d.failed.includes('iface') && q.iface === null ? '; no incoming interface was given (--iface)' : ''
        })`;
      } else if (i === bestIdx) {
        outcome = 'winner';
        const others = descs.filter((x, j) => x.matched && j !== i).length;
        reason = others === 0 ? 'the only matching rule' : `best score of ${others + 1} matching rules`;
      } else {
        outcome = 'lost';
        const f = decidingField(winScore!, d.score!);
        if (f === null) {
          decidedBy = 'id';
          reason = `same score as rule ${winner!.id}; the lower id wins`;
        } else {
          decidedBy = f;
          reason = `rule ${winner!.id} is more specific in ${FIELD_LABEL[f]}: ${winScore![f]} > ${d.score![f]}`;
        }
      }
      return {
        rule: r.id,
        service: r.rule.service,
        outcome,
        matched: d.matched,
        failed: d.failed,
        score: d.score,
        decidedBy,
        reason,
        dimensions: d.dimensions,
      };
    });
    const order = (c: Candidate): number => (c.outcome === 'winner' ? 0 : c.outcome === 'lost' ? 1 : 2);
    const packedOf = new Map(this.rules.map((r) => [r.id, evalRule(r, q, this.zt, this.table)]));
    candidates.sort(
      (a, b) => order(a) - order(b) || packedOf.get(b.rule)! - packedOf.get(a.rule)! || a.rule - b.rule,
    );
    return {
      clientZone: q.srcZone < 0 ? null : this.zt.names[q.srcZone]!,
      serverZone: q.dstZone < 0 ? null : this.zt.names[q.dstZone]!,
      rule: winner?.rule ?? null,
      service: winner?.service ?? null,
      serviceType: winner?.service?.type ?? null,
      connection: {
        proto: q.proto,
        src: q.src.toString(),
        dst: q.dst.toString(),
        srcPort: q.srcPort,
        dstPort: q.dstPort,
        iface: q.iface,
        ifgroup: q.iface === null ? null : q.ifgroup,
        reqids: q.reqids ?? [],
        dstLocal: q.dstLocal,
        icmpType: q.icmpType < 0 ? null : q.icmpType,
        icmpCode: q.icmpCode < 0 ? null : q.icmpCode,
      },
      candidates,
    };
  }

  /** The packed score of one rule (by id) for a connection, -1 when it does not match (for
   * differential tests of other implementations of the same semantics). */
  scoreOf(ruleId: number, conn: Connection): number {
    const q = new Query();
    q.src = new ParsedAddr();
    q.dst = new ParsedAddr();
    this.prepare(conn, q);
    const r = this.rules.find((x) => x.id === ruleId);
    return r === undefined ? -1 : evalRule(r, q, this.zt, this.table);
  }
}
