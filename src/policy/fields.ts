// The field names of the policy language, in one place. The loader checks against these lists (unknown
// field errors, "did you mean"), schema.ts generates the JSON Schema from them, and the tests check that
// docs/policy.md and the examples agree. Names are part of the public interface: keep them stable.
import type { Dimension } from './model.ts';

export const TOP_FIELDS = [
  'zones',
  'services',
  'rules',
  'management',
  'bypass',
  'block',
  'settings',
] as const;

export const ZONE_FIELDS = ['addresses', 'parent', 'description'] as const;

export const SERVICE_TYPES = ['proxy', 'forward', 'deny'] as const;
export const SERVICE_COMMON_FIELDS = ['type', 'logging', 'description'] as const;
export const PROXY_SERVICE_FIELDS = [
  'proxy',
  'router',
  'chainer',
  'options',
  'limit_target_zones_to',
  'max_sessions',
  'max_sessions_per_client',
  'new_sessions_per_client',
  'listen_port',
  'tls',
  'native_relay',
] as const;

/** Fields of a proxy service's `tls:` block, and of its `sni:` and `ca:` mappings. */
export const TLS_FIELDS = [
  'mode',
  'ca',
  'server_verify',
  'server_ca_file',
  'sni',
  'min_version',
  'implicit',
] as const;
export const TLS_SNI_FIELDS = ['allow', 'deny', 'missing'] as const;
export const TLS_CA_FIELDS = ['cert', 'key'] as const;
/** `forge_addr` may also be given on a forward service itself (shorthand for router.forge_addr). */
export const FORWARD_SERVICE_FIELDS = ['router', 'forge_addr'] as const;
export const DENY_SERVICE_FIELDS = ['ipv4', 'ipv6'] as const;

export const ROUTER_TYPES = ['transparent', 'directed', 'inband'] as const;
export const ROUTER_FIELDS = {
  transparent: ['type', 'forced_port', 'forge_addr', 'forge_port'],
  directed: ['type', 'targets', 'forge_addr', 'forge_port'],
  inband: ['type', 'forge_addr', 'forge_port', 'default_port'],
} as const satisfies Record<(typeof ROUTER_TYPES)[number], readonly string[]>;
export const FORGE_PORT_WORDS = ['any', 'exact', 'random'] as const;

export const CHAINER_TYPES = ['connect', 'failover', 'round_robin'] as const;
export const CHAINER_FIELDS = {
  connect: ['type', 'timeout_connect'],
  failover: ['type', 'timeout_connect', 'timeout_state'],
  round_robin: ['type', 'timeout_connect', 'timeout_state'],
} as const satisfies Record<(typeof CHAINER_TYPES)[number], readonly string[]>;

/** Rule dimensions: policy name -> model field. */
export const CONDITION_FIELDS = {
  reqid: 'reqid',
  iface: 'iface',
  ifgroup: 'ifgroup',
  proto: 'proto',
  icmp_type: 'icmpType',
  icmp_code: 'icmpCode',
  src_port: 'srcPort',
  dst_port: 'dstPort',
  src_subnet: 'srcSubnet',
  src_zone: 'srcZone',
  dst_subnet: 'dstSubnet',
  dst_iface: 'dstIface',
  dst_ifgroup: 'dstIfgroup',
  dst_zone: 'dstZone',
} as const satisfies Record<string, Dimension>;
export type ConditionField = keyof typeof CONDITION_FIELDS;
export const CONDITION_NAMES = Object.keys(CONDITION_FIELDS) as ConditionField[];

export const RULE_FIELDS = ['id', 'service', 'description', ...CONDITION_NAMES] as const;
export const MANAGEMENT_FIELDS = ['description', ...CONDITION_NAMES] as const;
export const BYPASS_FIELDS = MANAGEMENT_FIELDS;

export const SETTINGS_FIELDS = [
  'tproxy_mark',
  'service_mark_mask',
  'routing_table',
  'listen_v4',
  'listen_v6',
  'listen_port_base',
  'publish_zone_sets',
  'user_rules',
] as const;

/** Protocol names accepted in `proto` (IANA protocol numbers). */
export const PROTO_NAMES: Readonly<Record<string, number>> = {
  icmp: 1,
  tcp: 6,
  udp: 17,
  gre: 47,
  esp: 50,
  ah: 51,
  icmpv6: 58,
  sctp: 132,
  udplite: 136,
};

/** Zone and service names: usable unquoted as nft identifiers (`zone_<name>_v4` set names). */
export const NAME_PATTERN = /^[A-Za-z_][A-Za-z0-9_.-]*$/;
/** Longest zone/service name, in characters: nft set names (NFT_SET_MAXNAMELEN 256) are built from it. */
export const MAX_NAME_CHARS = 64;
/** Linux IFNAMSIZ 16 including the terminating NUL. */
export const MAX_IFNAME_CHARS = 15;
