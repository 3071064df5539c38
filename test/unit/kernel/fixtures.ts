// A compact way to build resolved policies in kernel tests (the loader is tested on its own; these
// tests need exact control over ids and fields).
import type { Cidr, Conditions, Policy, Rule, Service, Zone } from '../../../src/policy/model.ts';

export function cidr(text: string): Cidr {
  const [a, p] = text.split('/');
  const family = a!.includes(':') ? 6 : 4;
  const width = family === 4 ? 32 : 128;
  const prefix = p === undefined ? width : Number(p);
  let addr = 0n;
  if (family === 4) for (const x of a!.split('.')) addr = (addr << 8n) | BigInt(Number(x));
  else {
    const [head, tail] = a!.includes('::') ? a!.split('::') : [a!, undefined];
    const h = head ? head.split(':') : [];
    const t = tail ? tail.split(':') : [];
    const words = tail === undefined ? h : [...h, ...Array(8 - h.length - t.length).fill('0'), ...t];
    for (const w of words) addr = (addr << 16n) | BigInt(Number.parseInt(w || '0', 16));
  }
  const hostBits = BigInt(width - prefix);
  addr = (addr >> hostBits) << hostBits;
  return { family, addr, prefix, text: `${a}/${prefix}` };
}

const pos = { file: 'test', line: 1, col: 1 };

export interface ZoneSpec {
  parent?: string;
  addresses: string[];
}

export type RuleSpec = Omit<Conditions, 'srcSubnet' | 'dstSubnet'> & {
  id: number;
  service: string;
  srcSubnet?: string[];
  dstSubnet?: string[];
};

export type ServiceSpec =
  | { type: 'proxy'; listenPort?: number }
  | { type: 'forward'; forgeAddr?: boolean; directed?: { host: string; port: number }[] }
  | {
      type: 'deny';
      ipv4?: Service extends infer S ? (S extends { type: 'deny'; ipv4: infer X } ? X : never) : never;
      ipv6?:
        | 'drop'
        | 'tcp-reset'
        | 'icmp-no-route'
        | 'icmp-admin-prohibited'
        | 'icmp-addr-unreachable'
        | 'icmp-port-unreachable';
    };

export function conditions(c: Omit<RuleSpec, 'id' | 'service'>): Conditions {
  const out: Conditions = { ...c } as Conditions;
  if (c.srcSubnet) out.srcSubnet = c.srcSubnet.map(cidr);
  if (c.dstSubnet) out.dstSubnet = c.dstSubnet.map(cidr);
  return out;
}

export function makePolicy(spec: {
  zones?: Record<string, ZoneSpec>;
  services: Record<string, ServiceSpec>;
  rules: RuleSpec[];
  management?: Omit<RuleSpec, 'id' | 'service'>[];
  bypass?: Omit<RuleSpec, 'id' | 'service'>[];
  block?: Omit<RuleSpec, 'id' | 'service'>[];
  publishZoneSets?: Policy['settings']['publishZoneSets'];
}): Policy {
  const zones = new Map<string, Zone>();
  const zs = spec.zones ?? {};
  const depthOf = (n: string): number => (zs[n]!.parent ? depthOf(zs[n]!.parent!) + 1 : 1);
  for (const [name, z] of Object.entries(zs)) {
    zones.set(name, {
      name,
      parent: z.parent ?? null,
      children: Object.entries(zs)
        .filter(([, c]) => c.parent === name)
        .map(([n]) => n)
        .sort(),
      depth: depthOf(name),
      addresses: z.addresses.map(cidr),
      pos,
    });
  }
  const services = new Map<string, Service>();
  Object.keys(spec.services)
    .sort()
    .forEach((name, i) => {
      const s = spec.services[name]!;
      const base = { name, id: i + 1, pos, logging: true };
      if (s.type === 'proxy') {
        services.set(name, {
          ...base,
          type: 'proxy',
          proxy: 'plug',
          router: { type: 'transparent', forcedPort: null, forgeAddr: false, forgePort: 'any' },
          chainer: { type: 'connect', timeoutConnectMs: 30000 },
          options: {},
          limitTargetZonesTo: [],
          maxSessions: 0,
          listenPort: s.listenPort ?? null,
        });
      } else if (s.type === 'forward') {
        services.set(name, {
          ...base,
          type: 'forward',
          router: s.directed
            ? {
                type: 'directed',
                targets: s.directed.map((t) => ({
                  family: t.host.includes(':') ? 6 : 4,
                  host: t.host,
                  port: t.port,
                })),
                forgeAddr: s.forgeAddr ?? false,
                forgePort: 'any',
              }
            : { type: 'transparent', forcedPort: null, forgeAddr: s.forgeAddr ?? false, forgePort: 'any' },
        });
      } else {
        services.set(name, { ...base, type: 'deny', ipv4: s.ipv4 ?? 'drop', ipv6: s.ipv6 ?? 'drop' });
      }
    });
  const rules: Rule[] = spec.rules
    .map((r) => ({ ...conditions(r), id: r.id, service: r.service, pos }))
    .sort((a, b) => a.id - b.id);
  return {
    zones,
    services,
    rules,
    management: (spec.management ?? []).map((m) => ({ ...conditions(m), pos })),
    bypass: (spec.bypass ?? []).map((m) => ({ ...conditions(m), pos })),
    block: (spec.block ?? []).map((m) => ({ ...conditions(m), pos })),
    settings: {
      tproxyMark: 0x80000000,
      serviceMarkMask: 0xffff,
      routingTable: 100,
      listenV4: '127.0.0.1',
      listenV6: '::1',
      listenPortBase: 50000,
      publishZoneSets: spec.publishZoneSets ?? 'referenced',
    },
    source: { file: 'test.yaml', sha256: '0'.repeat(64) },
  };
}
