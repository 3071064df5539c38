// Per-client admission (max_sessions_per_client, new_sessions_per_client): the primary's bookkeeping.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ClientLimits, needsAdmission } from '../../../src/daemon/client-limits.ts';

const conc = (n: number) => ({ maxSessionsPerClient: n, newSessionsPerClient: null });
const rate = (r: number, s: number) => ({
  maxSessionsPerClient: 0,
  newSessionsPerClient: { rate: r, perSeconds: s },
});

test('max_sessions_per_client counts per service and client over every worker', () => {
  const l = new ClientLimits();
  assert.equal(l.acquire(0, 'web', '198.18.1.1', conc(2), 0), null);
  assert.equal(l.acquire(1, 'web', '198.18.1.1', conc(2), 0), null);
  assert.equal(l.acquire(0, 'web', '198.18.1.1', conc(2), 0), 'max_sessions_per_client');
  // Another client, another service: their own counts.
  assert.equal(l.acquire(0, 'web', '198.18.1.2', conc(2), 0), null);
  assert.equal(l.acquire(0, 'ftp', '198.18.1.1', conc(2), 0), null);
  l.release(1, 'web', '198.18.1.1');
  assert.equal(l.acquire(0, 'web', '198.18.1.1', conc(2), 0), null);
});

test('a dead worker gives its slots back', () => {
  const l = new ClientLimits();
  assert.equal(l.acquire(3, 'web', 'c', conc(1), 0), null);
  assert.equal(l.acquire(2, 'web', 'c', conc(1), 0), 'max_sessions_per_client');
  l.dropWorker(3);
  assert.equal(l.acquire(2, 'web', 'c', conc(1), 0), null);
  l.release(2, 'web', 'c');
  l.release(2, 'web', 'c'); // an extra release is harmless
  assert.deepEqual(l.size, { clients: 0, buckets: 0 });
});

test('new_sessions_per_client: a burst of rate, then rate per period', () => {
  const l = new ClientLimits();
  const r = rate(3, 2); // 3 per 2 s
  for (let i = 0; i < 3; i++) assert.equal(l.acquire(0, 'web', 'c', r, 1000), null);
  assert.equal(l.acquire(0, 'web', 'c', r, 1000), 'new_sessions_per_client');
  assert.equal(l.acquire(0, 'web', 'other', r, 1000), null, 'other clients are not affected');
  // 2 s / 3 per session: after 667 ms one more.
  assert.equal(l.acquire(0, 'web', 'c', r, 1600), 'new_sessions_per_client');
  assert.equal(l.acquire(0, 'web', 'c', r, 1700), null);
  assert.equal(l.acquire(0, 'web', 'c', r, 1700), 'new_sessions_per_client');
  // A long pause refills up to the burst, not more.
  for (let i = 0; i < 3; i++) assert.equal(l.acquire(0, 'web', 'c', r, 100_000), null);
  assert.equal(l.acquire(0, 'web', 'c', r, 100_000), 'new_sessions_per_client');
});

test('the bucket table is bounded (least recently used dropped)', () => {
  const l = new ClientLimits(100);
  for (let i = 0; i < 1000; i++) l.acquire(0, 'web', `c${i}`, rate(1, 60), 0);
  assert.equal(l.size.buckets, 100);
});

test('needsAdmission', () => {
  assert.equal(needsAdmission({ maxSessions: 0 }), false);
  assert.equal(
    needsAdmission({ maxSessions: 0, maxSessionsPerClient: 0, newSessionsPerClient: null }),
    false,
  );
  assert.equal(needsAdmission({ maxSessions: 5 }), true);
  assert.equal(needsAdmission({ maxSessions: 0, maxSessionsPerClient: 1 }), true);
  assert.equal(needsAdmission({ maxSessions: 0, newSessionsPerClient: { rate: 1, perSeconds: 1 } }), true);
});
