import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formatStatus } from '../../../src/cli/commands/status.ts';
import { effectiveConfig, type StatusResult } from '../../../src/daemon/index.ts';

const base: StatusResult = {
  state: 'running',
  pid: 42,
  startedAt: '2026-01-01T00:00:00.000Z',
  policy: { file: '/etc/tzorp/policy.yaml', sha256: 'ab12', loadedAt: '2026-01-01T00:00:01.000Z' },
  generation: 3,
  workers: 2,
  workersAlive: 2,
  workerPids: [43, 44],
  controlSocket: '/run/tzorp/control.sock',
  kernel: true,
  log: { verbosity: 3, spec: 'core.summary:4', format: 'text' },
  oldGenerations: [],
  services: [],
  config: effectiveConfig({
    policyFile: '/etc/tzorp/policy.yaml',
    workers: 2,
    kernel: true,
    metrics: null,
    user: null,
  }),
};

test('tzorp status names the lifecycle state first', () => {
  const now = Date.parse(base.startedAt) + 61_000;
  const text = formatStatus(base, now);
  assert.match(text, /^tzorp running, pid 42, started at .* \(1m01s ago\)$/m);
  assert.match(text, /^state: running$/m);
  assert.match(text, /^generation: 3 \(loaded at 2026-01-01T00:00:01\.000Z\)$/m);
  const draining = formatStatus({ ...base, state: 'draining' }, now);
  assert.match(draining, /^tzorp draining, pid 42/m);
  assert.match(draining, /^state: draining$/m);
});

test('a starting daemon has no generation and no policy hash yet', () => {
  const text = formatStatus({
    ...base,
    state: 'starting',
    generation: 0,
    policy: { file: base.policy.file, sha256: null, loadedAt: null },
  });
  assert.match(text, /^state: starting$/m);
  assert.match(text, /^policy: \/etc\/tzorp\/policy\.yaml sha256=-$/m);
  assert.match(text, /^generation: none yet \(starting\)$/m);
});
