// Every policy error code of the catalogue, each triggered by a small policy, with its exact position.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { E } from '../../../src/errors.ts';
import { loadPolicyFile } from '../../../src/policy/index.ts';
import { codes, load, posOf, show } from './helpers.ts';

interface Case {
  name: string;
  text: string;
  code: string;
  /** The text the error points at (first occurrence, or [marker, nth]). */
  at: string | [string, number];
  message?: RegExp;
}

const Z = `zones:
  a: { addresses: [198.18.1.0/24] }
  b: { addresses: [198.18.2.0/24] }
`;
const S = `services:
  p: { type: proxy, proxy: plug }
`;

const CASES: Case[] = [
  {
    name: 'YAML syntax',
    text: 'zones:\n  a: [1, 2\n',
    code: 'TZ1002',
    at: ['', 1],
    message: /YAML syntax error/,
  },
  {
    name: 'wrong type: zones is a list',
    text: 'zones: [a, b]\n',
    code: 'TZ1010',
    at: '[a, b]',
    message: /zones must be a mapping, not a list/,
  },
  {
    name: 'wrong type: max_sessions is not a number',
    text: `${Z}services:\n  p: { type: proxy, proxy: plug, max_sessions: lots }\n`,
    code: 'TZ1010',
    at: 'lots',
  },
  {
    name: 'wrong type: logging is a quoted string',
    text: `services:\n  d: { type: deny, logging: "yes" }\n`,
    code: 'TZ1010',
    at: '"yes"',
  },
  {
    name: 'unknown top-level field with a hint',
    text: `zone:\n  a: { addresses: [198.18.1.0/24] }\n`,
    code: 'TZ1011',
    at: 'zone:',
    message: /unknown field 'zone' in the policy \(did you mean 'zones'\?\)/,
  },
  {
    name: 'unknown zone field',
    text: `zones:\n  a: { adresses: [198.18.1.0/24] }\n`,
    code: 'TZ1011',
    at: 'adresses',
    message: /did you mean 'addresses'/,
  },
  {
    name: 'unknown rule field',
    text: `${Z}${S}rules:\n  - { service: p, dst_prot: 80 }\n`,
    code: 'TZ1011',
    at: 'dst_prot',
    message: /did you mean 'dst_port'/,
  },
  {
    name: 'misspelt proxy service field is not taken as a proxy option',
    text: `services:\n  p: { type: proxy, proxy: plug, max_sesions: 3 }\n`,
    code: 'TZ1011',
    at: 'max_sesions',
    message: /did you mean 'max_sessions'/,
  },
  {
    name: 'unknown field of a deny service',
    text: `services:\n  d: { type: deny, proxy: plug }\n`,
    code: 'TZ1011',
    at: 'proxy:',
  },
  {
    name: 'missing service type',
    text: `services:\n  p: { proxy: plug }\n`,
    code: 'TZ1012',
    at: 'p:',
    message: /has no 'type'/,
  },
  { name: 'missing proxy', text: `services:\n  p: { type: proxy }\n`, code: 'TZ1012', at: 'p:' },
  {
    name: 'rule without service',
    text: `${Z}rules:\n  - { dst_port: 80 }\n`,
    code: 'TZ1012',
    at: '{ dst_port',
  },
  {
    name: 'directed router without targets',
    text: `services:\n  p: { type: proxy, proxy: plug, router: { type: directed } }\n`,
    code: 'TZ1012',
    at: '{ type: directed',
  },
  {
    name: 'bad service type',
    text: `services:\n  p: { type: proxi }\n`,
    code: 'TZ1013',
    at: 'proxi',
    message: /did you mean 'proxy'/,
  },
  {
    name: 'bad deny method',
    text: `services:\n  d: { type: deny, ipv4: icmp-no-route }\n`,
    code: 'TZ1013',
    at: 'icmp-no-route',
  },
  { name: 'bad protocol', text: `${S}rules:\n  - { service: p, proto: tpc }\n`, code: 'TZ1013', at: 'tpc' },
  {
    name: 'rule id above 31 bits',
    text: `${S}rules:\n  - { id: 2147483648, service: p }\n`,
    code: 'TZ1013',
    at: '2147483648',
    message: /between 1 and 2147483647/,
  },
  { name: 'rule id 0', text: `${S}rules:\n  - { id: 0, service: p }\n`, code: 'TZ1013', at: '0,' },
  {
    name: 'empty list',
    text: `${S}rules:\n  - { service: p, dst_port: [] }\n`,
    code: 'TZ1013',
    at: '[]',
    message: /omit the field/,
  },
  { name: 'bad zone name', text: `zones:\n  "a b": {}\n`, code: 'TZ1013', at: '"a b"' },
  {
    name: 'bad interface name',
    text: `${S}rules:\n  - { service: p, iface: "eth0/1" }\n`,
    code: 'TZ1013',
    at: '"eth0/1"',
  },
  {
    name: 'octal-looking address',
    text: `zones:\n  a: { addresses: [010.1.1.1] }\n`,
    code: 'TZ1020',
    at: '010.1.1.1',
    message: /no leading zeros/,
  },
  {
    name: 'prefix too long',
    text: `zones:\n  a: { addresses: [1.2.3.4/33] }\n`,
    code: 'TZ1020',
    at: '1.2.3.4/33',
    message: /larger than 32/,
  },
  { name: 'bad IPv6', text: `zones:\n  a: { addresses: ["2001:db8::1::2"] }\n`, code: 'TZ1020', at: '"2001' },
  {
    name: 'short IPv4',
    text: `${S}rules:\n  - { service: p, src_subnet: 1.2.3 }\n`,
    code: 'TZ1020',
    at: '1.2.3',
  },
  {
    name: 'listen address of the wrong family',
    text: `settings: { listen_v6: 127.0.0.1 }\n`,
    code: 'TZ1020',
    at: '127.0.0.1',
  },
  {
    name: 'port too large',
    text: `${S}rules:\n  - { service: p, dst_port: 65536 }\n`,
    code: 'TZ1021',
    at: '65536',
  },
  {
    name: 'reversed port range',
    text: `${S}rules:\n  - { service: p, src_port: "90-80" }\n`,
    code: 'TZ1021',
    at: '"90-80"',
    message: /starts after it ends/,
  },
  {
    name: 'port garbage',
    text: `${S}rules:\n  - { service: p, dst_port: http }\n`,
    code: 'TZ1021',
    at: 'http',
  },
  {
    name: 'bad directed target',
    text: `services:\n  p: { type: proxy, proxy: plug, router: { type: directed, targets: ["198.18.1.1"] } }\n`,
    code: 'TZ1022',
    at: '"198.18.1.1"',
  },
  {
    name: 'unbracketed IPv6 target',
    text: `services:\n  p: { type: proxy, proxy: plug, router: { type: directed, targets: ["2001:db8::1:80"] } }\n`,
    code: 'TZ1022',
    at: '"2001',
  },
  {
    name: 'the same network in two zones',
    text: `zones:\n  a: { addresses: [198.18.1.0/24] }\n  b: { addresses: [198.18.1.7/24] }\n`,
    code: 'TZ1030',
    at: '198.18.1.7/24',
    message: /198\.18\.1\.0\/24 is already in zone 'a'/,
  },
  {
    name: 'two /0 zones of one family (KZorp does not notice; we do)',
    text: `zones:\n  a: { addresses: [0.0.0.0/0] }\n  b: { addresses: ["::/0", 0.0.0.0/0] }\n`,
    code: 'TZ1030',
    at: ['0.0.0.0/0', 2],
  },
  {
    name: 'IPv4-mapped duplicate of an IPv4 network',
    text: `zones:\n  a: { addresses: [198.18.1.1] }\n  b: { addresses: ["::ffff:198.18.1.1"] }\n`,
    code: 'TZ1030',
    at: '"::ffff',
  },
  {
    name: 'unknown zone in a rule, with a hint',
    text: `${Z}${S}rules:\n  - { service: p, src_zone: [a, bb] }\n`,
    code: 'TZ1031',
    at: 'bb',
    message: /unknown zone 'bb' \(did you mean 'b'\?\)/,
  },
  { name: 'unknown parent', text: `zones:\n  a: { parent: nope }\n`, code: 'TZ1031', at: 'nope' },
  {
    name: 'unknown zone in limit_target_zones_to',
    text: `services:\n  p: { type: proxy, proxy: plug, limit_target_zones_to: [x] }\n`,
    code: 'TZ1031',
    at: 'x]',
  },
  {
    name: 'unknown zone in management',
    text: `management:\n  - { proto: tcp, dst_port: 22, src_zone: admins }\n`,
    code: 'TZ1031',
    at: 'admins',
  },
  {
    name: 'parent cycle',
    text: `zones:\n  a: { parent: c }\n  b: { parent: a }\n  c: { parent: b }\n`,
    code: 'TZ1032',
    at: 'c }',
    message: /cycle: a -> c -> b -> a|cycle/,
  },
  { name: 'a zone that is its own parent', text: `zones:\n  a: { parent: a }\n`, code: 'TZ1032', at: 'a }' },
  {
    name: 'hierarchy too deep',
    text: `zones:\n${Array.from({ length: 33 }, (_, i) => `  z${i}: {${i ? ` parent: z${i - 1}` : ''} }`).join('\n')}\n`,
    code: 'TZ1033',
    at: 'z30 }',
    message: /zone 'z31' is at depth 32/,
  },
  {
    name: 'zone defined twice',
    text: `zones:\n  a: {}\n  a: {}\n`,
    code: 'TZ1034',
    at: ['a:', 2],
  },
  {
    name: 'field given twice',
    text: `services:\n  d: { type: deny, ipv4: drop, ipv4: tcp-reset }\n`,
    code: 'TZ1034',
    at: ['ipv4', 2],
  },
  {
    name: 'service defined twice',
    text: `services:\n  d: { type: deny }\n  d: { type: deny }\n`,
    code: 'TZ1034',
    at: ['d:', 2],
  },
  {
    name: 'unknown service',
    text: `${S}rules:\n  - { service: pp }\n`,
    code: 'TZ1040',
    at: 'pp }',
    message: /did you mean 'p'/,
  },
  {
    name: 'forward service with an inband router',
    text: `services:\n  f: { type: forward, router: { type: inband } }\n`,
    code: 'TZ1041',
    at: '{ type: inband',
  },
  {
    name: 'forward service with two directed targets',
    text: `services:\n  f: { type: forward, router: { type: directed, targets: ["198.18.1.1:22", "198.18.1.2:22"] } }\n`,
    code: 'TZ1041',
    at: '["198',
    message: /exactly one target/,
  },
  {
    name: 'two services on one listener port',
    text: `services:\n  p: { type: proxy, proxy: plug, listen_port: 50001 }\n  q: { type: proxy, proxy: plug }\n`,
    code: 'TZ1041',
    at: 'q:',
  },
  {
    name: 'duplicate rule id',
    text: `${S}rules:\n  - { id: 7, service: p }\n  - { id: 7, service: p, dst_port: 1 }\n`,
    code: 'TZ1050',
    at: ['7', 2],
    message: /already used by the rule at line 4/,
  },
  {
    name: 'no rule id left below the tproxy mark',
    text: `settings: { tproxy_mark: 0x4, service_mark_mask: 0xff00 }\n${S}rules:\n  - { service: p }\n  - { service: p, dst_port: 1 }\n  - { service: p, dst_port: 2 }\n  - { service: p, dst_port: 3 }\n`,
    code: 'TZ1051',
    at: '{ service: p, dst_port: 3',
  },
  {
    name: 'service mark mask overlaps the tproxy mark',
    text: `settings: { service_mark_mask: 0x80000001 }\n`,
    code: 'TZ1060',
    at: '0x80000001',
  },
  { name: 'reserved routing table', text: `settings: { routing_table: 254 }\n`, code: 'TZ1060', at: '254' },
];

describe('policy error codes, each with its position', () => {
  for (const c of CASES) {
    it(`${c.code}: ${c.name}`, () => {
      const r = load(c.text);
      assert.equal(r.policy, null, 'an invalid policy gives no model');
      const hit = r.errors.find((e) => e.code === c.code);
      assert.ok(hit, `expected ${c.code}, got:\n${show(r.errors)}`);
      const [marker, nth] = Array.isArray(c.at) ? c.at : [c.at, 1];
      const want = marker === '' ? { line: 1, col: 1 } : posOf(c.text, marker, nth);
      if (c.code !== 'TZ1002')
        assert.deepEqual({ line: hit.pos?.line, col: hit.pos?.col }, want, show([hit]));
      assert.equal(hit.pos?.file, 'p.yaml');
      if (c.message) assert.match(hit.message, c.message);
    });
  }

  it('every policy error code (TZ10xx) of the catalogue has a case here or below', () => {
    const covered = new Set([...CASES.map((c) => c.code), 'TZ1001', 'TZ1003', 'TZ1004']);
    const policyCodes = Object.values(E)
      .map((e) => e.code)
      .filter((c) => /^TZ10[0-6]\d$/.test(c));
    for (const code of policyCodes) assert.ok(covered.has(code), `no test for ${code}`);
  });

  it('YAML syntax errors point at the offending line', () => {
    const text = 'zones:\n  a: { addresses: [198.18.1.0/24] }\n   b: {}\nrules: []\n';
    const r = load(text);
    assert.ok(r.errors.length > 0 && r.errors.every((e) => e.code === 'TZ1002'), show(r.errors));
    assert.equal(r.errors[0]?.pos?.line, 3);
  });

  it('collects every error of a file in one pass, in file order', () => {
    const text = `zones:\n  a: { addresses: [010.1.1.1, 1.2.3.4/33] }\nservices:\n  p: { type: proxy }\nrules:\n  - { service: q, dst_port: 70000, src_zone: x }\n`;
    const r = load(text);
    assert.deepEqual(codes(r.errors), ['TZ1020', 'TZ1020', 'TZ1012', 'TZ1040', 'TZ1021', 'TZ1031']);
    const lines = r.errors.map((e) => e.pos?.line ?? 0);
    assert.deepEqual(
      lines,
      [...lines].sort((a, b) => a - b),
    );
  });

  it('TZ1004: a file with very many errors is reported in bounded size', () => {
    const text = `zones:\n${Array.from({ length: 3000 }, (_, i) => `  z${i}: { addresses: [300.0.0.${i % 250}] }`).join('\n')}\n`;
    const r = load(text);
    assert.equal(r.errors.length, 1001);
    const last = r.errors[r.errors.length - 1];
    assert.equal(last?.code, 'TZ1004');
    assert.match(last?.message ?? '', /2000 more errors/);
  });

  const dir = mkdtempSync(join(tmpdir(), 'tzorp-policy-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('TZ1001: a file that cannot be read', async () => {
    const f = join(dir, 'missing.yaml');
    const r = await loadPolicyFile(f);
    assert.deepEqual(codes(r.errors), ['TZ1001']);
    assert.equal(r.errors[0]?.pos?.file, f);
    assert.match(r.errors[0]?.message ?? '', /no such file/);
    const r2 = await loadPolicyFile(dir);
    assert.deepEqual(codes(r2.errors), ['TZ1001']);
  });

  it('loadPolicyFile reports positions against the file name and hashes the bytes', async () => {
    const f = join(dir, 'p.yaml');
    writeFileSync(f, 'zones:\n  a: { addresses: [1.2.3.4/40] }\n');
    const r = await loadPolicyFile(f);
    assert.equal(
      r.errors[0]?.format(),
      `${f}:2:20: TZ1020 zone 'a' address '1.2.3.4/40': prefix length 40 is larger than 32`,
    );
    writeFileSync(f, 'zones: {}\n');
    const ok = await loadPolicyFile(f);
    assert.equal(ok.policy?.source.file, f);
    assert.equal(ok.policy?.source.sha256, createHash('sha256').update('zones: {}\n').digest('hex'));
  });
});
