// The pure half of the kernel module: Policy → Ruleset IR → nft text.
import type { Policy } from '../../policy/model.ts';
import { type CompileOptions, forgetLastBuild } from './build.ts';
import { forgetLastRender, type TableObject, zoneSection } from './render.ts';
import { flattenZones } from './zones.ts';

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

/** The zone sections of both families (render.ts zoneSection) of `policy`, made ahead of its compile:
 * the compile that follows (same policy, same options) puts these very objects into its model. */
export function zoneStage(policy: Policy, opts: CompileOptions = {}): TableObject[] {
  const ranges = flattenZones(policy).ranges;
  return [
    ...zoneSection(4, ranges[4], opts.zoneChunk).objects,
    ...zoneSection(6, ranges[6], opts.zoneChunk).objects,
  ];
}
