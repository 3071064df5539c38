// Hand-written KZorp cases: the reference scenario of zorp-semantics §9, the FTP best-match example
// of the Zorp tutorial, the hierarchy, and one case per precedence step and tie rule.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Engine } from '../../../src/engine/index.ts';
import { SCORE_FIELDS, zeroScore } from '../../../src/engine/score.ts';
import { TzorpError } from '../../../src/errors.ts';
import type { Connection } from '../../../src/policy/model.ts';
import { makePolicy, type PolicySpec } from './fixtures.ts';

const TCP = 6;
const UDP = 17;
const ICMP = 1;

function winner(spec: PolicySpec, c: Connection): number | null {
  return new Engine(makePolicy(spec)).decide(c).rule?.id ?? null;
}

describe('reference scenario (zorp-semantics §9, zorp instance)', () => {
  const servers = [
    'audit',
    'stack_clamav',
    'smtp_starttls',
    'smtp_one_sided_ssl',
    'http_stack_cat',
    'http_stack_tr',
    'http_header_replace',
    'http_url_filter',
    'plug',
  ];
  const zones: PolicySpec['zones'] = {
    clients: { addresses: ['172.16.10.0/23'] },
    servers: { addresses: ['172.16.20.0/23'] },
  };
  servers.forEach((s, i) => {
    zones[`servers.${s}`] = { parent: 'servers', addresses: [`172.16.21.${1 + 4 * i}`] };
  });
  const spec: PolicySpec = {
    zones,
    rules: [
      { id: 1, service: 'http_transparent', dstPort: [80], srcZone: ['clients'], dstZone: ['servers'] },
      { id: 2, service: 'http_transparent_directed', dstPort: [8080], srcZone: ['clients'] },
      { id: 3, service: 'plug', dstPort: [443], srcZone: ['clients'], dstZone: ['servers.plug'] },
      { id: 4, service: 'https_transparent', dstPort: [443], srcZone: ['clients'], dstZone: ['servers'] },
      {
        id: 5,
        service: 'header_replace',
        dstPort: [80],
        srcZone: ['clients'],
        dstZone: ['servers.http_header_replace'],
      },
      {
        id: 6,
        service: 'url_filter',
        dstPort: [80],
        srcZone: ['clients'],
        dstZone: ['servers.http_url_filter'],
      },
      { id: 7, service: 'http_inband', dstPort: [50080], srcZone: ['clients'], dstSubnet: ['172.16.10.254'] },
      { id: 8, service: 'ftp_transparent', dstPort: [21], srcZone: ['clients'], dstZone: ['servers'] },
      { id: 9, service: 'ftp_inband', dstPort: [50021], srcZone: ['clients'], dstSubnet: ['172.16.10.254'] },
      { id: 10, service: 'smtp', dstPort: [25], srcZone: ['clients'], dstZone: ['servers'] },
      {
        id: 11,
        service: 'smtp_starttls',
        dstPort: [25],
        srcZone: ['clients'],
        dstZone: ['servers.smtp_starttls'],
      },
    ],
  };
  const engine = new Engine(makePolicy(spec));
  const go = (dst: string, dport: number) =>
    engine.decide({ proto: TCP, src: '172.16.10.5', dst, srcPort: 40000, dstPort: dport });

  test('plain server zone', () => {
    const d = go('172.16.20.10', 80);
    assert.deepEqual(
      [d.clientZone, d.serverZone, d.rule?.id, d.service?.name],
      ['clients', 'servers', 1, 'http_transparent'],
    );
  });
  test('a deeper zone wins over its parent (hierarchy)', () => {
    assert.equal(go('172.16.21.25', 80).rule?.id, 5);
    assert.equal(go('172.16.21.29', 80).rule?.id, 6);
    assert.equal(go('172.16.21.33', 443).rule?.id, 3);
    assert.equal(go('172.16.21.9', 25).rule?.id, 11);
  });
  test('a child zone without its own rule falls back to the parent zone’s rule', () => {
    const d = go('172.16.21.1', 80);
    assert.equal(d.serverZone, 'servers.audit');
    assert.equal(d.rule?.id, 1);
  });
  test('destination subnet rule and no-zone destinations', () => {
    assert.equal(go('172.16.10.254', 50080).rule?.id, 7);
    const d = go('8.8.8.8', 8080);
    assert.equal(d.serverZone, null); // no internet zone in the scenario
    assert.equal(d.rule?.id, 2);
    const none = go('8.8.8.8', 80);
    assert.equal(none.rule, null);
    assert.equal(none.service, null);
  });
  test('a client outside every zone matches no src_zone rule', () => {
    const d = engine.decide({ proto: TCP, src: '10.9.9.9', dst: '172.16.20.10', dstPort: 80 });
    assert.equal(d.clientZone, null);
    assert.equal(d.rule, null);
  });
});

test('FTP best-match example: the source subnet beats the destination subnet', () => {
  const spec: PolicySpec = {
    rules: [
      { id: 1, service: 'ftp_ro', dstPort: [21] },
      { id: 2, service: 'ftp_rw_dst', dstPort: [21], dstSubnet: ['1.2.3.4/32'] },
      { id: 3, service: 'ftp_rw_src', dstPort: [21], srcSubnet: ['10.10.0.0/16'] },
    ],
  };
  assert.equal(winner(spec, { proto: TCP, src: '10.10.1.1', dst: '1.2.3.4', dstPort: 21 }), 3);
  assert.equal(winner(spec, { proto: TCP, src: '10.11.1.1', dst: '1.2.3.4', dstPort: 21 }), 2);
  assert.equal(winner(spec, { proto: TCP, src: '10.11.1.1', dst: '1.2.3.5', dstPort: 21 }), 1);
});

describe('precedence, strongest first', () => {
  const c: Connection = {
    proto: TCP,
    src: '10.0.0.1',
    dst: '10.1.0.1',
    srcPort: 1025,
    dstPort: 80,
    iface: 'eth0',
    ifgroup: 2,
    reqids: [7],
    dstLocal: true,
  };
  const zones = {
    a: { addresses: ['10.0.0.0/16'] },
    'a.b': { parent: 'a', addresses: ['10.0.0.0/24'] },
    d: { addresses: ['10.1.0.0/16'] },
    'd.e': { parent: 'd', addresses: ['10.1.0.0/24'] },
  };
  type R = NonNullable<PolicySpec['rules']>[number];
  const pair = (strong: R, weak: R) => {
    // the stronger rule gets the higher id so that a tie would pick the weaker one
    const spec = {
      zones,
      rules: [
        { ...weak, id: 1 },
        { ...strong, id: 2 },
      ],
    };
    assert.equal(winner(spec, c), 2, JSON.stringify(spec.rules));
  };
  const s = 'svc';
  test('interface: reqid > iface > ifgroup, and beats every later dimension', () => {
    pair({ id: 0, service: s, reqid: [7] }, { id: 0, service: s, iface: ['eth0'] });
    pair({ id: 0, service: s, iface: ['eth0'] }, { id: 0, service: s, ifgroup: [2] });
    pair({ id: 0, service: s, iface: ['eth0'], ifgroup: [2] }, { id: 0, service: s, iface: ['eth0'] });
    pair(
      { id: 0, service: s, ifgroup: [2] },
      {
        id: 0,
        service: s,
        proto: [TCP],
        srcPort: [1025],
        dstPort: [80],
        srcSubnet: ['10.0.0.1'],
        srcZone: ['a.b'],
        dstSubnet: ['10.1.0.1'],
        dstIface: ['eth0'],
        dstZone: ['d.e'],
      },
    );
  });
  test('protocol, then source port, then destination port; single port beats a range', () => {
    pair(
      { id: 0, service: s, proto: [TCP] },
      { id: 0, service: s, srcPort: [1025], dstPort: [80], srcZone: ['a.b'] },
    );
    pair(
      { id: 0, service: s, srcPort: [[1024, 2000]] },
      { id: 0, service: s, dstPort: [80], srcSubnet: ['10.0.0.1'] },
    );
    pair(
      { id: 0, service: s, dstPort: [[1, 1023]] },
      { id: 0, service: s, srcSubnet: ['10.0.0.1'], dstSubnet: ['10.1.0.1'] },
    );
    pair({ id: 0, service: s, dstPort: [80] }, { id: 0, service: s, dstPort: [[1, 1023]] });
    // the most specific value of the list counts, whatever its position (KZorp would take the range)
    pair({ id: 0, service: s, dstPort: [[0, 100], 80] }, { id: 0, service: s, dstPort: [[1, 1023]] });
    assert.equal(
      winner(
        {
          rules: [
            { id: 1, service: s, dstPort: [80] },
            { id: 2, service: s, dstPort: [[0, 100], 80] },
          ],
        },
        c,
      ),
      1, // both single: a tie, lowest id
    );
  });
  test('source: subnet by prefix, then zone by depth; then destination: subnet, dst_iface, zone', () => {
    pair(
      { id: 0, service: s, srcSubnet: ['10.0.0.0/8'] },
      { id: 0, service: s, srcZone: ['a.b'], dstSubnet: ['10.1.0.1'] },
    );
    pair(
      { id: 0, service: s, srcSubnet: ['10.0.0.0/24'] },
      { id: 0, service: s, srcSubnet: ['10.0.0.0/16', '10.0.0.0/8'] },
    );
    pair(
      { id: 0, service: s, srcZone: ['a.b'] },
      { id: 0, service: s, srcZone: ['a'], dstSubnet: ['10.1.0.1'] },
    );
    pair(
      { id: 0, service: s, dstSubnet: ['10.1.0.0/30'] },
      { id: 0, service: s, dstIface: ['eth0'], dstZone: ['d.e'] },
    );
    pair({ id: 0, service: s, dstIface: ['eth0'] }, { id: 0, service: s, dstIfgroup: [2], dstZone: ['d.e'] });
    pair({ id: 0, service: s, dstIfgroup: [2] }, { id: 0, service: s, dstZone: ['d.e'] });
    pair({ id: 0, service: s, dstZone: ['d.e'] }, { id: 0, service: s, dstZone: ['d'] });
    // a list naming the parent and the child scores with the deepest zone that matches
    pair({ id: 0, service: s, dstZone: ['d', 'd.e'] }, { id: 0, service: s, dstZone: ['d'] });
  });
  test('ICMP: code > type > protocol', () => {
    const icmp: Connection = { proto: ICMP, src: '10.0.0.1', dst: '10.1.0.1', icmpType: 8, icmpCode: 0 };
    const spec = (a: object, b: object) => ({
      rules: [
        { id: 1, service: s, ...b },
        { id: 2, service: s, ...a },
      ],
    });
    assert.equal(winner(spec({ icmpCode: [0] }, { icmpType: [8], proto: [ICMP] }), icmp), 2);
    assert.equal(winner(spec({ icmpType: [8] }, { proto: [ICMP] }), icmp), 2);
    // docs/semantics.md, difference 1: KZorp's eval-order quirk would keep rule 1 here
    const quirk = {
      rules: [
        { id: 1, service: s, proto: [ICMP], icmpType: [8] },
        { id: 2, service: s, icmpCode: [0] },
      ],
    };
    assert.equal(winner(quirk, icmp), 2);
    // type/code never match non-ICMP traffic
    assert.equal(winner({ rules: [{ id: 1, service: s, icmpType: [0] }] }, { ...c, icmpType: 0 }), null);
  });
  test('equal scores: the lowest rule id wins', () => {
    assert.equal(
      winner(
        {
          rules: [
            { id: 9, service: s, proto: [TCP] },
            { id: 4, service: s, proto: [TCP] },
          ],
        },
        c,
      ),
      4,
    );
    assert.equal(
      winner(
        {
          rules: [
            { id: 3, service: s },
            { id: 2, service: s },
          ],
        },
        c,
      ),
      2,
    );
  });
});

describe('special cases', () => {
  const s = 'svc';
  test('non-TCP/UDP traffic has ports 0', () => {
    const spec: PolicySpec = {
      rules: [
        { id: 1, service: s, dstPort: [[0, 10]] },
        { id: 2, service: s, dstPort: [80] },
      ],
    };
    assert.equal(winner(spec, { proto: 47, src: '10.0.0.1', dst: '10.0.0.2', dstPort: 80 }), 1);
    assert.equal(winner(spec, { proto: UDP, src: '10.0.0.1', dst: '10.0.0.2', dstPort: 80 }), 2);
  });
  test('locally generated traffic (no interface) never matches an interface condition', () => {
    const spec: PolicySpec = {
      rules: [
        { id: 1, service: s, reqid: [1] },
        { id: 2, service: s, ifgroup: [0] },
      ],
    };
    assert.equal(winner(spec, { proto: TCP, src: '10.0.0.1', dst: '10.0.0.2', reqids: [1] }), null);
    assert.equal(winner(spec, { proto: TCP, src: '10.0.0.1', dst: '10.0.0.2', iface: 'eth0' }), 2); // group 0 by default
    assert.equal(
      winner(spec, { proto: TCP, src: '10.0.0.1', dst: '10.0.0.2', iface: 'eth0', reqids: [1] }),
      1,
    );
  });
  test('dst_iface needs the destination to be local to the incoming interface', () => {
    const spec: PolicySpec = { rules: [{ id: 1, service: s, dstIface: ['eth0'] }] };
    assert.equal(winner(spec, { proto: TCP, src: '10.0.0.1', dst: '10.0.0.2', iface: 'eth0' }), null);
    assert.equal(
      winner(spec, { proto: TCP, src: '10.0.0.1', dst: '10.0.0.2', iface: 'eth0', dstLocal: true }),
      1,
    );
  });
  test('source group is subnet OR zone; a zone list never matches a zoneless address', () => {
    const spec: PolicySpec = {
      zones: { z: { addresses: ['10.0.0.0/8'] } },
      rules: [{ id: 1, service: s, srcSubnet: ['192.168.0.0/16'], srcZone: ['z'] }],
    };
    assert.equal(winner(spec, { proto: TCP, src: '10.0.0.1', dst: '1.1.1.1' }), 1);
    assert.equal(winner(spec, { proto: TCP, src: '192.168.1.1', dst: '1.1.1.1' }), 1);
    assert.equal(winner(spec, { proto: TCP, src: '172.16.0.1', dst: '1.1.1.1' }), null);
  });
  test('nested subnets of different rules: the shorter one still matches when the longer rule fails', () => {
    const spec: PolicySpec = {
      rules: [
        { id: 1, service: s, srcSubnet: ['10.0.0.0/8'], dstSubnet: ['2001:db8::/32'] },
        { id: 2, service: s, srcSubnet: ['10.0.0.0/24'], dstPort: [9] },
        { id: 3, service: s, srcSubnet: ['10.0.0.0/8'], dstSubnet: ['2001:db8::/64'], dstPort: [9] },
      ],
    };
    assert.equal(winner(spec, { proto: TCP, src: '10.0.0.5', dst: '2001:db8::1', dstPort: 80 }), 1);
    // both match on port 9: the longer source subnet beats rule 3's destination subnet
    assert.equal(winner(spec, { proto: TCP, src: '10.0.0.5', dst: '2001:db8::1', dstPort: 9 }), 2);
    assert.equal(winner(spec, { proto: TCP, src: '10.0.1.5', dst: '2001:db8::1', dstPort: 9 }), 3);
    assert.equal(winner(spec, { proto: TCP, src: '10.0.0.5', dst: '2001:db8:1::1', dstPort: 9 }), 2);
  });
  test('IPv6 and IPv4-mapped addresses; no cross-family fallback', () => {
    const spec: PolicySpec = {
      zones: {
        inet4: { addresses: ['0.0.0.0/0'] },
        inet6: { addresses: ['::/0'] },
        lan6: { addresses: ['2001:db8:1::/48'] },
      },
      rules: [
        { id: 1, service: 'v4', srcZone: ['inet4'] },
        { id: 2, service: 'v6', srcZone: ['inet6'] },
        { id: 3, service: 'lan', srcZone: ['lan6'], dstSubnet: ['2001:db8:2::/64'] },
      ],
    };
    const e = new Engine(makePolicy(spec));
    assert.equal(e.decide({ proto: TCP, src: '::ffff:198.18.0.1', dst: '198.18.0.2' }).rule?.id, 1);
    assert.equal(e.decide({ proto: TCP, src: '2001:db9::1', dst: '2001:db9::2' }).rule?.id, 2);
    assert.equal(e.decide({ proto: TCP, src: '2001:db8:1::1', dst: '2001:db8:2::9' }).rule?.id, 3);
    // lan6 lies inside inet6's /0 but is not its child: network nesting does not make a hierarchy
    assert.equal(e.decide({ proto: TCP, src: '2001:db8:1::1', dst: '2001:db8:3::9' }).rule, null);
    assert.equal(e.zoneOf('2001:db8:1:ffff::1')?.name, 'lan6');
  });
  test('malformed connections are refused with ENGINE_BAD_CONNECTION', () => {
    const e = new Engine(makePolicy({ rules: [] }));
    for (const bad of [
      { proto: TCP, src: '010.1.1.1', dst: '1.1.1.1' },
      { proto: TCP, src: '1.1.1.1', dst: '1.2.3.4/33' },
      { proto: 256, src: '1.1.1.1', dst: '1.1.1.1' },
      { proto: TCP, src: '1.1.1.1', dst: '1.1.1.1', dstPort: 70000 },
      { proto: TCP, src: '1.1.1.1', dst: '1.1.1.1', dstPort: 1.5 },
    ]) {
      assert.throws(
        () => e.decide(bad),
        (err: unknown) => err instanceof TzorpError && err.code === 'TZ1070',
      );
    }
  });
});

describe('explain', () => {
  const spec: PolicySpec = {
    zones: {
      c: { addresses: ['10.0.0.0/8'] },
      s: { addresses: ['192.168.0.0/16'] },
      's.x': { parent: 's', addresses: ['192.168.1.0/24'] },
    },
    services: { web: 'proxy', fwd: 'forward', web2: 'proxy', no: 'deny' },
    rules: [
      { id: 1, service: 'web', dstPort: [80], srcZone: ['c'], dstZone: ['s'] },
      { id: 2, service: 'web2', dstPort: [80], srcZone: ['c'], dstZone: ['s.x'] },
      { id: 3, service: 'fwd', dstPort: [80], srcZone: ['c'], dstZone: ['s.x'] },
      { id: 4, service: 'no', dstPort: [22] },
      { id: 5, service: 'fwd', proto: [UDP], dstPort: [80] },
    ],
  };
  const e = new Engine(makePolicy(spec));
  const ex = e.explain({ proto: TCP, src: '10.1.1.1', dst: '192.168.1.7', srcPort: 4000, dstPort: 80 });
  test('decision and service type', () => {
    assert.equal(ex.clientZone, 'c');
    assert.equal(ex.serverZone, 's.x');
    assert.equal(ex.rule?.id, 2);
    assert.equal(ex.serviceType, 'proxy');
  });
  test('every rule is a candidate: winner, losers with the deciding dimension, misses with the failing one', () => {
    const by = new Map(ex.candidates.map((k) => [k.rule, k]));
    assert.deepEqual(
      ex.candidates.map((k) => k.rule),
      [2, 3, 1, 4, 5],
    );
    assert.equal(by.get(2)!.outcome, 'winner');
    assert.equal(by.get(3)!.outcome, 'lost');
    assert.equal(by.get(3)!.decidedBy, 'id');
    assert.equal(by.get(1)!.decidedBy, 'dstZone');
    assert.match(by.get(1)!.reason, /destination zone/);
    assert.deepEqual(by.get(4)!.failed, ['dstPort']);
    assert.deepEqual(by.get(5)!.failed, ['proto']);
    const dz = by.get(2)!.dimensions.find((d) => d.dimension === 'dst_zone')!;
    assert.deepEqual([dz.status, dz.value, dz.score, dz.actual], ['match', 's.x', 2, 's.x']);
    const dzp = by.get(1)!.dimensions.find((d) => d.dimension === 'dst_zone')!;
    assert.deepEqual([dzp.status, dzp.value, dzp.score], ['match', 's', 1]);
  });
  test('agrees with decide', () => {
    assert.equal(e.decide({ proto: TCP, src: '10.1.1.1', dst: '192.168.1.7', dstPort: 80 }).rule?.id, 2);
    const none = e.explain({ proto: TCP, src: '10.1.1.1', dst: '192.168.1.7', dstPort: 443 });
    assert.equal(none.rule, null);
    assert.equal(none.serviceType, null);
    assert.ok(none.candidates.every((k) => k.outcome === 'no-match'));
  });
});

test('zeroScore: every score field, 0, in SCORE_FIELDS order (Object.values of a tuple is the tuple)', () => {
  const z = zeroScore();
  assert.deepEqual(
    Object.keys(z),
    SCORE_FIELDS.map(([f]) => f),
  );
  assert.ok(Object.values(z).every((v) => v === 0));
  assert.notEqual(zeroScore(), z, 'a fresh object each time');
});
