// A compact JSON form of the resolved policy model for the daemon's namespace tests, so they exercise
// the daemon, kernel compiler, engine and proxies independently of the YAML loader.
//   { "zones": { "clients": ["198.18.1.0/24", "2001:db8:1::/64"], ... },
//     "services": [ { "name": "plug", "proxy": "plug", ...ProxyService overrides } ],
//     "rules": [ { "id": 1, "service": "plug", "dstPort": [8080] , "srcZone": ["clients"] } ] }
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { LoadOutcome } from '../../../src/daemon/generation.ts';
import { TzorpError } from '../../../src/errors.ts';
import type { Policy, ProxyService, Rule } from '../../../src/policy/model.ts';
import { policy, proxy, zone } from '../../unit/daemon/fixtures.ts';

export interface JsonPolicy {
  zones: Record<string, string[]>;
  services: (Partial<ProxyService> & { name: string })[];
  rules: { id: number; service: string; dstPort?: number[]; srcZone?: string[]; dstZone?: string[] }[];
  broken?: boolean;
}

const pos = (file: string) => ({ file, line: 1, col: 1 });

export function fromJson(j: JsonPolicy, file: string, sha256: string): Policy {
  const zones = Object.entries(j.zones).map(([name, addrs]) => zone(name, addrs));
  const names = j.services.map((s) => s.name).sort();
  const services = j.services.map((s) =>
    proxy(s.name, names.indexOf(s.name) + 1, { chainer: { type: 'connect', timeoutConnectMs: 5000 }, ...s }),
  );
  const rules: Rule[] = j.rules.map((r) => ({
    id: r.id,
    service: r.service,
    pos: pos(file),
    proto: [6],
    ...(r.dstPort ? { dstPort: r.dstPort.map((p) => ({ lo: p, hi: p })) } : {}),
    ...(r.srcZone ? { srcZone: r.srcZone } : {}),
    ...(r.dstZone ? { dstZone: r.dstZone } : {}),
  }));
  return { ...policy(services, rules, sha256, zones), source: { file, sha256 } };
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
