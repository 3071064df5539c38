// `tzorp lab up|down|status|exec`: builds the topology of topology.ts in network namespaces, starts the
// servers and tzorp in them, and takes all of it down again. The state file (state.ts) is written
// before the first namespace exists and after every step, so `down` can clean up after a lab that
// failed half-way, after a crash of `up`, or twice.

import { createHash } from 'node:crypto';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { isAbsolute, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { controlRequest } from '../daemon/control-client.ts';
import type { StatusResult } from '../daemon/control-protocol.ts';
import { DEFAULTS } from '../defaults.ts';
import { nodeEntryArgs, siblingModule } from '../entry.ts';
import { type ErrorId, TzorpError } from '../errors.ts';
import {
  checkLabName,
  type LabProcessRecord,
  type LabState,
  labBaseDir,
  labStateDir,
  readLabState,
  writeLabState,
} from './state.ts';
import {
  isSameProcess,
  listNamespaces,
  namespaceExists,
  namespacePids,
  processStartTime,
  run,
  runIn,
  sleep,
  startDetached,
  waitUntil,
} from './system.ts';
import {
  LAB_LINKS,
  LAB_NODES,
  LAB_PORTS,
  linkArgs,
  linksUpScript,
  NODE_ROLES,
  type NodeRole,
  nodeNamespace,
  nodeScript,
} from './topology.ts';
import { prepareVsftpd } from './vsftpd.ts';

export const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));
/** `--name` when none is given: $TZORP_LAB_NAME (so the commands in the docs can be run against a test's
 * lab unchanged), else "lab". */
export const DEFAULT_LAB_NAME = process.env.TZORP_LAB_NAME || 'lab';
export const DEFAULT_LAB_POLICY = join(REPO_ROOT, 'examples/policy.yaml');

export interface LabUpOptions {
  name: string;
  /** Policy file for tzorp in the firewall; default examples/policy.yaml. */
  policy?: string;
  /** Start tzorp in the firewall (default true); false builds the network and servers only. */
  tzorp?: boolean;
  /** Progress: called before each step. */
  onStep?: (step: string) => void;
}

function assertRoot(): void {
  if (process.getuid?.() !== 0) {
    throw new LabError('the lab needs root: it creates network namespaces (run it with sudo)');
  }
}

/** A lab step failed (LAB_COMMAND unless said otherwise: CLI_USAGE for a bad name or node,
 * POLICY_READ for a policy file the lab cannot read). */
export class LabError extends TzorpError {
  constructor(message: string, id: ErrorId = 'LAB_COMMAND') {
    super(id, message);
  }
}

function checkName(name: string): void {
  const err = checkLabName(name);
  if (err) throw new LabError(err, 'CLI_USAGE');
}

function labNamespaces(name: string): Record<NodeRole, string> {
  return Object.fromEntries(NODE_ROLES.map((r) => [r, nodeNamespace(name, r)])) as Record<NodeRole, string>;
}

/** Which tzorp commands exist in this tree: the lab uses the daemon when it is there, else a one-off
 * `tzorp apply`, else builds the network only and says so. */
function tzorpCommand(cmd: string): boolean {
  return existsSync(siblingModule(import.meta.url, `../cli/commands/${cmd}`));
}

function tail(file: string, lines = 15): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
}

export async function labUp(opts: LabUpOptions): Promise<LabState> {
  checkName(opts.name);
  assertRoot();
  const step = opts.onStep ?? (() => {});
  const ns = labNamespaces(opts.name);
  if (readLabState(opts.name) || NODE_ROLES.some((r) => namespaceExists(ns[r]))) {
    throw new LabError(
      `lab '${opts.name}' is already up (take it down with: tzorp lab down --name ${opts.name})`,
    );
  }
  const wantTzorp = opts.tzorp !== false;
  const policyFile = opts.policy
    ? isAbsolute(opts.policy)
      ? opts.policy
      : resolve(opts.policy)
    : DEFAULT_LAB_POLICY;
  let policy: LabState['policy'] = null;
  // The policy is needed only when tzorp will run; an explicitly named one must always be readable.
  const canRunTzorp = tzorpCommand('run') || tzorpCommand('apply');
  if ((wantTzorp && canRunTzorp) || opts.policy) {
    let bytes: Buffer;
    try {
      bytes = readFileSync(policyFile);
    } catch (e) {
      throw new LabError(`cannot read the policy ${policyFile}: ${(e as Error).message}`, 'POLICY_READ');
    }
    policy = { file: policyFile, sha256: createHash('sha256').update(bytes).digest('hex') };
  }
  const stateDir = labStateDir(opts.name);
  const state: LabState = {
    version: 1,
    name: opts.name,
    createdAt: new Date().toISOString(),
    stateDir,
    policy,
    namespaces: ns,
    processes: [],
    firewall: { mode: 'none', detail: 'not started yet', controlSocket: null },
    logs: { servers: join(stateDir, 'servers.log'), vsftpd: join(stateDir, 'ftp/vsftpd.log'), tzorp: null },
  };
  // Written first: from here on, `down` knows what to remove.
  writeLabState(state);
  try {
    step('creating namespaces and links');
    for (const r of NODE_ROLES) await run(['ip', 'netns', 'add', ns[r]]);
    for (const l of LAB_LINKS) await run(['ip', ...linkArgs(opts.name, l)]);
    for (const node of LAB_NODES) {
      await runIn(ns[node.role], ['sh', '-ec', nodeScript(node).join('\n')]);
    }
    for (const node of LAB_NODES)
      await runIn(ns[node.role], ['sh', '-c', linksUpScript(node.ifaces.map((i) => i.name))]);

    step('starting the servers (HTTP, FTP, banner, canaries)');
    const record = (p: Omit<LabProcessRecord, 'startTime'>) => {
      const startTime = processStartTime(p.pid) ?? '?';
      state.processes.push({ ...p, startTime });
      writeLabState(state);
    };
    const serversLog = join(stateDir, 'servers.out');
    const serversArgv = [
      process.execPath,
      ...nodeEntryArgs(import.meta.url, './servers-main'),
      JSON.stringify({
        log: state.logs.servers,
        http: LAB_PORTS.http,
        banner: LAB_PORTS.banner,
        canary: LAB_PORTS.canary,
      }),
    ];
    record({
      name: 'servers',
      node: 'server',
      pid: startDetached(ns.server, serversArgv, serversLog, REPO_ROOT),
      argv: serversArgv,
      log: serversLog,
    });
    const ftp = prepareVsftpd(join(stateDir, 'ftp'), LAB_PORTS.ftp);
    const ftpOut = join(stateDir, 'ftp/vsftpd.out');
    const ftpArgv = ['vsftpd', ftp.config];
    record({
      name: 'vsftpd',
      node: 'server',
      pid: startDetached(ns.server, ftpArgv, ftpOut, stateDir),
      argv: ftpArgv,
      log: ftpOut,
    });
    const servers = state.processes[0] as LabProcessRecord;
    await waitUntil(
      'the lab servers',
      () => {
        if (!isSameProcess(servers.pid, servers.startTime)) {
          throw new LabError(`the lab servers exited:\n${tail(serversLog)}`);
        }
        return tail(state.logs.servers, 1000).includes('"event":"ready"') ? true : undefined;
      },
      DEFAULTS.labStartTimeoutMs,
    );
    const vsftpd = state.processes[1] as LabProcessRecord;
    await waitUntil(
      'vsftpd',
      async () => {
        if (!isSameProcess(vsftpd.pid, vsftpd.startTime))
          throw new LabError(`vsftpd exited:\n${tail(ftpOut)}`);
        const r = await runIn(ns.server, ['ss', '-Hltn', `sport = :${LAB_PORTS.ftp}`], { allowFail: true });
        return r.stdout.trim() ? true : undefined;
      },
      DEFAULTS.labStartTimeoutMs,
    );

    if (!wantTzorp) {
      state.firewall = { mode: 'none', detail: 'started without tzorp (--no-tzorp)', controlSocket: null };
    } else if (tzorpCommand('run') && policy) {
      step('starting tzorp in the firewall');
      const log = join(stateDir, 'tzorp.log');
      const control = join(stateDir, 'control.sock');
      // Readable Zorp lines at level 4, so session starts, connection summaries and HTTP accounting
      // lines are in the log the demo and `tzorp lab status` point at; two workers show the sharing
      // of listeners without taking every core of the host.
      const argv = [
        process.execPath,
        join(REPO_ROOT, 'bin/tzorp'),
        'run',
        policy.file,
        '--control',
        control,
        '--log-format',
        'text',
        '--verbose',
        '4',
        '--workers',
        '2',
      ];
      record({ name: 'tzorp', node: 'fw', pid: startDetached(ns.fw, argv, log, REPO_ROOT), argv, log });
      const p = state.processes[state.processes.length - 1] as LabProcessRecord;
      state.logs.tzorp = log;
      await waitUntil(
        'tzorp to start (its "tzorp running" log line)',
        async () => {
          if (!isSameProcess(p.pid, p.startTime)) throw new LabError(`tzorp run exited:\n${tail(log)}`);
          return tail(log, 200).includes('tzorp running') && (await firewallTablePresent(ns.fw))
            ? true
            : undefined;
        },
        DEFAULTS.labStartTimeoutMs,
      );
      state.firewall = { mode: 'run', detail: `tzorp run ${policy.file}`, controlSocket: control };
    } else if (tzorpCommand('apply') && policy) {
      step('applying the policy in the firewall (tzorp apply; the daemon is not in this tree yet)');
      const r = await runIn(
        ns.fw,
        [process.execPath, join(REPO_ROOT, 'bin/tzorp'), 'apply', policy.file, '--fix-sysctls'],
        {
          allowFail: true,
          timeoutMs: DEFAULTS.labStartTimeoutMs,
        },
      );
      if (r.code !== 0) throw new LabError(`tzorp apply failed in the firewall:\n${r.stderr || r.stdout}`);
      state.firewall = {
        mode: 'apply',
        detail: 'ruleset applied with `tzorp apply` (no daemon in this tree yet: proxy services fail closed)',
        controlSocket: null,
      };
    } else {
      state.firewall = {
        mode: 'none',
        detail: 'neither `tzorp run` nor `tzorp apply` exists in this tree yet: the firewall routes only',
        controlSocket: null,
      };
    }
    writeLabState(state);
    return state;
  } catch (e) {
    step('failed; taking down what was built');
    await labDown(opts.name).catch(() => {});
    throw e;
  }
}

export interface LabDownResult {
  name: string;
  /** False when there was nothing to take down. */
  wasUp: boolean;
  killed: number[];
  namespaces: string[];
}

/** Takes the lab down: its processes (from the state file, checked against their start time, and every
 * process in its namespaces), its namespaces (with them every address, route, nft table and policy
 * routing rule inside) and its state directory. Idempotent. */
export async function labDown(name: string): Promise<LabDownResult> {
  checkName(name);
  assertRoot();
  let state: LabState | null = null;
  try {
    state = readLabState(name);
  } catch {
    // a damaged state file: fall back to the namespace names, which follow from the lab name
  }
  const prefix = `tzl-${name}-`;
  const nss = listNamespaces().filter(
    (n) => n.startsWith(prefix) && (NODE_ROLES as string[]).includes(n.slice(prefix.length)),
  );
  const victims = new Map<number, string | null>();
  for (const p of state?.processes ?? []) {
    if (isSameProcess(p.pid, p.startTime)) victims.set(p.pid, p.startTime);
  }
  for (const n of nss) for (const pid of await namespacePids(n)) victims.set(pid, processStartTime(pid));
  const alive = () =>
    [...victims].filter(([pid, st]) => st !== null && isSameProcess(pid, st)).map(([pid]) => pid);
  const signal = (sig: NodeJS.Signals) => {
    for (const pid of alive()) {
      try {
        process.kill(pid, sig);
      } catch {}
    }
  };
  const killed = alive();
  signal('SIGTERM');
  const end = Date.now() + DEFAULTS.labStopGraceMs;
  while (alive().length && Date.now() < end) await sleep(50);
  signal('SIGKILL');
  // a forked vsftpd child may appear between the listing and the kill: look once more per namespace
  for (const n of nss) {
    for (const pid of await namespacePids(n)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {}
    }
  }
  for (const n of nss) await run(['ip', 'netns', 'del', n], { allowFail: true });
  const dir = labStateDir(name);
  if (dir.startsWith(`${labBaseDir()}/`)) rmSync(dir, { recursive: true, force: true });
  return { name, wasUp: state !== null || nss.length > 0, killed, namespaces: nss };
}

export async function firewallTablePresent(fwNs: string): Promise<boolean> {
  const r = await runIn(fwNs, ['nft', 'list', 'table', 'inet', 'tzorp'], { allowFail: true });
  return r.code === 0;
}

export interface LabNodeStatus {
  role: NodeRole;
  namespace: string;
  exists: boolean;
  /** Global addresses configured in the node (`addr/prefix`), and the ranges it answers for. */
  addresses: string[];
  anyip: string[];
}

export interface LabStatus {
  name: string;
  up: boolean;
  stateDir: string;
  createdAt: string | null;
  policy: LabState['policy'];
  nodes: LabNodeStatus[];
  processes: { name: string; node: NodeRole; pid: number; alive: boolean; log: string }[];
  firewall: {
    mode: LabState['firewall']['mode'];
    detail: string;
    /** The `inet tzorp` table exists in the firewall namespace. */
    table: boolean;
    /** tzorp's policy-routing rules (fwmark -> local table) exist, IPv4 and IPv6. */
    policyRouting: { v4: boolean; v6: boolean };
  };
  logs: LabState['logs'] | null;
  /** The daemon's control socket (firewall mode 'run'), for `tzorp status --control`. */
  controlSocket: string | null;
  /** What the daemon says about itself over that socket (null when there is no daemon or it does not
   * answer: then `problems` says so). */
  daemon: {
    pid: number;
    generation: number;
    workers: number;
    workersAlive: number;
    sessionsRunning: number;
    sessionsTotal: number;
  } | null;
  /** Everything that is not as `up` left it; empty when healthy. */
  problems: string[];
}

export async function labStatus(name: string): Promise<LabStatus> {
  checkName(name);
  assertRoot();
  const state = readLabState(name);
  const ns = state?.namespaces ?? labNamespaces(name);
  const nodes: LabNodeStatus[] = [];
  const problems: string[] = [];
  for (const r of NODE_ROLES) {
    const exists = namespaceExists(ns[r]);
    const addresses: string[] = [];
    const anyip: string[] = [];
    if (exists) {
      const a = await runIn(ns[r], ['ip', '-j', 'addr', 'show'], { allowFail: true });
      for (const link of JSON.parse(a.stdout || '[]') as {
        addr_info?: { local: string; prefixlen: number; scope: string }[];
      }[]) {
        for (const ai of link.addr_info ?? []) {
          if (ai.scope === 'global') addresses.push(`${ai.local}/${ai.prefixlen}`);
        }
      }
      for (const fam of ['-4', '-6']) {
        const rt = await runIn(
          ns[r],
          ['ip', '-j', fam, 'route', 'show', 'table', 'local', 'type', 'local', 'dev', 'lo'],
          {
            allowFail: true,
          },
        );
        for (const e of JSON.parse(rt.stdout || '[]') as { dst: string }[]) {
          // skip the loopback ranges every namespace has
          if (e.dst.includes('/') && !e.dst.startsWith('127.')) anyip.push(e.dst);
        }
      }
    } else if (state) problems.push(`namespace ${ns[r]} is missing`);
    nodes.push({ role: r, namespace: ns[r], exists, addresses, anyip });
  }
  const processes = (state?.processes ?? []).map((p) => {
    const alive = isSameProcess(p.pid, p.startTime);
    if (!alive) problems.push(`${p.name} (pid ${p.pid}) is not running; its log: ${p.log}`);
    return { name: p.name, node: p.node, pid: p.pid, alive, log: p.log };
  });
  const fwUp = namespaceExists(ns.fw);
  const table = fwUp && (await firewallTablePresent(ns.fw));
  const policyRouting = { v4: false, v6: false };
  if (fwUp) {
    for (const fam of ['4', '6'] as const) {
      const r = await runIn(ns.fw, ['ip', `-${fam}`, 'rule', 'show'], { allowFail: true });
      policyRouting[`v${fam}`] = /fwmark 0x80000000\/0x80000000/.test(r.stdout);
    }
  }
  const mode = state?.firewall.mode ?? 'none';
  if (state && mode !== 'none' && !table) problems.push('the firewall has no `inet tzorp` table');
  let daemon: LabStatus['daemon'] = null;
  const control = state?.firewall.controlSocket;
  if (control) {
    try {
      const st = await controlRequest<StatusResult>(control, { cmd: 'status' }, { timeoutMs: 5_000 });
      daemon = {
        pid: st.pid,
        generation: st.generation,
        workers: st.workers,
        workersAlive: st.workersAlive,
        sessionsRunning: st.services.reduce((n, x) => n + x.sessionsRunning, 0),
        sessionsTotal: st.services.reduce((n, x) => n + x.sessionsTotal, 0),
      };
    } catch (e) {
      problems.push(`tzorp does not answer on ${control}: ${(e as Error).message}`);
    }
  }
  return {
    name,
    up: state !== null,
    stateDir: labStateDir(name),
    createdAt: state?.createdAt ?? null,
    policy: state?.policy ?? null,
    nodes,
    processes,
    firewall: { mode, detail: state?.firewall.detail ?? 'the lab is not up', table, policyRouting },
    logs: state?.logs ?? null,
    controlSocket: state?.firewall.controlSocket ?? null,
    daemon,
    problems,
  };
}

/** The namespace to run a command in for `tzorp lab exec NODE`, or an error naming what is wrong. */
/** Other names people use for the lab's nodes. */
const NODE_ALIASES: Record<string, NodeRole> = {
  firewall: 'fw',
  client1: 'client',
  clients: 'client',
  client2: 'outside',
  internet: 'outside',
  servers: 'server',
};

export function labExecNamespace(name: string, node: string): string {
  checkName(name);
  const role = (NODE_ROLES as readonly string[]).includes(node)
    ? (node as NodeRole)
    : Object.hasOwn(NODE_ALIASES, node)
      ? NODE_ALIASES[node]
      : undefined;
  if (!role) {
    throw new LabError(`unknown node '${node}': one of ${NODE_ROLES.join(', ')}`, 'CLI_USAGE');
  }
  const ns = nodeNamespace(name, role);
  if (!namespaceExists(ns))
    throw new LabError(`lab '${name}' is not up (start it with: tzorp lab up --name ${name})`);
  return ns;
}
