// tzorp lab up|down|status|exec: a lab of network namespaces (clients, the firewall, servers) with real
// servers and tzorp in the firewall, to watch tzorp decide and proxy real traffic without touching
// the host's network. Exit codes: 0 ok, 1 failed (or, for status, the lab is not up or not healthy),
// 2 usage.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { delimiter, join, relative } from 'node:path';
import Table from 'cli-table3';
import type { Command } from 'commander';
import pc from 'picocolors';
import {
  DEFAULT_LAB_NAME,
  LAB_ADDR,
  LabError,
  type LabStatus,
  labDown,
  labExecNamespace,
  labStatus,
  labUp,
  NODE_ROLES,
  REPO_ROOT,
} from '../../lab/index.ts';

function fail(e: unknown): never {
  const msg = e instanceof LabError || e instanceof Error ? e.message : String(e);
  process.stderr.write(`tzorp lab: ${msg}\n`);
  process.exit(1);
}

/** cli-table3 colours its borders and headings itself: only on a terminal. */
function tableStyle() {
  return process.stdout.isTTY ? { head: ['bold'] } : { head: [], border: [] };
}

export function printLabStatus(s: LabStatus): void {
  const out = process.stdout;
  if (!s.up && s.nodes.every((n) => !n.exists)) {
    out.write(`lab '${s.name}' is not up\n`);
    return;
  }
  out.write(`${pc.bold(`lab '${s.name}'`)}  state ${s.stateDir}  since ${s.createdAt ?? '?'}\n`);
  if (s.policy) out.write(`policy ${s.policy.file} (sha256 ${s.policy.sha256.slice(0, 12)})\n`);
  const nodes = new Table({ head: ['node', 'namespace', 'addresses', 'answers for'], style: tableStyle() });
  for (const n of s.nodes) {
    nodes.push([
      n.role,
      n.exists ? n.namespace : pc.red(`${n.namespace} (missing)`),
      n.addresses.join('\n'),
      n.anyip.join('\n'),
    ]);
  }
  out.write(`${nodes.toString()}\n`);
  if (s.processes.length) {
    const procs = new Table({ head: ['process', 'node', 'pid', 'state', 'log'], style: tableStyle() });
    for (const p of s.processes) {
      procs.push([p.name, p.node, String(p.pid), p.alive ? pc.green('running') : pc.red('gone'), p.log]);
    }
    out.write(`${procs.toString()}\n`);
  }
  const f = s.firewall;
  out.write(
    `firewall: ${f.detail}\n  table inet tzorp: ${f.table ? pc.green('present') : 'absent'}; ` +
      `policy routing: IPv4 ${f.policyRouting.v4 ? 'yes' : 'no'}, IPv6 ${f.policyRouting.v6 ? 'yes' : 'no'}\n`,
  );
  if (s.logs) out.write(`servers saw: ${s.logs.servers}\nftp protocol log: ${s.logs.vsftpd}\n`);
  if (s.logs?.tzorp) out.write(`tzorp log: ${s.logs.tzorp}\n`);
  if (s.daemon) {
    const d = s.daemon;
    out.write(
      `tzorp: pid ${d.pid}, generation ${d.generation}, workers ${d.workersAlive}/${d.workers}, ` +
        `sessions ${d.sessionsRunning} running, ${d.sessionsTotal} since start\n`,
    );
  }
  if (s.controlSocket)
    out.write(`control socket: ${s.controlSocket} (tzorp status --control ${s.controlSocket})\n`);
  for (const p of s.problems) out.write(`${pc.red('problem:')} ${p}\n`);
}

/** How to type `tzorp` here: the name when it is on PATH, else the repository's bin/tzorp. */
function tzorpCommandName(): string {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (dir && existsSync(join(dir, 'tzorp'))) return 'tzorp';
  }
  const bin = join(REPO_ROOT, 'bin/tzorp');
  const rel = relative(process.cwd(), bin);
  return rel.startsWith('..') ? bin : rel;
}

export function pokeHints(name: string, control: string | null): string {
  const n = name === 'lab' ? '' : ` --name ${name}`;
  const tz = tzorpCommandName();
  return [
    'try:',
    `  ${tz} lab exec client${n} -- curl -s http://${LAB_ADDR.server4}/`,
    `  ${tz} lab exec client${n} -- curl -s 'http://[${LAB_ADDR.server6}]/'`,
    `  ${tz} lab exec client${n} -- curl -s ftp://${LAB_ADDR.server4}/pub/`,
    `  ${tz} lab exec client${n} -- nc ${LAB_ADDR.server4} 22`,
    `  ${tz} lab exec fw${n} -- nft list table inet tzorp`,
    ...(control ? [`  ${tz} status --control ${control}`, `  ${tz} sessions --control ${control}`] : []),
    `  ${tz} lab status${n}`,
    `  ${tz} lab down${n}`,
  ].join('\n');
}

export function register(program: Command): void {
  // `tzorp lab status | head` closes the pipe early: that is not an error
  process.stdout.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') process.exit(0);
    throw e;
  });
  const lab = program
    .command('lab')
    .description('a lab of network namespaces (clients, firewall, servers) with tzorp in the firewall')
    .enablePositionalOptions();

  lab
    .command('up')
    .description('create the lab: namespaces, addresses, servers (HTTP, FTP, banner), tzorp in the firewall')
    .option('--name <name>', 'lab name (namespaces are tzl-<name>-<node>)', DEFAULT_LAB_NAME)
    .option('--policy <file>', 'policy for tzorp in the firewall (default: examples/policy.yaml)')
    .option('--no-tzorp', 'build the network and servers only, without tzorp')
    .action(async (o: { name: string; policy?: string; tzorp: boolean }) => {
      try {
        const s = await labUp({
          name: o.name,
          policy: o.policy,
          tzorp: o.tzorp,
          onStep: (m) => process.stderr.write(`${pc.dim('lab:')} ${m}\n`),
        });
        process.stdout.write(
          `lab '${s.name}' is up; firewall: ${s.firewall.detail}\n${pokeHints(s.name, s.firewall.controlSocket)}\n`,
        );
      } catch (e) {
        fail(e);
      }
    });

  lab
    .command('down')
    .description('remove the lab: its processes, namespaces and state (idempotent)')
    .option('--name <name>', 'lab name', DEFAULT_LAB_NAME)
    .action(async (o: { name: string }) => {
      try {
        const r = await labDown(o.name);
        process.stdout.write(
          r.wasUp
            ? `lab '${r.name}' is down: ${r.killed.length} processes stopped, ${r.namespaces.length} namespaces removed\n`
            : `lab '${r.name}' was not up; nothing to do\n`,
        );
      } catch (e) {
        fail(e);
      }
    });

  lab
    .command('status')
    .description("show the lab's nodes, addresses, processes and the firewall's ruleset")
    .option('--name <name>', 'lab name', DEFAULT_LAB_NAME)
    .option('--json', 'machine-readable output')
    .action(async (o: { name: string; json?: boolean }) => {
      try {
        const s = await labStatus(o.name);
        if (o.json) process.stdout.write(`${JSON.stringify(s, null, 2)}\n`);
        else printLabStatus(s);
        process.exitCode = s.up && s.problems.length === 0 ? 0 : 1;
      } catch (e) {
        fail(e);
      }
    });

  lab
    .command('exec')
    .description(`run a command in a node's namespace (${NODE_ROLES.join(', ')}): tzorp lab exec NODE -- CMD`)
    .argument('<node>', NODE_ROLES.join(' | '))
    .argument('<command...>', 'the command and its arguments (after --)')
    .option('--name <name>', 'lab name', DEFAULT_LAB_NAME)
    .passThroughOptions()
    .action((node: string, command: string[], o: { name: string }) => {
      let ns: string;
      try {
        ns = labExecNamespace(o.name, node);
      } catch (e) {
        fail(e);
      }
      const r = spawnSync('ip', ['netns', 'exec', ns, ...command], {
        stdio: 'inherit',
        env: { ...process.env, TZORP_LAB: o.name, TZORP_LAB_NODE: node },
      });
      if (r.error) fail(r.error);
      process.exit(r.status ?? (r.signal ? 128 : 1));
    });
}
