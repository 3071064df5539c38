// The pure half of the kernel module: Policy → Ruleset IR → nft text.
export { buildIR, type CompileOptions, type Listener, listenersOf, matchAlternatives } from './build.ts';
export type { RulesetIR } from './ir.ts';
export { zoneIdent, zoneSetName } from './names.ts';
export { renderRuleset, TABLE } from './render.ts';
