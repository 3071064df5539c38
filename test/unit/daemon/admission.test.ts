import assert from 'node:assert/strict';
import { test } from 'node:test';
import { AdmissionLedger, LocalSlots } from '../../../src/daemon/admission.ts';

test('max_sessions is counted over all workers; a release frees one slot', () => {
  const l = new AdmissionLedger();
  assert.equal(l.admit(0, 'web', 2), true);
  assert.equal(l.admit(1, 'web', 2), true);
  assert.equal(l.admit(0, 'web', 2), false, 'two run already, on two workers');
  assert.equal(l.admit(1, 'ssh', 2), true, 'another service has its own count');
  assert.equal(l.count('web'), 2);
  l.release(1, 'web');
  assert.equal(l.count('web'), 1);
  assert.equal(l.admit(0, 'web', 2), true);
  assert.equal(l.admit(0, 'web', 2), false);
});

test('a release the ledger never granted changes nothing', () => {
  const l = new AdmissionLedger();
  l.admit(0, 'web', 1);
  l.release(1, 'web'); // worker 1 holds no slot of web
  l.release(0, 'ssh');
  assert.equal(l.count('web'), 1);
  assert.equal(l.admit(1, 'web', 1), false);
});

test("a worker that exits gives its slots back, the others' stay", () => {
  const l = new AdmissionLedger();
  l.admit(0, 'web', 3);
  l.admit(0, 'web', 3);
  l.admit(1, 'web', 3);
  l.forget(0);
  assert.equal(l.count('web'), 1);
  assert.equal(l.admit(1, 'web', 3), true);
  assert.equal(l.admit(1, 'web', 3), true);
  assert.equal(l.admit(1, 'web', 3), false);
});

test('leases: a worker gets as many slots as max_sessions leaves free, held per worker, given back in numbers', () => {
  const l = new AdmissionLedger();
  assert.equal(l.lease(0, 'web', 10, 4), 4);
  assert.equal(l.lease(1, 'web', 10, 4), 4);
  assert.equal(l.lease(0, 'web', 10, 4), 2, 'only two left');
  assert.equal(l.lease(1, 'web', 10, 4), 0);
  assert.equal(l.held(0, 'web'), 6);
  assert.equal(l.held(1, 'web'), 4);
  assert.equal(l.admit(1, 'web', 10), false, 'one by one counts against the leases too');
  l.release(0, 'web', 5);
  assert.equal(l.held(0, 'web'), 1);
  assert.equal(l.count('web'), 5);
  l.release(0, 'web', 9);
  assert.equal(l.held(0, 'web'), 0, 'never below none');
  assert.equal(l.lease(2, 'web', 0, 3), 3, 'no max: whatever is asked');
});

test('local slots: taken under the max they were leased with, kept up to KEEP, stale ones go back', () => {
  const s = new LocalSlots();
  assert.equal(s.take('web', 5), false, 'none leased yet');
  s.add('web', 5, 2);
  assert.equal(s.take('web', 5), true);
  assert.equal(s.take('web', 5), true);
  assert.equal(s.take('web', 5), false, 'both taken');
  assert.equal(s.give('web', 5), 0, 'an ended session frees its slot here');
  assert.equal(s.take('web', 5), true);
  // a reload changed max_sessions: the free slots of the old max are not used, and go back
  s.add('web', 5, 3);
  assert.equal(s.take('web', 2), false);
  assert.equal(s.dropStale('web', 2), 3);
  assert.equal(s.dropStale('web', 2), 0);
  s.add('web', 2, 1);
  assert.equal(s.give('web', 5), 1, 'a session of the old max gives its slot back to the primary');
  assert.equal(s.take('web', 2), true);
  // more than KEEP free: the rest goes back
  const many = new LocalSlots();
  many.add('ssh', 100, LocalSlots.KEEP);
  assert.equal(many.give('ssh', 100), 1);
  assert.equal(many.drop('ssh'), LocalSlots.KEEP);
  assert.equal(many.take('ssh', 100), false, 'dropped: none left');
  // a slot of a session that outlived a drop (the primary reclaimed the free ones) is free again here
  assert.equal(many.give('ssh', 100), 0);
  assert.equal(many.take('ssh', 100), true);
});
