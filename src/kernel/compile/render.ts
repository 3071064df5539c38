// Ruleset IR → nft text: the only code that writes nftables syntax. The output is deterministic (same
// IR, same bytes): every list is in a defined order and nothing depends on time or environment.
import { formatAddress } from '../../policy/address.ts';
import type { DenyV4, DenyV6, Family } from '../../policy/model.ts';
import type { Interval, IntervalSet } from './intervals.ts';
import type { LookupIR, MatchIR, RulesetIR } from './ir.ts';
import { zoneIdent } from './names.ts';
import type { Field } from './variants.ts';

export const TABLE = 'tzorp';

const hex = (n: number): string => `0x${(n >>> 0).toString(16).padStart(8, '0')}`;

/** A range as a network ("a/p") when it is one, else "a-b". */
function addrRange(f: Family, [lo, hi]: Interval): string {
  const width = f === 4 ? 32 : 128;
  const size = hi - lo + 1n;
  if ((size & (size - 1n)) === 0n && lo % size === 0n) {
    const p = width - (size.toString(2).length - 1);
    return p === width ? formatAddress(f, lo) : `${formatAddress(f, lo)}/${p}`;
  }
  return `${formatAddress(f, lo)}-${formatAddress(f, hi)}`;
}

function numRange([lo, hi]: Interval): string {
  return lo === hi ? String(lo) : `${lo}-${hi}`;
}

const quote = (s: string): string => `"${s.replace(/["\\]/g, '')}"`;

function keyExpr(field: Field, f: Family): string {
  const ip = f === 4 ? 'ip' : 'ip6';
  const icmp = f === 4 ? 'icmp' : 'icmpv6';
  switch (field) {
    case 'iifname':
      return 'iifname';
    case 'iifgroup':
      return 'meta iifgroup';
    case 'reqid':
      return 'ipsec in reqid';
    case 'l4proto':
      return 'meta l4proto';
    case 'icmptype':
      return `${icmp} type`;
    case 'icmpcode':
      return `${icmp} code`;
    case 'sport':
      return 'th sport';
    case 'dport':
      return 'th dport';
    case 'saddr':
      return `${ip} saddr`;
    case 'szone':
      return 'meta mark';
    case 'daddr':
      return `${ip} daddr`;
    case 'dzone':
      return 'meta priority';
  }
}

function keyValue(field: Field, f: Family, iv: Interval, ifnames: string[]): string {
  if (field === 'iifname') return quote(ifnames[Number(iv[0])]!);
  if (field === 'saddr' || field === 'daddr') return addrRange(f, iv);
  return numRange(iv);
}

/** Elements per `add element` command. nft 1.0.6 fails (EINVAL) on a concatenated interval map whose
 * inline element list spans several netlink messages, and the kernel inserts large inline lists far
 * more slowly; separate commands of this size stay in one message each, in the same transaction. */
export const ELEMENTS_PER_COMMAND = 256;

function l4Prefix(l: LookupIR, f: Family): string {
  const parts: string[] = [];
  if (l.l4 === 'ported') parts.push('meta l4proto { tcp, udp }');
  if (l.l4 === 'portless') parts.push('meta l4proto != { tcp, udp }');
  if (l.icmp) parts.push(f === 4 ? 'meta l4proto icmp' : 'meta l4proto ipv6-icmp');
  if (l.fibLocal) parts.push('fib daddr . iif type local');
  return parts.join(' ');
}

function scoreText(s: Record<string, number>): string {
  const parts = Object.entries(s)
    .filter(([, v]) => v > 0)
    .map(([k, v]) => `${k}=${v}`);
  return parts.length ? parts.join(' ') : 'wildcard';
}

function setOf(values: string[]): string {
  return values.length === 1 ? values[0]! : `{ ${values.join(', ')} }`;
}

const REJECT_V4: Record<Exclude<DenyV4, 'drop' | 'tcp-reset'>, string> = {
  'icmp-net-unreachable': 'net-unreachable',
  'icmp-host-unreachable': 'host-unreachable',
  'icmp-proto-unreachable': 'prot-unreachable',
  'icmp-port-unreachable': 'port-unreachable',
  'icmp-net-prohibited': 'net-prohibited',
  'icmp-host-prohibited': 'host-prohibited',
  'icmp-admin-prohibited': 'admin-prohibited',
};
const REJECT_V6: Record<Exclude<DenyV6, 'drop' | 'tcp-reset'>, string> = {
  'icmp-no-route': 'no-route',
  'icmp-admin-prohibited': 'admin-prohibited',
  'icmp-addr-unreachable': 'addr-unreachable',
  'icmp-port-unreachable': 'port-unreachable',
};

/** A management/bypass conjunction as nft matches. */
function matchText(m: MatchIR): string {
  const f = m.family;
  const ip = f === 4 ? 'ip' : 'ip6';
  const parts: string[] = [`meta nfproto ipv${f}`];
  if (m.reqid) parts.push(`ipsec in reqid ${setOf(m.reqid.map(String))}`);
  if (m.fibLocal) parts.push('fib daddr . iif type local');
  if (m.iifname) parts.push(`iifname ${setOf(m.iifname.map(quote))}`);
  if (m.iifgroup) parts.push(`meta iifgroup ${setOf(m.iifgroup.map(String))}`);
  if (m.l4proto) parts.push(`meta l4proto ${setOf(m.l4proto.map(String))}`);
  if (m.icmpType || m.icmpCode) parts.push(f === 4 ? 'meta l4proto icmp' : 'meta l4proto ipv6-icmp');
  if (m.icmpType) parts.push(`${f === 4 ? 'icmp' : 'icmpv6'} type ${setOf(m.icmpType.map(String))}`);
  if (m.icmpCode) parts.push(`${f === 4 ? 'icmp' : 'icmpv6'} code ${setOf(m.icmpCode.map(String))}`);
  if (m.sport || m.dport) parts.push('meta l4proto { tcp, udp }');
  if (m.sport) parts.push(`th sport ${setOf(m.sport.map(numRange))}`);
  if (m.dport) parts.push(`th dport ${setOf(m.dport.map(numRange))}`);
  if (m.saddr) parts.push(`${ip} saddr ${setOf(m.saddr.map((iv) => addrRange(f, iv)))}`);
  if (m.srcZoneSet) parts.push(`${ip} saddr @${m.srcZoneSet}`);
  if (m.daddr) parts.push(`${ip} daddr ${setOf(m.daddr.map((iv) => addrRange(f, iv)))}`);
  if (m.dstZoneSet) parts.push(`${ip} daddr @${m.dstZoneSet}`);
  return parts.join(' ');
}

const commentText = (s: string): string => `comment ${quote(s.slice(0, 120))}`;

export function renderRuleset(ir: RulesetIR): string {
  const st = ir.settings;
  const mask = hex(st.serviceMarkMask);
  const keep = hex(~st.serviceMarkMask);
  const tmark = hex(st.tproxyMark);
  const o: string[] = [];
  const line = (s: string): void => {
    o.push(s);
  };
  const deferred: [string, string[]][] = [];
  const defer = (name: string, els: string[]): void => {
    if (els.length > 0) deferred.push([name, els]);
  };
  const addElements = (name: string, els: string[]): void => {
    for (let i = 0; i < els.length; i += ELEMENTS_PER_COMMAND) {
      line(`add element inet ${TABLE} ${name} {`);
      line(
        els
          .slice(i, i + ELEMENTS_PER_COMMAND)
          .map((e) => `\t${e}`)
          .join(',\n'),
      );
      line('}');
    }
  };
  const svcChain = (name: string): string => `svc_${zoneIdent(name)}`;
  for (const h of ir.header) line(`# ${h}`);
  line('# Generated by `tzorp compile`: do not edit, re-apply the policy instead (docs/kernel.md).');
  // one file = one transaction: the empty declaration makes the delete valid when the table is absent
  line(`table inet ${TABLE} {}`);
  line(`delete table inet ${TABLE}`);

  // ---- part 1: the service chains and the rule → service dispatch map. Its elements are verdicts that
  // name chains, which the kernel resolves by walking the transaction so far: they go first, while
  // the transaction is short (docs/kernel.md, "Size").
  line(`table inet ${TABLE} {`);
  for (const c of ir.serviceChains) {
    line(`\tchain ${svcChain(c.name)} {`);
    line(`\t\t${commentText(`${c.kind} service ${c.name} (service id ${hex(c.sid)})`)}`);
    const ct = `ct mark set ct mark & ${keep} | ${hex(c.sid)}`;
    if (c.kind === 'proxy') {
      // the packet mark is tproxyMark | rule id already (set by the tier lookup)
      line(`\t\tcounter meta priority set 0 ${ct}`);
      line(`\t\tmeta nfproto ipv4 meta l4proto { tcp, udp } tproxy ip to ${c.v4!.host}:${c.v4!.port} accept`);
      line(
        `\t\tmeta nfproto ipv6 meta l4proto { tcp, udp } tproxy ip6 to [${c.v6!.host}]:${c.v6!.port} accept`,
      );
      line('\t\tmeta mark set 0x00000000 counter drop comment "no listener: fail closed"');
    } else {
      line(`\t\tcounter meta mark set 0x00000000 meta priority set 0 ${ct}`);
      for (const f of [4, 6] as const) {
        if (!c.families.includes(f)) line(`\t\tmeta nfproto ipv${f} drop comment "no IPv${f} target"`);
      }
      line(c.kind === 'deny' ? '\t\taccept comment "rejected in input/forward"' : '\t\taccept');
    }
    line('\t}');
  }
  // nft 1.0.6 cannot parse `ipsec in reqid` as a map key in a `meta mark set ... map` statement, so
  // tiers that look at the reqid are verdict maps whose elements jump to a one-line chain per rule
  const reqidRules = new Set<number>();
  for (const f of [4, 6] as const) {
    for (const t of ir.families[f].tiers) {
      for (const l of t.lookups)
        if (l.fields.includes('reqid')) for (const e of l.elements) reqidRules.add(e.ruleId);
    }
  }
  for (const a of ir.actions) {
    if (!reqidRules.has(a.ruleId)) continue;
    line(`\tchain rule_${a.ruleId} {`);
    line(`\t\tmeta mark set ${hex(a.mark)} goto dispatch ${commentText(a.comment)}`);
    line('\t}');
  }
  line('\tchain dispatch {');
  line(`\t\tmeta mark vmap @rule_dispatch`);
  line('\t\tmeta mark set 0x00000000 meta priority set 0');
  line('\t}');
  line('\tmap rule_dispatch {');
  line('\t\ttypeof meta mark : verdict');
  line(`\t\t${commentText("tproxy mark | rule id -> the rule's service chain")}`);
  line('\t}');
  line('}');
  // rule comments go into the file only: one line per chunk would hide them, so chunks carry them
  const dispatch = ir.actions.map((a) => `${hex(a.mark)} : goto ${svcChain(a.service)}`);
  for (let i = 0; i < dispatch.length; i += ELEMENTS_PER_COMMAND) {
    const chunk = ir.actions.slice(i, i + ELEMENTS_PER_COMMAND);
    line(`add element inet ${TABLE} rule_dispatch {`);
    line(
      chunk.map((a, k) => `\t${dispatch[i + k]}${k < chunk.length - 1 ? ',' : ''} # ${a.comment}`).join('\n'),
    );
    line('}');
  }

  // ---- part 2: zones, tiers, service sets, base chains ----
  line(`table inet ${TABLE} {`);
  for (const z of ir.zones) {
    for (const f of [4, 6] as const) {
      for (const tree of [false, true]) {
        const name = `zone_${z.ident}${tree ? '_tree' : ''}_v${f}`;
        const set: IntervalSet = tree ? z.tree[f] : z.exact[f];
        line(`\tset ${name} {`);
        line(`\t\ttypeof ${f === 4 ? 'ip' : 'ip6'} saddr`);
        line('\t\tflags interval');
        line(`\t\t${commentText(`zone ${z.name}${tree ? ' and its descendants' : ''} (id ${z.id})`)}`);
        line('\t}');
        defer(
          name,
          set.map((iv) => addrRange(f, iv)),
        );
      }
    }
  }
  for (const f of [4, 6] as const) {
    const ip = f === 4 ? 'ip' : 'ip6';
    const ranges = ir.families[f].zoneRanges;
    for (const [name, expr, data] of [
      [`zone_src_v${f}`, `${ip} saddr`, 'meta mark'],
      [`zone_dst_v${f}`, `${ip} daddr`, 'meta priority'],
    ] as const) {
      line(`\tmap ${name} {`);
      line(`\t\ttypeof ${expr} : ${data}`);
      line('\t\tflags interval');
      line(`\t\t${commentText(`longest-match zone id of the ${expr.split(' ')[1]} (pre-order ids)`)}`);
      line('\t}');
      defer(
        name,
        ranges.map((r) => `${addrRange(f, [r.lo, r.hi])} : ${r.zone}`),
      );
    }
  }
  for (const f of [4, 6] as const) {
    for (const t of ir.families[f].tiers) {
      for (const l of t.lookups) {
        if (l.fields.length === 0) continue;
        line(`\tmap ${l.map} {`);
        const verdict = l.fields.includes('reqid');
        line(
          `\t\ttypeof ${l.fields.map((x) => keyExpr(x, f)).join(' . ')} : ${verdict ? 'verdict' : 'meta mark'}`,
        );
        if (l.interval) line('\t\tflags interval');
        line(`\t\t${commentText(`score ${scoreText(t.score)}`)}`);
        line('\t}');
        const markOf = new Map(ir.actions.map((a) => [a.ruleId, a.mark]));
        defer(
          l.map,
          l.elements.map(
            (e) =>
              `${e.key.map((iv, i) => keyValue(l.fields[i]!, f, iv, ir.ifnames)).join(' . ')} : ${verdict ? `goto rule_${e.ruleId}` : hex(markOf.get(e.ruleId)!)}`,
          ),
        );
      }
    }
  }

  const sidSet = (name: string, sids: number[], comment: string): void => {
    line(`\tset ${name} {`);
    line('\t\ttypeof ct mark');
    line(`\t\t${commentText(comment)}`);
    if (sids.length) line(`\t\telements = { ${sids.map(hex).join(', ')} }`);
    line('\t}');
  };
  sidSet(
    'forward_services',
    ir.forwards.map((s) => s.sid),
    'service ids (ct mark & mask) of forward services',
  );
  sidSet(
    'masquerade_services',
    ir.forwards.filter((s) => s.masquerade).map((s) => s.sid),
    'forward services without forge_addr: SNAT to the outgoing interface',
  );
  const vmap = (name: string, entries: [number, string][], comment: string): void => {
    line(`\tmap ${name} {`);
    line('\t\ttypeof ct mark : verdict');
    line(`\t\t${commentText(comment)}`);
    if (entries.length)
      line(`\t\telements = { ${entries.map(([k, v]) => `${hex(k)} : goto ${v}`).join(', ')} }`);
    line('\t}');
  };
  for (const d of ir.denies) {
    line(`\tchain deny_${zoneIdent(d.name)} {`);
    line(`\t\t${commentText(`deny service ${d.name}: IPv4 ${d.v4}, IPv6 ${d.v6}`)}`);
    line('\t\tcounter');
    for (const [f, how] of [
      [4, d.v4],
      [6, d.v6],
    ] as const) {
      if (how === 'drop') continue;
      if (how === 'tcp-reset') line(`\t\tmeta nfproto ipv${f} meta l4proto tcp reject with tcp reset`);
      else if (f === 4)
        line(`\t\tmeta nfproto ipv4 reject with icmp type ${REJECT_V4[how as keyof typeof REJECT_V4]}`);
      else line(`\t\tmeta nfproto ipv6 reject with icmpv6 type ${REJECT_V6[how as keyof typeof REJECT_V6]}`);
    }
    line('\t\tdrop');
    line('\t}');
  }
  const directed = ir.forwards.filter((s) => s.dnat[4] || s.dnat[6]);
  for (const d of directed) {
    line(`\tchain dnat_${zoneIdent(d.name)} {`);
    line(`\t\t${commentText(`directed forward service ${d.name}`)}`);
    // the target port applies to TCP/UDP; other protocols are sent to the target address only
    if (d.dnat[4]) {
      line(`\t\tmeta nfproto ipv4 meta l4proto { tcp, udp } dnat ip to ${d.dnat[4].host}:${d.dnat[4].port}`);
      line(`\t\tmeta nfproto ipv4 dnat ip to ${d.dnat[4].host}`);
    }
    if (d.dnat[6]) {
      line(
        `\t\tmeta nfproto ipv6 meta l4proto { tcp, udp } dnat ip6 to [${d.dnat[6].host}]:${d.dnat[6].port}`,
      );
      line(`\t\tmeta nfproto ipv6 dnat ip6 to ${d.dnat[6].host}`);
    }
    line('\t}');
  }
  vmap(
    'deny_services',
    ir.denies.map((d) => [d.sid, `deny_${zoneIdent(d.name)}`]),
    'deny services by service id',
  );
  vmap(
    'dnat_services',
    directed.map((d) => [d.sid, `dnat_${zoneIdent(d.name)}`]),
    'directed forward services',
  );

  line('\tchain prerouting {');
  line('\t\ttype filter hook prerouting priority mangle; policy accept;');
  line('\t\tiif lo accept comment "the firewall talking to itself is not decided"');
  line(
    '\t\tct state new jump decide comment "first packets, pure SYNs included, are decided before the socket match"',
  );
  line(
    `\t\tsocket transparent 1 meta mark set meta mark | ${tmark} counter accept comment "packets of tzorp's own transparent sockets"`,
  );
  line('\t}');

  line('\tchain decide {');
  for (const b of ir.bypass) {
    line(
      `\t\t${matchText(b)} counter ct mark set ct mark & ${keep} | ${hex(ir.bypassValue)} accept ${commentText(b.comment)}`,
    );
  }
  line('\t\tmeta nfproto ipv4 goto decide_v4');
  line('\t\tmeta nfproto ipv6 goto decide_v6');
  line('\t}');

  for (const f of [4, 6] as const) {
    const ip = f === 4 ? 'ip' : 'ip6';
    line(`\tchain decide_v${f} {`);
    line(`\t\t${commentText('best match: tiers strongest score first, the first hit decides')}`);
    // scratch registers: the source zone id in the packet mark, the destination zone id in the priority
    line('\t\tmeta mark set 0x00000000 meta priority set 0');
    line(`\t\tmeta mark set ${ip} saddr map @zone_src_v${f}`);
    line(`\t\tmeta priority set ${ip} daddr map @zone_dst_v${f}`);
    const markOf = new Map(ir.actions.map((a) => [a.ruleId, a.mark]));
    for (const t of ir.families[f].tiers) {
      for (const l of t.lookups) {
        const prefix = l4Prefix(l, f);
        const pre = prefix ? `${prefix} ` : '';
        if (l.fields.length === 0) {
          // a tier that constrains no key field (a wildcard rule, or ports only for portless traffic)
          const m = hex(markOf.get(l.elements[0]!.ruleId)!);
          line(
            `\t\t${pre}meta mark set ${m} goto dispatch ${commentText(`tier ${t.index}: ${scoreText(t.score)}`)}`,
          );
        } else {
          const key = l.fields.map((x) => keyExpr(x, f)).join(' . ');
          if (l.fields.includes('reqid')) {
            line(`\t\t${pre}${key} vmap @${l.map}`);
          } else {
            line(`\t\t${pre}meta mark set ${key} map @${l.map}`);
            line(`\t\tmeta mark & ${tmark} == ${tmark} goto dispatch`);
          }
        }
      }
    }
    line('\t\tmeta mark set 0x00000000 meta priority set 0 counter comment "no rule: undecided"');
    line('\t}');
  }

  line('\tchain input {');
  line('\t\ttype filter hook input priority filter; policy drop;');
  line('\t\tiif lo accept');
  line(`\t\tmeta mark & ${tmark} == ${tmark} accept comment "diverted to a tzorp listener"`);
  line(`\t\tct state new ct mark & ${mask} vmap @deny_services`);
  line('\t\tct state established,related accept');
  line('\t\tct state invalid drop');
  line(`\t\tct mark & ${mask} == ${hex(ir.bypassValue)} accept comment "bypass"`);
  line(
    '\t\tmeta l4proto icmp icmp type { destination-unreachable, time-exceeded, parameter-problem } accept',
  );
  line(
    '\t\tmeta l4proto ipv6-icmp icmpv6 type { destination-unreachable, packet-too-big, time-exceeded, parameter-problem, nd-router-solicit, nd-router-advert, nd-neighbor-solicit, nd-neighbor-advert, nd-redirect } accept',
  );
  for (const m of ir.management) line(`\t\t${matchText(m)} counter accept ${commentText(m.comment)}`);
  line('\t\tcounter comment "dropped by policy"');
  line('\t}');

  line('\tchain forward {');
  line('\t\ttype filter hook forward priority filter; policy drop;');
  line('\t\tct state invalid counter drop');
  line(`\t\tct mark & ${mask} == ${hex(ir.bypassValue)} accept comment "bypass"`);
  line(`\t\tct state new ct mark & ${mask} vmap @deny_services`);
  line(`\t\tct mark & ${mask} @forward_services counter accept`);
  line(
    `\t\tct state established,related ct mark & ${mask} != 0x00000000 accept comment "connections a decision let through, also across reloads"`,
  );
  line('\t\tcounter comment "dropped by policy"');
  line('\t}');

  line('\tchain nat_prerouting {');
  line('\t\ttype nat hook prerouting priority dstnat; policy accept;');
  line(`\t\tct mark & ${mask} vmap @dnat_services`);
  line('\t}');
  line('\tchain nat_postrouting {');
  line('\t\ttype nat hook postrouting priority srcnat; policy accept;');
  line(`\t\tct mark & ${mask} @masquerade_services masquerade`);
  line('\t}');
  if (ir.userRules !== null) {
    line('\t# ---- user rules (--user-rules), verbatim ----');
    o.push(ir.userRules.replace(/\s+$/, ''));
  }
  line('}');
  // ---- part 3: elements of the big sets and maps (data only, no chain references) ----
  for (const [name, els] of deferred) addElements(name, els);
  return `${o.join('\n')}\n`;
}
