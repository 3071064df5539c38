// tzorp demo [POLICY]: checks the example policy and prints what the engine decides for a
// representative set of connections (every service a rule can pick, IPv4 and IPv6, and traffic no rule
// matches): connection → client zone, server zone, rule, service, verdict.
// With --live (what `npm run demo` runs) it then brings up a lab of network namespaces with tzorp in the
// firewall and drives real traffic through it (src/lab/demo.ts); without root it says why and stops
// after the table. Exit 0 when the policy is valid (and, with --live, every row happened as the policy
// says), 1 otherwise, 2 on usage errors.
import { fileURLToPath } from 'node:url';
import Table from 'cli-table3';
import type { Command } from 'commander';
import pc from 'picocolors';
import { Engine, type Sample, sampleConnections } from '../../engine/index.ts';
import { DEFAULT_LAB_NAME, liveDemoUnavailable, readLabState, runLiveDemo } from '../../lab/index.ts';
import { canonicalAddress } from '../../policy/index.ts';
import type { Connection, Policy } from '../../policy/model.ts';
import { loadPolicyReporting } from './explain.ts';
import { pokeHints } from './lab.ts';

export const DEFAULT_DEMO_POLICY = fileURLToPath(new URL('../../../examples/policy.yaml', import.meta.url));

const PROTO_TEXT: Record<number, string> = { 6: 'tcp', 17: 'udp', 1: 'icmp', 58: 'icmpv6' };

export function connectionText(c: Connection): string {
  const proto = PROTO_TEXT[c.proto] ?? `proto ${c.proto}`;
  const ported = c.proto === 6 || c.proto === 17;
  const ep = (a: string, p: number | undefined) =>
    ported ? (a.includes(':') ? `[${a}]:${p ?? 0}` : `${a}:${p ?? 0}`) : a;
  let s = `${proto} ${ep(c.src, c.srcPort)} → ${ep(c.dst, c.dstPort)}`;
  if (c.icmpType !== undefined && !ported) s += ` type ${c.icmpType}/${c.icmpCode ?? 0}`;
  if (c.iface) s += ` via ${c.iface}`;
  return s;
}

/** The verdict column: what happens to the connection. */
export function verdictText(s: Sample): string {
  const svc = s.decision.service;
  if (svc === null) return s.decision.rule === null ? 'no rule → dropped' : 'rule without service → dropped';
  if (svc.type === 'proxy') return `proxy (${svc.proxy})`;
  if (svc.type === 'forward') return 'forward';
  const v6 = canonicalAddress(s.conn.src)?.family === 6;
  return `deny (${v6 ? svc.ipv6 : svc.ipv4})`;
}

/** The decision table for a policy (plain text; colours only when asked). */
export function decisionTable(policy: Policy, color = false): { text: string; samples: Sample[] } {
  const engine = new Engine(policy);
  const samples = sampleConnections(engine);
  const paint = (s: string, f: (x: string) => string) => (color ? f(s) : s);
  const table = new Table({
    head: ['connection', 'client zone', 'server zone', 'rule', 'service', 'verdict'],
    style: { head: color ? ['cyan'] : [], border: color ? ['grey'] : [], compact: true },
  });
  for (const s of samples) {
    const d = s.decision;
    const verdict = verdictText(s);
    const painted =
      d.service === null
        ? paint(verdict, pc.red)
        : d.service.type === 'deny'
          ? paint(verdict, pc.yellow)
          : paint(verdict, pc.green);
    table.push([
      connectionText(s.conn),
      d.clientZone ?? '-',
      d.serverZone ?? '-',
      d.rule ? String(d.rule.id) : '-',
      d.service?.name ?? '-',
      painted,
    ]);
  }
  return { text: table.toString(), samples };
}

export function register(program: Command): void {
  program
    .command('demo')
    .description(
      'check the example policy and show its decisions; with --live (what `npm run demo` does) also run real traffic through tzorp in a lab',
    )
    .argument('[policy]', 'policy file', DEFAULT_DEMO_POLICY)
    .option('--live', 'bring up a lab of network namespaces with tzorp and drive real traffic (root)')
    .option('--name <name>', 'lab name for --live', DEFAULT_LAB_NAME)
    .option('--down', 'with --live: take the lab down at the end instead of leaving it up to poke at')
    .action(async (file: string, o: { live?: boolean; name: string; down?: boolean }) => {
      const policy = await loadPolicyReporting(file);
      if (policy === null) {
        process.stderr.write(`tzorp demo: ${file} is not a valid policy\n`);
        process.exitCode = 1;
        return;
      }
      const color = Boolean(process.stdout.isTTY) && !process.env.NO_COLOR;
      const heading = (t: string) => (color ? pc.bold(t) : t);
      const { text, samples } = decisionTable(policy, color);
      if (o.live)
        process.stdout.write(
          `${heading('1. What the policy decides (tzorp explain, for a set of connections)')}\n`,
        );
      process.stdout.write(
        `${file}: valid (${policy.zones.size} zones, ${policy.services.size} services, ${policy.rules.length} rules)\n\n`,
      );
      process.stdout.write(`${text}\n`);
      const services = new Set(samples.map((s) => s.decision.service?.name).filter((x) => x !== undefined));
      const unused = [...policy.services.keys()].filter((n) => !services.has(n));
      if (unused.length) {
        process.stdout.write(`services no sampled connection reaches: ${unused.join(', ')}\n`);
      }
      process.exitCode = 0;
      if (!o.live) {
        process.stdout.write(
          '\nTo watch tzorp handle real traffic in a lab of network namespaces: sudo npm run demo\n',
        );
        return;
      }
      const why = liveDemoUnavailable();
      if (why) {
        process.stdout.write(
          `\nThe live part cannot run here: ${why}.\nThe table above is what tzorp decides; nothing else was started or changed.\n`,
        );
        return;
      }
      process.stdout.write(
        `\n${heading('2. What really happens: real clients and servers, tzorp in the firewall (tzorp lab)')}\n`,
      );
      try {
        const r = await runLiveDemo({ name: o.name, policy: file, down: o.down === true });
        if (o.down) process.stdout.write(`\nThe lab '${o.name}' was taken down.\n`);
        else {
          const state = readLabState(o.name);
          process.stdout.write(
            `\nThe lab '${o.name}' is still up, to poke at (docs/lab.md):\n${pokeHints(o.name, state?.firewall.controlSocket ?? null)}\n`,
          );
        }
        if (!r.ok) {
          process.stdout.write('\nSome rows did not happen as the policy says (see "problem:" above).\n');
          process.exitCode = 1;
        }
      } catch (e) {
        process.stderr.write(`tzorp demo: the live part failed: ${(e as Error).message}\n`);
        process.exitCode = 1;
      }
    });
}
