import assert from 'node:assert/strict';
import { test } from 'node:test';
import { E, TzorpError } from '../../src/errors.ts';

test('error codes are unique and well formed', () => {
  const codes = Object.values(E).map((e) => e.code);
  assert.equal(new Set(codes).size, codes.length);
  for (const c of codes) assert.match(c, /^TZ\d{4}$/);
});

test('TzorpError formats file:line:col and code', () => {
  const err = new TzorpError('POLICY_UNKNOWN_ZONE', "unknown zone 'x'", {
    pos: { file: 'p.yaml', line: 3, col: 7 },
  });
  assert.equal(err.format(), "p.yaml:3:7: TZ1031 unknown zone 'x'");
  assert.equal(err.kind, 'user');
});
