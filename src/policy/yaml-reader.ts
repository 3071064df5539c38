// YAML -> positioned syntax tree, through the yaml package's Document API. The failsafe schema keeps
// every scalar a string (validation types them itself, see syntax.ts); map keys are not required to be
// unique here because validation reports duplicates with better messages (and the package's own check
// is quadratic in the number of keys). Aliases are expanded under two budgets so that a "billion laughs"
// document is refused instead of exhausting memory. The conversion is iterative: no recursion.
import { createRequire } from 'node:module';
import type * as Yaml from 'yaml';
import { DEFAULTS } from '../defaults.ts';
import type { PEntry, PNode } from './syntax.ts';
import { readYamlFast } from './yaml-fast.ts';

export type YamlResult = { ok: true; root: PNode } | { ok: false; errors: { at: number; message: string }[] };

const STR_TAGS = new Set(['tag:yaml.org,2002:str', '!!str']);

/** The yaml package, loaded on first use: the fast reader reads the usual policies without it, and
 * loading it costs every process about 9 MB (the workers never read YAML at all). */
let yamlModule: typeof Yaml | null = null;
function yaml(): typeof Yaml {
  yamlModule ??= createRequire(import.meta.url)('yaml') as typeof Yaml;
  return yamlModule;
}

interface Task {
  src: unknown;
  at: number;
  set: (p: PNode) => void;
}

export function readYaml(text: string): YamlResult {
  // the common shape of policies, read directly (the same tree, or null: then the full reader)
  const fast = readYamlFast(text);
  if (fast !== null) return { ok: true, root: fast };
  // The yaml package recurses once per level: refuse absurd flow nesting before it does, at the same
  // limit as JSON (the policy format needs fewer than 10 levels).
  const deep = flowNestingPast(text, DEFAULTS.maxJsonNesting);
  if (deep >= 0) return { ok: false, errors: [{ at: deep, message: 'nesting too deep' }] };
  return readYamlFull(text);
}

/** Offset of the first '[' or '{' nested deeper than `limit` outside quotes and comments, or -1. */
function flowNestingPast(text: string, limit: number): number {
  let depth = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 91 || c === 123) {
      if (++depth > limit) return i;
    } else if (c === 93 || c === 125) {
      if (depth > 0) depth--;
    } else if (c === 39 || c === 34) {
      // a quoted scalar: skip to its end ('' and \" stay inside)
      for (i++; i < text.length; i++) {
        const q = text.charCodeAt(i);
        if (q === 92 && c === 34) i++;
        else if (q === c) {
          if (c === 39 && text.charCodeAt(i + 1) === 39) i++;
          else break;
        }
      }
    } else if (c === 35 && (i === 0 || text.charCodeAt(i - 1) === 32 || text.charCodeAt(i - 1) === 10)) {
      const nl = text.indexOf('\n', i);
      if (nl < 0) break;
      i = nl;
    }
  }
  return -1;
}

/** The full reader: every YAML the yaml package reads, and its errors. */
export function readYamlFull(text: string): YamlResult {
  const { parseDocument, isAlias, isMap, isPair, isScalar, isSeq, Scalar } = yaml();
  let doc: ReturnType<typeof parseDocument>;
  try {
    doc = parseDocument(text, {
      schema: 'failsafe',
      uniqueKeys: false,
      merge: false,
      prettyErrors: false,
      strict: true,
      keepSourceTokens: false,
    });
  } catch (e) {
    // the package's composer recurses: absurd nesting ends in a RangeError, which we report
    const msg = e instanceof RangeError ? 'nesting too deep' : e instanceof Error ? e.message : String(e);
    return { ok: false, errors: [{ at: 0, message: msg }] };
  }
  if (doc.errors.length > 0) {
    // the parser may report one problem several times at one place
    const seen = new Set<string>();
    const errors: { at: number; message: string }[] = [];
    for (const e of doc.errors) {
      const first = e.message.split('\n')[0] ?? e.message;
      // The package's composer recurses and reports its own stack overflow as a parse error.
      const message = /call stack/i.test(first) ? 'nesting too deep' : first;
      const k = `${e.pos[0]} ${message}`;
      if (seen.has(k)) continue;
      seen.add(k);
      errors.push({ at: e.pos[0], message });
    }
    return { ok: false, errors };
  }
  // Every node of the source costs at least one character, so more converted nodes than characters
  // means aliases are multiplying the document.
  const maxNodes = 2 * text.length + 10_000;
  let nodes = 0;
  let aliases = 0;
  let root: PNode = { kind: 'null', at: 0 };
  const work: Task[] = [{ src: doc.contents, at: 0, set: (p) => (root = p) }];
  while (work.length > 0) {
    const t = work.pop() as Task;
    let src = t.src;
    if (++nodes > maxNodes) {
      return { ok: false, errors: [{ at: t.at, message: 'YAML aliases expand to too many nodes' }] };
    }
    if (isAlias(src)) {
      if (++aliases > DEFAULTS.maxYamlAliasCount) {
        const at = src.range?.[0] ?? t.at;
        return {
          ok: false,
          errors: [
            { at, message: `more than ${DEFAULTS.maxYamlAliasCount} YAML aliases (*name) are not accepted` },
          ],
        };
      }
      const target = src.resolve(doc);
      if (!target) {
        return {
          ok: false,
          errors: [{ at: src.range?.[0] ?? t.at, message: `unknown YAML alias *${src.source}` }],
        };
      }
      src = target;
    }
    const at = (src as Yaml.Node | null)?.range?.[0] ?? t.at;
    if (src === null || src === undefined) {
      t.set({ kind: 'null', at });
    } else if (isScalar(src)) {
      const quoted =
        (src.type !== undefined && src.type !== Scalar.PLAIN) ||
        (src.tag !== undefined && STR_TAGS.has(src.tag));
      const raw = src.value;
      const value = raw === null || raw === undefined ? '' : String(raw);
      if (
        !quoted &&
        (value === '' || value === '~' || value === 'null' || value === 'Null' || value === 'NULL')
      ) {
        t.set({ kind: 'null', at });
      } else {
        t.set({ kind: 'scalar', at, value, quoted });
      }
    } else if (isMap(src)) {
      const entries: PEntry[] = [];
      t.set({ kind: 'map', at, entries });
      for (const pair of src.items) {
        if (!isPair(pair)) continue;
        const k = pair.key;
        const keyAt = (k as Yaml.Node | null)?.range?.[0] ?? at;
        if (!isScalar(k) || k.value === null || k.value === undefined || typeof k.value === 'object') {
          return { ok: false, errors: [{ at: keyAt, message: 'mapping keys must be plain strings' }] };
        }
        const e: PEntry = { key: String(k.value), keyAt, value: { kind: 'null', at: keyAt } };
        entries.push(e);
        const valueAt = (k as Yaml.Node).range?.[1] ?? keyAt;
        work.push({ src: pair.value, at: valueAt, set: (p) => (e.value = p) });
      }
    } else if (isSeq(src)) {
      const items: PNode[] = new Array(src.items.length);
      t.set({ kind: 'seq', at, items });
      src.items.forEach((item, idx) => {
        work.push({ src: item, at, set: (p) => (items[idx] = p) });
      });
    } else {
      return { ok: false, errors: [{ at, message: 'unsupported YAML node' }] };
    }
  }
  return { ok: true, root };
}
