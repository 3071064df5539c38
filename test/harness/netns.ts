// Network-namespace lab for end-to-end tests: client ── firewall ── server, IPv4 and IPv6.
//
//   client (eth0 198.18.1.2/24, 2001:db8:1::2/64)
//      │ veth
//   fw     (eth0 198.18.1.1/24, 2001:db8:1::1/64 | eth1 198.18.2.1/24, 2001:db8:2::1/64), forwarding on
//      │ veth
//   server (eth0 198.18.2.2/24, 2001:db8:2::2/64)
//
// Every namespace is new and private to one lab, so concurrent labs can use the same addresses; only
// the namespace names must differ (`tzt<pid>x<n><role>`). The veth pairs are created directly inside
// the lab's namespaces: nothing is ever added to the host's own namespace, and nothing in a lab is
// connected to the host's interfaces. `destroy()` kills what the lab started and deletes the
// namespaces; it runs in `withLab`'s finally, on process exit, and a later run sweeps the namespaces
// of dead test processes.
import { type ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { after, before } from 'node:test';
import { fileURLToPath } from 'node:url';
import { linksUpScript } from '../../src/lab/topology.ts';

export const isRoot = process.getuid?.() === 0;
/** Why a namespace test cannot run here, or null when it can (use as `{ skip: netnsSkipReason() }`). */
export function netnsSkipReason(): string | false {
  if (!isRoot) return 'needs root (network namespaces)';
  try {
    execFileSync('nft', ['--version'], { stdio: 'ignore' });
  } catch {
    return 'nft is not installed (run scripts/setup.mjs as root)';
  }
  return false;
}

export const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));

export type Role = 'client' | 'fw' | 'server';

export interface LabOptions {
  /** Extra addresses on the client's eth0 (v4 or v6, bare or CIDR; bare = /32 or /128). The firewall
   * gets a route back to each through the client. */
  clientAddrs?: string[];
  /** Extra addresses on the server's eth0; the firewall routes them to the server. */
  serverAddrs?: string[];
  /** Leave forwarding off in the firewall (default on). */
  noForwarding?: boolean;
}

export interface ExecResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface ExecOptions {
  input?: string | Buffer;
  timeoutMs?: number;
  /** Do not throw on a non-zero exit. */
  allowFail?: boolean;
  env?: Record<string, string>;
}

export interface LabProcess {
  child: ChildProcess;
  /** Everything written so far. */
  stdout(): string;
  stderr(): string;
  /** Resolves with the first match of `re` in stdout (+stderr), rejects on exit or after timeoutMs. */
  waitFor(re: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>;
  /** Resolves with the exit code (or signal name). */
  exited(): Promise<number | string>;
  kill(signal?: NodeJS.Signals): void;
}

export const ADDR = {
  client4: '198.18.1.2',
  client6: '2001:db8:1::2',
  fwClient4: '198.18.1.1',
  fwClient6: '2001:db8:1::1',
  fwServer4: '198.18.2.1',
  fwServer6: '2001:db8:2::1',
  server4: '198.18.2.2',
  server6: '2001:db8:2::2',
} as const;

let labCounter = 0;
const liveLabs = new Set<Lab>();

function run(argv: string[], opts: ExecOptions = {}): Promise<ExecResult> {
  return new Promise((resolve, reject) => {
    const [cmd, ...args] = argv as [string, ...string[]];
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, ...opts.env } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => {
      stdout += d;
    });
    child.stderr.on('data', (d) => {
      stderr += d;
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 30_000);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const r = { code: code ?? (signal ? 128 : 1), stdout, stderr };
      if (r.code !== 0 && !opts.allowFail) {
        reject(
          new Error(`${argv.join(' ')} exited ${r.code}${signal ? ` (${signal})` : ''}: ${stderr || stdout}`),
        );
      } else resolve(r);
    });
    child.stdin.on('error', () => {});
    child.stdin.end(opts.input ?? '');
  });
}

function sweepDeadLabs(): void {
  let names: string[] = [];
  try {
    names = readdirSync('/run/netns');
  } catch {
    return;
  }
  for (const n of names) {
    const m = /^tzt(\d+)x\d+(client|fw|server)$/.exec(n);
    if (!m) continue;
    const pid = Number(m[1]);
    let alive = true;
    try {
      process.kill(pid, 0);
    } catch {
      alive = false;
    }
    if (!alive) killAndDelete(n);
  }
}

function killAndDelete(ns: string): void {
  try {
    const pids = execFileSync('ip', ['netns', 'pids', ns], { encoding: 'utf8' }).split(/\s+/).filter(Boolean);
    for (const p of pids) {
      try {
        process.kill(Number(p), 'SIGKILL');
      } catch {}
    }
  } catch {}
  try {
    execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
  } catch {}
}

process.on('exit', () => {
  for (const lab of liveLabs) lab.destroySync();
});

export class Lab {
  readonly id: string;
  readonly ns: Record<Role, string>;
  readonly addr = ADDR;
  private procs = new Set<ChildProcess>();
  private destroyed = false;

  constructor() {
    labCounter += 1;
    this.id = `tzt${process.pid}x${labCounter}`;
    this.ns = { client: `${this.id}client`, fw: `${this.id}fw`, server: `${this.id}server` };
  }

  /** Runs argv inside the role's namespace. */
  exec(role: Role, argv: string[], opts: ExecOptions = {}): Promise<ExecResult> {
    return run(['ip', 'netns', 'exec', this.ns[role], ...argv], opts);
  }

  /** Runs a shell script inside the role's namespace. */
  sh(role: Role, script: string, opts: ExecOptions = {}): Promise<ExecResult> {
    return this.exec(role, ['sh', '-c', script], opts);
  }

  /** Starts a long-running process inside the role's namespace; it is killed by destroy(). */
  spawn(role: Role, argv: string[], opts: { env?: Record<string, string>; cwd?: string } = {}): LabProcess {
    const child = spawn('ip', ['netns', 'exec', this.ns[role], ...argv], {
      stdio: ['pipe', 'pipe', 'pipe'],
      detached: true, // own process group: destroy() kills the whole group
      env: { ...process.env, ...opts.env },
      cwd: opts.cwd ?? REPO_ROOT,
    });
    this.procs.add(child);
    let out = '';
    let err = '';
    const waiters: (() => void)[] = [];
    const poke = () => {
      for (const w of waiters.splice(0)) w();
    };
    child.stdout?.on('data', (d) => {
      out += d;
      poke();
    });
    child.stderr?.on('data', (d) => {
      err += d;
      poke();
    });
    child.stdin?.on('error', () => {});
    const exit = new Promise<number | string>((resolve) => {
      child.on('close', (code, signal) => {
        this.procs.delete(child);
        poke();
        resolve(code ?? signal ?? 'unknown');
      });
      child.on('error', () => resolve('spawn-error'));
    });
    let exitedFlag = false;
    void exit.then(() => {
      exitedFlag = true;
    });
    return {
      child,
      stdout: () => out,
      stderr: () => err,
      exited: () => exit,
      kill: (signal: NodeJS.Signals = 'SIGTERM') => {
        if (child.pid === undefined) return;
        try {
          process.kill(-child.pid, signal);
        } catch {}
      },
      waitFor: (re: RegExp, timeoutMs = 20_000) =>
        new Promise<RegExpMatchArray>((resolve, reject) => {
          const deadline = setTimeout(() => {
            reject(new Error(`timed out waiting for ${re} in output of ${argv.join(' ')}:\n${out}\n${err}`));
          }, timeoutMs);
          const check = () => {
            const m = re.exec(out) ?? re.exec(err);
            if (m) {
              clearTimeout(deadline);
              resolve(m);
            } else if (exitedFlag) {
              clearTimeout(deadline);
              reject(new Error(`${argv.join(' ')} exited before printing ${re}:\n${out}\n${err}`));
            } else waiters.push(check);
          };
          check();
        }),
    };
  }

  /** Starts a TypeScript file (through tsx) inside the role's namespace. */
  spawnTs(
    role: Role,
    file: string,
    args: string[] = [],
    opts: { env?: Record<string, string> } = {},
  ): LabProcess {
    return this.spawn(role, [process.execPath, '--import', 'tsx', file, ...args], opts);
  }

  async setup(opts: LabOptions): Promise<void> {
    const { client, fw, server } = this.ns;
    for (const n of [client, fw, server]) {
      await run(['ip', 'netns', 'add', n]);
      liveLabs.add(this);
      // No duplicate address detection: addresses (also link-local, which ND uses) are usable at once.
      await run(['ip', 'netns', 'exec', n, 'sysctl', '-qw', 'net.ipv6.conf.default.accept_dad=0']);
      await run(['ip', 'netns', 'exec', n, 'sysctl', '-qw', 'net.ipv6.conf.all.accept_dad=0']);
    }
    await run([
      'ip',
      'link',
      'add',
      'eth0',
      'netns',
      client,
      'type',
      'veth',
      'peer',
      'name',
      'eth0',
      'netns',
      fw,
    ]);
    await run([
      'ip',
      'link',
      'add',
      'eth0',
      'netns',
      server,
      'type',
      'veth',
      'peer',
      'name',
      'eth1',
      'netns',
      fw,
    ]);
    const fwd = opts.noForwarding ? '0' : '1';
    const script: Record<Role, string[]> = {
      client: [
        `ip addr add ${ADDR.client4}/24 dev eth0`,
        `ip -6 addr add ${ADDR.client6}/64 dev eth0 nodad`,
        ...(opts.clientAddrs ?? []).map((a) => addAddr(a)),
        'ip link set lo up',
        'ip link set eth0 up',
        `ip route add default via ${ADDR.fwClient4}`,
        `ip -6 route add default via ${ADDR.fwClient6}`,
      ],
      fw: [
        `ip addr add ${ADDR.fwClient4}/24 dev eth0`,
        `ip -6 addr add ${ADDR.fwClient6}/64 dev eth0 nodad`,
        `ip addr add ${ADDR.fwServer4}/24 dev eth1`,
        `ip -6 addr add ${ADDR.fwServer6}/64 dev eth1 nodad`,
        'ip link set lo up',
        'ip link set eth0 up',
        'ip link set eth1 up',
        ...(opts.clientAddrs ?? []).map((a) => addRoute(a, ADDR.client4, ADDR.client6)),
        ...(opts.serverAddrs ?? []).map((a) => addRoute(a, ADDR.server4, ADDR.server6)),
        `sysctl -qw net.ipv4.ip_forward=${fwd}`,
        `sysctl -qw net.ipv6.conf.all.forwarding=${fwd}`,
      ],
      server: [
        `ip addr add ${ADDR.server4}/24 dev eth0`,
        `ip -6 addr add ${ADDR.server6}/64 dev eth0 nodad`,
        ...(opts.serverAddrs ?? []).map((a) => addAddr(a)),
        'ip link set lo up',
        'ip link set eth0 up',
        `ip route add default via ${ADDR.fwServer4}`,
        `ip -6 route add default via ${ADDR.fwServer6}`,
      ],
    };
    for (const role of ['client', 'fw', 'server'] as const) {
      await this.sh(role, `set -e\n${script[role].join('\n')}`);
    }
    // A veth sends nothing until the kernel's link watcher has run (src/lab/topology.ts linksUpScript):
    // without this wait every lab's first IPv6 connection took a second.
    await this.sh('fw', linksUpScript(['eth0', 'eth1']));
    for (const role of ['client', 'server'] as const) await this.sh(role, linksUpScript(['eth0']));
  }

  async destroy(): Promise<void> {
    this.destroySync();
  }

  destroySync(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    liveLabs.delete(this);
    for (const child of this.procs) {
      if (child.pid === undefined) continue;
      try {
        process.kill(-child.pid, 'SIGKILL');
      } catch {}
    }
    for (const n of Object.values(this.ns)) killAndDelete(n);
  }
}

function addAddr(a: string): string {
  const six = a.includes(':');
  const cidr = a.includes('/') ? a : `${a}/${six ? 128 : 32}`;
  return six ? `ip -6 addr add ${cidr} dev eth0 nodad` : `ip addr add ${cidr} dev eth0`;
}

function addRoute(a: string, via4: string, via6: string): string {
  const six = a.includes(':');
  const cidr = a.includes('/') ? a : `${a}/${six ? 128 : 32}`;
  return six ? `ip -6 route add ${cidr} via ${via6}` : `ip route add ${cidr} via ${via4}`;
}

/** Creates a lab; the caller must `destroy()` it (prefer withLab). */
export async function createLab(opts: LabOptions = {}): Promise<Lab> {
  sweepDeadLabs();
  const lab = new Lab();
  try {
    await lab.setup(opts);
  } catch (e) {
    lab.destroySync();
    throw e;
  }
  return lab;
}

/** Runs fn with a fresh lab and always destroys it, also when fn throws. */
export async function withLab<T>(opts: LabOptions, fn: (lab: Lab) => Promise<T>): Promise<T> {
  const lab = await createLab(opts);
  try {
    return await fn(lab);
  } finally {
    await lab.destroy();
  }
}

/** A namespace of its own for the tests of one file, with only `lo` up: made before them and deleted
 * after them (also when one fails), unless `skip`. `prefix` runs a command in it. */
export function testNetns(tag: string, skip: string | false): { ns: string; prefix: string[] } {
  const ns = `${tag}${process.pid}`;
  before(() => {
    if (skip) return;
    execFileSync('ip', ['netns', 'add', ns]);
    execFileSync('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
  });
  after(() => {
    if (!skip) spawnSync('ip', ['netns', 'del', ns]);
  });
  return { ns, prefix: ['ip', 'netns', 'exec', ns] };
}
