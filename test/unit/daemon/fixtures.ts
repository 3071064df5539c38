// Small hand-made policies (the resolved model) for the daemon's unit tests.
import ipaddr from 'ipaddr.js';
import type { Cidr, Policy, ProxyService, Rule, Service, Zone } from '../../../src/policy/model.ts';

const pos = { file: 'test.yaml', line: 1, col: 1 };

export function cidr(text: string): Cidr {
  const [a, p] = ipaddr.parseCIDR(text);
  const bytes = a.toByteArray();
  let addr = 0n;
  for (const b of bytes) addr = (addr << 8n) | BigInt(b);
  return { family: a.kind() === 'ipv6' ? 6 : 4, addr, prefix: p, text };
}

export function zone(name: string, addrs: string[], parent: string | null = null): Zone {
  return { name, parent, children: [], depth: parent ? 2 : 1, addresses: addrs.map(cidr), pos };
}

export function proxy(name: string, id: number, extra: Partial<ProxyService> = {}): ProxyService {
  return {
    type: 'proxy',
    name,
    id,
    pos,
    logging: true,
    proxy: 'plug',
    router: { type: 'transparent', forcedPort: null, forgeAddr: false, forgePort: 'any' },
    chainer: { type: 'connect', timeoutConnectMs: 1000 },
    options: {},
    limitTargetZonesTo: [],
    maxSessions: 0,
    listenPort: null,
    ...extra,
  };
}

export function policy(services: Service[], rules: Rule[], sha = 'aa', zones: Zone[] = []): Policy {
  return {
    zones: new Map(zones.map((z) => [z.name, z])),
    services: new Map(services.map((s) => [s.name, s])),
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
    source: { file: 'test.yaml', sha256: sha },
  };
}

export function rule(id: number, service: string, dstPort?: number): Rule {
  return { id, service, pos, ...(dstPort ? { dstPort: [{ lo: dstPort, hi: dstPort }] } : {}) };
}
