// tzorp explain POLICY --proto P --src ADDR --dst ADDR [--sport N] [--dport N] [--iface NAME]
//   [--ifgroup N] [--dst-local] [--icmp-type N] [--icmp-code N] [--reqid N] [--json]
// Like `kzorp -e`, but it says why: the zones, the rule and service KZorp's best match picks, and for
// every other rule the dimension it failed on or lost on. Uses the daemon's own engine, and follows the
// compiled ruleset's order: bypass entries first, then management entries for traffic to the firewall
// itself (--dst-local), then block entries, then the rules.
// Exit codes (docs/operations.md): 0 the connection is let through (proxy, forward, management,
// bypass); 3 it is refused (blocked, a deny service, or no rule: dropped); 1 the policy is invalid;
// 2 usage.
import type { Command } from 'commander';
import {
  type Candidate,
  ConditionsMatcher,
  Engine,
  type Explanation,
  parseAddress,
} from '../../engine/index.ts';
import { TzorpError } from '../../errors.ts';
import { loadPolicyFile } from '../../policy/index.ts';
import type { Connection, Policy, Rule } from '../../policy/model.ts';

const PROTO_NAMES: Record<string, number> = { tcp: 6, udp: 17, icmp: 1, icmpv6: 58, 'ipv6-icmp': 58 };
const PROTO_TEXT: Record<number, string> = { 6: 'tcp', 17: 'udp', 1: 'icmp', 58: 'icmpv6' };

export interface ExplainOptions {
  proto?: string;
  src?: string;
  dst?: string;
  sport?: string;
  dport?: string;
  iface?: string;
  ifgroup?: string;
  dstLocal?: boolean;
  icmpType?: string;
  icmpCode?: string;
  reqid?: string;
  json?: boolean;
}

/** A bad option value: exit 2, as commander's own usage errors. */
export class UsageError extends TzorpError {
  constructor(message: string) {
    super('CLI_USAGE', message);
  }
}

function intOpt(v: string | undefined, name: string, max: number): number | undefined {
  if (v === undefined) return undefined;
  if (!/^\d{1,10}$/.test(v) || Number(v) > max)
    throw new UsageError(`--${name} must be an integer 0..${max}, got ${JSON.stringify(v)}`);
  return Number(v);
}

/** The connection the options describe; throws UsageError on bad input. */
export function connectionFromOptions(o: ExplainOptions): Connection {
  if (o.proto === undefined) throw new UsageError('--proto is required (tcp, udp, icmp, icmpv6 or a number)');
  const p = o.proto.toLowerCase();
  const proto = PROTO_NAMES[p] ?? (/^\d{1,3}$/.test(p) && Number(p) <= 255 ? Number(p) : undefined);
  if (proto === undefined)
    throw new UsageError(`unknown protocol ${JSON.stringify(o.proto)} (tcp, udp, icmp, icmpv6 or 0..255)`);
  const families: number[] = [];
  for (const [name, v] of [
    ['src', o.src],
    ['dst', o.dst],
  ] as const) {
    if (v === undefined) throw new UsageError(`--${name} is required`);
    const a = parseAddress(v);
    if (a === null) throw new UsageError(`--${name}: not an IP address: ${JSON.stringify(v)}`);
    families.push(a.family);
  }
  // one packet has one IP version: an IPv4 source with an IPv6 destination describes nothing
  if (families[0] !== families[1]) {
    throw new UsageError(
      `--src is IPv${families[0]} and --dst is IPv${families[1]}: a connection has one IP version (write an IPv4-mapped IPv6 address as IPv4)`,
    );
  }
  const c: Connection = {
    proto,
    src: o.src!,
    dst: o.dst!,
    // kzorp -e's default source port
    srcPort: intOpt(o.sport, 'sport', 65535) ?? 1024,
    dstPort: intOpt(o.dport, 'dport', 65535) ?? 0,
  };
  if (o.iface !== undefined) {
    if (!/^[^\s/]{1,15}$/.test(o.iface))
      throw new UsageError(`--iface: not an interface name: ${JSON.stringify(o.iface)}`);
    c.iface = o.iface;
  }
  const ifgroup = intOpt(o.ifgroup, 'ifgroup', 0xffffffff);
  if (ifgroup !== undefined) {
    if (c.iface === undefined)
      throw new UsageError('--ifgroup describes the incoming interface: give --iface too');
    c.ifgroup = ifgroup;
  }
  // the destination is one of the firewall's own addresses (on the incoming interface when --iface
  // is given: what dst_iface/dst_ifgroup rules look at)
  if (o.dstLocal) c.dstLocal = true;
  const t = intOpt(o.icmpType, 'icmp-type', 255);
  if (t !== undefined) c.icmpType = t;
  const code = intOpt(o.icmpCode, 'icmp-code', 255);
  if (code !== undefined) c.icmpCode = code;
  if (o.reqid !== undefined) {
    c.reqids = o.reqid.split(',').map((x) => intOpt(x.trim(), 'reqid', 0xffffffff)!);
  }
  return c;
}

/** What the compiled ruleset does with the connection, in its own order (docs/kernel.md). */
export interface Verdict {
  kind: 'bypass' | 'management' | 'block' | 'proxy' | 'forward' | 'deny' | 'drop';
  /** 1-based bypass, management or block entry that decided, else null. */
  entry: number | null;
  /** A management entry that would accept the connection if its destination were the firewall's own
   * address (shown when --dst-local was not given). */
  managementIfLocal: number | null;
  /** One sentence. */
  text: string;
  /** The command's exit code: 0 let through, 3 refused. */
  exitCode: 0 | 3;
}

export function verdictOf(ex: Explanation, policy: Policy, conn: Connection): Verdict {
  const where = (list: { pos: { file: string; line: number } }[], n: number) =>
    `${list[n - 1]!.pos.file}:${list[n - 1]!.pos.line}`;
  const bypass = new ConditionsMatcher(policy, policy.bypass).first(conn);
  const mgmt = new ConditionsMatcher(policy, policy.management).first(conn);
  const base = { managementIfLocal: null };
  if (bypass !== null) {
    return {
      ...base,
      kind: 'bypass',
      entry: bypass,
      text: `bypass entry ${bypass} (${where(policy.bypass, bypass)}) accepts it untouched before any decision`,
      exitCode: 0,
    };
  }
  if (mgmt !== null && conn.dstLocal) {
    return {
      ...base,
      kind: 'management',
      entry: mgmt,
      text: `management entry ${mgmt} (${where(policy.management, mgmt)}) accepts it: traffic to the firewall itself, no rule is consulted`,
      exitCode: 0,
    };
  }
  const ifLocal = mgmt !== null && !conn.dstLocal ? mgmt : null;
  const block = new ConditionsMatcher(policy, policy.block).first(conn);
  if (block !== null) {
    return {
      kind: 'block',
      entry: block,
      managementIfLocal: ifLocal,
      text: `block entry ${block} (${where(policy.block, block)}) drops it before any rule is consulted`,
      exitCode: 3,
    };
  }
  const s = ex.service;
  if (s === null) {
    return {
      kind: 'drop',
      entry: null,
      managementIfLocal: ifLocal,
      text: 'no rule matches: dropped',
      exitCode: 3,
    };
  }
  if (s.type === 'deny') {
    return {
      kind: 'deny',
      entry: null,
      managementIfLocal: ifLocal,
      text: `refused by deny service ${s.name} (IPv4 ${s.ipv4}, IPv6 ${s.ipv6})`,
      exitCode: 3,
    };
  }
  if (s.type === 'forward' && conn.dstLocal) {
    return {
      kind: 'drop',
      entry: null,
      managementIfLocal: ifLocal,
      text: `forward service ${s.name} does not reach the firewall itself (input accepts management entries only): dropped`,
      exitCode: 3,
    };
  }
  return {
    kind: s.type,
    entry: null,
    managementIfLocal: ifLocal,
    text: s.type === 'proxy' ? `proxied by ${s.name} (${s.proxy})` : `forwarded by ${s.name}`,
    exitCode: 0,
  };
}

/** Loads a policy; prints its warnings and errors to stderr. Null when invalid. */
export async function loadPolicyReporting(file: string): Promise<Policy | null> {
  const r = await loadPolicyFile(file, { lint: false });
  for (const w of r.warnings as TzorpError[]) process.stderr.write(`warning: ${w.format()}\n`);
  for (const e of r.errors as TzorpError[]) process.stderr.write(`${e.format()}\n`);
  return r.errors.length > 0 ? null : r.policy;
}

function snake(s: string): string {
  return s.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
}

/** The --json document: the contract keys first, then the candidates. */
export function explanationJson(ex: Explanation, v?: Verdict): Record<string, unknown> {
  // when a bypass or management entry decides, no rule does: rule/service are null, the candidates
  // still say what the rules alone would have picked
  const byRule = v === undefined || (v.kind !== 'bypass' && v.kind !== 'management' && v.kind !== 'block');
  return {
    client_zone: ex.clientZone,
    server_zone: ex.serverZone,
    rule: byRule ? (ex.rule?.id ?? null) : null,
    service: byRule ? (ex.service?.name ?? null) : null,
    service_type: byRule ? ex.serviceType : null,
    ...(v
      ? {
          verdict: v.kind,
          verdict_text: v.text,
          bypass: v.kind === 'bypass' ? v.entry : null,
          management: v.kind === 'management' ? v.entry : null,
          block: v.kind === 'block' ? v.entry : null,
          management_if_local: v.managementIfLocal,
        }
      : {}),
    candidates: ex.candidates.map((c) => ({
      rule: c.rule,
      service: c.service,
      outcome: c.outcome,
      matched: c.matched,
      failed: c.failed.map(snake),
      decided_by: c.decidedBy === null ? null : snake(c.decidedBy),
      reason: c.reason,
      score:
        c.score === null ? null : Object.fromEntries(Object.entries(c.score).map(([k, v]) => [snake(k), v])),
      dimensions: c.dimensions.map((d) => ({
        dimension: d.dimension,
        status: d.status,
        ...(d.value !== undefined ? { value: d.value } : {}),
        score: d.score,
        actual: d.actual,
      })),
    })),
    connection: ex.connection,
  };
}

/** What a rule lists for a dimension, as text (for "80 not in 22, 443"). */
function listed(r: Rule, dim: string): string {
  const v = (
    {
      reqid: r.reqid,
      iface: r.iface,
      ifgroup: r.ifgroup,
      proto: r.proto?.map((p) => PROTO_TEXT[p] ?? String(p)),
      icmp_type: r.icmpType,
      icmp_code: r.icmpCode,
      src_port: r.srcPort?.map((p) => (p.lo === p.hi ? `${p.lo}` : `${p.lo}-${p.hi}`)),
      dst_port: r.dstPort?.map((p) => (p.lo === p.hi ? `${p.lo}` : `${p.lo}-${p.hi}`)),
      src_subnet: r.srcSubnet?.map((c) => c.text),
      src_zone: r.srcZone,
      dst_subnet: r.dstSubnet?.map((c) => c.text),
      dst_iface: r.dstIface,
      dst_ifgroup: r.dstIfgroup,
      dst_zone: r.dstZone,
    } as Record<string, (string | number)[] | undefined>
  )[dim];
  return (v ?? []).join(', ');
}

const GROUP_TEXT: Record<string, string> = {
  iface: 'interface (reqid/iface/ifgroup)',
  proto: 'proto',
  icmpType: 'icmp_type',
  icmpCode: 'icmp_code',
  srcPort: 'src_port',
  dstPort: 'dst_port',
  source: 'source (src_subnet/src_zone)',
  destination: 'destination (dst_subnet/dst_iface/dst_ifgroup/dst_zone)',
};

function protoName(v: string | null | undefined): string {
  return v === null || v === undefined ? 'none' : (PROTO_TEXT[Number(v)] ?? v);
}

function candidateLines(c: Candidate, rule: Rule): string[] {
  const head = `  rule ${c.rule} (${c.service})`;
  const lines: string[] = [];
  if (c.outcome === 'winner') lines.push(`${head}: WINNER, ${c.reason}`);
  else if (c.outcome === 'lost') lines.push(`${head}: matches but loses: ${c.reason}`);
  else lines.push(`${head}: no match on ${c.failed.map((g) => GROUP_TEXT[g] ?? g).join(', ')}`);
  for (const d of c.dimensions) {
    if (d.status === 'any') continue;
    const isProto = d.dimension === 'proto';
    const actual = isProto ? protoName(d.actual) : (d.actual ?? 'none');
    if (isProto && d.status === 'match') {
      lines.push(`      proto ${protoName(d.value)} (score ${d.score})`);
      continue;
    }
    if (d.status === 'match')
      lines.push(`      ${d.dimension} ${d.value} matches ${actual} (score ${d.score})`);
    else lines.push(`      ${d.dimension}: ${actual} not in ${listed(rule, d.dimension)}`);
  }
  return lines;
}

/** The readable explanation. */
export function explanationText(ex: Explanation, policy: Policy, v?: Verdict): string {
  const c = ex.connection;
  const proto = PROTO_TEXT[c.proto] ?? `proto ${c.proto}`;
  const ported = c.proto === 6 || c.proto === 17;
  const ep = (a: string, p: number) => (ported ? (a.includes(':') ? `[${a}]:${p}` : `${a}:${p}`) : a);
  const out: string[] = [];
  // the ruleset decides arriving traffic only (prerouting); without --iface the connection is taken
  // as arriving on an interface no rule names, never as locally generated
  let how =
    c.iface === null
      ? 'arriving on an interface no rule names (--iface names one)'
      : `on ${c.iface} (group ${c.ifgroup})`;
  if (c.dstLocal) how += ', destination local to it';
  if (c.reqids.length) how += `, IPsec reqid ${c.reqids.join(',')}`;
  const icmp =
    c.icmpType !== null ? ` type ${c.icmpType}${c.icmpCode !== null ? ` code ${c.icmpCode}` : ''}` : '';
  out.push(`evaluating ${proto}${icmp} ${ep(c.src, c.srcPort)} -> ${ep(c.dst, c.dstPort)} ${how}`);
  out.push(`Client zone: ${ex.clientZone ?? 'not found'}`);
  out.push(`Server zone: ${ex.serverZone ?? 'not found'}`);
  if (v) out.push(`Verdict: ${v.kind}: ${v.text}`);
  if (v?.managementIfLocal)
    out.push(
      `Note: if ${c.dst} is an address of the firewall, management entry ${v.managementIfLocal} accepts it instead (--dst-local)`,
    );
  if (v && (v.kind === 'bypass' || v.kind === 'management' || v.kind === 'block')) {
    out.push(
      `Rule: none decides (${v.kind} comes first); the rules alone would pick ${ex.rule?.id ?? 'none'}`,
    );
  } else if (ex.rule && ex.service) {
    const s = ex.service;
    const what =
      s.type === 'proxy'
        ? `proxy ${s.proxy}`
        : s.type === 'deny'
          ? `deny (ipv4 ${s.ipv4}, ipv6 ${s.ipv6})`
          : 'forward';
    const where = ex.rule.pos ? ` (${ex.rule.pos.file}:${ex.rule.pos.line})` : '';
    out.push(`Rule: ${ex.rule.id}${where}`);
    out.push(`Service: ${s.name}, ${what}`);
    out.push(`Why: ${ex.candidates[0]!.reason}`);
  } else {
    out.push('Rule: none (no rule matches: the connection is dropped)');
  }
  const rules = new Map(policy.rules.map((r) => [r.id, r]));
  const matched = ex.candidates.filter((k) => k.matched);
  const near = ex.candidates.filter((k) => !k.matched && k.failed.length === 1);
  const far = ex.candidates.length - matched.length - near.length;
  if (matched.length) {
    out.push('', `Matching rules (${matched.length}), best first:`);
    for (const k of matched) out.push(...candidateLines(k, rules.get(k.rule)!));
  }
  if (near.length) {
    out.push('', `Near misses (${near.length}): rules failing on one dimension:`);
    for (const k of near) out.push(...candidateLines(k, rules.get(k.rule)!));
  }
  if (far) out.push('', `${far} other rule(s) fail on two or more dimensions (--json lists every rule).`);
  return `${out.join('\n')}\n`;
}

export function register(program: Command): void {
  program
    .command('explain')
    .description('which zones, rule and service a connection gets, and why (like kzorp -e)')
    .argument('<policy>', 'policy file (YAML or JSON)')
    .option('--proto <p>', 'tcp, udp, icmp, icmpv6 or a protocol number')
    .option('--src <addr>', 'client address')
    .option('--dst <addr>', 'server (original destination) address')
    .option('--sport <n>', 'source port (default 1024, as kzorp -e)')
    .option('--dport <n>', 'destination port (default 0)')
    .option('--iface <name>', 'incoming interface (absent: one that no rule names)')
    .option('--ifgroup <n>', 'group of the incoming interface (default 0)')
    .option('--dst-local', "the destination is the firewall's own address (of the incoming interface)")
    .option('--icmp-type <n>', 'ICMP/ICMPv6 type')
    .option('--icmp-code <n>', 'ICMP/ICMPv6 code')
    .option('--reqid <n[,n]>', 'IPsec SA reqid(s) of the packet')
    .option('--json', 'machine-readable output')
    .action(async (file: string, o: ExplainOptions) => {
      let conn: Connection;
      try {
        conn = connectionFromOptions(o);
      } catch (e) {
        if (!(e instanceof UsageError)) throw e;
        process.stderr.write(`tzorp explain: ${e.message}\n`);
        process.exitCode = 2;
        return;
      }
      const policy = await loadPolicyReporting(file);
      if (policy === null) {
        process.exitCode = 1;
        return;
      }
      const engine = new Engine(policy);
      const ex = engine.explain(conn);
      const v = verdictOf(ex, policy, conn);
      process.stdout.write(
        o.json ? `${JSON.stringify(explanationJson(ex, v), null, 2)}\n` : explanationText(ex, policy, v),
      );
      process.exitCode = v.exitCode;
    });
}
