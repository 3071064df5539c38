import assert from 'node:assert/strict';
import { test } from 'node:test';
import { AdmissionLedger } from '../../../src/daemon/admission.ts';

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
