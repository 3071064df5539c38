// tzorp run --print-config: the effective configuration (every tunable, the command line applied) as
// JSON, without starting anything; tzorp run without a policy otherwise is a usage error.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { resolve } from 'node:path';
import { test } from 'node:test';
import { DEFAULTS } from '../../../src/defaults.ts';

function tzorp(...args: string[]) {
  return spawnSync(process.execPath, ['bin/tzorp', ...args], { encoding: 'utf8', timeout: 120_000 });
}

test('tzorp run --print-config prints the defaults with the command line applied, and exits 0', () => {
  const r = tzorp(
    'run',
    'examples/policy.yaml',
    '--print-config',
    '--workers',
    '3',
    '--stop-timeout',
    '5000',
    '--control',
    '/tmp/tzorp-print-config.sock',
    '--no-kernel',
    '--metrics',
    '[::1]:9100',
  );
  assert.equal(r.status, 0, r.stderr);
  const c = JSON.parse(r.stdout) as Record<string, unknown>;
  for (const [k, v] of Object.entries(DEFAULTS)) {
    if (k === 'stopDrainTimeoutMs' || k === 'controlSocketPath') continue;
    assert.deepEqual(c[k], v, k);
  }
  assert.equal(c.stopDrainTimeoutMs, 5000);
  assert.equal(c.controlSocketPath, '/tmp/tzorp-print-config.sock');
  assert.equal(c.workers, 3);
  assert.equal(c.kernel, false);
  assert.equal(c.metrics, '[::1]:9100');
  assert.equal(c.user, null);
  assert.equal(c.policyFile, resolve('examples/policy.yaml'));
});

test('--print-config needs no policy; run without one (and without --print-config) is a usage error', () => {
  const r = tzorp('run', '--print-config');
  assert.equal(r.status, 0, r.stderr);
  const c = JSON.parse(r.stdout) as Record<string, unknown>;
  assert.equal(c.policyFile, null);
  assert.equal(c.connectTimeoutMs, DEFAULTS.connectTimeoutMs);
  const bad = tzorp('run');
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /missing required argument 'policy'/);
});

test('--relay-thread and --relay-loop together are a usage error; either alone is accepted', () => {
  const both = tzorp('run', '--print-config', '--relay-thread', '--relay-loop');
  assert.notEqual(both.status, 0);
  assert.match(both.stderr, /'--relay-thread' cannot be used with option '--relay-loop'/);
  for (const flag of ['--relay-thread', '--relay-loop']) {
    const r = tzorp('run', '--print-config', flag);
    assert.equal(r.status, 0, `${flag}: ${r.stderr}`);
  }
});
