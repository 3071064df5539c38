import assert from 'node:assert/strict';
import { test } from 'node:test';
import { mergeCounters, RateMeter, ServiceStats } from '../../../src/daemon/stats.ts';
import { DEFAULTS } from '../../../src/defaults.ts';

test('RateMeter converges to a steady rate, the 1-minute average fastest', () => {
  let t = 0;
  const m = new RateMeter(t);
  for (let i = 0; i < 12; i++) {
    for (let k = 0; k < 50; k++) m.mark(); // 10/s over 5 s
    t += DEFAULTS.rateTickMs;
    m.tick(t);
  }
  assert.ok(m.rate.m1 > 6 && m.rate.m1 <= 10, `m1 ${m.rate.m1}`);
  assert.ok(m.rate.m5 < m.rate.m1 && m.rate.m15 < m.rate.m5);
  for (let i = 0; i < 240; i++) {
    t += DEFAULTS.rateTickMs;
    m.tick(t);
  }
  assert.ok(m.rate.m1 < 0.01);
});

test('ServiceStats counts running/total/refused, merge sums workers', () => {
  let now = 1000;
  const a = new ServiceStats(() => now);
  const b = new ServiceStats(() => now);
  a.started('web');
  a.started('web');
  a.ended('web');
  now = 2000;
  b.started('web');
  b.refused('web');
  b.started('ftp');
  const m = mergeCounters([a.snapshot(), b.snapshot()]);
  assert.equal(m.web!.running, 2);
  assert.equal(m.web!.total, 3);
  assert.equal(m.web!.refused, 1);
  assert.equal(m.web!.lastStartedMs, 2000);
  assert.equal(m.ftp!.total, 1);
  a.ended('web');
  a.ended('web'); // never negative
  assert.equal(a.snapshot().web!.running, 0);
});
