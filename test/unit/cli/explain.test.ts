// tzorp explain: option parsing, the --json contract, the text form, and the exit codes of the real
// command (0 let through, 3 refused, 1 invalid policy, 2 usage).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import {
  connectionFromOptions,
  explanationJson,
  explanationText,
  UsageError,
} from '../../../src/cli/commands/explain.ts';
import { Engine } from '../../../src/engine/index.ts';
import { makePolicy } from '../engine/fixtures.ts';

const ROOT = fileURLToPath(new URL('../../..', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'tzorp-explain-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const POLICY = `
zones:
  clients:        { addresses: [198.18.10.0/23, "2001:db8:10::/48"] }
  servers:        { addresses: [198.18.20.0/23, "2001:db8:20::/48"] }
  servers.audit:  { parent: servers, addresses: [198.18.21.1] }
  internet:       { addresses: [0.0.0.0/0, "::/0"] }
services:
  http_in:  { type: proxy, proxy: http, router: { type: transparent } }
  http_audit: { type: proxy, proxy: http, router: { type: transparent } }
  ssh_fwd:  { type: forward, router: { type: transparent, forge_addr: true } }
  blocked:  { type: deny, ipv4: tcp-reset, ipv6: icmp-admin-prohibited }
rules:
  - { id: 1, service: http_in, proto: tcp, dst_port: 80, src_zone: clients, dst_zone: servers }
  - { id: 2, service: ssh_fwd, proto: tcp, dst_port: 22, src_zone: clients }
  - { id: 3, service: blocked, src_zone: internet, dst_port: "1-1023" }
  - { id: 4, service: http_audit, proto: tcp, dst_port: 80, src_zone: clients, dst_zone: servers.audit }
`;
const policyFile = join(dir, 'policy.yaml');
writeFileSync(policyFile, POLICY);

function tzorp(...args: string[]) {
  const r = spawnSync(process.execPath, [join(ROOT, 'bin/tzorp'), ...args], { encoding: 'utf8', cwd: ROOT });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

describe('options', () => {
  test('protocol names and numbers, defaults like kzorp -e', () => {
    const c = connectionFromOptions({ proto: 'TCP', src: '198.18.10.5', dst: '198.18.0.1' });
    assert.deepEqual([c.proto, c.srcPort, c.dstPort, c.iface], [6, 1024, 0, undefined]);
    assert.equal(connectionFromOptions({ proto: 'icmpv6', src: '::1', dst: '::2' }).proto, 58);
    assert.equal(connectionFromOptions({ proto: '47', src: '1.1.1.1', dst: '1.1.1.2' }).proto, 47);
    const full = connectionFromOptions({
      proto: 'udp',
      src: '1.1.1.1',
      dst: '1.1.1.2',
      sport: '53',
      dport: '5353',
      iface: 'eth1',
      ifgroup: '4',
      dstLocal: true,
      reqid: '7,8',
    });
    assert.deepEqual(
      [full.srcPort, full.dstPort, full.iface, full.ifgroup, full.dstLocal, full.reqids],
      [53, 5353, 'eth1', 4, true, [7, 8]],
    );
  });
  test('usage errors', () => {
    for (const o of [
      {},
      { proto: 'tcp', dst: '1.1.1.1' },
      { proto: 'tcp', src: '1.1.1.1' },
      { proto: 'gre', src: '1.1.1.1', dst: '1.1.1.1' },
      { proto: '256', src: '1.1.1.1', dst: '1.1.1.1' },
      { proto: 'tcp', src: '010.1.1.1', dst: '1.1.1.1' },
      { proto: 'tcp', src: '1.1.1.1', dst: '1.2.3.4/33' },
      { proto: 'tcp', src: '1.1.1.1', dst: '1.1.1.1', dport: '65536' },
      { proto: 'tcp', src: '1.1.1.1', dst: '1.1.1.1', sport: '-1' },
      { proto: 'tcp', src: '1.1.1.1', dst: '1.1.1.1', ifgroup: '1' },
      { proto: 'tcp', src: '198.18.10.5', dst: '2001:db8::1' },
      { proto: 'tcp', src: '2001:db8::1', dst: '198.18.10.5' },
    ]) {
      assert.throws(() => connectionFromOptions(o), UsageError, JSON.stringify(o));
    }
  });
});

describe('output', () => {
  const policy = makePolicy({
    zones: { c: { addresses: ['10.0.0.0/8'] }, s: { addresses: ['192.168.0.0/16'] } },
    services: { web: 'proxy', no: 'deny' },
    rules: [
      { id: 1, service: 'web', dstPort: [80], srcZone: ['c'] },
      { id: 2, service: 'web', dstPort: [[1, 1023]], srcZone: ['c'] },
      { id: 3, service: 'no', dstPort: [22], srcZone: ['c'] },
    ],
  });
  const ex = new Engine(policy).explain({ proto: 6, src: '10.1.1.1', dst: '192.168.1.1', dstPort: 80 });
  test('--json keeps the contract keys', () => {
    const j = explanationJson(ex);
    assert.deepEqual(Object.keys(j).slice(0, 6), [
      'client_zone',
      'server_zone',
      'rule',
      'service',
      'service_type',
      'candidates',
    ]);
    assert.deepEqual(
      [j.client_zone, j.server_zone, j.rule, j.service, j.service_type],
      ['c', 's', 1, 'web', 'proxy'],
    );
    const cands = j.candidates as {
      rule: number;
      outcome: string;
      decided_by: string | null;
      failed: string[];
    }[];
    assert.deepEqual(
      cands.map((c) => [c.rule, c.outcome, c.decided_by]),
      [
        [1, 'winner', null],
        [2, 'lost', 'dst_port'],
        [3, 'no-match', null],
      ],
    );
    assert.deepEqual(cands[2]!.failed, ['dst_port']);
  });
  test('text says who won and why the others did not', () => {
    const t = explanationText(ex, policy);
    assert.match(t, /Client zone: c\nServer zone: s\nRule: 1/);
    assert.match(t, /rule 2 \(web\): matches but loses: rule 1 is more specific in destination port/);
    assert.match(t, /rule 3 \(no\): no match on dst_port/);
    assert.match(t, /dst_port: 80 not in 22/);
  });
});

describe('tzorp explain (the command)', () => {
  test('answers with the deeper zone’s rule, as JSON', () => {
    const r = tzorp(
      'explain',
      policyFile,
      '--proto',
      'tcp',
      '--src',
      '198.18.10.5',
      '--dst',
      '198.18.21.1',
      '--dport',
      '80',
      '--json',
    );
    assert.equal(r.code, 0, r.err);
    const j = JSON.parse(r.out);
    assert.deepEqual(
      [j.client_zone, j.server_zone, j.rule, j.service, j.service_type],
      ['clients', 'servers.audit', 4, 'http_audit', 'proxy'],
    );
    assert.equal(j.candidates.length, 4);
    assert.equal(j.candidates.find((c: { rule: number }) => c.rule === 1).decided_by, 'dst_zone');
  });
  test('IPv6, deny (exit 3), and no rule (dropped: exit 3)', () => {
    const denied = tzorp(
      'explain',
      policyFile,
      '--proto',
      'tcp',
      '--src',
      '2001:db8:99::1',
      '--dst',
      '2001:db8:20::1',
      '--dport',
      '25',
      '--json',
    );
    assert.equal(denied.code, 3);
    const deny = JSON.parse(denied.out);
    assert.deepEqual([deny.client_zone, deny.rule, deny.service_type], ['internet', 3, 'deny']);
    assert.equal(deny.verdict, 'deny');
    const r = tzorp(
      'explain',
      policyFile,
      '--proto',
      'udp',
      '--src',
      '198.18.10.5',
      '--dst',
      '198.18.20.1',
      '--dport',
      '80',
      '--json',
    );
    assert.equal(r.code, 3);
    const none = JSON.parse(r.out);
    assert.equal(none.verdict, 'drop');
    assert.deepEqual([none.rule, none.service, none.service_type], [null, null, null]);
    const text = tzorp(
      'explain',
      policyFile,
      '--proto',
      'udp',
      '--src',
      '198.18.10.5',
      '--dst',
      '198.18.20.1',
      '--dport',
      '80',
    );
    assert.equal(text.code, 3);
    assert.match(text.out, /Rule: none/);
  });
  test('exit 2 on usage errors, 1 on an invalid policy', () => {
    assert.equal(
      tzorp('explain', policyFile, '--proto', 'tcp', '--src', '010.1.1.1', '--dst', '1.1.1.1').code,
      2,
    );
    assert.equal(tzorp('explain', policyFile, '--proto', 'tcp', '--dst', '1.1.1.1').code, 2);
    assert.equal(
      tzorp('explain', policyFile, '--proto', 'bogus', '--src', '1.1.1.1', '--dst', '1.1.1.1').code,
      2,
    );
    const bad = join(dir, 'bad.yaml');
    writeFileSync(bad, 'zones:\n  a: { addresses: [1.2.3.4/33] }\n');
    const r = tzorp('explain', bad, '--proto', 'tcp', '--src', '1.1.1.1', '--dst', '1.1.1.1');
    assert.equal(r.code, 1);
    assert.match(r.err, /bad\.yaml:2:\d+: TZ1020/);
  });
});

describe('the ruleset order: bypass, management, rules', () => {
  const LOCKOUT = `
zones:
  lan: { addresses: [198.18.1.0/24, "2001:db8:1::/64"] }
services:
  reject_all: { type: deny, ipv4: tcp-reset, ipv6: tcp-reset }
rules:
  - { id: 99, service: reject_all, src_zone: lan }
management:
  - { proto: tcp, dst_port: 22, src_zone: lan }
bypass:
  - { proto: udp, dst_port: 123, src_zone: lan }
`;
  const file = join(dir, 'lockout.yaml');
  writeFileSync(file, LOCKOUT);
  const ssh = ['--proto', 'tcp', '--src', '198.18.1.2', '--dst', '198.18.1.1', '--dport', '22'];
  test('management wins for traffic to the firewall itself (exit 0), and says so', () => {
    const r = tzorp('explain', file, ...ssh, '--dst-local', '--iface', 'eth0', '--json');
    assert.equal(r.code, 0, r.err);
    const j = JSON.parse(r.out);
    assert.deepEqual([j.verdict, j.management, j.rule], ['management', 1, null]);
    const t = tzorp('explain', file, ...ssh, '--dst-local');
    assert.equal(t.code, 0);
    assert.match(t.out, /Verdict: management: management entry 1 \(.*lockout\.yaml:9\) accepts it/);
    assert.match(t.out, /the rules alone would pick 99/);
  });
  test('the same connection through the firewall is refused by rule 99 (exit 3), with a note', () => {
    const t = tzorp('explain', file, ...ssh, '--iface', 'eth0');
    assert.equal(t.code, 3);
    assert.match(t.out, /Verdict: deny/);
    assert.match(t.out, /management entry 1 accepts it instead \(--dst-local\)/);
  });
  test('bypass comes before everything', () => {
    const r = tzorp(
      'explain',
      file,
      '--proto',
      'udp',
      '--src',
      '198.18.1.2',
      '--dst',
      '198.18.1.1',
      '--dport',
      '123',
      '--json',
    );
    assert.equal(r.code, 0, r.err);
    assert.deepEqual([JSON.parse(r.out).verdict, JSON.parse(r.out).bypass], ['bypass', 1]);
  });
  test('an IPv4 source with an IPv6 destination is a usage error (exit 2)', () => {
    const r = tzorp('explain', file, '--proto', 'tcp', '--src', '198.18.1.2', '--dst', '2001:db8:1::1');
    assert.equal(r.code, 2);
    assert.match(r.err, /one IP version/);
  });
  test('without --iface the text does not claim locally generated traffic', () => {
    const t = tzorp('explain', file, ...ssh);
    assert.doesNotMatch(t.out, /locally generated/);
    assert.match(t.out, /interface no rule names/);
  });
});
