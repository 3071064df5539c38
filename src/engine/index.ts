// Public surface of the engine: zone lookup (longest-prefix match, IPv4/IPv6), KZorp best-match rule
// lookup with explanation, zone flattening for the kernel compiler, and the score pieces other
// implementations of the same semantics reuse or test against.
export { formatAddress, ParsedAddr, parseAddress } from './address.ts';
export { ConditionsMatcher } from './conditions.ts';
export { outrankedDenies } from './deny-lint.ts';
export type { Candidate, Decision, Explanation } from './engine.ts';
export { Engine } from './engine.ts';
export { type Sample, sampleConnections } from './samples.ts';
export type { DimensionResult, MatchGroup, ScoreField, ScoreTuple } from './score.ts';
export {
  decidingField,
  MATCH_GROUPS,
  PROTO_ICMP,
  PROTO_ICMPV6,
  PROTO_TCP,
  PROTO_UDP,
  packScore,
  SCORE_FIELDS,
  unpackScore,
  zeroScore,
} from './score.ts';
export type { ValuedPrefix, ZoneInterval } from './zone-trie.ts';
export {
  comparePrefixes,
  flattenPrefixes,
  flattenZones,
  PrefixTrie,
  sameNetworks,
  sortPrefixes,
  sweepNumbersV4,
  sweepPrefixes,
  ZoneTrie,
  zoneAndDescendants,
  zoneIntervals,
  zoneRanges,
  zoneSubnetsFlattened,
} from './zone-trie.ts';
