import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isoTime } from '../../../src/net/time.ts';

test('isoTime is toISOString: across seconds, alternating between seconds, every millisecond width', () => {
  let seed = 7;
  const rnd = () => {
    seed = (seed * 1103515245 + 12345) >>> 0;
    return seed;
  };
  const base = Date.UTC(2026, 11, 5, 21, 59, 58, 990);
  for (let ms = base; ms < base + 2_100; ms++) assert.equal(isoTime(ms), new Date(ms).toISOString());
  for (let n = 0; n < 20_000; n++) {
    // the start of a long session and the end of a short one, interleaved
    const a = base - (rnd() % 10_000_000);
    const b = base + (rnd() % 3_000);
    assert.equal(isoTime(a), new Date(a).toISOString());
    assert.equal(isoTime(b), new Date(b).toISOString());
  }
  for (const ms of [0, 999, 1000, 951782400000 /* 2000-02-29 */, 253402300799999, 253402300800000, -1, 1.5])
    assert.equal(isoTime(ms), new Date(ms).toISOString(), String(ms));
});
