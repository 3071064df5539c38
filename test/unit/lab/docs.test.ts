// Every example in docs/*.md is run or checked (conventions in docs-blocks.ts and docs/index.md):
// complete policies through the policy loader, `# test` shell blocks through sh with `tzorp` on PATH.
// Also: docs/index.md lists every page, and every relative link between pages resolves.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join, relative } from 'node:path';
import { describe, it } from 'node:test';
import { parse } from 'yaml';
import { REPO_ROOT } from '../../harness/netns.ts';
import { docBlocks, docFiles } from './docs-blocks.ts';

const DOCS = join(REPO_ROOT, 'docs');
const blocks = docBlocks(DOCS);
const where = (b: { file: string; line: number }) => `${relative(REPO_ROOT, b.file)}:${b.line}`;

type Loader = (text: string, file: string) => { errors: { message: string; code?: string }[] };
const policyModule = (await import('../../../src/policy/index.ts')) as { loadPolicyText?: Loader };
const loadPolicyText = policyModule.loadPolicyText;

/** The `tzorp` subcommands a shell block uses that this tree does not have yet. */
function missingCommands(script: string): string[] {
  const cmds = [...script.matchAll(/(?:^|[\s;&|(])tzorp\s+([a-z][a-z-]*)/gm)].map((m) => m[1] as string);
  return [...new Set(cmds)].filter((c) => !existsSync(join(REPO_ROOT, 'src/cli/commands', `${c}.ts`)));
}

/** GitHub's heading anchors: lower case, punctuation other than '-' and '_' removed, spaces to '-'. */
function anchors(md: string): Set<string> {
  const out = new Set<string>();
  for (const m of md.matchAll(/^#{1,6}\s+(.+)$/gm)) {
    out.add(
      (m[1] as string)
        .trim()
        .toLowerCase()
        .replace(/[^\p{L}\p{N}\s_-]/gu, '')
        .replace(/\s/g, '-'),
    );
  }
  return out;
}

describe('docs examples', () => {
  it('has examples to run', () => {
    assert.ok(blocks.some((b) => b.kind === 'policy'));
    assert.ok(blocks.some((b) => b.kind === 'sh-test' || b.kind === 'sh-lab'));
  });

  for (const { block } of blocks.filter((b) => b.block.lang === 'yaml' || b.block.lang === 'yml')) {
    it(`${where(block)} is YAML`, () => {
      assert.doesNotThrow(() => parse(block.text), where(block));
    });
  }

  for (const { block } of blocks.filter((b) => b.kind === 'policy')) {
    it(`${where(block)} is a valid policy`, {
      skip: loadPolicyText ? false : 'the policy loader is not in this tree yet',
    }, () => {
      const r = (loadPolicyText as Loader)(block.text, where(block));
      assert.deepEqual(
        r.errors.map((e) => `${e.code ?? ''} ${e.message}`),
        [],
        `${where(block)}: the policy has errors`,
      );
    });
  }

  for (const { block, policyBefore } of blocks.filter((b) => b.kind === 'sh-test')) {
    const missing = missingCommands(block.text);
    it(`${where(block)} runs`, {
      skip: missing.length ? `not in this tree yet: ${missing.map((c) => `tzorp ${c}`).join(', ')}` : false,
    }, () => {
      const dir = mkdtempSync(join(tmpdir(), 'tzorp-docs-'));
      try {
        if (policyBefore) writeFileSync(join(dir, 'docs-example.yaml'), policyBefore);
        const r = spawnSync('sh', ['-e', '-c', block.text], {
          cwd: dir,
          encoding: 'utf8',
          timeout: 120_000,
          env: { ...process.env, PATH: `${join(REPO_ROOT, 'bin')}:${process.env.PATH}` },
        });
        assert.equal(r.status, 0, `${where(block)} exited ${r.status}:\n${r.stdout}\n${r.stderr}`);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
  }
});

describe('docs pages', () => {
  const index = readFileSync(join(DOCS, 'index.md'), 'utf8');

  it('index.md lists every page', () => {
    for (const f of docFiles(DOCS).map((p) => basename(p))) {
      if (f === 'index.md' || f === 'README.md') continue;
      assert.ok(index.includes(`](${f}`), `docs/index.md does not link ${f}`);
    }
  });

  it('every relative link between pages resolves, anchors included', () => {
    for (const file of docFiles(DOCS)) {
      const md = readFileSync(file, 'utf8').replace(/```[\s\S]*?```/g, '');
      for (const m of md.matchAll(/\]\(([^)\s]+)\)/g)) {
        const target = m[1] as string;
        if (/^[a-z]+:/.test(target)) continue; // http:, https:, mailto:
        const [path, anchor] = target.split('#') as [string, string | undefined];
        const abs = path ? join(dirname(file), path) : file;
        assert.ok(existsSync(abs), `${relative(REPO_ROOT, file)} links to missing ${target}`);
        if (anchor && abs.endsWith('.md')) {
          assert.ok(
            anchors(readFileSync(abs, 'utf8')).has(anchor),
            `${relative(REPO_ROOT, file)} links to missing anchor ${target}`,
          );
        }
      }
    }
  });
});
