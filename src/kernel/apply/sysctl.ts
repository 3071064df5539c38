// The sysctls the compiled ruleset depends on (linux-tproxy.md, "Sysctls"): checked on every apply,
// reported when wrong, set only when asked (`--fix-sysctls`).
import type { Policy } from '../../policy/model.ts';
import { readSysctl, writeSysctl } from './exec.ts';

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
  const out: SysctlCheck[] = [];
  for (const n of sysctlNeeds(policy)) out.push({ ...n, actual: await readSysctl(n.name, prefix) });
  return out;
}

export async function fixSysctls(wrong: SysctlCheck[], prefix: string[] = []): Promise<void> {
  for (const s of wrong) await writeSysctl(s.name, s.want, prefix);
}
