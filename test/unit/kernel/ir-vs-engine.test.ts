// The compiled IR, read in software (ir-eval.ts), against Engine.decide on many random policies and
// connections: the compiler's logic without a kernel. The namespace differential test then checks the
// kernel does what the IR says.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Engine } from '../../../src/engine/index.ts';
import { compilePolicy } from '../../../src/kernel/index.ts';
import { irDecide } from './ir-eval.ts';
import { addrText, randomIn, randomPolicy, randomProbes, rng } from './random-policy.ts';

test('IR decision equals Engine.decide on random policies', () => {
  let compared = 0;
  const bad: string[] = [];
  for (let seed = 1; seed <= 80; seed++) {
    const c = randomPolicy(seed, { ifaces: ['eth0', 'eth2'] });
    const r = rng(seed);
    const local = { 4: [] as string[], 6: [] as string[] };
    for (const n of c.nets.slice(0, 4)) local[n.family].push(addrText(n.family, randomIn(r, n)));
    const probes = randomProbes(seed, c, 200, [
      { name: 'eth0', group: 1, local },
      { name: 'eth2', group: 5, local: { 4: [], 6: [] } },
    ]);
    const { ir } = compilePolicy(c.policy);
    const engine = new Engine(c.policy);
    for (const p of probes) {
      const want = engine.decide(p.conn).rule?.id ?? null;
      const got = irDecide(ir, p.conn);
      compared++;
      if (want !== got) bad.push(`seed ${seed} ${JSON.stringify(p.conn)}: ir ${got}, engine ${want}`);
    }
  }
  console.log(`IR vs engine: ${compared} connections compared, ${bad.length} mismatches`);
  assert.deepEqual(bad.slice(0, 10), []);
});
