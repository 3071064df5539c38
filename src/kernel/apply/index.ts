// Applying a compiled ruleset in the current network namespace (or one given by `prefix`): install
// policy routing, then change the table in one transaction (the differences to the installed table, or
// a whole new table); on any failure the previous ruleset and routing stay. And flushing exactly what
// tzorp installed.
import type { Policy } from '../../policy/model.ts';
import { type DiffCounts, diffTables } from '../compile/diff.ts';
import { closedTable, closedText, renderSkeleton, type TableModel } from '../compile/render.ts';
import { run, toolFailure } from './exec.ts';
import { ensureRouting, removeRouting, undoRouting } from './routing.ts';
import { checkSysctls, fixSysctls, recordSysctls, restoreSysctls, type SysctlCheck } from './sysctl.ts';

export {
  abandonStaged,
  beginStaged,
  finishStaged,
  type StagedStart,
  stagedApply,
  tableExistsSync,
} from './staged.ts';
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
    throw toolFailure('KERNEL_NFT_CHECK', `nft -c rejected the ruleset:\n${firstLines(r.stderr)}`, r);
  }
}

/** The user's rules (`--user-rules`), which tzorp did not write, checked by `nft -c` against the
 * table's declarations without their elements: a file that is not nft syntax, or that names a set or
 * chain the table does not have, is refused with nft's own message. */
export async function checkUserRules(model: TableModel, prefix: string[] = []): Promise<void> {
  if (model.userRules === null) return;
  const r = await run('nft', ['-c', '-f', '-'], renderSkeleton(model), prefix);
  if (r.code !== 0) {
    throw toolFailure('KERNEL_NFT_CHECK', `nft -c rejected the user rules:\n${firstLines(r.stderr)}`, r);
  }
}

/** A prefix that runs a command in a new, empty network namespace of its own (nothing of this one is
 * seen or touched): as root directly, otherwise in a user namespace where the caller maps to root. */
export function privateNetns(): string[] {
  return process.getuid?.() === 0 ? ['unshare', '--net'] : ['unshare', '--map-root-user', '--net'];
}

export interface ApplyModelOptions extends ApplyTextOptions {
  /** The model of the table the kernel holds (the last apply's): apply only the differences. Without
   * it, or when the differences cannot be applied, the whole table is replaced. */
  previous?: TableModel | null;
  /** diffTables' recreateAfterDeletes (tests set 0 to re-create every interval set that loses one). */
  recreateAfterDeletes?: number;
}

export interface ApplyOutcome extends ApplyResult {
  /** `incremental`: one transaction of differences; `full`: the table was replaced. */
  mode: 'incremental' | 'full';
  /** Why an incremental apply was not possible (absent when none was asked for or it worked), or why a
   * staged first apply was not finished. */
  fallback?: string;
  /** A first apply made in two transactions, the zone section loaded while the rest compiled
   * (apply/staged.ts). */
  staged?: true;
  changed?: DiffCounts;
}

/**
 * Installs `model`: policy routing, then one nft transaction. `text` gives the whole-table text, asked
 * for only when the whole table is replaced. No separate `nft -c` of the whole ruleset: the transaction
 * is atomic and checked by the kernel, and a refused one leaves the previous table. Only the user's rules, which tzorp did not write, are checked
 * first (with the table's declarations, without its elements), so their errors are told apart.
 */
export async function applyModel(
  policy: Policy,
  model: TableModel,
  text: () => string,
  opts: ApplyModelOptions = {},
): Promise<ApplyOutcome> {
  const prefix = opts.prefix ?? [];
  const previous = opts.previous ?? null;
  if (model.userRules !== null && previous?.userRules !== model.userRules)
    await checkUserRules(model, prefix);
  const undo = await ensureRouting(
    { mark: policy.settings.tproxyMark, table: policy.settings.routingTable },
    prefix,
  );
  let mode: ApplyOutcome['mode'] = 'full';
  let fallback: string | undefined;
  let changed: DiffCounts | undefined;
  if (previous) {
    const d = diffTables(
      previous,
      model,
      opts.recreateAfterDeletes !== undefined ? { recreateAfterDeletes: opts.recreateAfterDeletes } : {},
    );
    if (d.text === null) fallback = d.reason;
    else {
      const r = await run('nft', ['-f', '-'], d.text, prefix);
      if (r.code === 0) {
        mode = 'incremental';
        changed = d.changed;
      } else {
        // typically the kernel holds another table than `previous` (the digest check failed)
        fallback = `nft refused the differences: ${firstLines(r.stderr, 1)}`;
      }
    }
  }
  if (mode === 'full') {
    const r = await run('nft', ['-f', '-'], text(), prefix);
    if (r.code !== 0) {
      // nft applies a file as one transaction: the kernel still has the previous table
      await undoRouting(undo, prefix);
      throw toolFailure(
        'KERNEL_NFT_APPLY',
        `nft failed; the previous ruleset stays:\n${firstLines(r.stderr)}`,
        r,
      );
    }
  }
  const outcome = { mode, ...(fallback ? { fallback } : {}), ...(changed ? { changed } : {}) };
  return { ...(await settleSysctls(policy, prefix, opts.fixSysctls ?? false)), ...outcome };
}

/** The sysctls the policy needs, checked after the table is in (and fixed, when asked). */
export async function settleSysctls(policy: Policy, prefix: string[], fix: boolean): Promise<ApplyResult> {
  const sysctls = await checkSysctls(policy, prefix);
  const wrong = sysctls.filter((s) => s.actual !== s.want);
  if (!fix || wrong.length === 0) return { sysctls, wrong, fixed: [] };
  // what they were before tzorp changed them: `tzorp flush` puts them back
  await recordSysctls(wrong, prefix);
  await fixSysctls(wrong, prefix);
  const again = await checkSysctls(policy, prefix);
  return { sysctls: again, wrong: again.filter((s) => s.actual !== s.want), fixed: wrong };
}

export interface FlushResult {
  /** table inet tzorp was there (and is now closed, or removed with `open`). */
  table: boolean;
  /** The closed table is in place (not `open`, and there was a tzorp table). */
  closed: boolean;
  /** The closed table had to be made without the policy's management entries (see closedTable). */
  closedWithoutManagement: boolean;
  routing: number;
  /** Sysctls put back to their values from before tzorp changed them. */
  restored: { name: string; value: string }[];
}

export interface FlushOptions {
  /** Remove the table instead of leaving the closed one (`tzorp flush --open`). */
  open?: boolean;
}

/** Takes back what tzorp installed: by default the tzorp table becomes the closed one (nothing
 * forwarded, management kept: docs/operations.md, "Stop, and what happens when the daemon dies"); with `open` it is deleted. Policy
 * routing is removed and the sysctls tzorp changed get their earlier values. Other tables are never
 * touched. */
export async function flush(prefix: string[] = [], opts: FlushOptions = {}): Promise<FlushResult> {
  const has = await run('nft', ['list', 'table', 'inet', 'tzorp'], undefined, prefix);
  let table = false;
  let closed = false;
  let closedWithoutManagement = false;
  if (has.code === 0) {
    table = true;
    if (opts.open) {
      const r = await run('nft', ['delete', 'table', 'inet', 'tzorp'], undefined, prefix);
      if (r.code !== 0)
        throw toolFailure('KERNEL_NFT_APPLY', `nft delete table inet tzorp: ${r.stderr.trim()}`, r);
    } else {
      let r = await run('nft', ['-f', '-'], closedText(), prefix);
      if (r.code !== 0) {
        closedWithoutManagement = true;
        r = await run('nft', ['-f', '-'], closedTable(), prefix);
      }
      if (r.code !== 0)
        throw toolFailure('KERNEL_NFT_APPLY', `cannot close table inet tzorp: ${firstLines(r.stderr)}`, r);
      closed = true;
    }
  }
  const routing = await removeRouting(prefix);
  const restored = await restoreSysctls(prefix);
  return { table, closed, closedWithoutManagement, routing, restored };
}

export {
  armPending,
  clearPending,
  type Pending,
  readPending,
  rollbackTo,
  snapshotTable,
} from './confirm.ts';
