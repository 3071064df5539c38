// The incremental apply's differences for interval sets and maps: a few lost elements are deleted one
// by one; more than recreateAfterDeletes and the set or map is declared and filled again in the same
// transaction, with the chains that name it rewritten (nft 1.0.6 deletes interval elements slowly).
// The kernel applies both forms in test/netns/kernel/differential.test.ts.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { diffTables } from '../../../src/kernel/compile/index.ts';
import { compilePolicy } from '../../../src/kernel/index.ts';
import { makePolicy } from './fixtures.ts';

function policy(lanHosts: number) {
  const lan = Array.from({ length: 40 }, (_, i) => `198.18.${i < lanHosts ? 1 : 3}.${2 * i + 1}`);
  return makePolicy({
    zones: { lan: { addresses: lan }, dmz: { addresses: ['198.18.2.0/24'] } },
    services: { fwd: { type: 'forward' } },
    rules: [
      {
        id: 1,
        service: 'fwd',
        proto: [6],
        dstPort: [{ lo: 80, hi: 80 }],
        srcZone: ['lan'],
        dstZone: ['dmz'],
      },
    ],
  });
}

test('diff: few interval deletes are deleted; past the threshold the map is re-created with its chains', () => {
  const before = compilePolicy(policy(40)).model;
  const after = compilePolicy(policy(10)).model; // 30 lan hosts moved out of 198.18.1.0/24
  const small = diffTables(before, after, { recreateAfterDeletes: 1000 });
  assert.ok(small.text, small.text === null ? small.reason : '');
  assert.match(small.text, /^delete element inet tzorp zone_src_v4 \{/m);
  assert.doesNotMatch(small.text, /^delete map inet tzorp zone_src_v4$/m);
  assert.equal(small.changed?.objectsRemoved, 0);

  const big = diffTables(before, after, { recreateAfterDeletes: 5 });
  assert.ok(big.text, big.text === null ? big.reason : '');
  assert.match(big.text, /^delete map inet tzorp zone_src_v4$/m);
  assert.doesNotMatch(big.text, /^delete element inet tzorp zone_src_v4 /m);
  // declared again, filled with every element, and the chains that look it up are rewritten
  assert.match(big.text, /^\tmap zone_src_v4 \{$/m);
  assert.match(big.text, /^add element inet tzorp zone_src_v4 \{/m);
  assert.match(big.text, /^flush chain inet tzorp decide_v4$/m);
  assert.ok((big.changed?.objectsRemoved ?? 0) >= 1 && (big.changed?.chainsReplaced ?? 0) >= 1);
});
