// Lint warnings: each kind found where it must be, and (the harder half) not reported where the
// higher-id rule can still win or no tie exists.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { codes, load, posOf, show } from './helpers.ts';

const HEAD = `zones:
  clients: { addresses: [198.18.10.0/23, "2001:db8:10::/48"] }
  servers: { addresses: [198.18.20.0/23, "2001:db8:20::/48"] }
  servers.web: { parent: servers, addresses: [198.18.21.80] }
  hollow: { addresses: [198.18.40.0/24] }
  hollow.a: { parent: hollow, addresses: [198.18.40.0/25, 198.18.40.128/25] }
services:
  a: { type: deny }
  b: { type: deny, ipv4: tcp-reset }
`;

function warnings(rules: string, head = HEAD) {
  const text = `${head}rules:\n${rules}`;
  const r = load(text);
  assert.deepEqual(r.errors, [], show(r.errors));
  return {
    text,
    w: r.warnings.filter((x) => x.code !== 'TZ1503' && x.code !== 'TZ1504' && !x.code.startsWith('TZ152')),
  };
}

describe('shadowed rules (TZ1501)', () => {
  const cases: [string, string][] = [
    [
      'an exact duplicate',
      '  - { id: 1, service: a, proto: tcp, dst_port: 80 }\n  - { id: 2, service: b, proto: tcp, dst_port: 80 }\n',
    ],
    [
      'a wider zone list, same ports',
      '  - { id: 1, service: a, dst_port: 80, src_zone: [clients, servers] }\n  - { id: 2, service: b, dst_port: 80, src_zone: clients }\n',
    ],
    [
      'a wider port range list with the same single ports',
      '  - { id: 1, service: a, proto: tcp, dst_port: [80, "1-1023", "2000-3000"] }\n  - { id: 2, service: b, proto: tcp, dst_port: ["10-20", 80, "2500-2600"] }\n',
    ],
    [
      'a superset of protocols and subnets',
      '  - { id: 1, service: a, proto: [tcp, udp], src_subnet: [198.18.10.0/24, 198.18.11.0/24] }\n  - { id: 2, service: b, proto: tcp, src_subnet: 198.18.10.0/24 }\n',
    ],
    [
      'subnets plus zones against subnets only',
      '  - { id: 1, service: a, src_subnet: 198.18.10.0/24, src_zone: servers }\n  - { id: 2, service: b, src_subnet: 198.18.10.0/24 }\n',
    ],
    [
      'an interface list plus a group against the interface list',
      '  - { id: 1, service: a, iface: [eth0, eth1], ifgroup: 3 }\n  - { id: 2, service: b, iface: eth0 }\n',
    ],
  ];
  for (const [name, rules] of cases) {
    it(name, () => {
      const { text, w } = warnings(rules);
      assert.deepEqual(codes(w), ['TZ1501'], show(w));
      assert.deepEqual({ line: w[0]?.pos?.line, col: w[0]?.pos?.col }, posOf(text, '{ id: 2'));
      assert.match(w[0]?.message ?? '', /rule 2 can never win: rule 1/);
    });
  }
  it('names a redundant rule of the same service as such', () => {
    const { w } = warnings(
      '  - { id: 1, service: a, dst_port: 22 }\n  - { id: 2, service: a, dst_port: 22 }\n',
    );
    assert.match(w[0]?.message ?? '', /redundant/);
  });
});

describe('not shadowed: the later rule can win somewhere', () => {
  const cases: [string, string][] = [
    [
      'a deeper destination zone',
      '  - { id: 1, service: a, dst_port: 80, dst_zone: servers }\n  - { id: 2, service: b, dst_port: 80, dst_zone: servers.web }\n',
    ],
    [
      'a single port inside the earlier range',
      '  - { id: 1, service: a, dst_port: "1-1023" }\n  - { id: 2, service: b, dst_port: 80 }\n',
    ],
    [
      'an extra dimension',
      '  - { id: 1, service: a, dst_port: 80 }\n  - { id: 2, service: b, dst_port: 80, proto: tcp }\n',
    ],
    [
      'a longer subnet',
      '  - { id: 1, service: a, src_subnet: 198.18.10.0/23 }\n  - { id: 2, service: b, src_subnet: 198.18.10.0/24 }\n',
    ],
    [
      'the wider rule has the higher id',
      '  - { id: 1, service: a, dst_port: 80, src_zone: clients }\n  - { id: 2, service: b, dst_port: 80, src_zone: [clients, servers] }\n',
    ],
    ['disjoint ports', '  - { id: 1, service: a, dst_port: 80 }\n  - { id: 2, service: b, dst_port: 81 }\n'],
    [
      'a zone and its child',
      '  - { id: 1, service: a, src_zone: servers }\n  - { id: 2, service: b, src_zone: servers.web }\n',
    ],
  ];
  for (const [name, rules] of cases) {
    it(name, () => {
      const { w } = warnings(rules);
      assert.ok(!codes(w).includes('TZ1501'), show(w));
    });
  }
});

describe('tied rules (TZ1502)', () => {
  it('overlapping port lists with equal scores', () => {
    const { text, w } = warnings(
      '  - { id: 1, service: a, proto: tcp, dst_port: 80, src_zone: clients }\n  - { id: 2, service: b, proto: tcp, dst_port: [80, 443], src_zone: clients }\n',
    );
    assert.deepEqual(codes(w), ['TZ1502'], show(w));
    assert.deepEqual({ line: w[0]?.pos?.line, col: w[0]?.pos?.col }, posOf(text, '{ id: 2'));
    assert.match(w[0]?.message ?? '', /rules 1 \(line \d+\) and 2 tie/);
  });
  it('overlapping ranges', () => {
    const { w } = warnings(
      '  - { id: 1, service: a, dst_port: "1000-2000" }\n  - { id: 2, service: b, dst_port: "1500-2500" }\n',
    );
    assert.deepEqual(codes(w), ['TZ1502'], show(w));
  });
  it('zone lists sharing a zone', () => {
    const { w } = warnings(
      '  - { id: 1, service: a, src_zone: [clients, servers.web] }\n  - { id: 2, service: b, src_zone: [servers.web, servers] }\n',
    );
    assert.deepEqual(codes(w), ['TZ1502'], show(w));
  });
  it('subnet lists sharing a network', () => {
    const { w } = warnings(
      '  - { id: 1, service: a, dst_subnet: [198.18.1.0/24, 198.18.2.0/24] }\n  - { id: 2, service: b, dst_subnet: [198.18.2.0/24, 198.18.3.0/24] }\n',
    );
    assert.deepEqual(codes(w), ['TZ1502'], show(w));
  });
  const none: [string, string][] = [
    [
      'the common port is a single port in one rule only',
      '  - { id: 1, service: a, dst_port: 80 }\n  - { id: 2, service: b, dst_port: "80-80" }\n',
    ],
    [
      'different shapes',
      '  - { id: 1, service: a, dst_port: 80 }\n  - { id: 2, service: b, src_port: 80 }\n',
    ],
    [
      'the shared zone owns no address (children cover it all)',
      '  - { id: 1, service: a, src_zone: [clients, hollow] }\n  - { id: 2, service: b, src_zone: [hollow, hollow.a] }\n',
    ],
    [
      'families cannot meet (IPv4 source zone, IPv6-only destination network)',
      '  - { id: 1, service: a, src_subnet: [198.18.1.0/24, 198.18.9.0/24], dst_subnet: "2001:db8:1::/48" }\n  - { id: 2, service: b, src_subnet: [198.18.1.0/24, 198.18.8.0/24], dst_subnet: "2001:db8:1::/48" }\n',
    ],
    [
      'the shared network has a longer one inside in one list',
      '  - { id: 1, service: a, dst_subnet: [198.18.1.0/24, 198.18.1.128/25] }\n  - { id: 2, service: b, dst_subnet: [198.18.1.0/24, 198.18.3.0/24] }\n',
    ],
  ];
  for (const [name, rules] of none) {
    it(`no tie: ${name}`, () => {
      const { w } = warnings(rules);
      assert.ok(!codes(w).includes('TZ1502'), show(w));
    });
  }
  it('IPv4 and IPv6 can meet when both sides have both families', () => {
    const { w } = warnings(
      '  - { id: 1, service: a, src_zone: [clients, servers.web], dst_subnet: "2001:db8:1::/48" }\n  - { id: 2, service: b, src_zone: [clients, servers], dst_subnet: "2001:db8:1::/48" }\n',
    );
    assert.deepEqual(codes(w), ['TZ1502'], show(w));
  });
});

describe('rules that never match (TZ1506)', () => {
  it('ICMP conditions with a non-ICMP protocol, ports on a portless protocol', () => {
    const { w } = warnings(
      '  - { id: 1, service: a, proto: tcp, icmp_type: 8 }\n  - { id: 2, service: b, proto: gre, dst_port: 80 }\n  - { id: 3, service: b, proto: icmp, icmp_type: 8 }\n  - { id: 4, service: b, proto: gre, dst_port: "0-10" }\n',
    );
    assert.deepEqual(codes(w), ['TZ1506', 'TZ1506'], show(w));
    assert.match(w[0]?.message ?? '', /rule 1 can never match/);
    assert.match(w[1]?.message ?? '', /rule 2 can never match/);
  });
});

describe('unused zones and services (TZ1503, TZ1504)', () => {
  it('reports a zone nothing refers to and a service no rule uses, not zones covered by a reference', () => {
    const text = `zones:
  used: { addresses: [198.18.1.0/24] }
  used.child: { parent: used, addresses: [198.18.1.1] }
  group: {}
  group.member: { parent: group, addresses: [198.18.2.0/24] }
  lonely: { addresses: [198.18.3.0/24] }
  limit: { addresses: [198.18.4.0/24] }
  mgmt: { addresses: [198.18.5.0/24] }
services:
  s: { type: proxy, proxy: plug, limit_target_zones_to: [limit] }
  spare: { type: deny }
rules:
  - { service: s, src_zone: used, dst_zone: group.member }
management:
  - { src_zone: mgmt, proto: tcp, dst_port: 22 }
`;
    const r = load(text);
    assert.deepEqual(r.errors, []);
    assert.deepEqual(
      r.warnings
        .filter((w) => !w.code.startsWith('TZ152')) // the safety lint's own tests are elsewhere
        .map((w) => `${w.code} ${w.pos?.line}:${w.pos?.col}`),
      [`TZ1503 ${posOf(text, 'lonely').line}:3`, `TZ1504 ${posOf(text, 'spare').line}:3`],
    );
  });
});

describe('host bits (TZ1505)', () => {
  it('masks and warns at the address', () => {
    const text = 'zones:\n  a: { addresses: [198.18.1.7/24] }\n';
    const r = load(text);
    assert.equal(r.policy?.zones.get('a')?.addresses[0]?.text, '198.18.1.0/24');
    const w = r.warnings.find((x) => x.code === 'TZ1505');
    assert.deepEqual({ line: w?.pos?.line, col: w?.pos?.col }, posOf(text, '198.18.1.7/24'));
  });
});

describe('the example policies', () => {
  it('check without any warning', async () => {
    const { loadPolicyFile } = await import('../../../src/policy/index.ts');
    for (const f of ['examples/policy.yaml', 'examples/home-office.yaml']) {
      const r = await loadPolicyFile(f);
      assert.deepEqual(r.errors, [], `${f}\n${show(r.errors)}`);
      assert.deepEqual(r.warnings, [], `${f}\n${show(r.warnings)}`);
    }
  });
});
