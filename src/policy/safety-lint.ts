// Safety lint (issue 10): warnings about valid policies that lock the administrator out or let
// traffic through in ways an administrator does not expect. Codes TZ152x. Pure.
import type { Diagnostics } from './diagnostics.ts';
import type { Policy, Zone } from './model.ts';

export interface SafetyFacts {
  /** Offset of the top-level `management:` key, null when absent. */
  managementAt: number | null;
  /** Offset of the policy's top node. */
  topAt: number;
}

export function safetyLint(policy: Policy, d: Diagnostics, facts: SafetyFacts): void {
  // input drops everything that is not management (or diverted to a proxy): without a management
  // entry, applying the policy over SSH cuts the session that applied it
  if (facts.managementAt === null) {
    d.warn(
      'LINT_NO_MANAGEMENT',
      'the policy has no management section: once applied, nothing reaches the firewall itself (SSH included); add e.g. management: [{ proto: tcp, dst_port: 22, src_zone: <admin zone> }]',
      facts.topAt,
    );
  } else if (policy.management.length === 0) {
    d.warn(
      'LINT_EMPTY_MANAGEMENT',
      'management is empty: once applied, nothing reaches the firewall itself (SSH included)',
      facts.managementAt,
    );
  }
  directedMasquerade(policy, d);
  targetZonesExcluded(policy, d);
  udpToProxy(policy, d);
}

const UDP = 17;

/** Every proxy (plug, HTTP, FTP) speaks TCP only, but the kernel diverts whatever the rule matches to
 * it: a rule without `proto`, or with udp, sends UDP there too, where nothing answers. */
function udpToProxy(policy: Policy, d: Diagnostics): void {
  for (const r of policy.rules) {
    const s = policy.services.get(r.service);
    if (s?.type !== 'proxy' || (r.proto !== undefined && !r.proto.includes(UDP))) continue;
    const what =
      r.proto === undefined
        ? 'has no proto, so it matches UDP too'
        : r.proto.length === 1
          ? 'matches UDP only'
          : 'matches UDP';
    d.warnPos(
      'LINT_UDP_TO_PROXY',
      `rule ${r.id} ${what}, but service '${s.name}' is a ${s.proxy} proxy, which speaks TCP only: every UDP connection it matches is diverted to the proxy and fails; add proto: tcp (and a forward or deny rule for the UDP traffic)`,
      r.pos,
    );
  }
}

/** A directed forward service (port forwarding, typically inbound) masquerades by default: the server
 * sees every client as the firewall, which hides who connects and defeats the server's own logs and
 * limits. Usually forge_addr: true is meant. */
function directedMasquerade(policy: Policy, d: Diagnostics): void {
  for (const s of policy.services.values()) {
    if (s.type !== 'forward' || s.router.type !== 'directed' || s.router.forgeAddr) continue;
    d.warnPos(
      'LINT_DIRECTED_MASQUERADE',
      `forward service '${s.name}' is directed without forge_addr: its connections are masqueraded, so the server sees every client as the firewall (set router.forge_addr: true to keep client addresses)`,
      s.pos,
    );
  }
}

function ancestorsOf(policy: Policy, name: string): Set<string> {
  const out = new Set<string>();
  for (
    let z: Zone | undefined = policy.zones.get(name);
    z;
    z = z.parent ? policy.zones.get(z.parent) : undefined
  ) {
    if (out.has(z.name)) break;
    out.add(z.name);
  }
  return out;
}

/** A rule whose every destination zone lies outside its proxy service's limit_target_zones_to: each
 * of its connections is refused by the proxy after the kernel sent it there. */
function targetZonesExcluded(policy: Policy, d: Diagnostics): void {
  for (const r of policy.rules) {
    const s = policy.services.get(r.service);
    if (s?.type !== 'proxy' || s.limitTargetZonesTo.length === 0 || !r.dstZone?.length) continue;
    if (r.dstSubnet?.length || r.dstIface?.length || r.dstIfgroup?.length) continue;
    const allowed = new Set(s.limitTargetZonesTo);
    // allowed when the zone or an ancestor is listed, or a listed zone lies below it (the rule's zone
    // matches its descendants too)
    const ok = r.dstZone.some(
      (z) =>
        [...ancestorsOf(policy, z)].some((a) => allowed.has(a)) ||
        s.limitTargetZonesTo.some((l) => ancestorsOf(policy, l).has(z)),
    );
    if (ok) continue;
    d.warnPos(
      'LINT_TARGET_ZONE_EXCLUDED',
      `rule ${r.id} sends connections to ${r.dstZone.join(', ')}, which service '${s.name}' excludes (limit_target_zones_to: ${s.limitTargetZonesTo.join(', ')}): every one of them is refused`,
      r.pos,
    );
  }
}
