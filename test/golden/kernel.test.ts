// Golden files: the compiled ruleset of every example policy (test/golden/<example>.nft). Run with
// UPDATE_GOLDEN=1 to rewrite them after an intended change, then review the diff. With root and nft
// present, every golden file is also checked by `nft -c` in a fresh network namespace.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { test } from 'node:test';
import { compilePolicy } from '../../src/kernel/index.ts';
import { loadPolicyFile } from '../../src/policy/index.ts';
import { netnsSkipReason, REPO_ROOT } from '../harness/netns.ts';

const examples = readdirSync(join(REPO_ROOT, 'examples'))
  .filter((f) => /\.(ya?ml|json)$/.test(f))
  .sort();
const update = process.env.UPDATE_GOLDEN === '1';

for (const f of examples) {
  const name = basename(f).replace(/\.(ya?ml|json)$/, '');
  const golden = join(REPO_ROOT, 'test/golden', `${name}.nft`);
  test(`golden: examples/${f} compiles to test/golden/${name}.nft`, async () => {
    const r = await loadPolicyFile(join(REPO_ROOT, 'examples', f));
    assert.deepEqual(
      r.errors.map((e) => e.format()),
      [],
    );
    // the header names the policy file: make it independent of where the repository is checked out
    const text = compilePolicy(r.policy!).text.replace(REPO_ROOT, '');
    if (update) writeFileSync(golden, text);
    assert.equal(
      text,
      readFileSync(golden, 'utf8'),
      `compiled ruleset differs; UPDATE_GOLDEN=1 rewrites ${golden}`,
    );
    assert.equal(compilePolicy(r.policy!).text.replace(REPO_ROOT, ''), text, 'deterministic');
  });
  test(`golden: test/golden/${name}.nft passes nft -c`, { skip: netnsSkipReason() }, () => {
    const ns = `tzg${process.pid}${name.replace(/[^a-z0-9]/gi, '').slice(0, 6)}`;
    execFileSync('ip', ['netns', 'add', ns]);
    try {
      execFileSync('ip', ['netns', 'exec', ns, 'nft', '-c', '-f', golden], { stdio: 'pipe' });
    } finally {
      execFileSync('ip', ['netns', 'del', ns]);
    }
  });
}
