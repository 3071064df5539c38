// tzorp demo (the static decision table): every service a rule can pick appears, in IPv4 and IPv6, and
// so does a connection no rule matches; the example policy runs through the real command.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { decisionTable } from '../../../src/cli/commands/demo.ts';
import { makePolicy } from '../engine/fixtures.ts';

const ROOT = fileURLToPath(new URL('../../..', import.meta.url));

test('the table covers every service, both families and the no-match case', () => {
  const policy = makePolicy({
    zones: {
      lan: { addresses: ['198.18.10.0/24', '2001:db8:10::/48'] },
      dmz: { addresses: ['198.18.20.0/24', '2001:db8:20::/48'] },
      'dmz.web': { parent: 'dmz', addresses: ['198.18.20.80', '2001:db8:20::80'] },
      v4only: { addresses: ['198.18.30.0/24'] },
    },
    services: { web: 'proxy', ssh: 'forward', nope: 'deny', legacy: 'proxy' },
    rules: [
      { id: 1, service: 'web', proto: [6], dstPort: [80], srcZone: ['lan'], dstZone: ['dmz.web'] },
      { id: 2, service: 'ssh', proto: [6], dstPort: [22], srcZone: ['lan'], dstZone: ['dmz'] },
      { id: 3, service: 'nope', dstPort: [[1, 1023]], srcZone: ['dmz'] },
      { id: 4, service: 'legacy', proto: [6], dstPort: [23], dstZone: ['v4only'] },
    ],
  });
  const { text, samples } = decisionTable(policy);
  for (const svc of ['web', 'ssh', 'nope']) {
    const rows = samples.filter((s) => s.decision.service?.name === svc);
    assert.deepEqual(
      rows.map((s) => (s.conn.src.includes(':') ? 6 : 4)).sort(),
      [4, 6],
      `${svc} in both families`,
    );
  }
  // a service only IPv4 can reach has only an IPv4 row
  assert.equal(samples.filter((s) => s.decision.service?.name === 'legacy').length, 1);
  assert.ok(samples.some((s) => s.decision.rule === null && s.conn.src.includes(':')));
  assert.ok(samples.some((s) => s.decision.rule === null && !s.conn.src.includes(':')));
  assert.match(text, /no rule → dropped/);
  assert.match(text, /deny \(drop\)/);
  assert.match(text, /proxy \(plug\)/);
  assert.match(text, /forward/);
});

test('tzorp demo checks examples/policy.yaml and prints the table', () => {
  const r = spawnSync(process.execPath, [join(ROOT, 'bin/tzorp'), 'demo'], { encoding: 'utf8', cwd: ROOT });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /examples\/policy\.yaml: valid/);
  assert.match(r.stdout, /client zone/);
  assert.match(r.stdout, /no rule → dropped/);
});

test('examples/policy.yaml refuses QUIC (UDP/443) from clients in both families, TCP/443 still proxied', () => {
  const explain = (...a: string[]) => {
    const r = spawnSync(
      process.execPath,
      [join(ROOT, 'bin/tzorp'), 'explain', 'examples/policy.yaml', ...a, '--json'],
      {
        encoding: 'utf8',
        cwd: ROOT,
      },
    );
    return JSON.parse(r.stdout) as { service: string | null; verdict: string; verdict_text: string };
  };
  for (const [src, dst] of [
    ['198.18.10.10', '198.18.20.10'],
    ['2001:db8:10::10', '2001:db8:20::10'],
  ] as const) {
    const quic = explain('--proto', 'udp', '--src', src, '--dst', dst, '--dport', '443');
    assert.equal(quic.service, 'quic_off', src);
    assert.equal(quic.verdict, 'deny');
    assert.match(
      quic.verdict_text,
      /port-unreachable/,
      'browsers fall back to TCP at once, not after a timeout',
    );
    assert.equal(
      explain('--proto', 'tcp', '--src', src, '--dst', dst, '--dport', '443').service,
      'https_passthrough',
    );
  }
});
