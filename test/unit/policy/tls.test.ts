// The `tls:` block of a proxy service (docs/tls.md): resolved values and defaults, and every mistake
// reported at its own file:line:col.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { ProxyService } from '../../../src/policy/index.ts';
import { load, posOf, show } from './helpers.ts';

const policy = (tls: string, proxy = 'plug') => `zones:
  clients: { addresses: [198.18.10.0/23] }
  servers: { addresses: [198.18.20.0/23] }
services:
  tlsplug:
    type: proxy
    proxy: ${proxy}
    tls: ${tls}
rules:
  - { id: 1, service: tlsplug, proto: tcp, dst_port: 443, src_zone: clients, dst_zone: servers }
`;

function service(text: string): ProxyService {
  const r = load(text);
  assert.equal(r.errors.length, 0, show(r.errors));
  return r.policy!.services.get('tlsplug') as ProxyService;
}

test('passthrough with an SNI policy resolves; globs lower case; missing defaults to reject with an allow list', () => {
  const s = service(
    policy('{ mode: passthrough, sni: { allow: ["*.Example.ORG"], deny: [bad.example.org] } }'),
  );
  assert.equal(s.tls?.mode, 'passthrough');
  assert.deepEqual(s.tls?.sni, { allow: ['*.example.org'], deny: ['bad.example.org'], missing: 'reject' });
  assert.equal(s.tls?.minVersion, 'TLSv1.2');
  assert.equal(s.tls?.serverVerify, true);
});

test('without an allow list a missing name is accepted unless said otherwise; min_version TLSv1.3', () => {
  const s = service(policy('{ mode: passthrough, min_version: TLSv1.3 }'));
  assert.equal(s.tls?.sni.missing, 'accept');
  assert.equal(s.tls?.minVersion, 'TLSv1.3');
  const t = service(policy('{ mode: passthrough, sni: { missing: reject } }'));
  assert.equal(t.tls?.sni.missing, 'reject');
});

test('no tls block: no tls layer', () => {
  assert.equal(service(policy('null')).tls, undefined);
});

for (const [name, tls, proxy, code, marker, re] of [
  ['mode missing', '{ sni: { allow: [a.example] } }', 'plug', 'TZ1012', 'tls:', /has no 'mode'/],
  ['unknown mode', '{ mode: bump }', 'plug', 'TZ1013', 'bump', /not one of: passthrough, inspect/],
  [
    'implicit on a proxy other than FTP',
    '{ mode: inspect, ca: { cert: /c, key: /k }, implicit: true }',
    'http',
    'TZ1041',
    'implicit',
    /tls implicit is for proxy 'ftp'/,
  ],
  [
    'implicit neither a boolean nor auto',
    '{ mode: inspect, ca: { cert: /c, key: /k }, implicit: sometimes }',
    'ftp',
    'TZ1010',
    'sometimes',
    /tls implicit must be true, false or auto/,
  ],
  ['inspect without a CA', '{ mode: inspect }', 'http', 'TZ1012', 'mode', /needs 'ca: \{ cert, key \}'/],
  [
    'passthrough on the HTTP proxy',
    '{ mode: passthrough }',
    'http',
    'TZ1041',
    'passthrough',
    /only proxy 'plug'/,
  ],
  [
    'a bad glob',
    '{ mode: passthrough, sni: { deny: ["bad name"] } }',
    'plug',
    'TZ1013',
    '"bad name"',
    /not a host name glob/,
  ],
  ['unknown field', '{ mode: passthrough, snii: {} }', 'plug', 'TZ1011', 'snii', /unknown field 'snii'/],
  [
    'bad min_version',
    '{ mode: passthrough, min_version: TLSv1.0 }',
    'plug',
    'TZ1013',
    'TLSv1.0',
    /min_version/,
  ],
  [
    'bad missing',
    '{ mode: passthrough, sni: { missing: maybe } }',
    'plug',
    'TZ1013',
    'maybe',
    /accept, reject/,
  ],
] as const) {
  test(`error at file:line:col: ${name}`, () => {
    const text = policy(tls, proxy);
    const r = load(text);
    const e = r.errors.find((x) => x.code === code);
    assert.ok(e, show(r.errors));
    assert.match(e.message, re);
    assert.deepEqual({ line: e.pos?.line, col: e.pos?.col }, posOf(text, marker));
  });
}

test('warnings: server_verify false, and settings that passthrough ignores', () => {
  const text = policy('{ mode: passthrough, server_verify: false, server_ca_file: /etc/ssl/x.pem }');
  const r = load(text);
  assert.equal(r.errors.length, 0, show(r.errors));
  const w = r.warnings.map((x) => `${x.code} ${x.message}`).join('\n');
  assert.match(w, /TZ1530 .*server_verify is false/);
  assert.match(w, /TZ1531 .*server_ca_file has no effect in passthrough/);
});
