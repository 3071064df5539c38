// Large longest-match zone maps are split into chunks (src/kernel/compile/render.ts zoneChunks) so that
// a changed network re-creates one chunk: the chunks cover every address exactly once, and their
// boundaries depend only on the ranges around them. The kernel runs chunked tables in
// test/netns/kernel/differential.test.ts.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { zoneChunks } from '../../../src/kernel/compile/render.ts';
import type { LabelledRange } from '../../../src/kernel/compile/zones.ts';

function hosts(n: number, skip: Set<number> = new Set()): LabelledRange[] {
  const out: LabelledRange[] = [];
  for (let i = 0; i < n; i++) {
    if (skip.has(i)) continue;
    const a = 0xc6120000n + BigInt(4 * i); // 198.18.0.0 + 4i
    out.push({ lo: a, hi: a + 1n, zone: 1 + (i % 7) });
  }
  return out;
}

test('zoneChunks: small maps stay whole; large ones cover the address space once, in order', () => {
  assert.equal(zoneChunks(hosts(100), 4, 4096, 1024), null);
  for (const [family, max] of [
    [4, 0xffffffffn],
    [6, (1n << 128n) - 1n],
  ] as const) {
    const ranges = hosts(20_000);
    const chunks = zoneChunks(ranges, family, 4096, 256)!;
    assert.ok(chunks.length > 20 && chunks.length < 200, `${chunks.length} chunks`);
    assert.equal(chunks[0]!.lo, 0n);
    assert.equal(chunks.at(-1)!.hi, max);
    for (let i = 1; i < chunks.length; i++) assert.equal(chunks[i]!.lo, chunks[i - 1]!.hi + 1n);
    // every range in exactly one chunk, inside its span
    assert.deepEqual(
      chunks.flatMap((c) => c.ranges),
      ranges,
    );
    for (const c of chunks) for (const r of c.ranges) assert.ok(r.lo >= c.lo && r.hi <= c.hi);
  }
});

test('zoneChunks: removing or adding one range changes the chunk that holds it and no other', () => {
  const key = (c: { lo: bigint; hi: bigint; ranges: LabelledRange[] }) =>
    `${c.lo}-${c.hi}:${c.ranges.map((r) => `${r.lo}-${r.hi}=${r.zone}`).join(',')}`;
  const before = zoneChunks(hosts(20_000), 4, 4096, 256)!.map(key);
  for (const gone of [17, 5_000, 12_345, 19_999]) {
    const after = zoneChunks(hosts(20_000, new Set([gone])), 4, 4096, 256)!.map(key);
    const b = new Set(before);
    const a = new Set(after);
    const changedBefore = before.filter((k) => !a.has(k));
    const changedAfter = after.filter((k) => !b.has(k));
    // one chunk changed; two merged into one when the range removed started a chunk
    assert.ok(
      changedBefore.length <= 2 && changedAfter.length === 1,
      `${gone}: ${changedBefore.length} → ${changedAfter.length}`,
    );
  }
});
