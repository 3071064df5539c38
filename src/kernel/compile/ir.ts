// The Ruleset IR: everything the nft text says, as data. build.ts produces it from a Policy, render.ts
// is the only code that turns it into nft text (design.md, house style 5).
import type { DenyV4, DenyV6, Endpoint, Family, PolicySettings } from '../../policy/model.ts';
import type { Interval, IntervalSet } from './intervals.ts';
import type { Field, Score } from './variants.ts';
import type { LabelledRange } from './zones.ts';

export interface ZoneSetIR {
  name: string;
  /** The nft identifier part (see names.ts). */
  ident: string;
  id: number;
  last: number;
  /** Addresses whose longest-match zone is this zone (`zone_<ident>_v4`/`_v6`). */
  exact: Record<Family, IntervalSet>;
  /** ... this zone or a descendant (`zone_<ident>_tree_v4`/`_v6`). */
  tree: Record<Family, IntervalSet>;
}

/** One verdict-map lookup of a tier. `l4` restricts it to TCP/UDP ("ported": the key has ports) or to
 * everything else ("portless": ports are 0 there, so the port fields are left out of the key). */
export interface LookupIR {
  map: string;
  l4: 'any' | 'ported' | 'portless';
  /** The tier needs this family's ICMP (icmp type/code in the key). */
  icmp: boolean;
  /** dst_iface/dst_ifgroup: the destination is an address of the incoming interface. */
  fibLocal: boolean;
  fields: Field[];
  elements: { key: Interval[]; ruleId: number }[];
  /** Some element holds a range: an interval map (pipapo, cost grows with its size). Otherwise every
   * key is a point and the map is a hash (constant cost per lookup). */
  interval: boolean;
}

export interface TierIR {
  index: number;
  score: Score;
  lookups: LookupIR[];
}

export interface FamilyIR {
  family: Family;
  tiers: TierIR[];
  zoneRanges: LabelledRange[];
}

/** A rule as the decision sees it: the mark its tier lookups produce, and its service. */
export interface RuleActionIR {
  ruleId: number;
  service: string;
  sid: number;
  /** tproxyMark | ruleId. */
  mark: number;
  comment: string;
}

/** What a service does with the connections its rules send it (one chain per service). */
export interface ServiceChainIR {
  name: string;
  sid: number;
  kind: 'proxy' | 'forward' | 'deny';
  /** Forward and deny services with `logging: true`: each new connection's first packet goes to the
   * NFLOG group the daemon reads (src/kernel/nflog.ts), rate limited. Proxies log in the daemon. */
  logging?: boolean;
  /** Families the service can serve (a directed forward service only those of its target). */
  families: Family[];
  v4?: { host: string; port: number };
  v6?: { host: string; port: number };
  /** Per-source backstop of a proxy service's per-client limits (client-limits.ts): new TCP
   * connections above these are dropped before they reach tzorp. */
  clientLimits?: ClientLimitsIR;
}

export interface ClientLimitsIR {
  /** Concurrent connections per source address (`ct count over`), null = none. */
  maxConnections: number | null;
  /** New connections per source address (`limit rate over n/unit burst`), null = none. */
  rate: { n: number; unit: 'second' | 'minute' | 'hour'; burst: number; timeoutS: number } | null;
}

export interface ForwardServiceIR {
  name: string;
  sid: number;
  masquerade: boolean;
  dnat: Partial<Record<Family, Endpoint>>;
}

export interface DenyServiceIR {
  name: string;
  sid: number;
  v4: DenyV4;
  v6: DenyV6;
}

/** One conjunction of nft matches (management and bypass rules expand to several). */
export interface MatchIR {
  family: Family;
  iifname?: string[];
  iifgroup?: number[];
  reqid?: number[];
  l4proto?: number[];
  icmpType?: number[];
  icmpCode?: number[];
  /** Ports imply TCP/UDP in management and bypass rules. */
  sport?: Interval[];
  dport?: Interval[];
  saddr?: Interval[];
  daddr?: Interval[];
  srcZoneSet?: string;
  dstZoneSet?: string;
  fibLocal?: boolean;
  comment: string;
}

export interface RulesetIR {
  settings: PolicySettings;
  bypassValue: number;
  ifnames: string[];
  zones: ZoneSetIR[];
  families: Record<Family, FamilyIR>;
  actions: RuleActionIR[];
  serviceChains: ServiceChainIR[];
  forwards: ForwardServiceIR[];
  denies: DenyServiceIR[];
  management: MatchIR[];
  bypass: MatchIR[];
  /** `block:` entries: new connections dropped after bypass and management, before any rule. */
  block: MatchIR[];
  /** Header comment lines (policy source, counts). */
  header: string[];
  /** The user's declarations, verbatim, inside the table (CompileOptions.userRules). */
  userRules: string | null;
}
