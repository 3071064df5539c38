// A first apply into a namespace that has no `table inet tzorp`, in three transactions: the zone
// section (the longest-match zone maps: most of a large policy's elements) is loaded by one nft while
// the rest of the policy compiles; then the other sets and maps that name no chain (the tiers' maps:
// most of the rest) by a second nft beside the first; then the rest of the table in one transaction.
// The table hooks no packet until that last transaction: it has no base chain before, so every packet is
// decided either as before the apply (no table) or by the whole new table. docs/kernel.md, "Staged
// first apply".
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Policy } from '../../policy/model.ts';
import {
  isGenerationSet,
  renderObjects,
  renderTable,
  TABLE,
  type TableModel,
  type TableObject,
} from '../compile/render.ts';
import { type RunResult, run } from './exec.ts';
import { ensureRouting, type RoutingUndo, undoRouting } from './routing.ts';

/** Why the staged apply was not taken or did not finish (the caller then replaces the table whole,
 * which also gives nft's own message for what failed). */
export interface StagedMiss<C> {
  staged: false;
  /** false: not taken (the table exists); true: begun, and given up at `reason`. */
  tried: boolean;
  reason: string;
  /** The compile, when it ran. */
  compiled?: C;
}

export interface StagedDone<C> {
  staged: true;
  compiled: C;
  routing: RoutingUndo;
}

const LIST_TABLES = ['list', 'tables', 'inet'];

/** From `nft list tables inet`: whether `table inet tzorp` exists (null: nft could not tell). */
function hasTable(code: number | null, stdout: string): boolean | null {
  if (code !== 0) return null;
  return stdout.split('\n').some((l) => l.trim() === `table inet ${TABLE}`);
}

async function tableExists(prefix: string[]): Promise<boolean | null> {
  const r = await run('nft', LIST_TABLES, undefined, prefix);
  return hasTable(r.code, r.stdout);
}

/** A set or map loaded beside the zone section: part 2 (part 1 is what names chains), no verdicts (a
 * verdict names a chain, which the last transaction makes), not the generation set (its presence
 * says the table is whole). */
function early(o: TableObject): boolean {
  return (
    o.kind !== 'chain' &&
    o.part === 2 &&
    o.elements.length > 0 &&
    !isGenerationSet(o) &&
    !o.decl.some((d) => d.includes('verdict'))
  );
}

/** A staged first apply under way: the zone section is loading (beginStaged), the rest comes with
 * finishStaged, or abandonStaged takes it back. */
export interface StagedStart {
  zones: readonly TableObject[];
  loading: Promise<RunResult>;
  prefix: string[];
}

/**
 * The first stage: when `table inet tzorp` is absent, `zoneStage()` (objects of the model the compile
 * that follows makes, which must hold them as the very same objects) goes to one nft from a file,
 * which loads it into a new table while this thread compiles the rest. `exists` is what the caller
 * found about the table (tableExists, or tableExistsSync where the caller cannot wait).
 */
export function beginStaged(
  exists: boolean | null,
  zoneStage: () => readonly TableObject[],
  prefix: string[],
): StagedStart | StagedMiss<never> {
  if (exists !== false) {
    return {
      staged: false,
      tried: false,
      reason: exists ? 'the table exists' : 'nft cannot list the tables',
    };
  }
  const zones = zoneStage();
  // nft reads the zone section from a file: the compile that follows keeps this thread busy, and a
  // pipe of 64 KiB would stall nft until it is done
  let dir: string | null = null;
  let file: string;
  try {
    dir = mkdtempSync(join(tmpdir(), 'tzorp-zones-'));
    file = join(dir, 'zones.nft');
    writeFileSync(file, renderObjects(zones), { mode: 0o600 });
  } catch (e) {
    // (no writable temporary directory: one transaction does without)
    if (dir !== null) rmSync(dir, { recursive: true, force: true });
    return { staged: false, tried: false, reason: `no file for the zone section: ${(e as Error).message}` };
  }
  const written = dir; // (a const for the closure below)
  const loading = run('nft', ['-f', file], undefined, prefix).finally(() =>
    rmSync(written, { recursive: true, force: true }),
  );
  return { zones, loading, prefix };
}

/** A staged apply given up before its last transaction (the compile failed, the generation was
 * refused): the table its stages made goes again. */
export async function abandonStaged(start: StagedStart): Promise<void> {
  if ((await start.loading).code === 0)
    await run('nft', ['delete', 'table', 'inet', TABLE], undefined, start.prefix);
}

/**
 * The other stages, after the compile: the model's other sets and maps without verdicts (beside the
 * zone section, if it still loads), policy routing, then the rest of the model in one transaction.
 * `checkRest` runs before the last transaction (the user rules' check). On any failure the table the
 * stages made is deleted, the routing added is taken back, and a StagedMiss says why: the caller's
 * whole-table apply follows.
 */
export async function finishStaged<C extends { model: TableModel }>(
  policy: Policy,
  start: StagedStart,
  compiled: C,
  checkRest: (model: TableModel) => Promise<void> = async () => {},
): Promise<StagedDone<C> | StagedMiss<C>> {
  const { zones, loading, prefix } = start;
  const zoneSet = new Set(zones);
  const second = compiled.model.objects.filter((o) => !zoneSet.has(o) && early(o));
  const loadingSecond: Promise<RunResult> =
    second.length > 0
      ? run('nft', ['-f', '-'], renderObjects(second), prefix)
      : Promise.resolve({ code: 0, stdout: '', stderr: '' });
  // policy routing while the second stage loads (its `ip` runs would only delay the compile before)
  const routing = ensureRouting(
    { mark: policy.settings.tproxyMark, table: policy.settings.routingTable },
    prefix,
  ).then(
    (undo) => ({ undo }),
    (error: unknown) => ({ error }),
  );
  const [first, next, routed] = await Promise.all([loading, loadingSecond, routing]);
  const made = first.code === 0 || (second.length > 0 && next.code === 0);
  const undoAll = async (): Promise<void> => {
    if (made) await run('nft', ['delete', 'table', 'inet', TABLE], undefined, prefix);
    if ('undo' in routed) await undoRouting(routed.undo, prefix);
  };
  const miss = async (reason: string): Promise<StagedMiss<C>> => {
    await undoAll();
    return { staged: false, tried: true, reason: `staged first apply given up: ${reason}`, compiled };
  };
  if ('error' in routed) {
    // ensureRouting took its own changes back; what the stages loaded goes too
    await undoAll();
    throw routed.error;
  }
  if (first.code !== 0) return miss(`nft refused the zone section: ${firstLine(first.stderr)}`);
  if (next.code !== 0) return miss(`nft refused the tiers' maps: ${firstLine(next.stderr)}`);
  try {
    await checkRest(compiled.model);
  } catch (e) {
    await undoAll();
    throw e;
  }
  for (const o of second) zoneSet.add(o);
  const rest = await run('nft', ['-f', '-'], renderTable(compiled.model, zoneSet), prefix);
  if (rest.code !== 0) return miss(`nft refused the rest of the table: ${firstLine(rest.stderr)}`);
  return { staged: true, compiled, routing: routed.undo };
}

/**
 * The three stages with the compile between them (`tzorp apply`): the zone section loads into a new
 * `table inet tzorp` while `compile` runs, then finishStaged. Taken only when the table is absent: a
 * table that exists (a closed one after `tzorp stop`, another generation) is replaced whole by the
 * caller. A compile that throws takes the zone section back.
 */
export async function stagedApply<C extends { model: TableModel }>(
  policy: Policy,
  zoneStage: () => readonly TableObject[],
  compile: () => C,
  prefix: string[],
  checkRest: (model: TableModel) => Promise<void> = async () => {},
): Promise<StagedDone<C> | StagedMiss<C>> {
  // nft lists the tables while the zone section is made
  const listing = tableExists(prefix);
  const zones = zoneStage();
  const start = beginStaged(await listing, () => zones, prefix);
  if ('staged' in start) return start;
  let compiled: C;
  try {
    compiled = compile();
  } catch (e) {
    await abandonStaged(start);
    throw e;
  }
  return finishStaged(policy, start, compiled, checkRest);
}

/** tableExists where the caller cannot wait (the daemon's compile step is synchronous). */
export function tableExistsSync(prefix: string[]): boolean | null {
  const argv = [...prefix, 'nft', ...LIST_TABLES];
  const r = spawnSync(argv[0]!, argv.slice(1), { encoding: 'utf8' });
  return hasTable(r.status, r.stdout);
}

function firstLine(s: string): string {
  return s.trim().split('\n')[0] ?? '';
}
