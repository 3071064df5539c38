// The sysctls the compiled ruleset depends on (linux-tproxy.md, "Sysctls"): checked on every apply,
// reported when wrong, set only when asked (`--fix-sysctls`).

import { TzorpError } from '../../errors.ts';
import type { Policy } from '../../policy/model.ts';
import { readSysctl, run, writeSysctl } from './exec.ts';

/** Where the values from before tzorp changed them are kept: the comment of a table of their own, in
 * the kernel of the same network namespace (a file would outlive the namespace, or be shared by
 * several), created by the first change and removed when they are put back. */
export const SYSCTL_TABLE = 'tzorp_sysctls';
/** nft keeps at most 128 bytes of comment (the kernel's NFT_USERDATA_MAXLEN): a fact of nft, not a tunable. */
const NFT_USERDATA_MAXLEN = 128;
/** Short names in the comment (the full names do not fit): the sysctls sysctlNeeds can ask for. */
const SHORT: Record<string, string> = {
  'net.ipv4.ip_forward': 'f4',
  'net.ipv6.conf.all.forwarding': 'f6',
  'net.ipv4.tcp_fwmark_accept': 'fwm',
  'net.ipv4.tcp_early_demux': 'ed',
};
const LONG = Object.fromEntries(Object.entries(SHORT).map(([k, v]) => [v, k]));

async function recorded(prefix: string[]): Promise<Map<string, string> | null> {
  const r = await run('nft', ['list', 'table', 'inet', SYSCTL_TABLE], undefined, prefix);
  if (r.code !== 0) return null;
  const m = /comment "([^"]*)"/.exec(r.stdout);
  const out = new Map<string, string>();
  for (const kv of (m?.[1] ?? '').split(' ').filter(Boolean)) {
    const [k, v] = kv.split('=');
    const name = LONG[k ?? ''];
    if (name && v !== undefined && /^-?\d+$/.test(v)) out.set(name, v);
  }
  return out;
}

/** Keeps the present value of each sysctl about to be changed, unless one is kept already (the value
 * from before tzorp's first change is the one to go back to). */
export async function recordSysctls(changing: SysctlCheck[], prefix: string[] = []): Promise<void> {
  const have = (await recorded(prefix)) ?? new Map<string, string>();
  let added = false;
  for (const s of changing) {
    if (have.has(s.name) || s.actual === null || SHORT[s.name] === undefined) continue;
    have.set(s.name, s.actual);
    added = true;
  }
  if (!added) return;
  const comment = [...have].map(([k, v]) => `${SHORT[k]}=${v}`).join(' ');
  if (Buffer.byteLength(comment) > NFT_USERDATA_MAXLEN) return;
  const t = `inet ${SYSCTL_TABLE}`;
  const text = `table ${t} {}\ndelete table ${t}\ntable ${t} {\n\tcomment "${comment}"\n}\n`;
  const r = await run('nft', ['-f', '-'], text, prefix);
  if (r.code !== 0) {
    throw new TzorpError('KERNEL_SYSCTL', `cannot keep the sysctl values to restore: ${r.stderr.trim()}`);
  }
}

/** Puts back every sysctl kept by recordSysctls and forgets them; what it set. */
export async function restoreSysctls(prefix: string[] = []): Promise<{ name: string; value: string }[]> {
  const have = await recorded(prefix);
  if (have === null) return [];
  const out: { name: string; value: string }[] = [];
  for (const [name, value] of have) {
    await writeSysctl(name, value, prefix);
    out.push({ name, value });
  }
  const r = await run('nft', ['delete', 'table', 'inet', SYSCTL_TABLE], undefined, prefix);
  if (r.code !== 0)
    throw new TzorpError('KERNEL_SYSCTL', `nft delete table inet ${SYSCTL_TABLE}: ${r.stderr.trim()}`);
  return out;
}

export interface SysctlCheck {
  name: string;
  want: string;
  actual: string | null;
  why: string;
  /** advice: a recommendation (pitfall), not a requirement. */
  level: 'required' | 'advice';
}

export function sysctlNeeds(policy: Policy): Omit<SysctlCheck, 'actual'>[] {
  const types = new Set([...policy.services.values()].map((s) => s.type));
  const rejectingDeny = [...policy.services.values()].some((s) => s.type === 'deny');
  const out: Omit<SysctlCheck, 'actual'>[] = [];
  if (types.has('forward') || rejectingDeny) {
    const why = types.has('forward')
      ? 'forward services are routed by the kernel'
      : 'deny services answer forwarded connections from the forward hook';
    out.push({ name: 'net.ipv4.ip_forward', want: '1', why, level: 'required' });
    out.push({ name: 'net.ipv6.conf.all.forwarding', want: '1', why, level: 'required' });
  }
  if (types.has('proxy')) {
    out.push({
      name: 'net.ipv4.tcp_fwmark_accept',
      want: '1',
      why: "proxies learn the rule id from an accepted socket's SO_MARK",
      level: 'required',
    });
  }
  if (types.has('proxy') && types.has('forward')) {
    out.push({
      name: 'net.ipv4.tcp_early_demux',
      want: '0',
      why: "a proxied connection's TIME_WAIT socket black-holes a forwarded one with the same addresses (linux-tproxy.md pitfall 3)",
      level: 'advice',
    });
  }
  return out;
}

export async function checkSysctls(policy: Policy, prefix: string[] = []): Promise<SysctlCheck[]> {
  const needs = sysctlNeeds(policy);
  if (prefix.length === 0) {
    const out: SysctlCheck[] = [];
    for (const n of needs) out.push({ ...n, actual: await readSysctl(n.name, prefix) });
    return out;
  }
  // In another namespace each read is a process: read them all with one (`-e`: a name this kernel
  // does not have is left out, so it reads as null like readSysctl's)
  const r = await run('sysctl', ['-e', ...needs.map((n) => n.name)], undefined, prefix);
  const got = new Map<string, string>();
  for (const line of r.stdout.split('\n')) {
    const m = /^(\S+) = (.*)$/.exec(line);
    if (m) got.set(m[1]!, m[2]!.trim());
  }
  return needs.map((n) => ({ ...n, actual: got.get(n.name) ?? null }));
}

export async function fixSysctls(wrong: SysctlCheck[], prefix: string[] = []): Promise<void> {
  for (const s of wrong) await writeSysctl(s.name, s.want, prefix);
}
