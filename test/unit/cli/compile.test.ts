// tzorp compile --user-rules: the user's rules are checked by nft in a network namespace of the
// command's own, so a file that is not nft syntax fails compile (exit 1, nft's message) instead of the
// first apply, and nothing of this namespace's ruleset is read or changed (issue 10, item 6).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';

const dir = mkdtempSync(join(tmpdir(), 'tzorp-compile-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function compile(userRules: string) {
  const f = join(dir, `u${Math.random().toString(36).slice(2)}.nft`);
  writeFileSync(f, userRules);
  const r = spawnSync(process.execPath, ['bin/tzorp', 'compile', 'examples/policy.yaml', '--user-rules', f], {
    encoding: 'utf8',
  });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

const nftHere = spawnSync('nft', ['--version']).status === 0;
const ruleset = () => spawnSync('nft', ['list', 'ruleset'], { encoding: 'utf8' }).stdout;

describe('tzorp compile --user-rules', { skip: nftHere ? false : 'nft is not installed' }, () => {
  it('a file that is not nft syntax is refused with nft message, exit 1, nothing printed', () => {
    const before = process.getuid?.() === 0 ? ruleset() : '';
    const r = compile('this is not nft\n');
    assert.equal(r.code, 1, r.err);
    assert.equal(r.out, '');
    assert.match(r.err, /TZ2001 nft -c rejected the user rules:[\s\S]*syntax error[\s\S]*this is not nft/);
    if (process.getuid?.() === 0) assert.equal(ruleset(), before, 'the check changed nothing here');
  });

  it('a rule naming a set the table does not have is refused too', () => {
    const r = compile(
      'chain mine {\n  type filter hook input priority 10; policy accept;\n  ip saddr @no_such_set drop\n}\n',
    );
    assert.equal(r.code, 1, r.err);
    assert.match(r.err, /TZ2001[\s\S]*no_such_set/);
  });

  it('valid user rules are placed verbatim inside the table, exit 0', () => {
    const r = compile(
      'chain mine {\n  type filter hook input priority 10; policy accept;\n  tcp dport 2222 counter accept\n}\n',
    );
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /# ---- user rules \(--user-rules\), verbatim ----\n\s*chain mine \{/);
  });
});
