// Incremental apply: the differences between the table the kernel holds (the model of the last apply)
// and the next one, as one nft transaction. Like render.ts this writes nft text; it is the renderer's
// second way of writing a model (docs/kernel.md, "Incremental apply").
//
// The transaction is atomic, so no packet ever sees a half-changed table, and it proves its own
// precondition: it first deletes the set named by the previous digest (`generation_<digest>`), which
// fails (and so changes nothing) unless the kernel holds exactly the table the differences were
// computed against.
//
// Two ways of writing element changes. Any `add element` or `delete element` makes nft 1.0.6 read the
// elements of every plain (not concatenated) interval set of the table from the kernel first (its cache
// fill: about 2 s at 100,000 zone networks), however small the change. So, as a rule, every set or map
// whose elements change is declared again with its elements inside the declaration, and the chains
// that name it are rewritten: no element command at all, and the transaction costs what it changes
// (a large zone map is split into chunks for this, render.ts zoneChunks). Elements are added and
// deleted one by one only when that is cheaper (the sets to declare again hold more than half as many
// elements as the fill would read) or impossible (a set the user rules name cannot be re-created).
// A change of shape the commands below cannot express gives a reason instead of a text; the caller
// then replaces the whole table, atomically too.
import { DEFAULTS } from '../../defaults.ts';
import {
  addElementCommands,
  declBlock,
  GENERATION_DECL,
  generationSet,
  isGenerationSet,
  TABLE,
  type TableModel,
  type TableObject,
} from './render.ts';

export type TableDiff = { text: string; changed: DiffCounts } | { text: null; reason: string };

export interface DiffCounts {
  elementsAdded: number;
  elementsRemoved: number;
  chainsReplaced: number;
  objectsAdded: number;
  objectsRemoved: number;
  /** `elements`: element commands (nft reads every interval set first); `declarations`: none, changed
   * sets and maps are declared again with their elements. */
  method: 'elements' | 'declarations';
}

/** The key of a set or map element (the part before ` : `): what `delete element` names. */
function keyOf(kind: TableObject['kind'], element: string): string {
  if (kind !== 'map') return element;
  const i = element.indexOf(' : ');
  return i < 0 ? element : element.slice(0, i);
}

/** A map keyed by a concatenation (the decision tiers). nft 1.0.6 cannot always read back such a
 * map's `typeof` from the kernel (it then parses elements by the raw key types and refuses them), and
 * it finds a concatenated interval element to delete only when every point is written as a range. A
 * changed tier is therefore declared and filled again in the same transaction: its elements are what
 * the file itself declares, exactly as in a whole-table apply. */
function concatenated(o: TableObject): boolean {
  return o.kind === 'map' && /^typeof [^:]* \. /.test(o.decl[0] ?? '');
}

const sameList = (a: readonly string[], b: readonly string[]): boolean =>
  a.length === b.length && a.every((x, i) => x === b[i]);

/** Names of the sets, maps (`@name`) and chains (`goto`/`jump name`) a text refers to. */
function referencesIn(text: string): Set<string> {
  const out = new Set<string>();
  for (const m of text.matchAll(/@([A-Za-z0-9_.]+)|\b(?:goto|jump) ([A-Za-z0-9_.]+)/g))
    out.add(m[1] ?? m[2]!);
  return out;
}

export interface DiffOptions {
  /** An interval set or map that loses more elements than this is declared and filled again instead
   * (nft 1.0.6 takes time proportional to the set's size for each interval element it deletes: 2,000
   * deletes from a 70,000-element zone map took minutes, filling it again takes about a second). */
  recreateAfterDeletes?: number;
}

function interval(o: TableObject): boolean {
  return o.kind !== 'chain' && o.decl.some((l) => /\bflags\b.*\binterval\b/.test(l));
}

function droppedCount(o: TableObject, n: TableObject): number {
  const has = new Set(n.elements);
  let d = 0;
  for (const e of o.elements) if (!has.has(e)) d++;
  return d;
}

export function diffTables(prev: TableModel, next: TableModel, opts: DiffOptions = {}): TableDiff {
  const maxDeletes = opts.recreateAfterDeletes ?? DEFAULTS.kernelRecreateAfterDeletes;
  if (prev.userRules !== next.userRules) return { text: null, reason: 'the user rules changed' };
  // nft put the marks of the defines into the user rules when it read them: new marks need them read again
  if ((prev.defines ?? []).join('\n') !== (next.defines ?? []).join('\n'))
    return { text: null, reason: 'the service marks the user rules name changed' };
  const key = (o: TableObject): [string, TableObject] => [`${o.kind} ${o.name}`, o];
  const before = new Map(prev.objects.filter((o) => !isGenerationSet(o)).map(key));
  const after = new Map(next.objects.filter((o) => !isGenerationSet(o)).map(key));
  const userRefs = referencesIn(next.userRules ?? '');

  // sets and maps whose declaration changed are deleted and created again (their elements with them);
  // chains cannot be: a changed chain declaration (hook, policy, comment) replaces the table
  const recreated = new Set<string>();
  const removed: TableObject[] = [];
  const added: TableObject[] = [];
  for (const [k, o] of before) {
    const n = after.get(k);
    if (!n) removed.push(o);
    else if (!sameList(o.decl, n.decl)) {
      if (o.kind === 'chain') return { text: null, reason: `the declaration of chain ${o.name} changed` };
      recreated.add(o.name);
    }
  }
  for (const [k, n] of after) {
    const o = before.get(k);
    if (!o) added.push(n);
    else if (concatenated(n) && !recreated.has(n.name) && !sameList(o.elements, n.elements)) {
      recreated.add(n.name);
    } else if (interval(n) && !recreated.has(n.name) && droppedCount(o, n) > maxDeletes) {
      recreated.add(n.name);
    }
  }
  for (const o of removed) {
    if (userRefs.has(o.name)) return { text: null, reason: `the user rules use ${o.name}, which goes away` };
  }
  // sets and maps that stay but whose elements change: can they all be declared again?
  const changing: TableObject[] = [];
  for (const [k, n] of after) {
    const o = before.get(k);
    if (o && n.kind !== 'chain' && !recreated.has(n.name) && !sameList(o.elements, n.elements))
      changing.push(n);
  }
  // declaring them again costs their size; element commands cost nft's read of every plain interval
  // set first, which runs at about twice the speed of declaring (bench/README.md, "Kernel")
  let intervalTotal = 0;
  for (const o of before.values()) if (interval(o) && !concatenated(o)) intervalTotal += o.elements.length;
  let redeclared = 0;
  for (const n of changing) redeclared += n.elements.length;
  const method: DiffCounts['method'] =
    changing.some((n) => userRefs.has(n.name)) || redeclared > intervalTotal / 2
      ? 'elements'
      : 'declarations';
  if (method === 'declarations') for (const n of changing) recreated.add(n.name);
  for (const name of recreated) {
    if (userRefs.has(name)) return { text: null, reason: `the user rules use ${name}, which is re-created` };
  }
  // a chain is rewritten when its rules changed or when a set, map or chain they name is re-created
  // or removed (the kernel binds a rule to the object, not to its name)
  const gone = new Set([...recreated, ...removed.map((o) => o.name)]);
  const rewritten: TableObject[] = [];
  for (const n of next.objects) {
    if (n.kind !== 'chain') continue;
    const o = before.get(`chain ${n.name}`);
    if (!o) continue;
    if (!sameList(o.rules, n.rules) || o.rules.some((r) => [...referencesIn(r)].some((x) => gone.has(x)))) {
      rewritten.push(n);
    }
  }

  const out: string[] = [];
  const counts: DiffCounts = {
    elementsAdded: 0,
    elementsRemoved: 0,
    chainsReplaced: rewritten.length,
    objectsAdded: added.length + recreated.size,
    objectsRemoved: removed.length + recreated.size,
    method,
  };
  // 0. the precondition: the kernel holds the table `prev` describes
  out.push(`delete set inet ${TABLE} ${generationSet(prev.generation)}`);
  // 1. elements that go, from sets and maps that stay (a key whose data changes goes and comes back)
  const additions: [string, string[]][] = [];
  for (const n of next.objects) {
    if (n.kind === 'chain' || isGenerationSet(n)) continue;
    const o = before.get(`${n.kind} ${n.name}`);
    if (!o || recreated.has(n.name)) {
      if (method === 'elements') additions.push([n.name, n.elements]);
      counts.elementsAdded += n.elements.length;
      continue;
    }
    const had = new Set(o.elements);
    const has = new Set(n.elements);
    const drop = o.elements.filter((e) => !has.has(e));
    const add = n.elements.filter((e) => !had.has(e));
    counts.elementsRemoved += drop.length;
    counts.elementsAdded += add.length;
    if (drop.length > 0) {
      const keys = drop.map((e) => keyOf(n.kind, e));
      out.push(...addElementCommands(n.name, keys).map((l) => l.replace(/^add element /, 'delete element ')));
    }
    if (add.length > 0) additions.push([n.name, add]);
  }
  // 2. rules of rewritten and removed chains, so nothing refers to what goes next
  for (const c of rewritten) out.push(`flush chain inet ${TABLE} ${c.name}`);
  for (const o of removed) if (o.kind === 'chain') out.push(`flush chain inet ${TABLE} ${o.name}`);
  // 3. removed and re-created sets and maps (their elements may name chains: before the chains go)
  for (const o of removed) if (o.kind !== 'chain') out.push(`delete ${o.kind} inet ${TABLE} ${o.name}`);
  for (const name of recreated) {
    const o = prev.objects.find((x) => x.name === name && x.kind !== 'chain')!;
    out.push(`delete ${o.kind} inet ${TABLE} ${name}`);
  }
  // 4. removed chains
  for (const o of removed) if (o.kind === 'chain') out.push(`delete chain inet ${TABLE} ${o.name}`);
  // 5. new and re-created declarations (chains empty: their rules may name each other), chains first:
  // the elements of a map declared with them (method `declarations`) may name them
  const declared = [
    ...added.filter((a) => a.kind === 'chain'),
    ...added.filter((a) => a.kind !== 'chain'),
    ...next.objects.filter((n) => recreated.has(n.name) && n.kind !== 'chain'),
  ];
  if (declared.length > 0) {
    out.push(`table inet ${TABLE} {`);
    const line = (l: string): void => {
      out.push(l);
    };
    for (const d of declared) {
      const elements = method === 'declarations' ? d.elements : [];
      declBlock({ ...d, rules: [], elements, inline: false }, line);
    }
    out.push('}');
  }
  // 6. rules of new and rewritten chains
  for (const c of [...added.filter((a) => a.kind === 'chain'), ...rewritten]) {
    for (const r of c.rules) out.push(`add rule inet ${TABLE} ${c.name} ${r}`);
  }
  // 7. elements that come (verdicts may name the chains created above)
  for (const [name, els] of additions) out.push(...addElementCommands(name, els));
  // 8. the new digest
  out.push(`add set inet ${TABLE} ${generationSet(next.generation)} { ${GENERATION_DECL.join('; ')}; }`);
  return { text: `${out.join('\n')}\n`, changed: counts };
}
