import assert from 'node:assert/strict';
import { describe, it, test } from 'node:test';
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

describe('loader details', () => {
  it('fills every default', () => {
    const r = loadPolicyText(
      'services:\n  p: { type: proxy, proxy: plug }\n  f: { type: forward }\n  d: { type: deny }\nrules:\n  - { service: p }\n  - { service: f }\n  - { service: d }\n',
      'p.yaml',
    );
    assert.deepEqual(r.errors, []);
    const p = r.policy;
    assert.ok(p);
    assert.deepEqual(p.settings, {
      tproxyMark: 0x80000000,
      serviceMarkMask: 0xffff,
      routingTable: 100,
      listenV4: '127.0.0.1',
      listenV6: '::1',
      listenPortBase: 50000,
      publishZoneSets: 'referenced',
    });
    const s = p.services.get('p');
    assert.ok(s?.type === 'proxy');
    assert.deepEqual(
      { ...s, pos: undefined },
      {
        name: 'p',
        id: 3,
        pos: undefined,
        logging: true,
        type: 'proxy',
        proxy: 'plug',
        router: { type: 'transparent', forcedPort: null, forgeAddr: false, forgePort: 'any' },
        chainer: { type: 'connect', timeoutConnectMs: 30000 },
        options: {},
        limitTargetZonesTo: [],
        maxSessions: 0,
        maxSessionsPerClient: 0,
        newSessionsPerClient: null,
        listenPort: null,
        nativeRelay: true,
        optionPositions: new Map(),
      },
    );
    const f = p.services.get('f');
    assert.ok(f?.type === 'forward');
    assert.deepEqual(f.router, { type: 'transparent', forcedPort: null, forgeAddr: false, forgePort: 'any' });
    const d = p.services.get('d');
    assert.ok(d?.type === 'deny');
    assert.deepEqual([d.ipv4, d.ipv6, d.logging], ['drop', 'drop', true]);
    assert.deepEqual(p.management, []);
    assert.deepEqual(p.bypass, []);
  });

  it('assigns the smallest unused ids after reading every explicit id', () => {
    const r = loadPolicyText(
      'services:\n  d: { type: deny }\nrules:\n  - { service: d }\n  - { id: 1, service: d, dst_port: 1 }\n  - { service: d, dst_port: 2 }\n  - { id: 3, service: d, dst_port: 3 }\n  - { service: d, dst_port: 4 }\n',
      'p.yaml',
    );
    assert.deepEqual(r.errors, []);
    const p = r.policy;
    assert.ok(p);
    // file order: (auto) 2, 1, (auto) 4, 3, (auto) 5; sorted by id
    assert.deepEqual(
      p.rules.map((x) => [x.id, x.dstPort?.[0]?.lo ?? null]),
      [
        [1, 1],
        [2, null],
        [3, 3],
        [4, 2],
        [5, 4],
      ],
    );
    assert.deepEqual(p.rules[1]?.pos, { file: 'p.yaml', line: 4, col: 5 });
  });

  it('routers, chainers, options and limits', () => {
    const text = `zones:
  servers: { addresses: [198.18.20.0/23] }
services:
  a:
    type: proxy
    proxy: http
    router: { type: directed, targets: ["198.18.20.10:80", "[2001:DB8::a]:8080"], forge_addr: true, forge_port: 1234 }
    chainer: { type: failover, timeout_connect: 500, timeout_state: 0 }
    limit_target_zones_to: servers
    max_sessions: 10
    listen_port: 40000
    logging: false
    options: { request: { GET: { action: accept } }, "__proto__": 1 }
    transparent_mode: false
  b: { type: proxy, proxy: ftp, router: inband, chainer: round_robin }
  c: { type: proxy, proxy: plug, native_relay: false, router: { type: transparent, forced_port: 8080, forge_port: exact } }
  f: { type: forward, forge_addr: true, router: { type: directed, targets: "198.18.20.10:22" } }
rules:
  - { service: a }
  - { service: b }
  - { service: c }
  - { service: f }
`;
    const r = loadPolicyText(text, 'p.yaml');
    assert.deepEqual(r.errors, []);
    const p = r.policy;
    assert.ok(p);
    const a = p.services.get('a');
    assert.ok(a?.type === 'proxy');
    assert.equal(a.nativeRelay, true);
    assert.deepEqual(a.router, {
      type: 'directed',
      targets: [
        { family: 4, host: '198.18.20.10', port: 80 },
        { family: 6, host: '2001:db8::a', port: 8080 },
      ],
      forgeAddr: true,
      forgePort: 1234,
    });
    assert.deepEqual(a.chainer, { type: 'failover', timeoutConnectMs: 500, timeoutStateMs: 0 });
    assert.deepEqual(a.limitTargetZonesTo, ['servers']);
    assert.deepEqual([a.maxSessions, a.listenPort, a.logging], [10, 40000, false]);
    assert.deepEqual(Object.keys(a.options), ['request', '__proto__', 'transparent_mode']);
    assert.equal(a.options.transparent_mode, false);
    assert.deepEqual(a.options.request, { GET: { action: 'accept' } });
    assert.equal(
      Object.getPrototypeOf(a.options),
      Object.prototype,
      'a "__proto__" key does not change the prototype',
    );
    const b = p.services.get('b');
    assert.ok(b?.type === 'proxy');
    assert.deepEqual(b.router, { type: 'inband', forgeAddr: false, forgePort: 'any', defaultPort: null });
    assert.deepEqual(b.chainer, { type: 'round_robin', timeoutConnectMs: 30000, timeoutStateMs: 60000 });
    const c = p.services.get('c');
    assert.ok(c?.type === 'proxy');
    assert.equal(c.nativeRelay, false);
    assert.deepEqual(c.router, {
      type: 'transparent',
      forcedPort: 8080,
      forgeAddr: false,
      forgePort: 'exact',
    });
    const f = p.services.get('f');
    assert.ok(f?.type === 'forward');
    assert.deepEqual(f.router, {
      type: 'directed',
      targets: [{ family: 4, host: '198.18.20.10', port: 22 }],
      forgeAddr: true,
      forgePort: 'any',
    });
  });

  it('dimensions: every kind of value, duplicates folded, IPv4-mapped normalised', () => {
    const text = `zones:
  z: { addresses: ["::ffff:198.18.1.0/120"] }
services:
  d: { type: deny }
rules:
  - service: d
    reqid: [1, 4294967295]
    iface: [eth0, wlan0]
    ifgroup: 0x10
    proto: [TCP, 17, icmpv6, tcp]
    icmp_type: 128
    icmp_code: [0]
    src_port: ["1024-65535", 0]
    dst_port: [80, "80", " 8000 - 8080 "]
    src_subnet: ["::ffff:198.18.1.1", 198.18.2.0/24]
    src_zone: z
    dst_subnet: "2001:db8::/32"
    dst_iface: eth1
    dst_ifgroup: [1, 2]
    dst_zone: [z]
management:
  - { proto: tcp, dst_port: 22, src_zone: z, description: ssh }
bypass:
  - { iface: lo }
settings: { tproxy_mark: 0x40000000, service_mark_mask: "0x00ff0000", routing_table: 200, listen_v4: 198.18.0.1, listen_v6: "2001:db8::1", listen_port_base: 1024, publish_zone_sets: [z, z] }
`;
    const r = loadPolicyText(text, 'p.yaml');
    assert.deepEqual(r.errors, []);
    const p = r.policy;
    assert.ok(p);
    assert.equal(p.zones.get('z')?.addresses[0]?.text, '198.18.1.0/24');
    const rule = p.rules[0];
    assert.ok(rule);
    assert.deepEqual(rule.reqid, [1, 4294967295]);
    assert.deepEqual(rule.iface, ['eth0', 'wlan0']);
    assert.deepEqual(rule.ifgroup, [16]);
    assert.deepEqual(rule.proto, [6, 17, 58]);
    assert.deepEqual(rule.icmpType, [128]);
    assert.deepEqual(rule.icmpCode, [0]);
    assert.deepEqual(rule.srcPort, [
      { lo: 1024, hi: 65535 },
      { lo: 0, hi: 0 },
    ]);
    assert.deepEqual(rule.dstPort, [
      { lo: 80, hi: 80 },
      { lo: 8000, hi: 8080 },
    ]);
    assert.deepEqual(
      rule.srcSubnet?.map((c) => c.text),
      ['198.18.1.1/32', '198.18.2.0/24'],
    );
    assert.deepEqual(
      rule.dstSubnet?.map((c) => [c.family, c.text]),
      [[6, '2001:db8::/32']],
    );
    assert.deepEqual(
      [rule.srcZone, rule.dstZone, rule.dstIface, rule.dstIfgroup],
      [['z'], ['z'], ['eth1'], [1, 2]],
    );
    assert.deepEqual(p.management[0]?.dstPort, [{ lo: 22, hi: 22 }]);
    assert.equal(p.management[0]?.description, 'ssh');
    assert.deepEqual(p.bypass[0]?.iface, ['lo']);
    assert.deepEqual(p.settings, {
      tproxyMark: 0x40000000,
      serviceMarkMask: 0x00ff0000,
      routingTable: 200,
      listenV4: '198.18.0.1',
      listenV6: '2001:db8::1',
      listenPortBase: 1024,
      publishZoneSets: ['z'],
    });
  });

  it('zone hierarchy: depths, sorted children, descriptions', () => {
    const r = loadPolicyText(
      'zones:\n  r: { description: root }\n  r.b: { parent: r }\n  r.a: { parent: r }\n  r.a.x: { parent: r.a, addresses: 198.18.1.1 }\n',
      'p.yaml',
    );
    assert.deepEqual(r.errors, []);
    const z = r.policy?.zones;
    assert.deepEqual(z?.get('r')?.children, ['r.a', 'r.b']);
    assert.deepEqual(
      [...(z?.values() ?? [])].map((x) => [x.name, x.depth, x.parent]),
      [
        ['r', 1, null],
        ['r.b', 2, 'r'],
        ['r.a', 2, 'r'],
        ['r.a.x', 3, 'r.a'],
      ],
    );
    assert.equal(z?.get('r')?.description, 'root');
  });
});

test('a reload that lists the same networks takes the last parse of a zone; a changed zone, an error or a warning is seen again', () => {
  const text = (aNets: string, bNets: string) => `
zones:
  a: { addresses: [${aNets}] }
  b: { addresses: [${bNets}] }
services:
  fwd: { type: forward }
rules:
  - { id: 1, service: fwd, src_zone: a, dst_zone: b }
`;
  const first = loadPolicyText(text('198.18.1.0/24, "2001:db8:1::/48"', '198.18.2.0/24'), 'p.yaml');
  assert.ok(first.policy, first.errors.map((e) => e.format()).join('\n'));
  const again = loadPolicyText(text('198.18.1.0/24, "2001:db8:1::/48"', '198.18.2.1/24'), 'p.yaml');
  assert.ok(again.policy);
  // zone a is the same text: the same Cidr objects; b changed: parsed anew, with its host-bits warning
  const a1 = first.policy.zones.get('a')!.addresses;
  const a2 = again.policy.zones.get('a')!.addresses;
  assert.equal(a2.length, 2);
  assert.ok(a2.every((c, i) => c === a1[i]));
  assert.deepEqual(
    again.policy.zones.get('b')!.addresses.map((c) => c.text),
    ['198.18.2.0/24'],
  );
  assert.ok(again.warnings.some((w) => w.id === 'LINT_HOST_BITS'));
  // the same text once more: the reused parse still warns, and a bad network is still refused
  const third = loadPolicyText(text('198.18.1.0/24, "2001:db8:1::/48"', '198.18.2.1/24'), 'p.yaml');
  assert.ok(third.warnings.some((w) => w.id === 'LINT_HOST_BITS'));
  assert.equal(third.policy!.zones.get('b')!.addresses[0], again.policy.zones.get('b')!.addresses[0]);
  // every zone as before: each zone's very list (what the engine and the compiler compare first), and
  // the warning at the same place
  for (const z of ['a', 'b'])
    assert.equal(third.policy!.zones.get(z)!.addresses, again.policy.zones.get(z)!.addresses, z);
  const hostBits = (r: typeof again) =>
    r.warnings.filter((w) => w.id === 'LINT_HOST_BITS').map((w) => w.format());
  assert.deepEqual(hostBits(third), hostBits(again));
  assert.equal(hostBits(third).length, 1);
  // the same networks in a file with lines moved: the warning follows its line
  const shifted = loadPolicyText(
    `\n\n${text('198.18.1.0/24, "2001:db8:1::/48"', '198.18.2.1/24')}`,
    'p.yaml',
  );
  assert.equal(shifted.policy!.zones.get('a')!.addresses, again.policy.zones.get('a')!.addresses);
  assert.notDeepEqual(hostBits(shifted), hostBits(again));
  assert.match(hostBits(shifted)[0]!, /p\.yaml:6:/);
  // one zone changed: every zone's list is made again, and a network the changed zone now shares with
  // an unchanged one is refused
  const dup = loadPolicyText(
    text('198.18.1.0/24, "2001:db8:1::/48", 198.18.2.0/24', '198.18.2.1/24'),
    'p.yaml',
  );
  assert.ok(dup.errors.some((e) => e.id === 'POLICY_DUPLICATE_NETWORK'));
  const bad = loadPolicyText(text('198.18.1.0/24, "2001:db8:1::/48"', '198.18.2.0/33'), 'p.yaml');
  assert.equal(bad.policy, null);
  assert.ok(bad.errors.some((e) => e.id === 'POLICY_BAD_CIDR'));
  const badAgain = loadPolicyText(text('198.18.1.0/24, "2001:db8:1::/48"', '198.18.2.0/33'), 'p.yaml');
  assert.ok(badAgain.errors.some((e) => e.id === 'POLICY_BAD_CIDR'));
  // a network moved between zones is still one network in one zone
  const moved = loadPolicyText(
    text('198.18.1.0/24, "2001:db8:1::/48", 198.18.2.0/24', '198.18.2.0/24'),
    'p.yaml',
  );
  assert.ok(moved.errors.some((e) => e.id === 'POLICY_DUPLICATE_NETWORK'));
});
