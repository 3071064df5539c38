// Applying a compiled ruleset in the current network namespace (or one given by `prefix`): check,
// install policy routing, replace the table in one transaction; on any failure the previous ruleset
// and routing stay. And flushing exactly what tzorp installed.
import { TzorpError } from '../../errors.ts';
import type { Policy } from '../../policy/model.ts';
import { run } from './exec.ts';
import { ensureRouting, removeRouting, undoRouting } from './routing.ts';
import { checkSysctls, fixSysctls, type SysctlCheck } from './sysctl.ts';

export type { SysctlCheck } from './sysctl.ts';
export { checkSysctls, sysctlNeeds } from './sysctl.ts';

export interface ApplyTextOptions {
  /** Run the tools in another namespace, e.g. ['ip', 'netns', 'exec', 'fw']. Default: this one. */
  prefix?: string[];
  fixSysctls?: boolean;
}

export interface ApplyResult {
  sysctls: SysctlCheck[];
  /** Sysctls with the wrong value (after fixing, if asked). */
  wrong: SysctlCheck[];
  fixed: SysctlCheck[];
}

function firstLines(s: string, n = 20): string {
  return s.trim().split('\n').slice(0, n).join('\n');
}

export async function nftCheck(text: string, prefix: string[] = []): Promise<void> {
  const r = await run('nft', ['-c', '-f', '-'], text, prefix);
  if (r.code !== 0) {
    throw new TzorpError('KERNEL_NFT_CHECK', `nft -c rejected the ruleset:\n${firstLines(r.stderr)}`);
  }
}

export async function applyText(
  policy: Policy,
  text: string,
  opts: ApplyTextOptions = {},
): Promise<ApplyResult> {
  const prefix = opts.prefix ?? [];
  await nftCheck(text, prefix);
  const undo = await ensureRouting(
    { mark: policy.settings.tproxyMark, table: policy.settings.routingTable },
    prefix,
  );
  const r = await run('nft', ['-f', '-'], text, prefix);
  if (r.code !== 0) {
    // nft applies a file as one transaction: the kernel still has the previous table
    await undoRouting(undo, prefix);
    throw new TzorpError(
      'KERNEL_NFT_APPLY',
      `nft failed; the previous ruleset stays:\n${firstLines(r.stderr)}`,
    );
  }
  const sysctls = await checkSysctls(policy, prefix);
  let wrong = sysctls.filter((s) => s.actual !== s.want);
  const fixed: SysctlCheck[] = [];
  if (opts.fixSysctls && wrong.length > 0) {
    await fixSysctls(wrong, prefix);
    fixed.push(...wrong);
    const again = await checkSysctls(policy, prefix);
    wrong = again.filter((s) => s.actual !== s.want);
    return { sysctls: again, wrong, fixed };
  }
  return { sysctls, wrong, fixed };
}

export interface FlushResult {
  table: boolean;
  routing: number;
}

/** Deletes `table inet tzorp` and tzorp's ip rules and routes; nothing else. */
export async function flush(prefix: string[] = []): Promise<FlushResult> {
  const has = await run('nft', ['list', 'table', 'inet', 'tzorp'], undefined, prefix);
  let table = false;
  if (has.code === 0) {
    const r = await run('nft', ['delete', 'table', 'inet', 'tzorp'], undefined, prefix);
    if (r.code !== 0)
      throw new TzorpError('KERNEL_NFT_APPLY', `nft delete table inet tzorp: ${r.stderr.trim()}`);
    table = true;
  }
  const routing = await removeRouting(prefix);
  return { table, routing };
}
