// The code blocks of docs/*.md that the docs tests run, and the conventions that say how:
//   ```yaml            a complete policy: `tzorp check` must accept it
//   ```yaml fragment   part of a policy: only parsed as YAML
//   ```sh + first line `# test`        run with sh -e (no root), `tzorp` on PATH, in a directory where
//                                      docs-example.yaml is the last complete policy above the block
//   ```sh + first line `# test: lab`   the same, inside a running lab (root; test/netns/lab.test.ts)
// A yaml block whose top-level keys are not all policy keys (e.g. the `options:` of one proxy) is a
// fragment too, so a page can show pieces without marking each.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';

export interface DocBlock {
  file: string;
  /** 1-based line of the opening fence. */
  line: number;
  lang: string;
  /** The rest of the info string ("fragment", ...). */
  flags: string[];
  text: string;
}

export const POLICY_KEYS = new Set(['zones', 'services', 'rules', 'management', 'bypass', 'settings']);

export function docFiles(docsDir: string): string[] {
  return readdirSync(docsDir)
    .filter((f) => f.endsWith('.md'))
    .sort()
    .map((f) => join(docsDir, f));
}

/** Fenced code blocks (``` or ~~~, CommonMark §4.5) of one Markdown file. */
export function codeBlocks(file: string, text = readFileSync(file, 'utf8')): DocBlock[] {
  const out: DocBlock[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const open = /^( {0,3})(`{3,}|~{3,})\s*([^`]*)$/.exec(lines[i] as string);
    if (!open) continue;
    const fence = open[2] as string;
    const [lang = '', ...flags] = (open[3] as string).trim().split(/\s+/);
    const body: string[] = [];
    let j = i + 1;
    for (; j < lines.length; j++) {
      const l = lines[j] as string;
      if (l.trim().startsWith(fence[0]!.repeat(fence.length)) && l.trim().replace(/[`~]/g, '') === '') break;
      body.push(l);
    }
    out.push({ file, line: i + 1, lang: lang.toLowerCase(), flags, text: `${body.join('\n')}\n` });
    i = j;
  }
  return out;
}

export type BlockKind = 'policy' | 'fragment' | 'sh-test' | 'sh-lab' | 'other';

export function blockKind(b: DocBlock): BlockKind {
  if (b.lang === 'yaml' || b.lang === 'yml') {
    if (b.flags.includes('fragment')) return 'fragment';
    let doc: unknown;
    try {
      doc = parse(b.text);
    } catch {
      return 'policy'; // not even YAML: let the policy check report it
    }
    const keys = doc && typeof doc === 'object' && !Array.isArray(doc) ? Object.keys(doc) : [];
    return keys.length > 0 && keys.every((k) => POLICY_KEYS.has(k)) ? 'policy' : 'fragment';
  }
  if (b.lang === 'sh' || b.lang === 'bash' || b.lang === 'shell') {
    const first = b.text.split('\n')[0]?.trim() ?? '';
    if (/^#\s*test:\s*lab\s*$/.test(first)) return 'sh-lab';
    if (/^#\s*test\s*$/.test(first)) return 'sh-test';
  }
  return 'other';
}

/** Every block with the policy that precedes it in its file (for sh blocks: docs-example.yaml). */
export function docBlocks(
  docsDir: string,
): { block: DocBlock; kind: BlockKind; policyBefore: string | null }[] {
  const out: { block: DocBlock; kind: BlockKind; policyBefore: string | null }[] = [];
  for (const f of docFiles(docsDir)) {
    let last: string | null = null;
    for (const b of codeBlocks(f)) {
      const kind = blockKind(b);
      out.push({ block: b, kind, policyBefore: last });
      if (kind === 'policy') last = b.text;
    }
  }
  return out;
}
