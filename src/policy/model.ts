// The resolved policy model: what the loader produces after validation and what every later stage
// (engine, kernel compiler, daemon, proxies) consumes. Pure data, no behaviour. Names follow the
// policy language (docs/policy.md); the loader maps the YAML's snake_case onto these camelCase fields.
//
// Invariants the loader guarantees (later stages rely on them and do not re-check):
// - every zone/service name a rule, service or zone refers to exists;
// - zone parents form a forest (no cycles), depth <= MAX_ZONE_DEPTH;
// - no network (masked prefix, length) appears twice, across all zones;
// - rule ids are unique positive integers; rules are sorted by id;
// - CIDRs are masked (host bits zero) and carry their family;
// - ports are 0..65535 with lo <= hi.

/** Where something came from in the policy file (1-based line and column). */
export interface SourcePos {
  file: string;
  line: number;
  col: number;
}

export type Family = 4 | 6;

/** A masked network. `addr` is the network address as an unsigned integer (32 or 128 bits). */
export interface Cidr {
  family: Family;
  addr: bigint;
  prefix: number;
  /** Canonical text, e.g. "198.18.10.0/23", "2001:db8:10::/48". */
  text: string;
}

export interface PortRange {
  lo: number;
  hi: number;
}

/** KZorp limits zone depth to < 32 (a 5-bit score field); depth counts from 1 at a root. */
export const MAX_ZONE_DEPTH = 31;

export interface Zone {
  name: string;
  parent: string | null;
  /** Names of direct children, sorted. */
  children: string[];
  /** 1 for a root zone, parent.depth + 1 otherwise (KZorp's kernel depth). */
  depth: number;
  addresses: Cidr[];
  pos: SourcePos;
  /** Free text from the policy (docs, explain output). */
  description?: string;
}

/** An address and port a router or chainer connects to. */
export interface Endpoint {
  family: Family;
  host: string; // canonical text of the address
  port: number;
}

/** Zorp's forge_port: the source port of the server-side connection. */
export type ForgePort = 'any' | 'exact' | 'random' | number;

export type Router =
  | { type: 'transparent'; forcedPort: number | null; forgeAddr: boolean; forgePort: ForgePort }
  | { type: 'directed'; targets: Endpoint[]; forgeAddr: boolean; forgePort: ForgePort }
  | { type: 'inband'; forgeAddr: boolean; forgePort: ForgePort; defaultPort: number | null };

export type Chainer =
  | { type: 'connect'; timeoutConnectMs: number }
  | { type: 'failover'; timeoutConnectMs: number; timeoutStateMs: number }
  | { type: 'round_robin'; timeoutConnectMs: number; timeoutStateMs: number };

export type DenyV4 =
  | 'drop'
  | 'tcp-reset'
  | 'icmp-net-unreachable'
  | 'icmp-host-unreachable'
  | 'icmp-proto-unreachable'
  | 'icmp-port-unreachable'
  | 'icmp-net-prohibited'
  | 'icmp-host-prohibited'
  | 'icmp-admin-prohibited';

export type DenyV6 =
  | 'drop'
  | 'tcp-reset'
  | 'icmp-no-route'
  | 'icmp-admin-prohibited'
  | 'icmp-addr-unreachable'
  | 'icmp-port-unreachable';

export const DENY_V4: readonly DenyV4[] = [
  'drop',
  'tcp-reset',
  'icmp-net-unreachable',
  'icmp-host-unreachable',
  'icmp-proto-unreachable',
  'icmp-port-unreachable',
  'icmp-net-prohibited',
  'icmp-host-prohibited',
  'icmp-admin-prohibited',
];
export const DENY_V6: readonly DenyV6[] = [
  'drop',
  'tcp-reset',
  'icmp-no-route',
  'icmp-admin-prohibited',
  'icmp-addr-unreachable',
  'icmp-port-unreachable',
];

interface ServiceBase {
  name: string;
  /** Small positive integer, stable for a name within one policy: 1-based index in name order. It is
   * what the kernel keeps in the conntrack mark (see PolicySettings.serviceMarkMask). */
  id: number;
  pos: SourcePos;
  /** Log the kernel's decision for this service (Zorp's LOGGING flag). Default true. */
  logging: boolean;
  /** Free text from the policy (docs, explain output). */
  description?: string;
}

export interface ProxyService extends ServiceBase {
  type: 'proxy';
  /** Proxy module: 'plug', 'http', 'ftp', ... */
  proxy: string;
  router: Router;
  chainer: Chainer;
  /** Per-proxy options, validated by the proxy module's own schema (snake_case keys as written). */
  options: Record<string, unknown>;
  /** Server zone or one of its ancestors must be listed; empty = no restriction. */
  limitTargetZonesTo: string[];
  /** Concurrent sessions of this service; 0 = unlimited. */
  maxSessions: number;
  /** Concurrent sessions of this service from one client address; 0 or absent = unlimited. */
  maxSessionsPerClient?: number;
  /** New sessions of this service one client address may start: at most `rate` in any `perSeconds`
   * seconds (a token bucket of `rate` refilled over `perSeconds`); null or absent = unlimited. */
  newSessionsPerClient?: { rate: number; perSeconds: number } | null;
  /** Where the daemon listens for this service's diverted connections; null = allocated (defaults.ts). */
  listenPort: number | null;
  /** Let the native splice relay copy this service's sessions once they only copy bytes (policy
   * `native_relay`, default true; absent = true). `tzorp run --no-native-relay` turns it off for all. */
  nativeRelay?: boolean;
  /** Where each option was written: key path joined with '.' ("request.GET") -> position, so an
   * option error from a proxy module can name file:line:column. */
  optionPositions?: Map<string, SourcePos>;
  /** The service's TLS layer (docs/tls.md); absent = the proxy sees the bytes as they come. */
  tls?: TlsPolicy;
}

export const TLS_MODES = ['passthrough', 'inspect'] as const;
export type TlsMode = (typeof TLS_MODES)[number];
export const TLS_MIN_VERSIONS = ['TLSv1.2', 'TLSv1.3'] as const;
export type TlsMinVersion = (typeof TLS_MIN_VERSIONS)[number];
export const TLS_SNI_MISSING = ['accept', 'reject'] as const;

/** A proxy service's `tls:` block, resolved. */
export interface TlsPolicy {
  mode: TlsMode;
  /** inspect: the CA that signs the certificates shown to clients (file paths). */
  ca: { cert: string; key: string } | null;
  /** inspect: verify the server's certificate (default true). */
  serverVerify: boolean;
  /** inspect: trust anchors for server verification; null = the system bundle. */
  serverCaFile: string | null;
  sni: {
    /** Globs (`*` any run of characters, `?` one), lower case; empty = every name may pass. */
    allow: string[];
    /** Globs; a name matching one is refused even when allowed. */
    deny: string[];
    /** A ClientHello without a server name: accepted or refused (default: reject when `allow` is
     * given, else accept). */
    missing: (typeof TLS_SNI_MISSING)[number];
  };
  /** The lowest version a client may offer as its highest (default TLSv1.2). */
  minVersion: TlsMinVersion;
  /** FTP only: TLS from the first byte (implicit FTPS) rather than after AUTH TLS; 'auto' (default):
   * when the client dialled port 990. */
  implicit?: boolean | 'auto';
  pos: SourcePos;
  /** Where the files were named (`ca.cert`, `ca.key`, `server_ca_file`): a file that cannot be used
   * is reported there. */
  filePos?: { cert?: SourcePos; key?: SourcePos; serverCaFile?: SourcePos };
}

export interface ForwardService extends ServiceBase {
  type: 'forward';
  /** transparent (to the original destination) or directed (DNAT to the single target). */
  router: Extract<Router, { type: 'transparent' } | { type: 'directed' }>;
}

export interface DenyService extends ServiceBase {
  type: 'deny';
  ipv4: DenyV4;
  ipv6: DenyV6;
}

export type Service = ProxyService | ForwardService | DenyService;
export type ServiceType = Service['type'];

/** The match conditions shared by rules, management rules and bypass rules. An absent (undefined)
 * dimension is a wildcard; a present one is a non-empty list whose values are OR-ed. */
export interface Conditions {
  reqid?: number[];
  iface?: string[];
  ifgroup?: number[];
  /** IP protocol numbers (tcp 6, udp 17, icmp 1, icmpv6 58). */
  proto?: number[];
  icmpType?: number[];
  icmpCode?: number[];
  srcPort?: PortRange[];
  dstPort?: PortRange[];
  srcSubnet?: Cidr[];
  srcZone?: string[];
  dstSubnet?: Cidr[];
  dstIface?: string[];
  dstIfgroup?: number[];
  dstZone?: string[];
}

export const DIMENSIONS = [
  'reqid',
  'iface',
  'ifgroup',
  'proto',
  'icmpType',
  'icmpCode',
  'srcPort',
  'dstPort',
  'srcSubnet',
  'srcZone',
  'dstSubnet',
  'dstIface',
  'dstIfgroup',
  'dstZone',
] as const satisfies readonly (keyof Conditions)[];
export type Dimension = (typeof DIMENSIONS)[number];

export interface Rule extends Conditions {
  id: number;
  service: string;
  /** Free text shown in explain output and in nft comments. */
  description?: string;
  pos: SourcePos;
}

/** Traffic to the firewall itself that input accepts (e.g. ssh from an admin zone). */
export interface ManagementRule extends Conditions {
  description?: string;
  pos: SourcePos;
}

/** Traffic accepted untouched before any decision (the seed's "rules to bypass KZorp"). */
export interface BypassRule extends Conditions {
  description?: string;
  pos: SourcePos;
}

/** Traffic dropped before any rule is consulted (a blocklist: `block:`). It wins over every rule;
 * bypass entries and management (for the firewall's own address) come before it. */
export interface BlockRule extends Conditions {
  description?: string;
  pos: SourcePos;
}

export interface PolicySettings {
  /** Mark bit(s) that send a packet to the local (tproxy) routing table. Zorp: 0x80000000. */
  tproxyMark: number;
  /** Bits of the conntrack mark that carry the service id. Must not overlap tproxyMark. */
  serviceMarkMask: number;
  /** Routing table id for `local default dev lo`. */
  routingTable: number;
  /** Where proxy listeners are bound (the tproxy target): IPv4 and IPv6 addresses. */
  listenV4: string;
  listenV6: string;
  /** First port of the default listener allocation (service i gets listenPortBase + i - 1). */
  listenPortBase: number;
  /** Which zones the table publishes as named sets for the user's own nft rules (`zone_<name>_v4`...):
   * those the ruleset and the user rules reference, every zone, or these zones plus the referenced. */
  publishZoneSets: 'referenced' | 'all' | string[];
  /** `user_rules`: a file of the user's own nft declarations that the daemon places inside its table
   * (as `--user-rules` does), as written: relative to the policy file's directory. */
  userRules?: string;
}

export interface Policy {
  zones: Map<string, Zone>;
  services: Map<string, Service>;
  /** Sorted by id. */
  rules: Rule[];
  management: ManagementRule[];
  bypass: BypassRule[];
  block: BlockRule[];
  settings: PolicySettings;
  /** File it was loaded from and a sha256 of its bytes (hex). */
  source: { file: string; sha256: string };
}

/** What the decision is asked about: one new connection (first packet). */
export interface Connection {
  /** IP protocol number. */
  proto: number;
  src: string;
  dst: string;
  srcPort?: number; // 0 for non-TCP/UDP
  dstPort?: number;
  /** Incoming interface name and group; absent = locally generated (iface dimension never matches). */
  iface?: string;
  ifgroup?: number;
  /** IPsec SA reqids of the packet's secpath. */
  reqids?: number[];
  /** True when the destination address is configured on the incoming interface (for dst_iface). */
  dstLocal?: boolean;
  icmpType?: number;
  icmpCode?: number;
}
