// The iptables user's surprise (issue 10, item 9): a deny rule written as a blocklist entry
// (`{ service: reject_all, src_subnet: 203.0.113.66 }`) loses to a more specific allow rule (one that
// names a port), so the address still gets through on that port. For each deny rule and each rule of
// another service, a connection both match is built (the other rule's values where it has them, the
// deny rule's elsewhere) and decided by the engine: when the deny rule matches it and the other rule
// wins, the warning names that witness. A warning is always true (a real connection shows it); pairs
// whose merged connection misses either rule are passed over. Pure: no I/O.
import { TzorpError } from '../errors.ts';
import { type Conditions, DIMENSIONS, type Policy, type Rule } from '../policy/model.ts';
import type { Engine } from './engine.ts';
import { connectionForConditions } from './samples.ts';
import { flattenZones } from './zone-trie.ts';

/** At most this many deny/other pairs are decided (each an engine explanation). */
const MAX_PAIRS = 20_000;

const SIDES = {
  src: ['srcSubnet', 'srcZone'],
  dst: ['dstSubnet', 'dstZone'],
} as const satisfies Record<string, readonly (keyof Conditions)[]>;
const ADDRESS_KEYS = new Set<keyof Conditions>([...SIDES.src, ...SIDES.dst]);

/** One address side of a rule as written (its subnet and zone, only those it has), or null. */
function sideOf(r: Rule, keys: readonly (keyof Conditions)[]): Conditions | null {
  const c: Conditions = {};
  for (const k of keys) if (r[k] !== undefined) (c as Record<string, unknown>)[k] = r[k];
  return Object.keys(c).length > 0 ? c : null;
}

/** Conditions both rules may match: the other rule's values where it has them, the deny rule's
 * elsewhere; each address side taken whole from one rule (a subnet and a zone of one side from two
 * rules would be neither's), from either rule when both name one (a deny rule's address inside the
 * other rule's zone). */
function mergedVariants(deny: Rule, other: Rule): Conditions[] {
  const base: Conditions = {};
  for (const k of DIMENSIONS) {
    const v = ADDRESS_KEYS.has(k) ? undefined : (other[k] ?? deny[k]);
    if (v !== undefined) (base as Record<string, unknown>)[k] = v;
  }
  const choices = (keys: readonly (keyof Conditions)[]): Conditions[] => {
    const found = [sideOf(other, keys), sideOf(deny, keys)].filter((c): c is Conditions => c !== null);
    return found.length > 0 ? found : [{}];
  };
  const out: Conditions[] = [];
  for (const src of choices(SIDES.src))
    for (const dst of choices(SIDES.dst)) out.push({ ...base, ...src, ...dst });
  return out;
}

function describe(conn: { proto: number; src: string; dst: string; dstPort: number }): string {
  const proto = conn.proto === 6 ? 'tcp' : conn.proto === 17 ? 'udp' : `proto ${conn.proto}`;
  const port = conn.proto === 6 || conn.proto === 17 ? ` port ${conn.dstPort}` : '';
  return `${proto} ${conn.src} -> ${conn.dst}${port}`;
}

/** TZ1525 warnings: deny rules that a more specific rule of another service beats for some traffic. */
export function outrankedDenies(engine: Engine): TzorpError[] {
  const policy: Policy = engine.policy;
  const denies = policy.rules.filter((r) => policy.services.get(r.service)?.type === 'deny');
  if (denies.length === 0) return [];
  const others = policy.rules.filter((r) => policy.services.get(r.service)?.type !== 'deny');
  const flat = flattenZones(policy);
  const out: TzorpError[] = [];
  let pairs = 0;
  for (const d of denies) {
    const beaten: string[] = [];
    for (const o of others) {
      if (++pairs > MAX_PAIRS) break;
      witness: for (const c of mergedVariants(d, o)) {
        for (const family of [4, 6] as const) {
          const conn = connectionForConditions(engine, policy, flat, c, family);
          if (conn === null) continue;
          const ex = engine.explain(conn);
          if (ex.rule?.id !== o.id) continue;
          if (!ex.candidates.some((k) => k.rule === d.id && k.matched)) continue;
          beaten.push(`rule ${o.id} (service ${o.service}) wins ${describe(ex.connection)}`);
          break witness;
        }
      }
    }
    if (beaten.length === 0) continue;
    const more = beaten.length > 3 ? ` and ${beaten.length - 3} more` : '';
    out.push(
      new TzorpError(
        'LINT_DENY_OUTRANKED',
        `deny rule ${d.id} (service ${d.service}) does not refuse everything it matches: a more specific rule wins some of it (best match): ${beaten.slice(0, 3).join('; ')}${more}. To refuse this traffic whatever other rules say, list it under block:`,
        { pos: d.pos },
      ),
    );
  }
  return out;
}
