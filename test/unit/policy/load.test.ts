import assert from 'node:assert/strict';
import { test } from 'node:test';
import { loadPolicyText } from '../../../src/policy/index.ts';

const ISSUE = `zones:
  clients:        { addresses: [198.18.10.0/23, "2001:db8:10::/48"] }
  servers:        { addresses: [198.18.20.0/23] }
  servers.audit:  { parent: servers, addresses: [198.18.21.1] }
  internet:       { addresses: [0.0.0.0/0, "::/0"] }
services:
  http_in:  { type: proxy, proxy: http, router: { type: transparent } }
  ssh_fwd:  { type: forward, router: { type: transparent, forge_addr: true } }
  blocked:  { type: deny, ipv4: tcp-reset, ipv6: icmp-admin-prohibited }
rules:
  - { id: 1, service: http_in, proto: tcp, dst_port: 80, src_zone: clients, dst_zone: servers }
  - { id: 2, service: ssh_fwd, proto: tcp, dst_port: 22, src_zone: clients }
  - { id: 3, service: blocked, src_zone: internet, dst_port: "1-1023" }
`;

test("issue 2's example loads into the resolved model", () => {
  const r = loadPolicyText(ISSUE, 'issue.yaml');
  assert.deepEqual(r.errors, []);
  const p = r.policy;
  assert.ok(p);
  assert.deepEqual([...p.zones.keys()], ['clients', 'servers', 'servers.audit', 'internet']);
  const audit = p.zones.get('servers.audit');
  assert.equal(audit?.parent, 'servers');
  assert.equal(audit?.depth, 2);
  assert.deepEqual(p.zones.get('servers')?.children, ['servers.audit']);
  assert.equal(audit?.addresses[0]?.text, '198.18.21.1/32');
  assert.equal(audit?.addresses[0]?.addr, (198n << 24n) | (18n << 16n) | (21n << 8n) | 1n);
  assert.deepEqual(audit?.pos, { file: 'issue.yaml', line: 4, col: 3 });
  assert.deepEqual(
    p.zones.get('clients')?.addresses.map((c) => [c.family, c.prefix, c.text]),
    [
      [4, 23, '198.18.10.0/23'],
      [6, 48, '2001:db8:10::/48'],
    ],
  );
  // service ids: 1-based index in name order
  assert.deepEqual(
    [...p.services.values()].map((s) => [s.name, s.id, s.type]),
    [
      ['blocked', 1, 'deny'],
      ['http_in', 2, 'proxy'],
      ['ssh_fwd', 3, 'forward'],
    ],
  );
  const fwd = p.services.get('ssh_fwd');
  assert.equal(fwd?.type, 'forward');
  if (fwd?.type === 'forward') assert.equal(fwd.router.forgeAddr, true);
  const http = p.services.get('http_in');
  assert.ok(http?.type === 'proxy');
  assert.equal(http.proxy, 'http');
  assert.equal(http.chainer.type, 'connect');
  assert.deepEqual(
    p.rules.map((r) => r.id),
    [1, 2, 3],
  );
  assert.deepEqual(p.rules[0]?.proto, [6]);
  assert.deepEqual(p.rules[0]?.dstPort, [{ lo: 80, hi: 80 }]);
  assert.deepEqual(p.rules[2]?.dstPort, [{ lo: 1, hi: 1023 }]);
  assert.equal(p.rules[2]?.srcZone?.[0], 'internet');
  assert.equal(p.rules[0]?.iface, undefined);
  assert.equal(p.settings.tproxyMark, 0x80000000);
  assert.match(p.source.sha256, /^[0-9a-f]{64}$/);
});

test('the same policy written as JSON loads to the same model, with positions', () => {
  const y = loadPolicyText(ISSUE, 'p');
  assert.ok(y.policy);
  const json = JSON.stringify(
    {
      zones: {
        clients: { addresses: ['198.18.10.0/23', '2001:db8:10::/48'] },
        servers: { addresses: ['198.18.20.0/23'] },
        'servers.audit': { parent: 'servers', addresses: ['198.18.21.1'] },
        internet: { addresses: ['0.0.0.0/0', '::/0'] },
      },
      services: {
        http_in: { type: 'proxy', proxy: 'http', router: { type: 'transparent' } },
        ssh_fwd: { type: 'forward', router: { type: 'transparent', forge_addr: true } },
        blocked: { type: 'deny', ipv4: 'tcp-reset', ipv6: 'icmp-admin-prohibited' },
      },
      rules: [
        { id: 1, service: 'http_in', proto: 'tcp', dst_port: 80, src_zone: 'clients', dst_zone: 'servers' },
        { id: 2, service: 'ssh_fwd', proto: 'tcp', dst_port: 22, src_zone: 'clients' },
        { id: 3, service: 'blocked', src_zone: 'internet', dst_port: '1-1023' },
      ],
    },
    null,
    2,
  );
  const j = loadPolicyText(json, 'p');
  assert.deepEqual(j.errors, []);
  assert.ok(j.policy);
  const strip = (x: unknown) =>
    JSON.parse(
      JSON.stringify(x, (k, v) =>
        k === 'pos' || k === 'sha256'
          ? undefined
          : typeof v === 'bigint'
            ? String(v)
            : v instanceof Map
              ? [...v]
              : v,
      ),
    );
  assert.deepEqual(strip(j.policy), strip(y.policy));
  const lines = json.split('\n');
  const line = lines.findIndex((l) => l.includes('"servers.audit"')) + 1;
  const col = (lines[line - 1] as string).indexOf('"servers.audit"') + 1;
  assert.deepEqual(j.policy.zones.get('servers.audit')?.pos, { file: 'p', line, col });
});
