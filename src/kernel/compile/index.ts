// The pure half of the kernel module: Policy → Ruleset IR → nft text.
import { forgetLastBuild } from './build.ts';
import { forgetLastRender } from './render.ts';

export {
  buildIR,
  type CompileOptions,
  type Listener,
  listenersOf,
  matchAlternatives,
} from './build.ts';
export { type DiffCounts, diffTables, type TableDiff } from './diff.ts';
export type { RulesetIR } from './ir.ts';
export { zoneIdent, zoneSetName } from './names.ts';
export {
  renderModel,
  renderRuleset,
  renderSkeleton,
  renderTable,
  TABLE,
  type TableModel,
  type TableObject,
} from './render.ts';

/** Forgets what the last compile made (its variants, tiers, zone flattening and zone map chunks): the
 * next compile is made from nothing, as the first one of a process is. Tests compare the two. */
export function forgetLastCompile(): void {
  forgetLastBuild();
  forgetLastRender();
}
