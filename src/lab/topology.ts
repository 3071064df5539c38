// The lab's network: which namespaces exist, how they are linked, and every address, as plain data.
// `tzorp lab up` turns it into `ip` commands (setupScripts); the docs, the demo and the tests read the
// addresses from here, so there is one place to change them. Addresses are chosen to fall into the
// zones of examples/policy.yaml (test/unit/lab/topology.test.ts checks that with the engine):
//
//   client  eth0 198.18.10.10/24  2001:db8:10::10/64          zone clients
//           + 198.18.30.10, 2001:db8:30::10 (routed by fw)   zone admin
//      │
//   fw      eth0 198.18.10.1/24   2001:db8:10::1/64
//           eth1 198.18.20.1/24   2001:db8:20::1/64
//           eth2 198.19.0.1/24    2001:db8:ff::1/64            tzorp runs here
//      │                                        │
//   server  eth0 198.18.20.10/24  2001:db8:20::10/64          outside  eth0 198.19.0.10/24  2001:db8:ff::10/64
//           answers for all of 198.18.21.0/24 and                       zone internet
//           2001:db8:20:21::/64 (zone children servers.*)
//
// The server answers for a whole range ("AnyIP": a `local` route on lo) so every child zone of
// `servers` (servers.audit = 198.18.21.1, ...) has a real host behind it without listing them here.
// Every namespace is private to one lab, so two labs with different names can run side by side; only
// the namespace names differ. Nothing is ever attached to the host's own namespace.

export type NodeRole = 'client' | 'fw' | 'server' | 'outside';
export const NODE_ROLES: readonly NodeRole[] = ['client', 'fw', 'server', 'outside'];

export interface LabIface {
  name: string;
  /** Addresses with prefix length, IPv4 and IPv6. */
  addrs: string[];
}

export interface LabRoute {
  /** Destination network or "default". */
  dst: string;
  via: string;
  /** Preferred source address for traffic on this route. */
  src?: string;
}

export interface LabNode {
  role: NodeRole;
  /** What the node is for, shown by `tzorp lab status`. */
  description: string;
  ifaces: LabIface[];
  routes: LabRoute[];
  /** Ranges the node answers for without configuring each address (`ip route add local R dev lo`). */
  anyip: string[];
  /** IP forwarding on (the firewall only). */
  forwarding: boolean;
}

/** A veth pair: one end in each namespace, created directly inside them. */
export interface LabLink {
  a: { role: NodeRole; iface: string };
  b: { role: NodeRole; iface: string };
}

/** The addresses a user or a test talks to. */
export const LAB_ADDR = {
  client4: '198.18.10.10',
  client6: '2001:db8:10::10',
  admin4: '198.18.30.10',
  admin6: '2001:db8:30::10',
  fwClient4: '198.18.10.1',
  fwClient6: '2001:db8:10::1',
  fwServer4: '198.18.20.1',
  fwServer6: '2001:db8:20::1',
  fwOutside4: '198.19.0.1',
  fwOutside6: '2001:db8:ff::1',
  server4: '198.18.20.10',
  server6: '2001:db8:20::10',
  /** The range of child zones (servers.audit, ...), all answered by the server node. */
  serverChildren4: '198.18.21.0/24',
  serverChildren6: '2001:db8:20:21::/64',
  outside4: '198.19.0.10',
  outside6: '2001:db8:ff::10',
} as const;

/** TCP ports the lab's servers listen on (all of them on every server address, IPv4 and IPv6). */
export const LAB_PORTS = {
  /** HTTP server that answers with the request it saw (method, URL, headers, peer address) as JSON. */
  http: [80, 8080],
  /** FTP (vsftpd): anonymous download from /pub, anonymous upload into /incoming. */
  ftp: 21,
  /** A banner service like SSH's: its first line names the peer address and port it sees. */
  banner: [22],
  /** Listeners that only record who connected: a connection here proves something got through. */
  canary: [23, 25, 443, 3389, 5555, 9999],
} as const;

export const LAB_NODES: readonly LabNode[] = [
  {
    role: 'client',
    description: 'a client in zone clients (and admin, from 198.18.30.10 and 2001:db8:30::10)',
    ifaces: [
      {
        name: 'eth0',
        addrs: [
          `${LAB_ADDR.client4}/24`,
          `${LAB_ADDR.client6}/64`,
          `${LAB_ADDR.admin4}/32`,
          `${LAB_ADDR.admin6}/128`,
        ],
      },
    ],
    routes: [
      { dst: 'default', via: LAB_ADDR.fwClient4, src: LAB_ADDR.client4 },
      { dst: 'default', via: LAB_ADDR.fwClient6, src: LAB_ADDR.client6 },
    ],
    anyip: [],
    forwarding: false,
  },
  {
    role: 'fw',
    description: 'the firewall: tzorp runs here',
    ifaces: [
      { name: 'eth0', addrs: [`${LAB_ADDR.fwClient4}/24`, `${LAB_ADDR.fwClient6}/64`] },
      { name: 'eth1', addrs: [`${LAB_ADDR.fwServer4}/24`, `${LAB_ADDR.fwServer6}/64`] },
      { name: 'eth2', addrs: [`${LAB_ADDR.fwOutside4}/24`, `${LAB_ADDR.fwOutside6}/64`] },
    ],
    routes: [
      { dst: `${LAB_ADDR.admin4}/32`, via: LAB_ADDR.client4 },
      { dst: `${LAB_ADDR.admin6}/128`, via: LAB_ADDR.client6 },
      { dst: LAB_ADDR.serverChildren4, via: LAB_ADDR.server4 },
      { dst: LAB_ADDR.serverChildren6, via: LAB_ADDR.server6 },
    ],
    anyip: [],
    forwarding: true,
  },
  {
    role: 'server',
    description: 'servers: HTTP, FTP, a banner service, canaries',
    ifaces: [{ name: 'eth0', addrs: [`${LAB_ADDR.server4}/24`, `${LAB_ADDR.server6}/64`] }],
    routes: [
      { dst: 'default', via: LAB_ADDR.fwServer4 },
      { dst: 'default', via: LAB_ADDR.fwServer6 },
    ],
    anyip: [LAB_ADDR.serverChildren4, LAB_ADDR.serverChildren6],
    forwarding: false,
  },
  {
    role: 'outside',
    description: 'a host on the internet side (zone internet)',
    ifaces: [{ name: 'eth0', addrs: [`${LAB_ADDR.outside4}/24`, `${LAB_ADDR.outside6}/64`] }],
    routes: [
      { dst: 'default', via: LAB_ADDR.fwOutside4 },
      { dst: 'default', via: LAB_ADDR.fwOutside6 },
    ],
    anyip: [],
    forwarding: false,
  },
];

export const LAB_LINKS: readonly LabLink[] = [
  { a: { role: 'client', iface: 'eth0' }, b: { role: 'fw', iface: 'eth0' } },
  { a: { role: 'server', iface: 'eth0' }, b: { role: 'fw', iface: 'eth1' } },
  { a: { role: 'outside', iface: 'eth0' }, b: { role: 'fw', iface: 'eth2' } },
];

/** A lab name is part of namespace names and of a directory name: keep it short and plain. */
export const LAB_NAME_RE = /^[a-z0-9][a-z0-9_-]{0,19}$/;

/** The namespace of one node of the lab `name` (`tzl-<name>-<role>`). */
export function nodeNamespace(name: string, role: NodeRole): string {
  return `tzl-${name}-${role}`;
}

export function isNodeRole(s: string): s is NodeRole {
  return (NODE_ROLES as readonly string[]).includes(s);
}

const isV6 = (a: string) => a.includes(':');

/** The shell commands that configure one node inside its namespace (run with `sh -e`). Pure. */
export function nodeScript(node: LabNode): string[] {
  const out: string[] = [
    // No duplicate address detection: addresses are usable at once (also link-local, which ND uses).
    'sysctl -qw net.ipv6.conf.all.accept_dad=0',
    'sysctl -qw net.ipv6.conf.default.accept_dad=0',
    'ip link set lo up',
  ];
  for (const i of node.ifaces) {
    for (const a of i.addrs) {
      out.push(isV6(a) ? `ip -6 addr add ${a} dev ${i.name} nodad` : `ip addr add ${a} dev ${i.name}`);
    }
    out.push(`ip link set ${i.name} up`);
  }
  for (const r of node.anyip) out.push(`ip ${isV6(r) ? '-6 ' : ''}route add local ${r} dev lo`);
  for (const r of node.routes) {
    const six = isV6(r.via);
    out.push(`ip ${six ? '-6 ' : ''}route add ${r.dst} via ${r.via}${r.src ? ` src ${r.src}` : ''}`);
  }
  if (node.forwarding) {
    out.push('sysctl -qw net.ipv4.ip_forward=1', 'sysctl -qw net.ipv6.conf.all.forwarding=1');
    // Reverse-path filtering would drop the replies of forged-address connections before tproxy sees
    // them (reference/linux-tproxy.md); the lab's routing is symmetric anyway.
    out.push('sysctl -qw net.ipv4.conf.all.rp_filter=0', 'sysctl -qw net.ipv4.conf.default.rp_filter=0');
  }
  return out;
}

/** A shell command that waits (up to 5 s) until the interfaces `ifaces` of a namespace are up for the
 * kernel: a veth is up for `ip link` at once, but sends nothing until the kernel's link watcher has
 * run, up to a second later (the first neighbour solicitation of a new lab went unanswered, and its
 * first IPv6 connection took a second). Run once both ends of every link are set up (a veth's carrier
 * needs both). Used by `tzorp lab up` and by the tests' labs (test/harness/netns.ts). */
export function linksUpScript(ifaces: readonly string[]): string {
  const files = ifaces.map((i) => `/sys/class/net/${i}/operstate`).join(' ');
  return `for i in $(seq 1 250); do up=1; for f in ${files}; do [ "$(cat $f)" = up ] || up=0; done; [ $up = 1 ] && exit 0; sleep 0.02; done; echo "interfaces not up: $(cat ${files})" >&2; exit 1`;
}

/** The `ip link add` arguments that create one link (run in the host's namespace; both ends are
 * created directly inside the lab's namespaces, so nothing appears on the host). */
export function linkArgs(name: string, link: LabLink): string[] {
  return [
    'link',
    'add',
    link.a.iface,
    'netns',
    nodeNamespace(name, link.a.role),
    'type',
    'veth',
    'peer',
    'name',
    link.b.iface,
    'netns',
    nodeNamespace(name, link.b.role),
  ];
}
