// The incremental apply's differences for interval sets and maps: a few lost elements are deleted one
// by one; more than recreateAfterDeletes and the set or map is declared and filled again in the same
// transaction, with the chains that name it rewritten (nft 1.0.6 deletes interval elements slowly).
// The kernel applies both forms in test/netns/kernel/differential.test.ts.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { diffTables } from '../../../src/kernel/compile/index.ts';
import { compilePolicy } from '../../../src/kernel/index.ts';
import { makePolicy } from './fixtures.ts';

/** 40 lan hosts, `lanHosts` of them in 198.18.1.0/24; a rule lan → dmz port 80, and port `extra` too. */
function policy(lanHosts: number, extra?: number) {
  const lan = Array.from({ length: 40 }, (_, i) => `198.18.${i < lanHosts ? 1 : 3}.${2 * i + 1}`);
  const rule = (id: number, port: number) => ({
    id,
    service: 'fwd',
    proto: [6],
    dstPort: [{ lo: port, hi: port }],
    srcZone: ['lan'],
    dstZone: ['dmz'],
  });
  return makePolicy({
    zones: { lan: { addresses: lan }, dmz: { addresses: ['198.18.2.0/24'] } },
    services: { fwd: { type: 'forward' } },
    rules: extra === undefined ? [rule(1, 80)] : [rule(1, 80), rule(2, extra)],
  });
}

test('diff: few interval deletes are deleted; past the threshold the map is re-created with its chains', () => {
  const before = compilePolicy(policy(40)).model;
  const after = compilePolicy(policy(10)).model; // 30 lan hosts moved out of 198.18.1.0/24
  const small = diffTables(before, after, { recreateAfterDeletes: 1000 });
  assert.ok(small.text, small.text === null ? small.reason : '');
  assert.match(small.text, /^delete element inet tzorp zones_v4 \{/m);
  assert.doesNotMatch(small.text, /^delete map inet tzorp zones_v4$/m);
  assert.equal(small.changed?.objectsRemoved, 0);

  const big = diffTables(before, after, { recreateAfterDeletes: 5 });
  assert.ok(big.text, big.text === null ? big.reason : '');
  assert.match(big.text, /^delete map inet tzorp zones_v4$/m);
  assert.doesNotMatch(big.text, /^delete element inet tzorp zones_v4 /m);
  // declared again, filled with every element, and the chains that look it up are rewritten
  assert.match(big.text, /^\tmap zones_v4 \{$/m);
  // (inside its declaration: every changed set is re-created here, so no element command is needed)
  assert.equal(big.changed?.method, 'declarations');
  assert.match(big.text, /^\tmap zones_v4 \{\n(\t\t[^\n]*\n)*\t\telements = \{$/m);
  assert.match(big.text, /^flush chain inet tzorp decide_v4$/m);
  assert.ok((big.changed?.objectsRemoved ?? 0) >= 1 && (big.changed?.chainsReplaced ?? 0) >= 1);
});

// Any element command makes nft 1.0.6 read every interval set of the table from the kernel first, so
// a change that leaves the zones alone is written without one: the changed maps are declared again.
test('diff: a rule change alone is written without element commands; a zone change with them', () => {
  const base = compilePolicy(policy(40)).model;
  const withRule = (port: number) => compilePolicy(policy(40, port)).model;
  const ruleAdded = diffTables(base, withRule(443));
  assert.ok(ruleAdded.text, ruleAdded.text === null ? ruleAdded.reason : '');
  assert.equal(ruleAdded.changed.method, 'declarations');
  assert.doesNotMatch(ruleAdded.text, /^(add|delete) element /m);
  // the precondition and the new digest are sets named by the digests
  assert.match(
    ruleAdded.text,
    new RegExp(`^delete set inet tzorp generation_${base.generation.slice(2)}$`, 'm'),
  );
  assert.match(ruleAdded.text, /^add set inet tzorp generation_[0-9a-f]{8} \{/m);
  // a changed map comes back with its elements inside its declaration, and its chains are rewritten
  assert.match(ruleAdded.text, /^\t\telements = \{$/m);
  assert.ok(ruleAdded.changed.chainsReplaced >= 1);

  const portChanged = diffTables(withRule(443), withRule(8443));
  assert.ok(portChanged.text);
  assert.equal(portChanged.changed?.method, 'declarations');

  const zoneChanged = diffTables(base, compilePolicy(policy(39)).model, { recreateAfterDeletes: 1000 });
  assert.ok(zoneChanged.text);
  assert.equal(zoneChanged.changed?.method, 'elements');
  assert.match(zoneChanged.text, /^delete element inet tzorp zones_v4 \{/m);

  const nothing = diffTables(base, base);
  assert.ok(nothing.text);
  assert.doesNotMatch(nothing.text, /element/);
});

test('zone maps made again for the same zones are the ones made before (the reload cache): same text either way', () => {
  const opts = { zoneChunk: { above: 4, average: 3 } }; // chunked, so chains and jump maps are cached too
  // policy(40, 443) after policy(40): the same zones, so its zone maps come from the cache
  compilePolicy(policy(40), opts);
  const cachedA = compilePolicy(policy(40, 443), opts);
  const cachedB = compilePolicy(policy(40, 443), {});
  // after other zones in between, the same policy is flattened and rendered afresh
  compilePolicy(policy(10), opts);
  const freshA = compilePolicy(policy(40, 443), opts);
  compilePolicy(policy(10), {});
  const freshB = compilePolicy(policy(40, 443), {});
  assert.equal(cachedA.text, freshA.text);
  assert.equal(cachedB.text, freshB.text);
  assert.notEqual(cachedA.text, cachedB.text, 'the chunking is part of what is cached');
  assert.match(cachedA.text, /map zones_v4_c/);
  assert.notEqual(compilePolicy(policy(10), opts).text, cachedA.text);
});

test('published zone sets never take the name of a table object: zones named src, dst, v4 and zones', () => {
  // zone_<ident>_v4 is what a zone's published set is called; the longest-match maps are zones_v4 and,
  // when chunked, zones_src_v4 / zones_dst_v4 (a zone "src" used to publish zone_src_v4, the old map's name)
  const names = ['src', 'dst', 'v4', 'zones', 'src_v4'];
  const p = makePolicy({
    zones: Object.fromEntries(
      names.map((n, i) => [n, { addresses: [`198.18.${i}.0/24`, `2001:db8:${i}::/48`] }]),
    ),
    services: { fwd: { type: 'forward' } },
    rules: [{ id: 1, service: 'fwd', proto: [6], srcZone: ['src'], dstZone: ['dst'] }],
    publishZoneSets: 'all',
  });
  for (const opts of [{}, { zoneChunk: { above: 2, average: 2 } }]) {
    const { model } = compilePolicy(p, opts);
    const seen = new Set<string>();
    for (const o of model.objects) {
      const key = `${o.kind === 'chain' ? 'chain' : 'set'} ${o.name}`;
      assert.ok(!seen.has(key), `two objects named ${o.name}`);
      seen.add(key);
    }
    assert.ok(seen.has('set zone_src_v4') && seen.has('set zone_zones_v4'), [...seen].join(' '));
  }
});
