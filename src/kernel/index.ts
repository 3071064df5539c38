// Public surface of the kernel module: compile a policy into one nftables table (pure), apply it
// atomically with policy routing, and flush what tzorp installed. See docs/kernel.md.
import type { Policy } from '../policy/model.ts';
import {
  buildIR,
  type CompileOptions,
  type Listener,
  type RulesetIR,
  renderModel,
  renderTable,
  type TableModel,
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

import { type ApplyOutcome, applyModel, type FlushOptions, type FlushResult, flush } from './apply/index.ts';

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
}

/** Compiles and applies: policy routing, one nft transaction (the differences to `previous`, or the
 * whole table), sysctl checks. */
export async function applyPolicy(policy: Policy, opts: ApplyOptions = {}): Promise<Compiled & ApplyOutcome> {
  const compiled = opts.compiled ?? compilePolicy(policy, opts);
  const result = await applyModel(policy, compiled.model, () => compiled.text, {
    prefix: opts.prefix ?? [],
    fixSysctls: opts.fixSysctls ?? false,
    previous: opts.previous ?? null,
    ...(opts.recreateAfterDeletes !== undefined ? { recreateAfterDeletes: opts.recreateAfterDeletes } : {}),
  });
  return withText(
    { ...result, listeners: compiled.listeners, ir: compiled.ir, model: compiled.model },
    () => compiled.text,
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
