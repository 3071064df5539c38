// Syntax tree -> resolved Policy (model.ts), checking everything model.ts promises to later stages.
// Every problem is collected in Diagnostics with its position; the Policy is returned only when there
// were none. All walks are iterative or bounded by the format's fixed nesting, so neither deep zone
// hierarchies nor large files can overflow the stack.
import { DEFAULTS } from '../defaults.ts';
import { type CidrResult, parseAddress, parseCidr, parseEndpoint } from './address.ts';
import { type Diagnostics, didYouMean } from './diagnostics.ts';
import {
  CHAINER_FIELDS,
  CHAINER_TYPES,
  CONDITION_FIELDS,
  CONDITION_NAMES,
  DENY_SERVICE_FIELDS,
  FORGE_PORT_WORDS,
  FORWARD_SERVICE_FIELDS,
  MANAGEMENT_FIELDS,
  MAX_IFNAME_CHARS,
  MAX_NAME_CHARS,
  NAME_PATTERN,
  PROTO_NAMES,
  PROXY_SERVICE_FIELDS,
  ROUTER_FIELDS,
  ROUTER_TYPES,
  RULE_FIELDS,
  SERVICE_COMMON_FIELDS,
  SERVICE_TYPES,
  SETTINGS_FIELDS,
  TLS_CA_FIELDS,
  TLS_FIELDS,
  TLS_SNI_FIELDS,
  TOP_FIELDS,
  ZONE_FIELDS,
} from './fields.ts';
import {
  type BlockRule,
  type BypassRule,
  type Chainer,
  type Cidr,
  type Conditions,
  DENY_V4,
  DENY_V6,
  type DenyV4,
  type DenyV6,
  type Endpoint,
  type ForgePort,
  MAX_ZONE_DEPTH,
  type ManagementRule,
  type Policy,
  type PolicySettings,
  type PortRange,
  type Router,
  type Rule,
  type Service,
  type SourcePos,
  TLS_MIN_VERSIONS,
  TLS_MODES,
  TLS_SNI_MISSING,
  type TlsMinVersion,
  type TlsMode,
  type TlsPolicy,
  type Zone,
} from './model.ts';
import { describe, type PEntry, type PMap, type PNode, type PScalar } from './syntax.ts';

/** A `tls: sni:` glob: host name characters plus the glob's `*` and `?`. */
const SNI_GLOB = /^[A-Za-z0-9_*?.-]{1,253}$/;

/** Rule ids travel in the packet mark below the tproxy bit (0x80000000): at most 31 bits. */
export const MAX_RULE_ID = 0x7fffffff;

const INT = /^(0|[1-9][0-9]*)$/;
const HEX = /^0[xX][0-9a-fA-F]+$/;
const BOOL_TRUE = new Set(['true', 'True', 'TRUE']);
const BOOL_FALSE = new Set(['false', 'False', 'FALSE']);

/** Extra facts the loader keeps for lint (positions of things the model does not carry). */
export interface ResolveExtras {
  /** Zones referred to anywhere (parents, rules, management, bypass, limit_target_zones_to). */
  usedZones: Set<string>;
}

/**
 * Each zone's networks as the last policy that resolved listed and parsed them (the one resolving now
 * keeps its own: Resolver.zoneNets). A reload mostly lists the same 100,000 networks in the same zones again: a zone
 * whose address texts are the same, in the same order, takes the last parse results (a string compare
 * each, instead of a parse and a formatting). The Cidr objects are then shared between the two
 * policies, which is safe: nothing changes a Cidr once it is made.
 */
type ZoneNets = Map<string, { texts: string[]; results: CidrResult[]; addresses?: Cidr[] }>;
let lastZoneNets: ZoneNets = new Map();

/** The parse result of each of a zone's address nodes, kept in `next` for the next resolve; null when
 * the zone has a node that is not a scalar (then the caller parses and reports each node itself). */
function zoneNetworks(zone: string, nodes: PNode[], next: ZoneNets): (CidrResult | null)[] {
  const texts: string[] = [];
  for (const n of nodes) {
    if (n.kind !== 'scalar') return nodes.map(() => null);
    texts.push(n.value);
  }
  const last = lastZoneNets.get(zone);
  let results: CidrResult[];
  if (last && last.texts.length === texts.length && last.texts.every((t, i) => t === texts[i]))
    results = last.results;
  else results = texts.map((t) => parseCidr(t.trim()));
  next.set(zone, { texts, results });
  return results;
}

/** Forgets the kept networks: the next resolve parses every network, as the first of a process does. */
export function forgetZoneNetworks(): void {
  lastZoneNets = new Map();
}

export class Resolver {
  private zones = new Map<string, Zone>();
  private zoneNames = new Set<string>();
  /** This policy's zone networks as parsed (zoneNetworks), kept for the next resolve if this one
   * succeeds; a refused policy leaves the last ones. */
  private readonly zoneNets: ZoneNets = new Map();
  private serviceNames = new Set<string>();
  private settings!: PolicySettings;
  private publishEntry: PEntry | undefined;
  readonly usedZones = new Set<string>();
  /** Where the top-level `management:` key is (null: the policy has none), for the safety lint. */
  managementAt: number | null = null;
  /** When resolve failed: what did resolve (the parts with errors left out), for `tzorp check` to
   * report the problems it can still find beside the errors. Never a policy to run. */
  partial: Policy | null = null;
  /** Where the policy starts (warnings about something missing point there). */
  topAt = 0;

  constructor(private readonly d: Diagnostics) {}

  // ---------------------------------------------------------------------------------------------
  // typed accessors

  private typeError(n: PNode, what: string, expected: string): void {
    this.d.error('POLICY_TYPE', `${what} must be ${expected}, not ${describe(n)}`, n.at);
  }

  private map(n: PNode, what: string, nullIsEmpty = false): PMap | null {
    if (n.kind === 'map') return n;
    if (n.kind === 'null' && nullIsEmpty) return { kind: 'map', at: n.at, entries: [] };
    this.typeError(n, what, 'a mapping');
    return null;
  }

  /** Known fields of a mapping; unknown ones are reported (unless `extra` takes them), duplicates too. */
  private fields(
    m: PMap,
    known: readonly string[],
    what: string,
    extra?: (e: PEntry) => boolean,
  ): Map<string, PEntry> {
    const out = new Map<string, PEntry>();
    for (const e of m.entries) {
      if (!known.includes(e.key)) {
        if (extra?.(e)) continue;
        this.d.error(
          'POLICY_UNKNOWN_FIELD',
          `unknown field '${e.key}' in ${what}${didYouMean(e.key, known)}`,
          e.keyAt,
        );
        continue;
      }
      if (out.has(e.key)) {
        this.d.error('POLICY_DUPLICATE_NAME', `field '${e.key}' is given twice in ${what}`, e.keyAt);
        continue;
      }
      out.set(e.key, e);
    }
    return out;
  }

  private str(n: PNode, what: string): string | null {
    if (n.kind === 'scalar') return n.value;
    this.typeError(n, what, 'a string');
    return null;
  }

  private int(n: PNode, what: string, min: number, max: number, hex = false): number | null {
    if (n.kind !== 'scalar' || !(INT.test(n.value) || (hex && HEX.test(n.value)))) {
      if (n.kind === 'scalar' && /^-[0-9]+$/.test(n.value)) {
        this.d.error('POLICY_BAD_VALUE', `${what} must be between ${min} and ${max}, not ${n.value}`, n.at);
        return null;
      }
      this.typeError(n, what, hex ? 'an integer (decimal or 0x hex)' : 'an integer');
      return null;
    }
    const v = Number(n.value);
    if (!Number.isSafeInteger(v) || v < min || v > max) {
      this.d.error('POLICY_BAD_VALUE', `${what} must be between ${min} and ${max}, not ${n.value}`, n.at);
      return null;
    }
    return v;
  }

  private bool(n: PNode, what: string): boolean | null {
    if (n.kind === 'scalar' && !n.quoted) {
      if (BOOL_TRUE.has(n.value)) return true;
      if (BOOL_FALSE.has(n.value)) return false;
    }
    this.typeError(n, what, 'true or false');
    return null;
  }

  private oneOf<T extends string>(n: PNode, what: string, allowed: readonly T[]): T | null {
    const s = this.str(n, what);
    if (s === null) return null;
    if ((allowed as readonly string[]).includes(s)) return s as T;
    this.d.error(
      'POLICY_BAD_VALUE',
      `${what} '${s}' is not one of: ${allowed.join(', ')}${didYouMean(s, allowed)}`,
      n.at,
    );
    return null;
  }

  /** A scalar or a list of scalars; an empty list is refused (omit the field for "any"). */
  private list(n: PNode, what: string): PNode[] | null {
    if (n.kind === 'seq') {
      if (n.items.length === 0) {
        this.d.error('POLICY_BAD_VALUE', `${what} is an empty list: omit the field to match anything`, n.at);
        return null;
      }
      return n.items;
    }
    if (n.kind === 'map') {
      this.typeError(n, what, 'a value or a list of values');
      return null;
    }
    if (n.kind === 'null') {
      this.typeError(n, what, 'a value or a list of values');
      return null;
    }
    return [n];
  }

  private name(n: PScalar | { value: string; at: number }, what: string): boolean {
    if (!NAME_PATTERN.test(n.value) || n.value.length > MAX_NAME_CHARS) {
      this.d.error(
        'POLICY_BAD_VALUE',
        `${what} '${n.value}' is not a valid name (letters, digits, '_', '.', '-'; starting with a letter or '_'; at most ${MAX_NAME_CHARS} characters)`,
        n.at,
      );
      return false;
    }
    return true;
  }

  private cidr(n: PNode, what: string): Cidr | null {
    if (n.kind !== 'scalar') {
      this.typeError(n, what, 'an address or network (a.b.c.d/n, x:y::/n)');
      return null;
    }
    return this.parsedCidr(n, what, parseCidr(n.value.trim()));
  }

  /** A scalar's parse result, its error or host-bits warning reported. */
  private parsedCidr(n: PScalar, what: string, r: CidrResult): Cidr | null {
    if (!r.ok) {
      this.d.error('POLICY_BAD_CIDR', `${what} '${n.value}': ${r.reason}`, n.at);
      return null;
    }
    if (r.hostBits) {
      this.d.warn(
        'LINT_HOST_BITS',
        `${what} '${n.value}' has host bits set; it is used as ${r.cidr.text} (as KZorp masks it)`,
        n.at,
      );
    }
    return r.cidr;
  }

  private port(n: PNode, what: string): PortRange | null {
    if (n.kind !== 'scalar') {
      this.typeError(n, what, 'a port or a range "lo-hi"');
      return null;
    }
    const m = /^\s*([0-9]+)\s*(?:-\s*([0-9]+)\s*)?$/.exec(n.value);
    const bad = (why: string) => {
      this.d.error('POLICY_BAD_PORT', `${what} '${n.value}': ${why}`, n.at);
      return null;
    };
    if (!m) return bad('expected a port 0-65535 or an inclusive range "lo-hi"');
    const lo = Number(m[1]);
    const hi = m[2] === undefined ? lo : Number(m[2]);
    if ((m[1] as string).length > 5 || lo > 65535) return bad(`port ${m[1]} is larger than 65535`);
    if (m[2] !== undefined && (m[2].length > 5 || hi > 65535))
      return bad(`port ${m[2]} is larger than 65535`);
    if (lo > hi) return bad(`the range starts after it ends (${lo} > ${hi})`);
    return { lo, hi };
  }

  private pos(at: number): SourcePos {
    return this.d.pos(at);
  }

  // ---------------------------------------------------------------------------------------------

  resolve(root: PNode, source: { file: string; sha256: string }): Policy | null {
    const top = this.map(root, 'the policy', true);
    if (!top) return null;
    const f = this.fields(top, TOP_FIELDS, 'the policy');
    this.settings = this.resolveSettings(f.get('settings'));
    const zones = this.resolveZones(f.get('zones'));
    this.resolvePublishZoneSets();
    const serviceDefs = this.resolveServices(f.get('services'));
    const rules = this.resolveRules(f.get('rules'));
    const management = this.resolveConditionList(f.get('management'), 'management');
    this.managementAt = f.get('management')?.keyAt ?? null;
    this.topAt = top.at;
    const bypass = this.resolveConditionList(f.get('bypass'), 'bypass');
    const block = this.resolveConditionList(f.get('block'), 'block');
    const policy: Policy = {
      zones,
      services: serviceDefs,
      rules,
      management,
      bypass,
      block,
      settings: this.settings,
      source,
    };
    if (this.d.failed) {
      this.partial = policy;
      return null;
    }
    lastZoneNets = this.zoneNets; // a resolved policy's networks are the ones kept for the next
    return policy;
  }

  // --- settings ----------------------------------------------------------------------------------

  private resolveSettings(e: PEntry | undefined): PolicySettings {
    const s: PolicySettings = {
      tproxyMark: DEFAULTS.tproxyMark,
      serviceMarkMask: DEFAULTS.serviceMarkMask,
      routingTable: DEFAULTS.routingTable,
      listenV4: DEFAULTS.listenV4,
      listenV6: DEFAULTS.listenV6,
      listenPortBase: DEFAULTS.listenPortBase,
      publishZoneSets: 'referenced',
    };
    if (!e) return s;
    const m = this.map(e.value, 'settings', true);
    if (!m) return s;
    const f = this.fields(m, SETTINGS_FIELDS, 'settings');
    const u32 = 0xffffffff;
    const tm = f.get('tproxy_mark');
    if (tm) {
      const v = this.int(tm.value, 'settings.tproxy_mark', 1, u32, true);
      if (v !== null) s.tproxyMark = v;
    }
    const sm = f.get('service_mark_mask');
    if (sm) {
      const v = this.int(sm.value, 'settings.service_mark_mask', 1, u32, true);
      if (v !== null) {
        s.serviceMarkMask = v;
        const shifted = v / 2 ** ctz(v);
        if (((shifted + 1) & shifted) !== 0 && shifted !== u32) {
          this.d.error(
            'POLICY_BAD_SETTING',
            'settings.service_mark_mask must be one run of contiguous bits',
            sm.value.at,
          );
        }
      }
    }
    if ((s.tproxyMark & s.serviceMarkMask) >>> 0 !== 0) {
      this.d.error(
        'POLICY_BAD_SETTING',
        `settings.service_mark_mask (0x${s.serviceMarkMask.toString(16)}) overlaps tproxy_mark (0x${s.tproxyMark.toString(16)})`,
        (sm ?? tm)?.value.at ?? m.at,
      );
    }
    const rt = f.get('routing_table');
    if (rt) {
      const v = this.int(rt.value, 'settings.routing_table', 1, u32);
      if (v !== null) {
        if (v >= 253 && v <= 255) {
          this.d.error(
            'POLICY_BAD_SETTING',
            `settings.routing_table ${v} is a reserved table (default, main, local)`,
            rt.value.at,
          );
        } else {
          s.routingTable = v;
        }
      }
    }
    for (const [key, fam, field] of [
      ['listen_v4', 4, 'listenV4'],
      ['listen_v6', 6, 'listenV6'],
    ] as const) {
      const le = f.get(key);
      if (!le) continue;
      const t = this.str(le.value, `settings.${key}`);
      if (t === null) continue;
      const a = parseAddress(t);
      if (a === null || a.family !== fam || t.includes('/')) {
        this.d.error('POLICY_BAD_CIDR', `settings.${key} '${t}' is not an IPv${fam} address`, le.value.at);
      } else {
        s[field] = t;
      }
    }
    const lp = f.get('listen_port_base');
    if (lp) {
      const v = this.int(lp.value, 'settings.listen_port_base', 1, 65535);
      if (v !== null) s.listenPortBase = v;
    }
    const ur = f.get('user_rules');
    if (ur) {
      const t = this.str(ur.value, 'settings.user_rules');
      if (t !== null && t.length > 0) s.userRules = t;
      else if (t !== null)
        this.d.error('POLICY_BAD_SETTING', 'settings.user_rules must name a file', ur.value.at);
    }
    // the zone names are checked once the zones are known (resolvePublishZoneSets)
    this.publishEntry = f.get('publish_zone_sets');
    return s;
  }

  private resolvePublishZoneSets(): void {
    const e = this.publishEntry;
    if (!e) return;
    const what = 'settings.publish_zone_sets';
    if (e.value.kind === 'scalar') {
      const v = this.oneOf(e.value, what, ['referenced', 'all'] as const);
      if (v !== null) this.settings.publishZoneSets = v;
      return;
    }
    if (e.value.kind !== 'seq') {
      this.typeError(e.value, what, "'referenced', 'all' or a list of zone names");
      return;
    }
    const names: string[] = [];
    for (const item of e.value.items) {
      const z = this.zoneRef(item, what);
      if (z !== null && !names.includes(z)) names.push(z);
    }
    this.settings.publishZoneSets = names;
  }

  // --- zones -------------------------------------------------------------------------------------

  private resolveZones(e: PEntry | undefined): Map<string, Zone> {
    const zones = this.zones;
    if (!e) return zones;
    const m = this.map(e.value, 'zones', true);
    if (!m) return zones;
    const parentAt = new Map<string, number>();
    const defAt = new Map<string, number>();
    // each zone's address nodes (a zone is defined once: a second definition was refused above)
    const zoneNodes: { zone: string; nodes: PNode[] }[] = [];
    for (const ze of m.entries) {
      this.zoneNames.add(ze.key);
    }
    for (const ze of m.entries) {
      const name = ze.key;
      if (defAt.has(name)) {
        this.d.error('POLICY_DUPLICATE_NAME', `zone '${name}' is defined twice`, ze.keyAt);
        continue;
      }
      defAt.set(name, ze.keyAt);
      this.name({ value: name, at: ze.keyAt }, 'zone name');
      const zm = this.map(ze.value, `zone '${name}'`, true);
      const zone: Zone = {
        name,
        parent: null,
        children: [],
        depth: 1,
        addresses: [],
        pos: this.pos(ze.keyAt),
      };
      zones.set(name, zone);
      if (!zm) continue;
      const f = this.fields(zm, ZONE_FIELDS, `zone '${name}'`);
      const pe = f.get('parent');
      if (pe && pe.value.kind !== 'null') {
        const p = this.str(pe.value, `zone '${name}' parent`);
        if (p !== null) {
          if (!this.zoneNames.has(p)) {
            this.d.error(
              'POLICY_UNKNOWN_ZONE',
              `zone '${name}' has an unknown parent zone '${p}'${this.suggest(p, this.zoneNames)}`,
              pe.value.at,
            );
          } else {
            zone.parent = p;
            parentAt.set(name, pe.value.at);
            // being a parent does not make a zone "used" (lint looks at rule references)
          }
        }
      }
      const de = f.get('description');
      if (de) {
        const t = this.str(de.value, `zone '${name}' description`);
        if (t !== null) zone.description = t;
      }
      const ae = f.get('addresses');
      if (ae && ae.value.kind !== 'null') {
        if (ae.value.kind === 'seq') zoneNodes.push({ zone: name, nodes: ae.value.items });
        else if (ae.value.kind === 'scalar') zoneNodes.push({ zone: name, nodes: [ae.value] });
        else this.typeError(ae.value, `zone '${name}' addresses`, 'an address or a list of addresses');
      }
    }
    // networks: unique across all zones (masked prefix and length), /0 included
    const seen = new Map<string, string>();
    const parsed = zoneNodes.map(({ zone, nodes }) => zoneNetworks(zone, nodes, this.zoneNets));
    // A reload that lists every zone's networks as the last resolved policy did (the same zones, the
    // same texts in the same order) has the same networks in the same zones, and that policy had no
    // duplicate: each zone takes the last policy's network list as it is (the engine and the compiler
    // then see the very same lists), and only the host-bits warnings are given again, here.
    const same =
      zoneNodes.length === lastZoneNets.size &&
      zoneNodes.every(({ zone }, k) => {
        const last = lastZoneNets.get(zone);
        return last !== undefined && last.results === parsed[k] && last.addresses !== undefined;
      });
    for (const [k, { zone, nodes }] of zoneNodes.entries()) {
      const results = parsed[k]!;
      const what = `zone '${zone}' address`;
      const z = zones.get(zone) as Zone;
      if (same) {
        for (let i = 0; i < nodes.length; i++) {
          const r = results[i];
          if (r?.ok && r.hostBits) this.parsedCidr(nodes[i] as PScalar, what, r);
        }
        z.addresses = lastZoneNets.get(zone)!.addresses!;
        this.zoneNets.get(zone)!.addresses = z.addresses;
        continue;
      }
      for (let i = 0; i < nodes.length; i++) {
        const node = nodes[i]!;
        const r = results[i] ?? null;
        const c =
          r === null || node.kind !== 'scalar' ? this.cidr(node, what) : this.parsedCidr(node, what, r);
        if (c === null) continue;
        const key = c.text; // canonical and masked: one text per network
        const other = seen.get(key);
        if (other !== undefined) {
          this.d.error(
            'POLICY_DUPLICATE_NETWORK',
            other === zone
              ? `network ${c.text} is listed twice in zone '${zone}'`
              : `network ${c.text} is already in zone '${other}' (a network may belong to one zone only)`,
            node.at,
          );
          continue;
        }
        seen.set(key, zone);
        z.addresses.push(c);
      }
      const kept = this.zoneNets.get(zone);
      if (kept) kept.addresses = z.addresses;
    }
    this.resolveHierarchy(parentAt);
    return zones;
  }

  /** Depths, cycles and children, iteratively (a 10,000-level chain is just a long loop). */
  private resolveHierarchy(parentAt: Map<string, number>): void {
    const zones = this.zones;
    // 0 unvisited, 1 on the current path, 2 done; depth -1 = inside or below a cycle
    const state = new Map<string, number>();
    const depth = new Map<string, number>();
    for (const start of zones.keys()) {
      if (state.get(start) === 2) continue;
      const path: string[] = [];
      let z: string | null = start;
      while (z !== null && (state.get(z) ?? 0) === 0) {
        state.set(z, 1);
        path.push(z);
        z = (zones.get(z) as Zone).parent;
      }
      let base = 0;
      if (z !== null && state.get(z) === 1) {
        // a cycle: z .. end of path
        const from = path.indexOf(z);
        const cycle = path.slice(from);
        const first = cycle.reduce((a, b) => ((parentAt.get(a) ?? 0) <= (parentAt.get(b) ?? 0) ? a : b));
        const shown = cycle.length > 10 ? [...cycle.slice(0, 10), '...'] : cycle;
        this.d.error(
          'POLICY_PARENT_CYCLE',
          `zone parents form a cycle: ${[...shown, shown[0]].join(' -> ')}`,
          parentAt.get(first),
        );
        for (const c of cycle) {
          depth.set(c, -1);
          state.set(c, 2);
        }
        path.length = from;
        base = -1;
      } else if (z !== null) {
        base = depth.get(z) as number;
      }
      for (let i = path.length - 1; i >= 0; i--) {
        const name = path[i] as string;
        const d = base < 0 ? -1 : base + 1;
        depth.set(name, d);
        state.set(name, 2);
        if (d === MAX_ZONE_DEPTH + 1) {
          this.d.error(
            'POLICY_ZONE_TOO_DEEP',
            `zone '${name}' is at depth ${d} of the hierarchy; KZorp allows at most ${MAX_ZONE_DEPTH} levels`,
            parentAt.get(name),
          );
        }
        base = d;
      }
    }
    for (const zone of zones.values()) {
      zone.depth = Math.max(1, depth.get(zone.name) ?? 1);
      if (zone.parent !== null) zones.get(zone.parent)?.children.push(zone.name);
    }
    for (const zone of zones.values()) zone.children.sort(byName);
  }

  private suggest(name: string, known: Set<string> | Map<string, unknown>): string {
    if (known.size > DEFAULTS.maxSuggestNames) return '';
    return didYouMean(name, known.keys());
  }

  private zoneRef(n: PNode, what: string): string | null {
    const s = this.str(n, what);
    if (s === null) return null;
    if (!this.zoneNames.has(s)) {
      this.d.error(
        'POLICY_UNKNOWN_ZONE',
        `${what}: unknown zone '${s}'${this.suggest(s, this.zoneNames)}`,
        n.at,
      );
      return null;
    }
    this.usedZones.add(s);
    return s;
  }

  // --- services ----------------------------------------------------------------------------------

  private resolveServices(e: PEntry | undefined): Map<string, Service> {
    const out = new Map<string, Service>();
    if (!e) return out;
    const m = this.map(e.value, 'services', true);
    if (!m) return out;
    const firstAt = new Map<string, PEntry>();
    for (const se of m.entries) {
      if (firstAt.has(se.key)) {
        this.d.error('POLICY_DUPLICATE_NAME', `service '${se.key}' is defined twice`, se.keyAt);
        continue;
      }
      firstAt.set(se.key, se);
      this.serviceNames.add(se.key);
    }
    // ids: 1-based index in name order (stable for a name within one policy)
    const names = [...firstAt.keys()].sort(byName);
    const maxServices = this.settings.serviceMarkMask / 2 ** ctz(this.settings.serviceMarkMask);
    if (names.length > maxServices) {
      this.d.error(
        'POLICY_BAD_SETTING',
        `${names.length} services do not fit in settings.service_mark_mask (at most ${maxServices})`,
        m.at,
      );
    }
    const built: Service[] = [];
    names.forEach((name, i) => {
      const se = firstAt.get(name) as PEntry;
      this.name({ value: name, at: se.keyAt }, 'service name');
      const s = this.resolveService(name, i + 1, se);
      if (s) built.push(s);
    });
    // listener ports: explicit ones and the allocated ones must not collide, and must exist
    const ports = new Map<number, string>();
    for (const s of built) {
      if (s.type !== 'proxy') continue;
      const port = s.listenPort ?? this.settings.listenPortBase + s.id - 1;
      if (port > 65535) {
        this.d.error(
          'POLICY_BAD_SETTING',
          `service '${s.name}' would listen on port ${port}: lower settings.listen_port_base or set listen_port`,
          (firstAt.get(s.name) as PEntry).keyAt,
        );
        continue;
      }
      const other = ports.get(port);
      if (other !== undefined) {
        this.d.error(
          'POLICY_BAD_SERVICE',
          `services '${other}' and '${s.name}' would both listen on port ${port} (set listen_port)`,
          (firstAt.get(s.name) as PEntry).keyAt,
        );
      }
      ports.set(port, s.name);
    }
    // in id (= name) order: every later stage iterates deterministically
    for (const b of built) out.set(b.name, b);
    return out;
  }

  private resolveService(name: string, id: number, se: PEntry): Service | null {
    const what = `service '${name}'`;
    const m = this.map(se.value, what);
    if (!m) return null;
    const typeEntry = m.entries.find((x) => x.key === 'type');
    if (!typeEntry) {
      this.d.error('POLICY_MISSING_FIELD', `${what} has no 'type' (proxy, forward or deny)`, se.keyAt);
      return null;
    }
    const type = this.oneOf(typeEntry.value, `${what} type`, SERVICE_TYPES);
    if (type === null) return null;
    const base = { name, id, pos: this.pos(se.keyAt), logging: true } as {
      name: string;
      id: number;
      pos: SourcePos;
      logging: boolean;
      description?: string;
    };
    const known: string[] = [...SERVICE_COMMON_FIELDS];
    const flatOptions: PEntry[] = [];
    if (type === 'proxy') known.push(...PROXY_SERVICE_FIELDS);
    if (type === 'forward') known.push(...FORWARD_SERVICE_FIELDS);
    if (type === 'deny') known.push(...DENY_SERVICE_FIELDS);
    const f = this.fields(m, known, what, (e) => {
      // a proxy service's other keys are per-proxy options (validated by the proxy module), unless the
      // key looks like a misspelt service field
      if (type !== 'proxy') return false;
      const hint = didYouMean(e.key, known);
      if (hint !== '') return false;
      flatOptions.push(e);
      return true;
    });
    const le = f.get('logging');
    if (le) {
      const b = this.bool(le.value, `${what} logging`);
      if (b !== null) base.logging = b;
    }
    const de = f.get('description');
    if (de) {
      const t = this.str(de.value, `${what} description`);
      if (t !== null) base.description = t;
    }
    if (type === 'deny') {
      let ipv4: DenyV4 = 'drop';
      let ipv6: DenyV6 = 'drop';
      const v4 = f.get('ipv4');
      if (v4) ipv4 = this.oneOf(v4.value, `${what} ipv4`, DENY_V4) ?? 'drop';
      const v6 = f.get('ipv6');
      if (v6) ipv6 = this.oneOf(v6.value, `${what} ipv6`, DENY_V6) ?? 'drop';
      return { ...base, type: 'deny', ipv4, ipv6 };
    }
    if (type === 'forward') {
      const r = this.resolveRouter(f.get('router'), what, 'forward');
      const fa = f.get('forge_addr');
      if (fa && r) {
        const b = this.bool(fa.value, `${what} forge_addr`);
        if (b !== null) {
          const inRouter = f.get('router')?.value;
          const given = inRouter?.kind === 'map' && inRouter.entries.some((x) => x.key === 'forge_addr');
          if (given && r.forgeAddr !== b) {
            this.d.error(
              'POLICY_BAD_SERVICE',
              `${what}: forge_addr is given twice with different values`,
              fa.value.at,
            );
          }
          r.forgeAddr = b;
        }
      }
      if (!r) return null;
      if (r.type === 'inband') {
        this.d.error(
          'POLICY_BAD_SERVICE',
          `${what}: a forward service cannot use an inband router (only a proxy reads the target from the protocol)`,
          f.get('router')?.value.at ?? se.keyAt,
        );
        return null;
      }
      return { ...base, type: 'forward', router: r };
    }
    // proxy
    const pe = f.get('proxy');
    let proxy: string | null = null;
    if (!pe) this.d.error('POLICY_MISSING_FIELD', `${what} has no 'proxy' (plug, http, ftp, ...)`, se.keyAt);
    else {
      proxy = this.str(pe.value, `${what} proxy`);
      if (proxy !== null && !/^[a-z][a-z0-9_]*$/.test(proxy)) {
        this.d.error('POLICY_BAD_VALUE', `${what} proxy '${proxy}' is not a proxy module name`, pe.value.at);
      }
    }
    const router = this.resolveRouter(f.get('router'), what, 'proxy');
    const chainer = this.resolveChainer(f.get('chainer'), what);
    const options: Record<string, unknown> = {};
    const optionPositions = new Map<string, SourcePos>();
    const addOption = (e: PEntry) => {
      if (Object.hasOwn(options, e.key)) {
        this.d.error('POLICY_DUPLICATE_NAME', `option '${e.key}' is given twice in ${what}`, e.keyAt);
        return;
      }
      setOwn(options, e.key, plain(e.value));
      this.optionPositions(e, optionPositions);
    };
    const oe = f.get('options');
    if (oe && oe.value.kind !== 'null') {
      const om = this.map(oe.value, `${what} options`);
      if (om) for (const e of om.entries) addOption(e);
    }
    for (const e of flatOptions) addOption(e);
    const limit: string[] = [];
    const lt = f.get('limit_target_zones_to');
    if (lt) {
      const items = this.list(lt.value, `${what} limit_target_zones_to`);
      for (const it of items ?? []) {
        const z = this.zoneRef(it, `${what} limit_target_zones_to`);
        if (z !== null && !limit.includes(z)) limit.push(z);
      }
    }
    let maxSessions = 0;
    const ms = f.get('max_sessions');
    if (ms) maxSessions = this.int(ms.value, `${what} max_sessions`, 0, 2 ** 31 - 1) ?? 0;
    let maxSessionsPerClient = 0;
    const mpc = f.get('max_sessions_per_client');
    if (mpc)
      maxSessionsPerClient = this.int(mpc.value, `${what} max_sessions_per_client`, 0, 2 ** 31 - 1) ?? 0;
    const newSessionsPerClient = this.resolveSessionRate(f.get('new_sessions_per_client'), what);
    let listenPort: number | null = null;
    const lp = f.get('listen_port');
    if (lp && lp.value.kind !== 'null') listenPort = this.int(lp.value, `${what} listen_port`, 1, 65535);
    let nativeRelay = true;
    const nr = f.get('native_relay');
    if (nr) nativeRelay = this.bool(nr.value, `${what} native_relay`) ?? true;
    const te = f.get('tls');
    const tls = te && te.value.kind !== 'null' ? this.resolveTls(te, what, proxy) : undefined;
    if (proxy === null || !router || !chainer || tls === null) return null;
    return {
      ...base,
      ...(tls ? { tls } : {}),
      type: 'proxy',
      proxy,
      router,
      chainer,
      options,
      limitTargetZonesTo: limit,
      maxSessions,
      maxSessionsPerClient,
      newSessionsPerClient,
      listenPort,
      nativeRelay,
      optionPositions,
    };
  }

  /** `new_sessions_per_client: { rate: 20, per_seconds: 1 }` (null or absent: unlimited). */
  private resolveSessionRate(
    e: PEntry | undefined,
    what: string,
  ): { rate: number; perSeconds: number } | null {
    if (!e || e.value.kind === 'null') return null;
    const m = this.map(e.value, `${what} new_sessions_per_client`);
    if (!m) return null;
    const f = this.fields(m, ['rate', 'per_seconds'], `${what} new_sessions_per_client`);
    const re = f.get('rate');
    const pe = f.get('per_seconds');
    if (!re) {
      this.d.error('POLICY_MISSING_FIELD', `${what} new_sessions_per_client needs 'rate'`, e.keyAt);
      return null;
    }
    const rate = this.int(re.value, `${what} new_sessions_per_client.rate`, 1, 1_000_000);
    const perSeconds = pe ? this.int(pe.value, `${what} new_sessions_per_client.per_seconds`, 1, 3600) : 1;
    return rate === null || perSeconds === null ? null : { rate, perSeconds };
  }

  /** A proxy service's `tls:` block (docs/tls.md); null when it has errors (reported). */
  private resolveTls(e: PEntry, what: string, proxy: string | null): TlsPolicy | null {
    const m = this.map(e.value, `${what} tls`);
    if (!m) return null;
    const f = this.fields(m, TLS_FIELDS, `${what} tls`);
    let ok = true;
    const me = f.get('mode');
    let mode: TlsMode | null = null;
    if (!me) {
      this.d.error('POLICY_MISSING_FIELD', `${what} tls has no 'mode' (${TLS_MODES.join(' or ')})`, e.keyAt);
      ok = false;
    } else mode = this.oneOf(me.value, `${what} tls mode`, TLS_MODES);
    if (mode === 'inspect' && proxy !== null && proxy !== 'http' && proxy !== 'plug' && proxy !== 'ftp') {
      // Said plainly rather than relaying what the administrator asked to be inspected.
      this.d.error(
        'POLICY_BAD_SERVICE',
        `${what}: tls mode 'inspect' is available for proxy 'http' (HTTPS), 'ftp' (FTPS) and 'plug' (a decrypted relay); proxy '${proxy}' cannot use it in this version of tzorp (see docs/tls.md)`,
        me!.value.at,
      );
      ok = false;
    }
    if (mode === 'passthrough' && proxy !== null && proxy !== 'plug') {
      this.d.error(
        'POLICY_BAD_SERVICE',
        `${what}: tls mode 'passthrough' relays the encrypted bytes unchanged, so only proxy 'plug' can carry it (proxy '${proxy}' would read ciphertext)`,
        me!.value.at,
      );
      ok = false;
    }
    let ca: TlsPolicy['ca'] = null;
    const filePos: NonNullable<TlsPolicy['filePos']> = {};
    const cae = f.get('ca');
    if (cae) {
      const cm = this.map(cae.value, `${what} tls ca`);
      if (cm) {
        const cf = this.fields(cm, TLS_CA_FIELDS, `${what} tls ca`);
        const cert = cf.get('cert');
        const key = cf.get('key');
        const certPath = cert ? this.str(cert.value, `${what} tls ca cert`) : null;
        const keyPath = key ? this.str(key.value, `${what} tls ca key`) : null;
        if (!cert || !key) {
          this.d.error('POLICY_MISSING_FIELD', `${what} tls ca needs both 'cert' and 'key'`, cae.keyAt);
          ok = false;
        } else if (certPath !== null && keyPath !== null) {
          ca = { cert: certPath, key: keyPath };
          filePos.cert = this.pos(cert.keyAt);
          filePos.key = this.pos(key.keyAt);
        }
      } else ok = false;
    }
    if (mode === 'inspect' && !cae) {
      this.d.error(
        'POLICY_MISSING_FIELD',
        `${what} tls mode 'inspect' needs 'ca: { cert, key }', the CA that signs the certificates clients see (tzorp tls ca create DIR makes one)`,
        me!.keyAt,
      );
      ok = false;
    }
    let serverVerify = true;
    const sv = f.get('server_verify');
    if (sv) {
      const b = this.bool(sv.value, `${what} tls server_verify`);
      if (b === null) ok = false;
      else serverVerify = b;
      if (b === false) {
        this.d.warn(
          'LINT_TLS_UNVERIFIED',
          `${what} tls server_verify is false: any certificate the server shows is accepted, so a machine in the path can read and change the traffic`,
          sv.value.at,
        );
      }
    }
    let serverCaFile: string | null = null;
    const scf = f.get('server_ca_file');
    if (scf) {
      serverCaFile = this.str(scf.value, `${what} tls server_ca_file`);
      filePos.serverCaFile = this.pos(scf.keyAt);
    }
    if (mode === 'passthrough') {
      for (const [key, entry] of [
        ['ca', cae],
        ['server_verify', sv],
        ['server_ca_file', scf],
      ] as const) {
        if (!entry) continue;
        this.d.warn(
          'LINT_TLS_IGNORED',
          `${what} tls ${key} has no effect in passthrough mode (tzorp does not terminate TLS there)`,
          entry.keyAt,
        );
      }
    }
    const sni: TlsPolicy['sni'] = { allow: [], deny: [], missing: 'accept' };
    let missingGiven = false;
    const se = f.get('sni');
    if (se) {
      const sm = this.map(se.value, `${what} tls sni`);
      if (sm) {
        const sf = this.fields(sm, TLS_SNI_FIELDS, `${what} tls sni`);
        for (const key of ['allow', 'deny'] as const) {
          const le = sf.get(key);
          if (!le) continue;
          for (const it of this.list(le.value, `${what} tls sni ${key}`) ?? []) {
            const g = this.str(it, `${what} tls sni ${key}`);
            if (g === null) continue;
            if (!SNI_GLOB.test(g)) {
              this.d.error(
                'POLICY_BAD_VALUE',
                `${what} tls sni ${key} '${g}' is not a host name glob (letters, digits, '-', '_', '.', '*' and '?')`,
                it.at,
              );
              ok = false;
            } else sni[key].push(g.toLowerCase().replace(/\.$/, ''));
          }
        }
        const mi = sf.get('missing');
        if (mi) {
          const v = this.oneOf(mi.value, `${what} tls sni missing`, TLS_SNI_MISSING);
          if (v === null) ok = false;
          else {
            sni.missing = v;
            missingGiven = true;
          }
        }
      } else ok = false;
    }
    // An allow list is a list of the names that may pass: a hello naming none must not slip past it.
    if (!missingGiven && sni.allow.length > 0) sni.missing = 'reject';
    let minVersion: TlsMinVersion = 'TLSv1.2';
    const mv = f.get('min_version');
    if (mv) {
      const v = this.oneOf(mv.value, `${what} tls min_version`, TLS_MIN_VERSIONS);
      if (v === null) ok = false;
      else minVersion = v;
    }
    let implicit: TlsPolicy['implicit'] = 'auto';
    const ie = f.get('implicit');
    if (ie) {
      const v = ie.value;
      if (v.kind === 'scalar' && !v.quoted && BOOL_TRUE.has(v.value)) implicit = true;
      else if (v.kind === 'scalar' && !v.quoted && BOOL_FALSE.has(v.value)) implicit = false;
      else if (v.kind === 'scalar' && v.value === 'auto') implicit = 'auto';
      else {
        this.typeError(v, `${what} tls implicit`, 'true, false or auto');
        ok = false;
      }
      if (proxy !== null && proxy !== 'ftp') {
        this.d.error(
          'POLICY_BAD_SERVICE',
          `${what}: tls implicit is for proxy 'ftp' (implicit FTPS); proxy '${proxy}' reads TLS from the first byte anyway`,
          ie.keyAt,
        );
        ok = false;
      }
    }
    if (!ok || mode === null) return null;
    return {
      mode,
      ca,
      serverVerify,
      serverCaFile,
      sni,
      minVersion,
      implicit,
      pos: this.pos(e.keyAt),
      filePos,
    };
  }

  /** Positions of an option and everything below it ("a.b.0.c"), iteratively, at most
   * DEFAULTS.maxOptionPositions per service (options are small; the bound keeps a hostile file cheap). */
  private optionPositions(e: PEntry, out: Map<string, SourcePos>): void {
    const work: [string, number, PNode][] = [[e.key, e.keyAt, e.value]];
    while (work.length > 0 && out.size < DEFAULTS.maxOptionPositions) {
      const [path, at, n] = work.pop() as [string, number, PNode];
      out.set(path, this.pos(at));
      if (n.kind === 'map') for (const c of n.entries) work.push([`${path}.${c.key}`, c.keyAt, c.value]);
      else if (n.kind === 'seq') {
        n.items.forEach((c, i) => {
          work.push([`${path}.${i}`, c.at, c]);
        });
      }
    }
  }

  private forgePort(n: PNode, what: string): ForgePort | null {
    if (n.kind === 'scalar' && INT.test(n.value)) return this.int(n, what, 1, 65535);
    return this.oneOf(n, what, FORGE_PORT_WORDS);
  }

  private resolveRouter(e: PEntry | undefined, what: string, kind: 'proxy' | 'forward'): Router | null {
    const defaults = { forgeAddr: false, forgePort: 'any' as ForgePort };
    if (!e || e.value.kind === 'null') return { type: 'transparent', forcedPort: null, ...defaults };
    let m: PMap | null;
    if (e.value.kind === 'scalar') {
      // shorthand: `router: transparent`
      m = { kind: 'map', at: e.value.at, entries: [{ key: 'type', keyAt: e.value.at, value: e.value }] };
    } else m = this.map(e.value, `${what} router`);
    if (!m) return null;
    const te = m.entries.find((x) => x.key === 'type');
    const type = te ? this.oneOf(te.value, `${what} router type`, ROUTER_TYPES) : 'transparent';
    if (type === null) return null;
    const f = this.fields(m, ROUTER_FIELDS[type], `${what} router (${type})`);
    let ok = true;
    const fa = f.get('forge_addr');
    let forgeAddr = false;
    if (fa) forgeAddr = this.bool(fa.value, `${what} router forge_addr`) ?? false;
    const fp = f.get('forge_port');
    let forgePort: ForgePort = 'any';
    if (fp) {
      const v = this.forgePort(fp.value, `${what} router forge_port`);
      if (v === null) ok = false;
      else forgePort = v;
      if (kind === 'forward' && forgePort !== 'any') {
        this.d.error(
          'POLICY_BAD_SERVICE',
          `${what}: forge_port applies to proxy services only (a forward service keeps the client's port)`,
          fp.value.at,
        );
        ok = false;
      }
    }
    if (type === 'transparent') {
      let forcedPort: number | null = null;
      const fpe = f.get('forced_port');
      if (fpe && fpe.value.kind !== 'null') {
        forcedPort = this.int(fpe.value, `${what} router forced_port`, 1, 65535);
        if (forcedPort === null) ok = false;
        if (kind === 'forward') {
          this.d.error(
            'POLICY_BAD_SERVICE',
            `${what}: forced_port applies to proxy services only (use a directed router to change the port)`,
            fpe.value.at,
          );
          ok = false;
        }
      }
      return ok ? { type, forcedPort, forgeAddr, forgePort } : null;
    }
    if (type === 'directed') {
      const targets: Endpoint[] = [];
      const tg = f.get('targets');
      if (!tg) {
        this.d.error(
          'POLICY_MISSING_FIELD',
          `${what}: a directed router needs 'targets' (address:port)`,
          m.at,
        );
        return null;
      }
      for (const it of this.list(tg.value, `${what} router targets`) ?? []) {
        if (it.kind !== 'scalar') {
          this.typeError(it, `${what} router target`, 'a string "address:port"');
          ok = false;
          continue;
        }
        const r = parseEndpoint(it.value.trim());
        if (!r.ok) {
          this.d.error('POLICY_BAD_ENDPOINT', `${what} router target '${it.value}': ${r.reason}`, it.at);
          ok = false;
        } else targets.push({ family: r.family, host: r.host, port: r.port });
      }
      if (kind === 'forward' && targets.length > 1) {
        this.d.error(
          'POLICY_BAD_SERVICE',
          `${what}: a forward service's directed router has exactly one target (as KZorp's PFService), not ${targets.length}`,
          tg.value.at,
        );
        ok = false;
      }
      if (targets.length === 0) ok = false;
      return ok ? { type, targets, forgeAddr, forgePort } : null;
    }
    let defaultPort: number | null = null;
    const dp = f.get('default_port');
    if (dp && dp.value.kind !== 'null') {
      defaultPort = this.int(dp.value, `${what} router default_port`, 1, 65535);
      if (defaultPort === null) ok = false;
    }
    return ok ? { type: 'inband', forgeAddr, forgePort, defaultPort } : null;
  }

  private resolveChainer(e: PEntry | undefined, what: string): Chainer | null {
    if (!e || e.value.kind === 'null')
      return { type: 'connect', timeoutConnectMs: DEFAULTS.connectTimeoutMs };
    let m: PMap | null;
    if (e.value.kind === 'scalar') {
      m = { kind: 'map', at: e.value.at, entries: [{ key: 'type', keyAt: e.value.at, value: e.value }] };
    } else m = this.map(e.value, `${what} chainer`);
    if (!m) return null;
    const te = m.entries.find((x) => x.key === 'type');
    const type = te ? this.oneOf(te.value, `${what} chainer type`, CHAINER_TYPES) : 'connect';
    if (type === null) return null;
    const f = this.fields(m, CHAINER_FIELDS[type], `${what} chainer (${type})`);
    const maxMs = 2 ** 31 - 1; // a Node timer's largest delay
    const tc = f.get('timeout_connect');
    const timeoutConnectMs = tc
      ? this.int(tc.value, `${what} chainer timeout_connect (ms)`, 1, maxMs)
      : DEFAULTS.connectTimeoutMs;
    if (timeoutConnectMs === null) return null;
    if (type === 'connect') return { type, timeoutConnectMs };
    const ts = f.get('timeout_state');
    const timeoutStateMs = ts
      ? this.int(ts.value, `${what} chainer timeout_state (ms)`, 0, maxMs)
      : DEFAULTS.failoverStateTimeoutMs;
    if (timeoutStateMs === null) return null;
    return { type, timeoutConnectMs, timeoutStateMs };
  }

  // --- rules -------------------------------------------------------------------------------------

  private maxRuleId(): number {
    const lowest = (this.settings.tproxyMark & -this.settings.tproxyMark) >>> 0;
    return Math.min(MAX_RULE_ID, lowest - 1);
  }

  private resolveRules(e: PEntry | undefined): Rule[] {
    if (!e || e.value.kind === 'null') return [];
    if (e.value.kind !== 'seq') {
      this.typeError(e.value, 'rules', 'a list of rules');
      return [];
    }
    const maxId = this.maxRuleId();
    const rules: Rule[] = [];
    const noId: { rule: Rule; at: number }[] = [];
    const ids = new Map<number, Rule>();
    for (const item of e.value.items) {
      const m = this.map(item, 'a rule');
      if (!m) continue;
      const f = this.fields(m, RULE_FIELDS, 'a rule');
      const rule = this.conditions(f, 'rule') as Rule;
      rule.pos = this.pos(m.at);
      rule.id = 0;
      const ie = f.get('id');
      if (ie) {
        const id = this.int(ie.value, 'rule id', 1, maxId);
        if (id !== null) {
          const other = ids.get(id);
          if (other) {
            this.d.error(
              'POLICY_DUPLICATE_RULE_ID',
              `rule id ${id} is already used by the rule at line ${other.pos.line}`,
              ie.value.at,
            );
          } else {
            ids.set(id, rule);
            rule.id = id;
          }
        }
      } else noId.push({ rule, at: m.at });
      const se = f.get('service');
      if (!se) {
        this.d.error('POLICY_MISSING_FIELD', "a rule needs a 'service'", m.at);
        rule.service = '';
      } else {
        const s = this.str(se.value, 'rule service');
        if (s !== null && !this.serviceNames.has(s)) {
          this.d.error(
            'POLICY_UNKNOWN_SERVICE',
            `rule uses an unknown service '${s}'${this.suggest(s, this.serviceNames)}`,
            se.value.at,
          );
        }
        rule.service = s ?? '';
      }
      rules.push(rule);
    }
    // automatic ids: the smallest unused positive ids, in file order, after all explicit ids are known
    let next = 1;
    for (const { rule: r, at } of noId) {
      while (ids.has(next)) next++;
      if (next > maxId) {
        this.d.error('POLICY_BAD_RULE', `no rule id <= ${maxId} is left for this rule (give it an id)`, at);
        break;
      }
      r.id = next;
      ids.set(next, r);
    }
    rules.sort((a, b) => a.id - b.id);
    return rules;
  }

  private resolveConditionList(
    e: PEntry | undefined,
    what: 'management' | 'bypass' | 'block',
  ): (ManagementRule | BypassRule | BlockRule)[] {
    if (!e || e.value.kind === 'null') return [];
    if (e.value.kind !== 'seq') {
      this.typeError(e.value, what, `a list of ${what} rules`);
      return [];
    }
    const out: ManagementRule[] = [];
    for (const item of e.value.items) {
      const m = this.map(item, `a ${what} rule`);
      if (!m) continue;
      const f = this.fields(m, MANAGEMENT_FIELDS, `a ${what} rule`);
      const r = this.conditions(f, what) as ManagementRule;
      r.pos = this.pos(m.at);
      out.push(r);
    }
    return out;
  }

  /** The dimensions (and description) of a rule, management or bypass entry. */
  private conditions(f: Map<string, PEntry>, what: string): Conditions & { description?: string } {
    const c: Conditions & { description?: string } = {};
    const de = f.get('description');
    if (de) {
      const t = this.str(de.value, `${what} description`);
      if (t !== null) c.description = t;
    }
    for (const field of CONDITION_NAMES) {
      const e = f.get(field);
      if (!e) continue;
      const items = this.list(e.value, `${what} ${field}`);
      if (items === null) continue;
      const label = `${what} ${field}`;
      const dim = CONDITION_FIELDS[field];
      switch (field) {
        case 'reqid':
          c.reqid = collect(items, (n) => this.int(n, label, 1, 0xffffffff));
          break;
        case 'ifgroup':
        case 'dst_ifgroup':
          c[dim as 'ifgroup' | 'dstIfgroup'] = collect(items, (n) => this.int(n, label, 0, 0xffffffff, true));
          break;
        case 'iface':
        case 'dst_iface':
          c[dim as 'iface' | 'dstIface'] = collect(items, (n) => this.ifname(n, label));
          break;
        case 'proto':
          c.proto = collect(items, (n) => this.proto(n, label));
          break;
        case 'icmp_type':
        case 'icmp_code':
          c[dim as 'icmpType' | 'icmpCode'] = collect(items, (n) => this.int(n, label, 0, 255));
          break;
        case 'src_port':
        case 'dst_port':
          c[dim as 'srcPort' | 'dstPort'] = collect(items, (n) => this.port(n, label), portKey);
          break;
        case 'src_subnet':
        case 'dst_subnet':
          c[dim as 'srcSubnet' | 'dstSubnet'] = collect(
            items,
            (n) => this.cidr(n, label),
            (x) => x.text,
          );
          break;
        case 'src_zone':
        case 'dst_zone':
          c[dim as 'srcZone' | 'dstZone'] = collect(items, (n) => this.zoneRef(n, label));
          break;
      }
    }
    return c;
  }

  private ifname(n: PNode, what: string): string | null {
    const s = this.str(n, what);
    if (s === null) return null;
    if (s.length === 0 || s.length > MAX_IFNAME_CHARS || /[\s/:]/.test(s) || s === '.' || s === '..') {
      this.d.error(
        'POLICY_BAD_VALUE',
        `${what} '${s}' is not a Linux interface name (1-15 characters, no '/', ':' or spaces)`,
        n.at,
      );
      return null;
    }
    return s;
  }

  private proto(n: PNode, what: string): number | null {
    if (n.kind === 'scalar' && INT.test(n.value)) return this.int(n, what, 0, 255);
    const s = this.str(n, what);
    if (s === null) return null;
    const v = PROTO_NAMES[s.toLowerCase()];
    if (v === undefined) {
      const names = Object.keys(PROTO_NAMES);
      this.d.error(
        'POLICY_BAD_VALUE',
        `${what} '${s}' is not a protocol (${names.join(', ')} or a number 0-255)${didYouMean(s, names)}`,
        n.at,
      );
      return null;
    }
    return v;
  }
}

function byName(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function ctz(v: number): number {
  let n = 0;
  while (n < 32 && Math.floor(v / 2 ** n) % 2 === 0) n++;
  return n;
}

function portKey(p: PortRange): string {
  return `${p.lo}-${p.hi}`;
}

/** Parsed values of a dimension, duplicates dropped (a value listed twice means the same). */
function collect<T>(items: PNode[], parse: (n: PNode) => T | null, key: (v: T) => unknown = (v) => v): T[] {
  const out: T[] = [];
  const seen = new Set<unknown>();
  for (const it of items) {
    const v = parse(it);
    if (v === null) continue;
    const k = key(v);
    if (seen.has(k)) continue;
    seen.add(k);
    out.push(v);
  }
  return out;
}

/** Options as plain data: plain scalars become numbers or booleans where they read as such. */
export function plain(root: PNode): unknown {
  const conv = (n: PNode): unknown => {
    switch (n.kind) {
      case 'null':
        return null;
      case 'scalar':
        if (n.quoted) return n.value;
        if (BOOL_TRUE.has(n.value)) return true;
        if (BOOL_FALSE.has(n.value)) return false;
        if (/^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?$/.test(n.value)) return Number(n.value);
        return n.value;
      case 'seq':
        return [];
      case 'map':
        return {} as Record<string, unknown>;
    }
  };
  // iterative: options may nest, the stack must not
  const out = conv(root);
  const work: [PNode, unknown][] = [[root, out]];
  while (work.length > 0) {
    const [n, o] = work.pop() as [PNode, unknown];
    if (n.kind === 'seq') {
      const arr = o as unknown[];
      for (const it of n.items) {
        const v = conv(it);
        arr.push(v);
        work.push([it, v]);
      }
    } else if (n.kind === 'map') {
      const rec = o as Record<string, unknown>;
      for (const e of n.entries) {
        const v = conv(e.value);
        setOwn(rec, e.key, v);
        work.push([e.value, v]);
      }
    }
  }
  return out;
}

/** Defines an own property even for keys like `__proto__` (a plain assignment would change the prototype). */
function setOwn(o: Record<string, unknown>, key: string, value: unknown): void {
  Object.defineProperty(o, key, { value, enumerable: true, writable: true, configurable: true });
}
