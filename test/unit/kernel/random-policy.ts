// Random policies and random first packets for the kernel-vs-engine differential test: zones in a
// hierarchy with nested networks and optional /0 fallbacks, rules over every dimension the kernel can
// observe in a namespace (interfaces and groups, protocol, ICMP type/code, ports, subnets, zones,
// dst_iface), each rule with its own service so the conntrack mark names the rule.
import type { Connection, Policy } from '../../../src/policy/model.ts';
import { makePolicy, type RuleSpec, type ServiceSpec, type ZoneSpec } from './fixtures.ts';

export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface Net {
  family: 4 | 6;
  addr: bigint;
  prefix: number;
}

export const V4_BASE: Net = { family: 4, addr: 0xc6124000n, prefix: 18 }; // 198.18.64.0/18
export const V6_BASE: Net = { family: 6, addr: 0x20010db8010000000000000000000000n, prefix: 40 }; // 2001:db8:100::/40

export function netText(n: Net): string {
  return `${addrText(n.family, n.addr)}/${n.prefix}`;
}

export function addrText(f: 4 | 6, v: bigint): string {
  if (f === 4) return [24n, 16n, 8n, 0n].map((s) => String((v >> s) & 255n)).join('.');
  const w: string[] = [];
  for (let i = 7; i >= 0; i--) w.push(((v >> BigInt(i * 16)) & 0xffffn).toString(16));
  return w.join(':');
}

const width = (f: 4 | 6): number => (f === 4 ? 32 : 128);

/** A random address inside a network. */
export function randomIn(r: () => number, n: Net): bigint {
  const host = width(n.family) - n.prefix;
  let off = 0n;
  for (let b = 0; b < host; b += 16) off = (off << 16n) | BigInt(Math.floor(r() * 65536));
  return n.addr + (off & ((1n << BigInt(host)) - 1n));
}

function randomSubnet(r: () => number, base: Net, minP: number, maxP: number): Net {
  const prefix = minP + Math.floor(r() * (maxP - minP + 1));
  const a = randomIn(r, base);
  const hostBits = BigInt(width(base.family) - prefix);
  return { family: base.family, addr: (a >> hostBits) << hostBits, prefix };
}

function pick<T>(r: () => number, l: readonly T[]): T {
  return l[Math.floor(r() * l.length)]!;
}

function subset<T>(r: () => number, l: readonly T[], max = 3): T[] {
  const n = 1 + Math.floor(r() * Math.min(max, l.length));
  const s = new Set<T>();
  while (s.size < n) s.add(pick(r, l));
  return [...s];
}

export interface RandomCase {
  policy: Policy;
  /** What the policy was made from (randomEdit changes it). */
  spec: { zones: Record<string, ZoneSpec>; services: Record<string, ServiceSpec>; rules: RuleSpec[] };
  /** Networks used by zones (probe addresses are drawn from them). */
  nets: Net[];
}

const PORT_VALUES = [
  { lo: 80, hi: 80 },
  { lo: 22, hi: 22 },
  { lo: 443, hi: 443 },
  { lo: 1, hi: 1023 },
  { lo: 8000, hi: 8100 },
  { lo: 0, hi: 0 },
  { lo: 0, hi: 100 },
  { lo: 8050, hi: 8050 },
];
const SPORT_VALUES = [
  { lo: 1000, hi: 2000 },
  { lo: 1234, hi: 1234 },
  { lo: 0, hi: 10 },
  { lo: 40000, hi: 65535 },
];

export function randomPolicy(seed: number, opts: { ifaces: string[]; rules?: number }): RandomCase {
  const r = rng(seed);
  const zones: Record<string, ZoneSpec> = {};
  const nets: Net[] = [];
  const used = new Set<string>();
  const nZones = 3 + Math.floor(r() * 6);
  const names: string[] = [];
  for (let i = 0; i < nZones; i++) {
    // names with dots, like Zorp's admin hierarchy names
    const parent = names.length > 0 && r() < 0.5 ? pick(r, names) : undefined;
    const name = parent ? `${parent}.z${i}` : `z${i}`;
    const addresses: string[] = [];
    const n4 = Math.floor(r() * 3);
    const n6 = Math.floor(r() * 3);
    for (let k = 0; k < n4 + n6; k++) {
      const base = k < n4 ? V4_BASE : V6_BASE;
      const n = base.family === 4 ? randomSubnet(r, base, 19, 32) : randomSubnet(r, base, 41, 128);
      const key = netText(n);
      if (used.has(key)) continue;
      used.add(key);
      nets.push(n);
      addresses.push(key);
    }
    zones[name] = parent ? { parent, addresses } : { addresses };
    names.push(name);
  }
  if (r() < 0.6) {
    const addresses: string[] = [];
    if (r() < 0.8) addresses.push('0.0.0.0/0');
    if (r() < 0.8) addresses.push('::/0');
    zones.internet = { addresses };
    names.push('internet');
    if (r() < 0.5) {
      zones['internet.sub'] = { parent: 'internet', addresses: [netText(randomSubnet(r, V4_BASE, 18, 22))] };
      if (used.has(zones['internet.sub'].addresses[0]!)) delete zones['internet.sub'];
      else names.push('internet.sub');
    }
  }
  const services: Record<string, ServiceSpec> = {};
  const rules: RuleSpec[] = [];
  const nRules = opts.rules ?? 6 + Math.floor(r() * 14);
  for (let i = 0; i < nRules; i++) {
    const id = i + 1 + Math.floor(r() * 3) * 100; // ids not in rule order, to test the tie rule
    if (rules.some((x) => x.id === id)) continue;
    const svc = `s${String(id).padStart(4, '0')}`;
    services[svc] = r() < 0.7 ? { type: 'forward', forgeAddr: true } : { type: 'deny' };
    const rule = randomRule(r, id, svc, names, nets, opts.ifaces);
    // several rules with identical conditions: ties the lowest id must win
    if (rules.length > 0 && r() < 0.1) {
      const { id: _i, service: _s, ...same } = pick(r, rules);
      rules.push({ ...same, id, service: svc });
    } else rules.push(rule);
  }
  const spec = { zones, services, rules };
  return { policy: makePolicy(spec), nets, spec };
}

function randomRule(
  r: () => number,
  id: number,
  service: string,
  names: string[],
  nets: Net[],
  ifaces: string[],
): RuleSpec {
  const randomNet = (): string => {
    if (nets.length > 0 && r() < 0.6) {
      const n = pick(r, nets);
      // the zone's own network, or a network inside it
      if (r() < 0.5) return netText(n);
      const p = Math.min(width(n.family), n.prefix + 1 + Math.floor(r() * 8));
      return netText(randomSubnet(r, n, p, p));
    }
    return r() < 0.6 ? netText(randomSubnet(r, V4_BASE, 18, 30)) : netText(randomSubnet(r, V6_BASE, 40, 80));
  };
  const rule: RuleSpec = { id, service };
  if (r() < 0.15) rule.iface = subset(r, [...ifaces, 'eth9']);
  if (r() < 0.15) rule.ifgroup = subset(r, [0, 1, 2, 5]);
  if (r() < 0.04) rule.reqid = [1];
  if (r() < 0.4) rule.proto = subset(r, [6, 17, 1, 58, 99]);
  if (r() < 0.1) rule.icmpType = subset(r, [8, 13, 128, 0]);
  if (r() < 0.07) rule.icmpCode = subset(r, [0, 1]);
  if (r() < 0.15) rule.srcPort = subset(r, SPORT_VALUES, 2);
  if (r() < 0.45) rule.dstPort = subset(r, PORT_VALUES);
  if (r() < 0.2) rule.srcSubnet = [randomNet(), ...(r() < 0.3 ? [randomNet()] : [])];
  if (r() < 0.5) rule.srcZone = subset(r, names, 2);
  if (r() < 0.2) rule.dstSubnet = [randomNet(), ...(r() < 0.3 ? [randomNet()] : [])];
  if (r() < 0.1) rule.dstIface = subset(r, ifaces, 2);
  if (r() < 0.07) rule.dstIfgroup = subset(r, [0, 1, 5], 2);
  if (r() < 0.5) rule.dstZone = subset(r, names, 2);
  return rule;
}

/** One to three random edits of a random case, the kinds a reload brings: a rule added, removed or
 * changed, a rule moved to another service, a service's kind changed, a zone network added or
 * removed, a zone added. Nets of the new case include every network the edit introduced. */
export function randomEdit(seed: number, c: RandomCase, ifaces: string[]): RandomCase {
  const r = rng(seed);
  const zones = structuredClone(c.spec.zones);
  const services = structuredClone(c.spec.services);
  let rules = structuredClone(c.spec.rules);
  const nets = [...c.nets];
  const names = Object.keys(zones);
  const edits = 1 + Math.floor(r() * 3);
  for (let k = 0; k < edits; k++) {
    const what = Math.floor(r() * 7);
    if (what === 0 || rules.length === 0) {
      let id = 1 + Math.floor(r() * 400);
      while (rules.some((x) => x.id === id)) id++;
      const svc = `s${String(id).padStart(4, '0')}`;
      services[svc] = r() < 0.7 ? { type: 'forward', forgeAddr: true } : { type: 'deny' };
      rules.push(randomRule(r, id, svc, names, nets, ifaces));
    } else if (what === 1) {
      const gone = pick(r, rules);
      rules = rules.filter((x) => x !== gone);
      delete services[gone.service];
    } else if (what === 2) {
      const i = Math.floor(r() * rules.length);
      rules[i] = randomRule(r, rules[i]!.id, rules[i]!.service, names, nets, ifaces);
    } else if (what === 3) {
      const s = pick(r, rules).service;
      services[s] = services[s]!.type === 'deny' ? { type: 'forward', forgeAddr: true } : { type: 'deny' };
    } else if (what === 4) {
      const z = pick(r, names);
      const base = r() < 0.5 ? V4_BASE : V6_BASE;
      const n = base.family === 4 ? randomSubnet(r, base, 19, 32) : randomSubnet(r, base, 41, 128);
      const text = netText(n);
      if (!Object.values(zones).some((x) => x.addresses.includes(text))) {
        zones[z]!.addresses.push(text);
        nets.push(n);
      }
    } else if (what === 5) {
      const z = pick(r, names);
      zones[z]!.addresses = zones[z]!.addresses.slice(1);
    } else {
      const parent = r() < 0.5 ? pick(r, names) : undefined;
      const name = parent ? `${parent}.e${seed % 1000}x${k}` : `e${seed % 1000}x${k}`;
      if (zones[name]) continue;
      const n = randomSubnet(r, V4_BASE, 24, 32);
      const text = netText(n);
      const addresses = Object.values(zones).some((x) => x.addresses.includes(text)) ? [] : [text];
      zones[name] = parent ? { parent, addresses } : { addresses };
      if (addresses.length) nets.push(n);
      names.push(name);
    }
  }
  const spec = { zones, services, rules };
  return { policy: makePolicy(spec), nets, spec };
}

export interface Probe {
  conn: Connection;
  family: 4 | 6;
  iface: string;
  tag: number;
}

/** Random first packets. `local[iface][family]` are the firewall's addresses on each client-side
 * interface; some probes go to them (dst_iface) and some to the other interface's (not dst_iface). */
export function randomProbes(
  seed: number,
  c: RandomCase,
  n: number,
  ifaces: { name: string; group: number; local: Record<4 | 6, string[]> }[],
): Probe[] {
  const r = rng(seed ^ 0x5bd1e995);
  const out: Probe[] = [];
  const tuples = new Set<string>();
  let tag = 1;
  for (let tries = 0; out.length < n && tries < n * 20; tries++) {
    const family: 4 | 6 = r() < 0.55 ? 4 : 6;
    const base = family === 4 ? V4_BASE : V6_BASE;
    const fam = c.nets.filter((x) => x.family === family);
    const addr = (): string =>
      addrText(family, randomIn(r, fam.length > 0 && r() < 0.8 ? pick(r, fam) : base));
    const inIf = pick(r, ifaces);
    const src = addr();
    let dst = addr();
    let dstLocal = false;
    const x = r();
    if (x < 0.15 && inIf.local[family].length > 0) {
      dst = pick(r, inIf.local[family]);
      dstLocal = true;
    } else if (x < 0.2) {
      const other = ifaces.find((i) => i !== inIf);
      if (other && other.local[family].length > 0) dst = pick(r, other.local[family]);
    }
    // a random address may be one of the firewall's own: dst_iface is about where it is, not how it was picked
    dstLocal = inIf.local[family].includes(dst);
    const icmp = family === 4 ? 1 : 58;
    const proto = pick(r, [6, 6, 17, 17, icmp, 99]);
    const conn: Connection = { proto, src, dst, iface: inIf.name, ifgroup: inIf.group, dstLocal };
    if (proto === 6 || proto === 17) {
      conn.srcPort = pick(r, [1234, 1500, 5, 40000 + Math.floor(r() * 20000), 1 + Math.floor(r() * 65535)]);
      conn.dstPort = pick(r, [22, 80, 443, 1023, 8050, 8000, 50, 1 + Math.floor(r() * 65535)]);
    } else {
      conn.srcPort = 0;
      conn.dstPort = 0;
    }
    if (proto === icmp) {
      // only ICMP types conntrack accepts as the start of a connection
      conn.icmpType = family === 4 ? pick(r, [8, 13]) : 128;
      conn.icmpCode = pick(r, [0, 0, 1]);
    }
    const key = `${src}|${dst}|${proto}|${conn.srcPort}|${conn.dstPort}`;
    if (proto !== icmp && tuples.has(key)) continue;
    tuples.add(key);
    out.push({ conn, family, iface: inIf.name, tag: tag++ });
  }
  return out;
}
