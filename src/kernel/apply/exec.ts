// Running nft, ip and reading/writing sysctls: the only place the kernel module touches the system.
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { type ErrorId, TzorpError } from '../../errors.ts';

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * The environment of the tools we run. nft 1.0.6 spends most of a large apply in malloc and in the
 * page faults of the memory it grows into (about 200 MB for 10,000 rules and 100,000 networks): letting
 * glibc's malloc use transparent huge pages and grow its heap 256 MB at a time took that apply from
 * 1.45 s to 0.85 s (bench/README.md, "Kernel"). Only address space is reserved up front; nothing else
 * changes for the tool. A GLIBC_TUNABLES of the administrator's own comes after ours, so it wins;
 * glibc before 2.35 ignores the names it does not know.
 */
function toolEnv(): NodeJS.ProcessEnv {
  const own = process.env.GLIBC_TUNABLES;
  return { ...process.env, GLIBC_TUNABLES: `${MALLOC_TUNABLES}${own ? `:${own}` : ''}` };
}
const MALLOC_TUNABLES = 'glibc.malloc.hugetlb=1:glibc.malloc.top_pad=268435456';

/** Runs a program (no shell), optionally feeding stdin. `prefix` (e.g. ["ip","netns","exec","ns"])
 * runs it in another network namespace; by default it runs in the current one. */
export function run(cmd: string, args: string[], input?: string, prefix: string[] = []): Promise<RunResult> {
  const argv = [...prefix, cmd, ...args];
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0]!, argv.slice(1), { stdio: ['pipe', 'pipe', 'pipe'], env: toolEnv() });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'ENOENT')
        reject(new TzorpError('KERNEL_TOOL_MISSING', `${argv[0]} is not installed`, { cause: e }));
      else reject(e);
    });
    child.on('close', (code) =>
      resolve({
        code: code ?? 1,
        stdout: Buffer.concat(out).toString(),
        stderr: Buffer.concat(err).toString(),
      }),
    );
    child.stdin.on('error', () => {}); // the tool may exit before reading everything; its code says why
    child.stdin.end(input ?? '');
  });
}

/** A failed nft or ip run as a catalogue error: KERNEL_NOT_ROOT when the kernel refused for lack of
 * CAP_NET_ADMIN (EPERM: "Operation not permitted"), otherwise `id`. */
export function toolFailure(id: ErrorId, message: string, r: RunResult): TzorpError {
  const denied = /Operation not permitted/.test(r.stderr);
  return new TzorpError(
    denied ? 'KERNEL_NOT_ROOT' : id,
    denied ? `${message}\n(tzorp needs root or CAP_NET_ADMIN)` : message,
  );
}

/** Where a sysctl lives under /proc/sys (this process's network namespace). */
function sysctlPath(name: string): string {
  return `/proc/sys/${name.replace(/\./g, '/')}`;
}

export async function readSysctl(name: string, prefix: string[] = []): Promise<string | null> {
  if (prefix.length > 0) {
    const r = await run('sysctl', ['-n', name], undefined, prefix);
    return r.code === 0 ? r.stdout.trim() : null;
  }
  try {
    return (await readFile(sysctlPath(name), 'utf8')).trim();
  } catch {
    return null;
  }
}

export async function writeSysctl(name: string, value: string, prefix: string[] = []): Promise<void> {
  if (prefix.length > 0) {
    const r = await run('sysctl', ['-q', '-w', `${name}=${value}`], undefined, prefix);
    if (r.code !== 0)
      throw new TzorpError('KERNEL_SYSCTL', `cannot set ${name}=${value}: ${r.stderr.trim()}`);
    return;
  }
  try {
    // Synchronously, on the JavaScript thread: after `tzorp run --user` only this thread keeps
    // CAP_NET_ADMIN (which lets a non-root process write net.* sysctls); libuv's pool threads have none.
    writeFileSync(sysctlPath(name), value);
  } catch (e) {
    throw new TzorpError('KERNEL_SYSCTL', `cannot set ${name}=${value}: ${(e as Error).message}`, {
      cause: e,
    });
  }
}
