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
