// Public surface of the kernel module: compile a policy into one nftables table (pure), apply it
// atomically with policy routing, and flush what tzorp installed. See docs/kernel.md.
import type { Policy } from '../policy/model.ts';
import {
  buildIR,
  type CompileOptions,
  type Listener,
  type RulesetIR,
  renderRuleset,
} from './compile/index.ts';

export type { CompileOptions, Listener, RulesetIR } from './compile/index.ts';
export { TABLE, zoneIdent, zoneSetName } from './compile/index.ts';

export interface Compiled {
  /** The complete nft input: one transaction that replaces `table inet tzorp`. */
  text: string;
  /** Where each proxy service's connections are diverted to. */
  listeners: Map<string, Listener>;
  ir: RulesetIR;
}

export function compilePolicy(policy: Policy, opts: CompileOptions = {}): Compiled {
  const { ir, listeners } = buildIR(policy, opts);
  return { text: renderRuleset(ir), listeners, ir };
}

import { type ApplyResult, applyText, type FlushResult, flush } from './apply/index.ts';

export type { ApplyResult, FlushResult, SysctlCheck } from './apply/index.ts';
export { checkSysctls, nftCheck, sysctlNeeds } from './apply/index.ts';

export interface ApplyOptions extends CompileOptions {
  /** Run nft/ip/sysctl in another namespace (e.g. ['ip','netns','exec','fw']); default: this one. */
  prefix?: string[];
  fixSysctls?: boolean;
}

/** Compiles and applies: `nft -c`, policy routing, one nft transaction, sysctl checks. */
export async function applyPolicy(policy: Policy, opts: ApplyOptions = {}): Promise<Compiled & ApplyResult> {
  const compiled = compilePolicy(policy, opts);
  const result = await applyText(policy, compiled.text, {
    prefix: opts.prefix ?? [],
    fixSysctls: opts.fixSysctls ?? false,
  });
  return { ...compiled, ...result };
}

/** Removes exactly what tzorp installed: the table, its ip rules and its routes. */
export function flushTzorp(opts: { prefix?: string[] } = {}): Promise<FlushResult> {
  return flush(opts.prefix ?? []);
}
