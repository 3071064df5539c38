// What a kernel-logged connection says in the policy's terms: service by its mark, rule id from the
// packet mark, client and server zones by the most specific zone.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { describeLogged } from '../../../src/daemon/kernel-log.ts';
import { ZoneTrie } from '../../../src/engine/zone-trie.ts';
import { loadPolicyText } from '../../../src/policy/load.ts';

const POLICY = `zones:
  lan: { addresses: [198.18.1.0/24, "2001:db8:1::/64"] }
  office: { parent: lan, addresses: [198.18.1.128/25] }
  servers: { addresses: [198.18.2.0/24] }
services:
  out: { type: forward }
  refuse: { type: deny }
rules:
  - { id: 7, service: out, proto: tcp, dst_port: 5000, src_zone: lan, dst_zone: servers }
  - { id: 9, service: refuse, proto: udp, dst_port: 5002, src_zone: lan }
management:
  - { proto: tcp, dst_port: 22, src_zone: lan }
`;

test('describeLogged: service from the prefix id, rule from the mark, zones from the addresses', () => {
  const r = loadPolicyText(POLICY, 'p.yaml');
  assert.ok(r.policy, JSON.stringify(r.errors));
  const policy = r.policy;
  const zones = new ZoneTrie(policy.zones.values());
  const out = policy.services.get('out')!;
  const refuse = policy.services.get('refuse')!;
  const unit = (policy.settings.serviceMarkMask & -policy.settings.serviceMarkMask) >>> 0;
  const fwd = describeLogged(
    {
      verdict: 'forward',
      sid: out.id * unit,
      mark: (policy.settings.tproxyMark | 7) >>> 0,
      family: 4,
      proto: 6,
      src: '198.18.1.200',
      dst: '198.18.2.2',
      srcPort: 40000,
      dstPort: 5000,
    },
    policy,
    zones,
  );
  assert.equal(fwd.message, 'Starting forwarded session');
  assert.deepEqual(fwd.fields, {
    verdict: 'FORWARDED',
    proto: 'tcp',
    client_address: '198.18.1.200',
    client_port: 40000,
    client_zone: 'office',
    server_address: '198.18.2.2',
    server_port: 5000,
    server_zone: 'servers',
    rule_id: 7,
    service: 'out',
  });
  const deny = describeLogged(
    {
      verdict: 'deny',
      sid: refuse.id * unit,
      mark: 9,
      family: 6,
      proto: 17,
      src: '2001:db8:1::2',
      dst: '2001:db8:9::9',
      srcPort: 1,
      dstPort: 5002,
    },
    policy,
    zones,
  );
  assert.equal(deny.message, 'Session denied');
  assert.equal(deny.fields.verdict, 'DENIED');
  assert.equal(deny.fields.client_zone, 'lan');
  assert.equal(deny.fields.server_zone, null);
  assert.equal(deny.fields.rule_id, 9);
  assert.equal(deny.fields.service, 'refuse');
  // a service id the policy no longer has (logged just before a reload renumbered) names none
  const gone = describeLogged(
    {
      verdict: 'deny',
      sid: 999 * unit,
      mark: 0,
      family: 4,
      proto: 1,
      src: '198.18.1.2',
      dst: '198.18.2.2',
      srcPort: 0,
      dstPort: 0,
    },
    policy,
    zones,
  );
  assert.equal(gone.fields.service, null);
  assert.equal(gone.fields.rule_id, null);
  assert.equal(gone.fields.proto, 'icmp');
});
