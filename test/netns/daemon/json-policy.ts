// A compact JSON form of the resolved policy model for the daemon's namespace tests, so they exercise
// the daemon, kernel compiler, engine and proxies independently of the YAML loader.
//   { "zones": { "clients": ["198.18.1.0/24", "2001:db8:1::/64"], ... },
//     "services": [ { "name": "plug", "proxy": "plug", ...ProxyService overrides } ],
//     "rules": [ { "id": 1, "service": "plug", "dstPort": [8080] , "srcZone": ["clients"] } ] }
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import ipaddr from 'ipaddr.js';
import type { LoadOutcome } from '../../../src/daemon/generation.ts';
import { TzorpError } from '../../../src/errors.ts';
import type { Cidr, Policy, ProxyService, Rule, Zone } from '../../../src/policy/model.ts';

export interface JsonPolicy {
  zones: Record<string, string[]>;
  services: (Partial<ProxyService> & { name: string })[];
  rules: { id: number; service: string; dstPort?: number[]; srcZone?: string[]; dstZone?: string[] }[];
  broken?: boolean;
}

const pos = (file: string) => ({ file, line: 1, col: 1 });

function cidr(text: string): Cidr {
  const [a, p] = ipaddr.parseCIDR(text);
  let addr = 0n;
  for (const b of a.toByteArray()) addr = (addr << 8n) | BigInt(b);
  return { family: a.kind() === 'ipv6' ? 6 : 4, addr, prefix: p, text };
}

export function fromJson(j: JsonPolicy, file: string, sha256: string): Policy {
  const zones = new Map<string, Zone>();
  for (const [name, addrs] of Object.entries(j.zones)) {
    zones.set(name, {
      name,
      parent: null,
      children: [],
      depth: 1,
      addresses: addrs.map(cidr),
      pos: pos(file),
    });
  }
  const names = j.services.map((s) => s.name).sort();
  const services = new Map<string, ProxyService>();
  for (const s of j.services) {
    services.set(s.name, {
      type: 'proxy',
      id: names.indexOf(s.name) + 1,
      pos: pos(file),
      logging: true,
      proxy: 'plug',
      router: { type: 'transparent', forcedPort: null, forgeAddr: false, forgePort: 'any' },
      chainer: { type: 'connect', timeoutConnectMs: 5000 },
      options: {},
      limitTargetZonesTo: [],
      maxSessions: 0,
      listenPort: null,
      ...s,
    });
  }
  const rules: Rule[] = j.rules.map((r) => ({
    id: r.id,
    service: r.service,
    pos: pos(file),
    proto: [6],
    ...(r.dstPort ? { dstPort: r.dstPort.map((p) => ({ lo: p, hi: p })) } : {}),
    ...(r.srcZone ? { srcZone: r.srcZone } : {}),
    ...(r.dstZone ? { dstZone: r.dstZone } : {}),
  }));
  return {
    zones,
    services,
    rules,
    management: [],
    bypass: [],
    settings: {
      tproxyMark: 0x80000000,
      serviceMarkMask: 0xffff,
      routingTable: 100,
      listenV4: '127.0.0.1',
      listenV6: '::1',
      listenPortBase: 50000,
    },
    source: { file, sha256 },
  };
}

export async function loadJsonPolicy(file: string): Promise<LoadOutcome> {
  const bytes = await readFile(file);
  const sha = createHash('sha256').update(bytes).digest('hex');
  const j = JSON.parse(bytes.toString('utf8')) as JsonPolicy;
  if (j.broken) {
    const e = new TzorpError('POLICY_UNKNOWN_ZONE', 'unknown zone "nowhere"', {
      pos: { file, line: 3, col: 7 },
    });
    return { policy: null, errors: [e], warnings: [] };
  }
  return { policy: fromJson(j, file, sha), errors: [], warnings: [] };
}
