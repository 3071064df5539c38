// shedMemory (src/daemon/memory.ts) against this process's own heap: garbage that V8 keeps pages for
// until memory runs short is given back, and the numbers say so.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { shedFields, shedMemory } from '../../../src/daemon/memory.ts';
import { nativeAvailable } from '../../../src/native/index.ts';

const noAddon = nativeAvailable() ? false : 'native addon not built (npm run build)';

test('shedMemory gives the pages of dead objects back: the heap shrinks by most of them', {
  skip: noAddon,
}, () => {
  // ~48 MB of objects that live long enough to reach the old generation, then die together (the heap
  // a policy load leaves behind); no collection runs between their death and the shed
  let keep: number[][] = [];
  for (let i = 0; i < 6000; i++) keep.push(new Array(1000).fill(i));
  const grown = process.memoryUsage().heapTotal;
  assert.ok(grown > 40 * 2 ** 20, `the heap grew (${grown} bytes)`);
  keep = [];
  const s = shedMemory();
  assert.ok(s, 'shed');
  assert.ok(s.heapBefore >= grown - 2 ** 20, `${s.heapBefore} before, ${grown} grown`);
  assert.ok(s.heapAfter < s.heapBefore - 32 * 2 ** 20, `heap ${s.heapBefore} -> ${s.heapAfter}`);
  assert.ok(s.rssAfter < s.rssBefore, `rss ${s.rssBefore} -> ${s.rssAfter}`);
  assert.ok(s.ms >= 0);
  const f = shedFields(s);
  assert.deepEqual(Object.keys(f), [
    'heap_before_kib',
    'heap_after_kib',
    'rss_before_kib',
    'rss_after_kib',
    'ms',
  ]);
  assert.equal(f.heap_after_kib, Math.round(s.heapAfter / 1024));
  assert.equal(keep.length, 0);
});
