// The only lab code that runs programs (ip, nft, sysctl, the lab's servers) and looks at processes.
import { execFile, spawn } from 'node:child_process';
import { closeSync, openSync, readdirSync, readFileSync } from 'node:fs';
import { TzorpError } from '../errors.ts';

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs argv to completion; throws with the command and its stderr on a non-zero exit unless allowFail. */
export function run(
  argv: string[],
  opts: { allowFail?: boolean; timeoutMs?: number } = {},
): Promise<RunResult> {
  const [cmd, ...args] = argv as [string, ...string[]];
  return new Promise((resolve, reject) => {
    execFile(
      cmd,
      args,
      { timeout: opts.timeoutMs ?? 30_000, maxBuffer: 16 * 1024 * 1024, encoding: 'utf8' },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
        if (err && (err as NodeJS.ErrnoException).code === 'ENOENT') {
          reject(
            new TzorpError('LAB_COMMAND', `${cmd} is not installed (run: node scripts/setup.mjs as root)`),
          );
        } else if (code !== 0 && !opts.allowFail) {
          reject(
            new TzorpError(
              'LAB_COMMAND',
              `\`${argv.join(' ')}\` failed (exit ${code}): ${(stderr || stdout).trim()}`,
            ),
          );
        } else resolve({ code, stdout, stderr });
      },
    );
  });
}

/** Runs argv inside a network namespace. */
export function runIn(ns: string, argv: string[], opts: { allowFail?: boolean; timeoutMs?: number } = {}) {
  return run(['ip', 'netns', 'exec', ns, ...argv], opts);
}

/** Starts a long-running program inside a namespace, detached from us (it outlives `tzorp lab up`),
 * stdout and stderr appended to `log`. `ip netns exec` execs the program, so the pid is the program's. */
export function startDetached(ns: string, argv: string[], log: string, cwd: string): number {
  const fd = openSync(log, 'a');
  try {
    const child = spawn('ip', ['netns', 'exec', ns, ...argv], {
      detached: true,
      stdio: ['ignore', fd, fd],
      cwd,
      env: process.env,
    });
    child.unref();
    if (child.pid === undefined) throw new TzorpError('LAB_COMMAND', `could not start ${argv.join(' ')}`);
    return child.pid;
  } finally {
    closeSync(fd);
  }
}

/** Field 22 (start time in clock ticks since boot) of /proc/<pid>/stat, or null if there is no such
 * process. With the pid it identifies a process across pid reuse. */
export function processStartTime(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // comm (field 2) is in parentheses and may contain spaces: count fields after the last ')'.
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return rest[19] ?? null; // rest[0] is field 3
  } catch {
    return null;
  }
}

/** True when pid is alive and is the process that was started at `startTime` (not a zombie). */
export function isSameProcess(pid: number, startTime: string): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return rest[0] !== 'Z' && rest[19] === startTime;
  } catch {
    return false;
  }
}

export function namespaceExists(ns: string): boolean {
  try {
    return readdirSync('/run/netns').includes(ns);
  } catch {
    return false;
  }
}

export function listNamespaces(): string[] {
  try {
    return readdirSync('/run/netns');
  } catch {
    return [];
  }
}

/** Pids of every process in the namespace (`ip netns pids`), [] when it does not exist. */
export async function namespacePids(ns: string): Promise<number[]> {
  if (!namespaceExists(ns)) return [];
  const r = await run(['ip', 'netns', 'pids', ns], { allowFail: true });
  return r.stdout
    .split(/\s+/)
    .filter(Boolean)
    .map(Number)
    .filter((n) => Number.isInteger(n) && n > 1);
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Polls `check` until it returns a value other than undefined or `timeoutMs` passes. */
export async function waitUntil<T>(
  what: string,
  check: () => T | undefined | Promise<T | undefined>,
  timeoutMs: number,
): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v !== undefined) return v;
    if (Date.now() > end)
      throw new TzorpError('LAB_COMMAND', `timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(50);
  }
}
