// The pure half of the kernel module: Policy → Ruleset IR → nft text.
export {
  buildIR,
  type CompileOptions,
  forgetLastCompile,
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
