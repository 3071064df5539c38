import assert from 'node:assert/strict';
import { test } from 'node:test';
import { loadPolicyText } from '../../../src/policy/index.ts';

const text = `
zones:
  clients: { addresses: [198.18.10.0/23] }
  unused:  { addresses: [198.18.99.0/24] }
services:
  fwd: { type: forward }
rules:
  - { service: fwd, src_zone: clients, dst_port: 22 }
`;

test('lint runs by default and is skipped with { lint: false }, validation is not', () => {
  const linted = loadPolicyText(text, 'p.yaml');
  assert.ok(linted.policy);
  assert.ok(linted.warnings.some((w) => w.id === 'LINT_UNUSED_ZONE'));
  const quick = loadPolicyText(text, 'p.yaml', undefined, { lint: false });
  assert.ok(quick.policy);
  assert.deepEqual(quick.warnings, []);
  const broken = loadPolicyText(`${text}  - { service: nope }\n`, 'p.yaml', undefined, { lint: false });
  assert.equal(broken.policy, null);
  assert.ok(broken.errors.some((e) => e.id === 'POLICY_UNKNOWN_SERVICE'));
});
