// The fast YAML reader against the full one (the yaml package): on every text it either gives up (null)
// or gives exactly the tree the full reader gives, positions included. Examples and docs policies must
// take the fast path; generated documents in the subset and around it, and the fuzz corpus, must agree.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import fc from 'fast-check';
import { readYamlFast } from '../../../src/policy/yaml-fast.ts';
import { readYamlFull } from '../../../src/policy/yaml-reader.ts';

const ROOT = join(import.meta.dirname, '../../..');

function agree(text: string): 'fast' | 'full' {
  const fast = readYamlFast(text);
  if (fast === null) return 'full';
  const full = readYamlFull(text);
  assert.ok(full.ok, `the fast reader read a text the full reader refuses: ${JSON.stringify(text)}`);
  assert.deepEqual(fast, full.root, `trees differ for ${JSON.stringify(text)}`);
  return 'fast';
}

test('yaml-fast: the example policies and the policies in the docs take the fast path and agree', () => {
  const files = readdirSync(join(ROOT, 'examples'))
    .filter((f) => f.endsWith('.yaml'))
    .map((f) => join(ROOT, 'examples', f));
  assert.ok(files.length >= 2);
  for (const f of files) assert.equal(agree(readFileSync(f, 'utf8')), 'fast', f);
  let blocks = 0;
  for (const f of readdirSync(join(ROOT, 'docs')).filter((x) => x.endsWith('.md'))) {
    const md = readFileSync(join(ROOT, 'docs', f), 'utf8');
    for (const m of md.matchAll(/```yaml[^\n]*\n([\s\S]*?)```/g)) {
      agree(m[1]!);
      blocks++;
    }
  }
  assert.ok(blocks > 10);
});

test('yaml-fast: hand-picked texts', () => {
  const cases: [string, 'fast' | 'full'][] = [
    ['', 'fast'],
    ['# only a comment\n', 'fast'],
    ['a:\nb: \nc: x\n', 'fast'],
    ['a: {x: 1, y: }\nb: []\nc: [ ]\n', 'fast'],
    ['- a: 1\n  b:\n- \n- x #c\n', 'fast'],
    ['a:\n  - 1\n  -\n', 'fast'],
    ['a:\n- 1\n- 2\nb: 3', 'fast'],
    ["a: 'it''s'\nb: \"q\"\nc: ''\n", 'fast'],
    ['zones:\n  lan: { addresses: [198.18.1.0/24, "2001:db8:1::/64", 2001:db8:2::/64] }\n', 'fast'],
    ['a: b: c\n', 'full'],
    ['a: &x 1\nb: *x\n', 'full'],
    ['a: |\n  text\n', 'full'],
    ['a: "esc\\n"\n', 'full'],
    ['a: plain\n  continued\n', 'full'],
    ['a:\n\tb: 1\n', 'full'],
    ['---\na: 1\n', 'full'],
    ['a: [1,\n  2]\n', 'full'],
    ['a: {x: 1,}\n', 'full'],
    ['a: !!str 1\n', 'full'],
    ['? a\n: b\n', 'full'],
    ['a:\n    b: 1\n  c: 2\n', 'full'],
    ['- - x\n', 'full'],
    ['a: 1\r\n', 'full'],
    ['a: [::/0, "::/0"]\nb: ::1\n', 'fast'],
  ];
  for (const [t, want] of cases) assert.equal(agree(t), want, JSON.stringify(t));
});

test('yaml-fast: generated documents agree with the full reader (or give up)', () => {
  const word = fc.stringMatching(/^[a-z0-9][a-z0-9_./:-]{0,8}$/);
  const odd = fc.constantFrom(
    '~',
    'null',
    'NULL',
    '-1',
    'a b',
    'x#y',
    "it's",
    'a:b',
    '::1',
    '-',
    ':',
    '#',
    '"',
    "'",
    '',
  );
  const scalarText = fc.oneof(
    word,
    odd,
    word.map((w) => `'${w.replace(/'/g, "''")}'`),
    odd.map((w) => `'${w.replace(/'/g, "''")}'`),
    word.map((w) => `"${w}"`),
  );
  const flowOf = (inner: fc.Arbitrary<string>): fc.Arbitrary<string> =>
    fc.oneof(
      scalarText,
      fc.array(inner, { maxLength: 3 }).map((xs) => `[${xs.join(', ')}]`),
      fc
        .array(fc.tuple(word, fc.option(inner, { nil: undefined })), { maxLength: 3 })
        .map((ps) => `{${ps.map(([k, v]) => (v === undefined ? `${k}: ` : `${k}: ${v}`)).join(', ')}}`),
    );
  const flow = flowOf(flowOf(scalarText));
  type Block =
    | { kind: 'map'; entries: [string, Block | string | null][] }
    | { kind: 'seq'; items: (Block | string | null)[] };
  const blockOf = (inner: fc.Arbitrary<Block | string | null>): fc.Arbitrary<Block> =>
    fc.oneof(
      fc.record({
        kind: fc.constant('map' as const),
        entries: fc.array(fc.tuple(word, inner), { minLength: 1, maxLength: 4 }),
      }),
      fc.record({
        kind: fc.constant('seq' as const),
        items: fc.array(inner, { minLength: 1, maxLength: 4 }),
      }),
    );
  const leaf = fc.oneof(flow, fc.constant(null));
  const b1 = blockOf(leaf);
  const b2 = blockOf(fc.oneof(b1, leaf));
  const block = blockOf(fc.oneof(b2, leaf));
  const render = (b: Block, ind: number, comments: boolean, sameLineSeq: boolean): string => {
    const pad = ' '.repeat(ind);
    let out = '';
    const value = (v: Block | string | null, childInd: number): string => {
      if (v === null) return '\n';
      if (typeof v === 'string') return ` ${v}${comments ? ' # c' : ''}\n`;
      const useSame = v.kind === 'seq' && sameLineSeq;
      return `\n${render(v, useSame ? childInd - 2 : childInd, comments, sameLineSeq)}`;
    };
    if (b.kind === 'map') for (const [k, v] of b.entries) out += `${pad}${k}:${value(v, ind + 2)}`;
    else
      for (const it of b.items) {
        if (it !== null && typeof it !== 'string' && it.kind === 'map') {
          // compact: "- k: v" then the other keys under it
          const inner = render(it, ind + 2, comments, sameLineSeq);
          out += `${pad}- ${inner.slice(ind + 2)}`;
        } else out += `${pad}-${value(it, ind + 2)}`;
      }
    if (comments) out = `${pad}# note\n${out}\n`;
    return out;
  };
  let fast = 0;
  fc.assert(
    fc.property(block, fc.boolean(), fc.boolean(), (b, comments, same) => {
      if (agree(render(b, 0, comments, same)) === 'fast') fast++;
    }),
    { numRuns: Number(process.env.YAML_FAST_RUNS ?? 3000) },
  );
  assert.ok(fast > 1000, `most generated documents take the fast path (${fast})`);
});

test('yaml-fast: the fuzz corpus of the policy loader agrees with the full reader', () => {
  const dir = join(ROOT, 'test/fuzz/corpus/policy-yaml');
  let n = 0;
  for (const f of readdirSync(dir)) {
    const text = readFileSync(join(dir, f)).toString('utf8');
    agree(text);
    // and every prefix of it (truncated documents are where readers disagree)
    for (let i = 0; i < text.length; i += Math.max(1, Math.floor(text.length / 50))) agree(text.slice(0, i));
    n++;
  }
  assert.ok(n > 50);
});
