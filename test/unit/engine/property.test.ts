// Property tests: the engine against the brute-force model (model.ts) on random policies and
// connections, and the zone trie and its flattening against brute-force longest-prefix match.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { Engine, flattenZones, unpackScore, ZoneTrie } from '../../../src/engine/index.ts';
import { anyAddr, scenario } from './arbitraries.ts';
import { makePolicy } from './fixtures.ts';
import { modelAddr, modelContext, modelDecide, modelScore, modelZoneOf } from './model.ts';

const RUNS = Number(process.env.TZORP_PROPERTY_RUNS ?? 1000);

test('zone trie lookup equals brute-force longest-prefix match', () => {
  fc.assert(
    fc.property(scenario, fc.array(anyAddr, { minLength: 1, maxLength: 30 }), ({ spec }, addrs) => {
      const policy = makePolicy(spec);
      const trie = ZoneTrie.fromPolicy(policy);
      for (const a of addrs) {
        assert.equal(trie.lookup(a)?.name ?? null, modelZoneOf(policy, modelAddr(a))?.name ?? null, a);
      }
    }),
    { numRuns: RUNS },
  );
});

test('flattened intervals are disjoint, sorted, and carry each address’s LPM zone', () => {
  fc.assert(
    fc.property(scenario, fc.array(anyAddr, { minLength: 1, maxLength: 30 }), ({ spec }, addrs) => {
      const policy = makePolicy(spec);
      const flat = flattenZones(policy);
      for (const list of [flat.v4, flat.v6]) {
        for (let i = 0; i < list.length; i++) {
          assert.ok(list[i]!.lo <= list[i]!.hi);
          if (i > 0) assert.ok(list[i - 1]!.hi < list[i]!.lo, 'sorted and disjoint');
          if (i > 0 && list[i - 1]!.hi + 1n === list[i]!.lo) {
            assert.notEqual(list[i - 1]!.zone, list[i]!.zone, 'adjacent ranges of one zone are merged');
          }
        }
      }
      for (const a of addrs) {
        const m = modelAddr(a);
        const list = m.family === 4 ? flat.v4 : flat.v6;
        const hit = list.find((r) => r.lo <= m.value && m.value <= r.hi);
        assert.equal(hit?.zone ?? null, modelZoneOf(policy, m)?.name ?? null, a);
      }
    }),
    { numRuns: RUNS },
  );
});

test('decide equals the brute-force best match (zones, rule, service)', () => {
  fc.assert(
    fc.property(scenario, ({ spec, conns }) => {
      const policy = makePolicy(spec);
      const engine = new Engine(policy);
      for (const c of conns) {
        const got = engine.decide(c);
        const want = modelDecide(policy, c);
        const ctx = JSON.stringify(c);
        assert.equal(got.clientZone, want.clientZone, `client zone ${ctx}`);
        assert.equal(got.serverZone, want.serverZone, `server zone ${ctx}`);
        assert.equal(got.rule?.id ?? null, want.ruleId, `rule ${ctx}`);
        assert.equal(got.service?.name ?? null, got.rule?.service ?? null);
      }
    }),
    { numRuns: RUNS },
  );
});

test('explain scores every rule as the model does and names the same winner', () => {
  fc.assert(
    fc.property(scenario, ({ spec, conns }) => {
      const policy = makePolicy(spec);
      const engine = new Engine(policy);
      for (const c of conns) {
        const ex = engine.explain(c);
        const x = modelContext(policy, c);
        assert.equal(ex.candidates.length, policy.rules.length);
        for (const cand of ex.candidates) {
          const r = policy.rules.find((q) => q.id === cand.rule)!;
          const want = modelScore(policy, r, x);
          assert.equal(cand.matched, want !== null, `rule ${r.id} ${JSON.stringify(c)}`);
          if (want !== null) {
            assert.deepEqual(Object.values(cand.score!), want);
            assert.equal(engine.scoreOf(r.id, c) >= 0, true);
            assert.deepEqual(unpackScore(engine.scoreOf(r.id, c)), cand.score);
          } else {
            assert.ok(cand.failed.length > 0);
          }
        }
        assert.equal(ex.rule?.id ?? null, modelDecide(policy, c).ruleId);
        const winners = ex.candidates.filter((k) => k.outcome === 'winner');
        assert.equal(winners.length, ex.rule ? 1 : 0);
        for (const k of ex.candidates.filter((q) => q.outcome === 'lost')) assert.ok(k.decidedBy !== null);
      }
    }),
    { numRuns: Math.ceil(RUNS / 4) },
  );
});
