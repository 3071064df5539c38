// Policy routing in a namespace of its own: ensureRouting adds what is missing (all at once), removes
// what an earlier tproxy mark or routing table left, and undoRouting puts everything back.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { test } from 'node:test';
import { ensureRouting, removeRouting, undoRouting } from '../../../src/kernel/apply/routing.ts';
import { netnsSkipReason, testNetns } from '../../harness/netns.ts';

const skip = netnsSkipReason();
const { ns, prefix } = testNetns('tzroute', skip);

function state(): string {
  const out: string[] = [];
  for (const f of ['-4', '-6']) {
    out.push(execFileSync('ip', ['-n', ns, f, 'rule', 'show'], { encoding: 'utf8' }).trim());
    out.push(
      execFileSync('ip', ['-n', ns, f, 'route', 'show', 'table', 'all', 'type', 'local', 'dev', 'lo'], {
        encoding: 'utf8',
      }).trim(),
    );
  }
  return out.join('\n');
}

test('routing: added for a mark and table, replaced for others, undone exactly, removed by tag', {
  skip,
}, async () => {
  const empty = state();
  const first = await ensureRouting({ mark: 0x80000000, table: 100 }, prefix);
  assert.equal(first.added.length, 6, 'two rules and a route per family');
  const one = state();
  for (const f of ['-4', '-6']) {
    const rules = execFileSync('ip', ['-n', ns, f, 'rule', 'show'], { encoding: 'utf8' });
    assert.match(rules, /fwmark 0x80000000\/0x80000000 lookup 100/);
    assert.match(rules, /fwmark 0x80000000\/0x80000000 iif lo lookup main/);
  }
  // the same again: nothing to do
  const again = await ensureRouting({ mark: 0x80000000, table: 100 }, prefix);
  assert.deepEqual(again, { added: [], removed: [] });
  // another mark and table: the new ones in, the old ones out
  const second = await ensureRouting({ mark: 0x40000000, table: 101 }, prefix);
  assert.equal(second.added.length, 6);
  assert.equal(second.removed.length, 6);
  const two = state();
  assert.doesNotMatch(two, /0x80000000|table 100\b/);
  assert.match(two, /fwmark 0x40000000\/0x40000000 lookup 101/);
  // undone: exactly the first setting again
  await undoRouting(second, prefix);
  assert.equal(state(), one);
  assert.equal(await removeRouting(prefix), 6);
  assert.equal(state(), empty);
});
