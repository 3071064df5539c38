// Public surface of the kernel module: compile a policy into one nftables table (pure), apply it
// atomically with policy routing, and flush what tzorp installed. See docs/kernel.md.

import { DEFAULTS } from '../defaults.ts';
import { TzorpError } from '../errors.ts';
import type { Policy } from '../policy/model.ts';
import {
  buildIR,
  type CompileOptions,
  type Listener,
  type RulesetIR,
  renderModel,
  renderTable,
  type TableModel,
  zoneStage,
} from './compile/index.ts';

export type { CompileOptions, DiffCounts, Listener, RulesetIR, TableModel } from './compile/index.ts';
export { listenersOf, TABLE, zoneIdent, zoneSetName } from './compile/index.ts';

export interface Compiled {
  /** The complete nft input: one transaction that replaces `table inet tzorp`. Written when first
   * read: a reload whose differences apply never needs the 4 MB of a large policy's whole table. */
  readonly text: string;
  /** Where each proxy service's connections are diverted to. */
  listeners: Map<string, Listener>;
  ir: RulesetIR;
  /** The table as the renderer models it: what the next apply diffs against. */
  model: TableModel;
}

export function compilePolicy(policy: Policy, opts: CompileOptions = {}): Compiled {
  const { ir, listeners } = buildIR(policy, opts);
  const model = renderModel(ir, opts.zoneChunk);
  return withText({ listeners, ir, model });
}

/** A compile's parts with the whole-table text rendered once, when it is first read. */
function withText<T extends { model: TableModel }>(
  parts: T,
  render: () => string = () => renderTable(parts.model),
): T & { readonly text: string } {
  let text: string | undefined;
  return Object.defineProperty(parts, 'text', {
    enumerable: true,
    get: () => {
      text ??= render();
      return text;
    },
  }) as T & { readonly text: string };
}

import {
  type ApplyOutcome,
  abandonStaged,
  applyModel,
  beginStaged,
  checkUserRules,
  type FlushOptions,
  type FlushResult,
  finishStaged,
  flush,
  type StagedStart,
  settleSysctls,
  stagedApply,
  tableExistsSync,
} from './apply/index.ts';

export type { ApplyOutcome, ApplyResult, FlushOptions, FlushResult, SysctlCheck } from './apply/index.ts';
export { checkSysctls, checkUserRules, nftCheck, privateNetns, sysctlNeeds } from './apply/index.ts';

import { saveInstalled } from './apply/state.ts';

export { loadInstalled, saveInstalled } from './apply/state.ts';

export interface ApplyOptions extends CompileOptions {
  /** Run nft/ip/sysctl in another namespace (e.g. ['ip','netns','exec','fw']); default: this one. */
  prefix?: string[];
  fixSysctls?: boolean;
  /** The model of the installed table (the last apply's `model`): only the differences are applied. */
  previous?: TableModel | null;
  /** An already compiled ruleset of this policy and these options (the daemon compiles before it
   * applies); compiled again when absent. */
  compiled?: Compiled;
  /** See ApplyModelOptions.recreateAfterDeletes. */
  recreateAfterDeletes?: number;
  /** The first stage of a staged first apply, begun before `compiled` was compiled (the daemon's
   * start: beginStagedApply); the apply finishes it. */
  stagedStart?: StagedStart;
  /** A first apply (no `previous`, no `compiled`) into a namespace without the table loads the zone
   * section while the rest compiles when the zones hold at least this many networks (apply/staged.ts);
   * default DEFAULTS.kernelStagedZoneNetworks. Infinity never stages, 0 always does (tests). */
  stageZonesFrom?: number;
}

/** Compiles and applies: policy routing, one nft transaction (the differences to `previous`, or the
 * whole table), sysctl checks. */
export async function applyPolicy(policy: Policy, opts: ApplyOptions = {}): Promise<Compiled & ApplyOutcome> {
  const prefix = opts.prefix ?? [];
  let staging: string | undefined;
  let compiledHere: Compiled | undefined;
  if (opts.stagedStart) {
    if (!opts.compiled) {
      await abandonStaged(opts.stagedStart);
      throw new TzorpError('INTERNAL', 'a staged apply needs the compile it was begun for');
    }
    const s = await finishStaged(policy, opts.stagedStart, opts.compiled, (m) => checkUserRules(m, prefix));
    if (s.staged) return stagedOutcome(policy, s.compiled, prefix, opts.fixSysctls ?? false);
    if (s.tried) staging = s.reason;
  } else if (!opts.compiled && !opts.previous && stagingWanted(policy, opts.stageZonesFrom)) {
    const s = await stagedApply(
      policy,
      () => zoneStage(policy, opts),
      () => compilePolicy(policy, opts),
      prefix,
      (m) => checkUserRules(m, prefix),
    );
    if (s.staged) return stagedOutcome(policy, s.compiled, prefix, opts.fixSysctls ?? false);
    if (s.tried) staging = s.reason;
    compiledHere = s.compiled;
  }
  const compiled = opts.compiled ?? compiledHere ?? compilePolicy(policy, opts);
  const applied = await applyModel(policy, compiled.model, () => compiled.text, {
    prefix,
    fixSysctls: opts.fixSysctls ?? false,
    previous: opts.previous ?? null,
    ...(opts.recreateAfterDeletes !== undefined ? { recreateAfterDeletes: opts.recreateAfterDeletes } : {}),
  });
  // a staged first apply that did not finish says why (the whole table went in instead)
  const result = staging !== undefined && !applied.fallback ? { ...applied, fallback: staging } : applied;
  return withText(
    { ...result, listeners: compiled.listeners, ir: compiled.ir, model: compiled.model },
    () => compiled.text,
  );
}

/** Whether a first apply of `policy` is worth staging: its zones hold at least `from` networks. */
function stagingWanted(policy: Policy, from: number = DEFAULTS.kernelStagedZoneNetworks): boolean {
  let networks = 0;
  for (const z of policy.zones.values()) networks += z.addresses.length;
  return networks >= from;
}

/** A finished staged apply: the sysctls settled after it, as applyModel does after its transaction. */
async function stagedOutcome(
  policy: Policy,
  c: Compiled,
  prefix: string[],
  fixSysctls: boolean,
): Promise<Compiled & ApplyOutcome> {
  const settled = await settleSysctls(policy, prefix, fixSysctls);
  return withText(
    {
      ...settled,
      mode: 'full' as const,
      staged: true as const,
      listeners: c.listeners,
      ir: c.ir,
      model: c.model,
    },
    () => c.text,
  );
}

/** Takes back what tzorp installed: the table becomes the closed one (or is removed with `open`), its
 * ip rules and routes go, the sysctls it changed get their earlier values. The next apply replaces the
 * whole table (the installed model is forgotten). */
export async function flushTzorp(opts: { prefix?: string[] } & FlushOptions = {}): Promise<FlushResult> {
  const r = await flush(opts.prefix ?? [], { open: opts.open ?? false });
  await saveInstalled(null, opts.prefix ?? []).catch(() => {});
  return r;
}

export {
  armPending,
  clearPending,
  type Pending,
  readPending,
  rollbackTo,
  snapshotTable,
} from './apply/index.ts';

/** The first stage of a staged first apply for a compile that follows (the daemon's start, whose
 * compile step cannot wait): when `table inet tzorp` is absent and the zones hold at least
 * `stageZonesFrom` networks, the zone section of `policy` (compiled with `opts`) starts loading now;
 * pass the result as `stagedStart` to the applyPolicy of that compile, or to abandonStagedApply. null:
 * not staged. */
export function beginStagedApply(
  policy: Policy,
  opts: CompileOptions & { prefix?: string[]; stageZonesFrom?: number } = {},
): StagedStart | null {
  if (!stagingWanted(policy, opts.stageZonesFrom)) return null;
  const prefix = opts.prefix ?? [];
  const s = beginStaged(tableExistsSync(prefix), () => zoneStage(policy, opts), prefix);
  return 'staged' in s ? null : s;
}

export type { StagedStart };
export { abandonStaged as abandonStagedApply };
