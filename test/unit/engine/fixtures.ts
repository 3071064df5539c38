// Builds resolved Policy objects by hand for engine tests (the loader has its own tests; these keep the
// engine's tests independent of it). Addresses are parsed with ipaddr.js, not with the engine's parser.
import ipaddr from 'ipaddr.js';
import type {
  Cidr,
  Conditions,
  Policy,
  PortRange,
  Rule,
  Service,
  ServiceType,
  Zone,
} from '../../../src/policy/model.ts';

const pos = { file: 'test.yaml', line: 1, col: 1 };

export function cidr(text: string): Cidr {
  const [a, p] = text.includes('/') ? text.split('/') : [text, undefined];
  let addr = ipaddr.parse(a!);
  if (addr.kind() === 'ipv6' && (addr as ipaddr.IPv6).isIPv4MappedAddress()) {
    addr = (addr as ipaddr.IPv6).toIPv4Address();
  }
  const family = addr.kind() === 'ipv4' ? 4 : 6;
  const width = family === 4 ? 32 : 128;
  const prefix = p === undefined ? width : Number(p);
  let v = 0n;
  for (const b of addr.toByteArray()) v = (v << 8n) | BigInt(b);
  const mask = prefix === 0 ? 0n : ((1n << BigInt(prefix)) - 1n) << BigInt(width - prefix);
  v &= mask;
  const bytes: number[] = [];
  for (let i = width / 8 - 1; i >= 0; i--) bytes.push(Number((v >> BigInt(8 * i)) & 0xffn));
  const canon = family === 4 ? new ipaddr.IPv4(bytes).toString() : ipaddr.fromByteArray(bytes).toString();
  return { family, addr: v, prefix, text: `${canon}/${prefix}` };
}

export interface RuleSpec {
  id: number;
  service: string;
  reqid?: number[];
  iface?: string[];
  ifgroup?: number[];
  proto?: number[];
  icmpType?: number[];
  icmpCode?: number[];
  srcPort?: (number | [number, number])[];
  dstPort?: (number | [number, number])[];
  srcSubnet?: string[];
  srcZone?: string[];
  dstSubnet?: string[];
  dstIface?: string[];
  dstIfgroup?: number[];
  dstZone?: string[];
}

export interface PolicySpec {
  zones?: Record<string, { parent?: string; addresses?: string[] }>;
  services?: Record<string, ServiceType>;
  rules?: RuleSpec[];
}

function portList(l: (number | [number, number])[] | undefined): PortRange[] | undefined {
  return l?.map((p) => (typeof p === 'number' ? { lo: p, hi: p } : { lo: p[0], hi: p[1] }));
}

export function makePolicy(spec: PolicySpec): Policy {
  const zones = new Map<string, Zone>();
  const zspec = spec.zones ?? {};
  for (const [name, z] of Object.entries(zspec)) {
    zones.set(name, {
      name,
      parent: z.parent ?? null,
      children: [],
      depth: 0,
      addresses: (z.addresses ?? []).map(cidr),
      pos,
    });
  }
  for (const z of zones.values()) {
    if (z.parent !== null) zones.get(z.parent)!.children.push(z.name);
    let d = 1;
    let p = z.parent;
    while (p !== null) {
      d++;
      p = zones.get(p)!.parent;
    }
    z.depth = d;
  }
  for (const z of zones.values()) z.children.sort();
  const services = new Map<string, Service>();
  const names = new Set<string>(Object.keys(spec.services ?? {}));
  for (const r of spec.rules ?? []) if (!names.has(r.service)) names.add(r.service);
  [...names].sort().forEach((name, i) => {
    const type = spec.services?.[name] ?? 'proxy';
    const base = { name, id: i + 1, pos, logging: true };
    let s: Service;
    if (type === 'proxy') {
      s = {
        ...base,
        type,
        proxy: 'plug',
        router: { type: 'transparent', forcedPort: null, forgeAddr: false, forgePort: 'any' },
        chainer: { type: 'connect', timeoutConnectMs: 30000 },
        options: {},
        limitTargetZonesTo: [],
        maxSessions: 0,
        listenPort: null,
      };
    } else if (type === 'forward') {
      s = {
        ...base,
        type,
        router: { type: 'transparent', forcedPort: null, forgeAddr: false, forgePort: 'any' },
      };
    } else {
      s = { ...base, type, ipv4: 'drop', ipv6: 'drop' };
    }
    services.set(name, s);
  });
  const rules: Rule[] = (spec.rules ?? []).map((r) => {
    const c: Conditions = {};
    if (r.reqid) c.reqid = r.reqid;
    if (r.iface) c.iface = r.iface;
    if (r.ifgroup) c.ifgroup = r.ifgroup;
    if (r.proto) c.proto = r.proto;
    if (r.icmpType) c.icmpType = r.icmpType;
    if (r.icmpCode) c.icmpCode = r.icmpCode;
    if (r.srcPort) c.srcPort = portList(r.srcPort)!;
    if (r.dstPort) c.dstPort = portList(r.dstPort)!;
    if (r.srcSubnet) c.srcSubnet = r.srcSubnet.map(cidr);
    if (r.srcZone) c.srcZone = r.srcZone;
    if (r.dstSubnet) c.dstSubnet = r.dstSubnet.map(cidr);
    if (r.dstIface) c.dstIface = r.dstIface;
    if (r.dstIfgroup) c.dstIfgroup = r.dstIfgroup;
    if (r.dstZone) c.dstZone = r.dstZone;
    return { ...c, id: r.id, service: r.service, pos };
  });
  rules.sort((a, b) => a.id - b.id);
  return {
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
    source: { file: 'test.yaml', sha256: '' },
  };
}
