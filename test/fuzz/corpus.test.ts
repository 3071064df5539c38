// Replays the kept fuzzing corpus (test/fuzz/corpus/TARGET/, grown by `npm run fuzz`) and every
// target's seeds: none of them may crash a reader, a core or the policy loader. A crash the fuzzer
// found becomes a file here once fixed (test/fuzz/README.md).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { readCorpus } from './engine.ts';
import { TARGETS } from './targets.ts';

for (const [name, target] of Object.entries(TARGETS)) {
  test(`fuzz corpus replay: ${name}`, () => {
    const kept = readCorpus(fileURLToPath(new URL(`./corpus/${name}`, import.meta.url)));
    const inputs = [
      ...kept.map((k) => ({ what: k.name, data: k.data })),
      ...target.seeds().map((data, i) => ({ what: `seed ${i}`, data })),
    ];
    assert.ok(inputs.length > 0);
    for (const { what, data } of inputs) {
      assert.doesNotThrow(() => target.run(data), `${name}/${what}`);
    }
  });
}
