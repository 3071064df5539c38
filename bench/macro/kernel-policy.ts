// Generated policies for the kernel benchmark: a large one (many rules, many zone networks, a zone
// hierarchy) for compile/apply time and memory, and "N rules, the benchmark's connection matches the
// weakest-scoring one" for the connection-rate runs.
import type { Policy } from '../../src/policy/model.ts';
import {
  makePolicy,
  type RuleSpec,
  type ServiceSpec,
  type ZoneSpec,
} from '../../test/unit/kernel/fixtures.ts';
import { rng } from '../../test/unit/kernel/random-policy.ts';

function v4(n: number): string {
  return [24, 16, 8, 0].map((s) => (n >>> s) & 255).join('.');
}

/** `subnets` zone networks (60% IPv4 inside 198.18.0.0/15, 40% IPv6 /64s inside 2001:db8::/32) over
 * `zones` zones in a hierarchy up to depth 3, and `rules` rules over ports, protocols and zones. */
export function scalePolicy(rules: number, subnets: number, zones = 2000): Policy {
  const r = rng(4242);
  const zs: Record<string, ZoneSpec> = {};
  const names: string[] = [];
  for (let i = 0; i < zones; i++) {
    const parent =
      i >= 200 ? names[Math.floor(r() * Math.min(names.length, 200 + (i - 200) / 2))] : undefined;
    const name = parent ? `${parent}.z${i}` : `z${i}`;
    zs[name] = parent ? { parent, addresses: [] } : { addresses: [] };
    names.push(name);
  }
  const n4 = Math.floor(subnets * 0.6);
  // IPv4: /32 hosts and /30s spread over the /15 (131,072 addresses), every network distinct
  const base4 = 0xc6120000;
  for (let i = 0; i < n4; i++) {
    const z = zs[names[i % zones]!]!;
    if (i % 4 === 0) z.addresses.push(`${v4(base4 + (i % 32768) * 4)}/30`);
    else z.addresses.push(v4(base4 + 131072 / 2 + ((i * 7919) % 65536)));
  }
  // the /32s above can repeat an address: keep the first only
  const seen = new Set<string>();
  for (const n of names) {
    zs[n]!.addresses = zs[n]!.addresses.filter((a) => !seen.has(a) && seen.add(a));
  }
  for (let i = 0; i < subnets - n4; i++) {
    const hi = (i >> 16) & 0xffff;
    const lo = i & 0xffff;
    zs[names[(i * 31) % zones]!]!.addresses.push(`2001:db8:${hi.toString(16)}:${lo.toString(16)}::/64`);
  }
  zs.internet = { addresses: ['0.0.0.0/0', '::/0'] };
  const services: Record<string, ServiceSpec> = {
    fwd: { type: 'forward' },
    keep: { type: 'forward', forgeAddr: true },
    deny: { type: 'deny', ipv4: 'tcp-reset', ipv6: 'tcp-reset' },
    web: { type: 'proxy' },
  };
  const svc = ['fwd', 'keep', 'deny', 'web'];
  const rs: RuleSpec[] = [];
  for (let i = 0; i < rules; i++) {
    const rule: RuleSpec = { id: i + 1, service: svc[i % 4]!, proto: [6] };
    rule.dstPort = [{ lo: 1 + (i % 60000), hi: 1 + (i % 60000) }];
    rule.srcZone = [names[Math.floor(r() * zones)]!];
    if (i % 3 === 0) rule.dstZone = [names[Math.floor(r() * zones)]!];
    if (i % 7 === 0) rule.dstPort = [{ lo: 1024, hi: 2047 }];
    rs.push(rule);
  }
  return makePolicy({ zones: zs, services, rules: rs });
}

/** N forward rules (no NAT: the same work as a packet filter); the benchmark connection (client zone
 * → server zone, TCP port 80) matches only the last, weakest one, so a linear list scans them all. */
export function ratePolicy(n: number, port = 80): Policy {
  const zs: Record<string, ZoneSpec> = {
    clients: { addresses: ['198.18.1.0/24', '2001:db8:1::/64'] },
    servers: { addresses: ['198.18.2.0/24', '2001:db8:2::/64'] },
    other: { addresses: ['198.18.128.0/17'] },
  };
  const rs: RuleSpec[] = [];
  for (let i = 1; i < n; i++) {
    // four rule shapes, so the decision has several tiers (a realistic policy, not one flat map)
    const shape = i % 4;
    const p = 20000 + i;
    if (shape === 0)
      rs.push({ id: i, service: 'fwd', proto: [6], dstPort: [{ lo: p, hi: p }], srcZone: ['clients'] });
    else if (shape === 1)
      rs.push({
        id: i,
        service: 'fwd',
        proto: [6],
        dstPort: [{ lo: p, hi: p }],
        srcZone: ['other'],
        dstZone: ['servers'],
      });
    else if (shape === 2) rs.push({ id: i, service: 'fwd', proto: [17], dstPort: [{ lo: p, hi: p + 1 }] });
    else
      rs.push({
        id: i,
        service: 'fwd',
        proto: [6],
        srcSubnet: [`198.18.${128 + (i % 120)}.${i % 250}/32`],
        dstPort: [{ lo: p, hi: p }],
      });
  }
  // iperf3 (5201) rides on the same rule, for the throughput runs
  rs.push({
    id: n,
    service: 'fwd',
    proto: [6],
    dstPort: [
      { lo: port, hi: port },
      { lo: 5201, hi: 5201 },
    ],
    dstZone: ['servers'],
  });
  return makePolicy({ zones: zs, services: { fwd: { type: 'forward', forgeAddr: true } }, rules: rs });
}

/** The same policy as a naive linear iptables ruleset (iptables-restore input, FORWARD chain). */
export function linearIptables(n: number, port = 80): string {
  const lines = ['*filter', ':INPUT ACCEPT [0:0]', ':FORWARD DROP [0:0]', ':OUTPUT ACCEPT [0:0]'];
  lines.push('-A FORWARD -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT');
  for (let i = 1; i < n; i++) {
    const shape = i % 4;
    const p = 20000 + i;
    if (shape === 0) lines.push(`-A FORWARD -s 198.18.1.0/24 -p tcp --dport ${p} -j ACCEPT`);
    else if (shape === 1)
      lines.push(`-A FORWARD -s 198.18.128.0/17 -d 198.18.2.0/24 -p tcp --dport ${p} -j ACCEPT`);
    else if (shape === 2) lines.push(`-A FORWARD -p udp --dport ${p}:${p + 1} -j ACCEPT`);
    else lines.push(`-A FORWARD -s 198.18.${128 + (i % 120)}.${i % 250}/32 -p tcp --dport ${p} -j ACCEPT`);
  }
  lines.push(`-A FORWARD -d 198.18.2.0/24 -p tcp -m multiport --dports ${port},5201 -j ACCEPT`, 'COMMIT', '');
  return lines.join('\n');
}
