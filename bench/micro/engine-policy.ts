// A generated policy at the scale issue 2 asks for: 10,000 rules and 100,000 zone networks, IPv4 and
// IPv6 mixed, with a zone hierarchy, /0 fallbacks, ports, ranges, subnets and a few interface rules;
// and connections aimed at it (most land in zones and hit rules). Deterministic (seeded).
import { formatAddress } from '../../src/engine/index.ts';
import type { Cidr, Connection, Policy, PortRange, Rule, Service, Zone } from '../../src/policy/model.ts';

/** xorshift32: the same policy on every run. */
export function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x / 0x100000000;
  };
}

const pos = { file: 'generated.yaml', line: 1, col: 1 };

function mk(family: 4 | 6, addr: bigint, prefix: number): Cidr {
  return { family, addr, prefix, text: `${formatAddress(family, addr)}/${prefix}` };
}

export interface Generated {
  policy: Policy;
  conns: Connection[];
}

export function generatePolicy(opts: {
  rules: number;
  subnets: number;
  zones: number;
  conns: number;
  seed?: number;
}): Generated {
  const r = rng(opts.seed ?? 42);
  const int = (n: number) => Math.floor(r() * n);
  const zones = new Map<string, Zone>();
  const names: string[] = [];
  const perZone = Math.ceil(opts.subnets / opts.zones);
  const hosts4: bigint[] = [];
  const hosts6: bigint[] = [];
  let made = 0;
  for (let i = 0; i < opts.zones; i++) {
    const name = `z${i}`;
    // a quarter are children of an earlier zone (depth up to a few levels)
    const parentName = i > 10 && r() < 0.25 ? names[int(i)]! : null;
    const parent = parentName ? zones.get(parentName)! : null;
    const addresses: Cidr[] = [];
    for (let k = 0; k < perZone && made < opts.subnets; k++, made++) {
      // network number `made` makes every network unique: v4 /24 or /28 in 10.0.0.0/8, v6 /64 or /56
      if (made % 2 === 0) {
        const n = BigInt(made >> 1);
        if (k % 5 === 0) addresses.push(mk(4, (10n << 24n) | (n << 8n), 24));
        else addresses.push(mk(4, (11n << 24n) | (n << 4n), 28));
        hosts4.push(addresses[addresses.length - 1]!.addr + 1n + BigInt(int(10)));
      } else {
        const n = BigInt(made >> 1);
        const base = (0x20010db8n << 96n) | (n << 64n);
        addresses.push(mk(6, base, k % 4 === 0 ? 56 : 64));
        hosts6.push(base + 1n + BigInt(int(1000)));
      }
    }
    zones.set(name, {
      name,
      parent: parentName,
      children: [],
      depth: parent ? parent.depth + 1 : 1,
      addresses,
      pos,
    });
    if (parent) parent.children.push(name);
    names.push(name);
  }
  zones.set('internet', {
    name: 'internet',
    parent: null,
    children: [],
    depth: 1,
    addresses: [mk(4, 0n, 0), mk(6, 0n, 0)],
    pos,
  });
  names.push('internet');

  const services = new Map<string, Service>();
  for (let i = 0; i < 50; i++) {
    const name = `svc${i}`;
    const base = { name, id: i + 1, pos, logging: true };
    services.set(
      name,
      i % 3 === 0
        ? { ...base, type: 'deny', ipv4: 'tcp-reset', ipv6: 'drop' }
        : i % 3 === 1
          ? {
              ...base,
              type: 'forward',
              router: { type: 'transparent', forcedPort: null, forgeAddr: false, forgePort: 'any' },
            }
          : {
              ...base,
              type: 'proxy',
              proxy: 'plug',
              router: { type: 'transparent', forcedPort: null, forgeAddr: false, forgePort: 'any' },
              chainer: { type: 'connect', timeoutConnectMs: 30000 },
              options: {},
              limitTargetZonesTo: [],
              maxSessions: 0,
              listenPort: null,
            },
    );
  }
  const PORTS = [21, 22, 25, 53, 80, 110, 143, 443, 993, 3306, 5432, 8080, 8443];
  const randZone = () => names[int(names.length)]!;
  const rules: Rule[] = [];
  for (let i = 0; i < opts.rules; i++) {
    // shapes of a real firewall policy: almost every rule names a source zone, a destination zone,
    // a protocol and a port; a few use subnets, ranges, interfaces or leave a dimension open
    const rule: Rule = { id: i + 1, service: `svc${int(50)}`, pos };
    if (r() < 0.95) rule.srcZone = r() < 0.9 ? [randZone()] : [randZone(), randZone()];
    if (r() < 0.9) rule.dstZone = r() < 0.9 ? [randZone()] : [randZone(), randZone()];
    if (r() < 0.9) rule.proto = [r() < 0.8 ? 6 : 17];
    const p = r();
    if (p < 0.85) rule.dstPort = [PORTS[int(PORTS.length)]!].map((x) => ({ lo: x, hi: x }));
    else if (p < 0.95) {
      const lo = int(60000);
      rule.dstPort = [{ lo, hi: lo + int(2000) }] satisfies PortRange[];
    }
    if (r() < 0.03) rule.srcPort = [{ lo: 1024, hi: 65535 }];
    if (r() < 0.03) rule.srcSubnet = [mk(4, hosts4[int(hosts4.length)]! & ~0xffn, 24)];
    if (r() < 0.03) rule.dstSubnet = [mk(6, hosts6[int(hosts6.length)]! & ~((1n << 64n) - 1n), 64)];
    if (r() < 0.02) rule.iface = [`eth${int(4)}`];
    rules.push(rule);
  }
  const policy: Policy = {
    zones,
    services,
    rules,
    management: [],
    bypass: [],
    block: [],
    settings: {
      tproxyMark: 0x80000000,
      serviceMarkMask: 0xffff,
      routingTable: 100,
      listenV4: '127.0.0.1',
      listenV6: '::1',
      listenPortBase: 50000,
      publishZoneSets: 'referenced',
    },
    source: { file: 'generated.yaml', sha256: '' },
  };
  const conns: Connection[] = [];
  for (let i = 0; i < opts.conns; i++) {
    const v6 = r() < 0.4;
    const pick = (): string => {
      if (r() < 0.1) return v6 ? `2001:db9::${int(65535).toString(16)}` : `192.0.2.${int(256)}`;
      return v6
        ? formatAddress(6, hosts6[int(hosts6.length)]!)
        : formatAddress(4, hosts4[int(hosts4.length)]!);
    };
    conns.push({
      proto: r() < 0.85 ? 6 : 17,
      src: pick(),
      dst: pick(),
      srcPort: 1024 + int(60000),
      dstPort: r() < 0.8 ? PORTS[int(PORTS.length)]! : int(65536),
      iface: `eth${int(4)}`,
    });
  }
  return { policy, conns };
}

/** The policy as a policy-language document (what `JSON.stringify` or a YAML writer turns into a file
 * the loader reads): the whole path from file contents to an engine is measured on it. */
export function policyDocument(policy: Policy): Record<string, unknown> {
  const ports = (l: PortRange[] | undefined) => l?.map((p) => (p.lo === p.hi ? p.lo : `${p.lo}-${p.hi}`));
  return {
    zones: Object.fromEntries(
      [...policy.zones.values()].map((z) => [
        z.name,
        { ...(z.parent ? { parent: z.parent } : {}), addresses: z.addresses.map((c) => c.text) },
      ]),
    ),
    services: Object.fromEntries(
      [...policy.services.values()].map((s) => [
        s.name,
        s.type === 'proxy'
          ? { type: 'proxy', proxy: 'plug', router: { type: 'transparent' } }
          : s.type === 'forward'
            ? { type: 'forward', router: { type: 'transparent' } }
            : { type: 'deny', ipv4: s.ipv4, ipv6: s.ipv6 },
      ]),
    ),
    rules: policy.rules.map((r: Rule) => ({
      id: r.id,
      service: r.service,
      ...(r.proto ? { proto: r.proto } : {}),
      ...(r.srcPort ? { src_port: ports(r.srcPort) } : {}),
      ...(r.dstPort ? { dst_port: ports(r.dstPort) } : {}),
      ...(r.srcSubnet ? { src_subnet: r.srcSubnet.map((c) => c.text) } : {}),
      ...(r.srcZone ? { src_zone: r.srcZone } : {}),
      ...(r.dstSubnet ? { dst_subnet: r.dstSubnet.map((c) => c.text) } : {}),
      ...(r.dstZone ? { dst_zone: r.dstZone } : {}),
      ...(r.iface ? { iface: r.iface } : {}),
    })),
  };
}
