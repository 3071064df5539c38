// The policy step that binds proxy options once per generation (src/proxy/bind.ts): typed options for
// good services, every problem at its option's file:line:col, unknown proxies at the service.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { loadPolicyText } from '../../../src/policy/index.ts';
import { bindProxies } from '../../../src/proxy/index.ts';
import { createCa } from '../../../src/proxy/tls/certs.ts';

const POLICY = `zones:
  lan: { addresses: [198.18.1.0/24] }
  net: { addresses: [0.0.0.0/0] }
services:
  web: { type: proxy, proxy: http, options: { timeout: 5000 } }
  ftp:
    type: proxy
    proxy: ftp
    options:
      data_mode: sideways
      max_line_length: 10
      nope: 1
  relay:
    type: proxy
    proxy: plug
    options: { timeout: soon, copy_to_client: false, buffer: 1 }
  gopher: { type: proxy, proxy: gopher }
rules:
  - { id: 1, src_zone: lan, dst_zone: net, dst_port: 80, service: web }
  - { id: 2, src_zone: lan, dst_zone: net, dst_port: 21, service: ftp }
  - { id: 3, src_zone: lan, dst_zone: net, dst_port: 443, service: relay }
  - { id: 4, src_zone: lan, dst_zone: net, dst_port: 70, service: gopher }
`;

/** The zones of the TLS tests' policies, up to their services. */
const LAB_HEAD = `zones:
  lan: { addresses: [198.18.1.0/24] }
  net: { addresses: [198.18.2.0/24] }
services:
`;

function load() {
  const r = loadPolicyText(POLICY, 'p.yaml', undefined, { lint: false });
  assert.ok(r.policy, r.errors.map((e) => e.format()).join('\n'));
  return r.policy;
}

test('good options are parsed once into typed options and a core factory', () => {
  const b = bindProxies(load());
  assert.deepEqual([...b.services.keys()], ['web']);
  const web = b.services.get('web')!;
  assert.equal(web.proxy, 'http');
  assert.equal((web.options as { idleTimeoutMs: number }).idleTimeoutMs, 5000);
  const core = web.createCore({ sessionId: 's', service: 'web', clientZone: null, inband: false });
  assert.equal(core.describe().proxy, 'http');
});

test('every problem of every service is reported at its option, in file order, an unknown proxy at its service', () => {
  // (the list of known options is cut off: it is long and not what this test is about)
  const errors = bindProxies(load()).errors.map((e) =>
    e.format().replace(/ \(known: [^)]*\)$/, ' (known: …)'),
  );
  assert.deepEqual(errors, [
    "p.yaml:10:7: TZ1013 service ftp (ftp options): 'data_mode' must be one of keep, passive, active",
    "p.yaml:11:7: TZ1013 service ftp (ftp options): 'max_line_length' must be an integer from 16 to 65536 (bytes)",
    "p.yaml:12:7: TZ1011 service ftp (ftp options): unknown ftp option 'nope' (known: …)",
    "p.yaml:16:16: TZ1010 service relay (plug options): plug option 'timeout' must be an integer (milliseconds), not 'soon'",
    "p.yaml:16:54: TZ1011 service relay (plug options): unknown plug option 'buffer' (known: …)",
    'p.yaml:17:3: TZ1041 service gopher: tzorp has no proxy named "gopher"',
  ]);
});

test('tls inspect on FTP: the core gets the TLS layer itself; a non-transparent FTP service is refused at its tls block', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tzorp-bind-'));
  try {
    const pem = await createCa({ name: 'bind test CA' });
    const ca = { cert: join(dir, 'ca.crt'), key: join(dir, 'ca.key') };
    writeFileSync(ca.cert, pem.certPem);
    writeFileSync(ca.key, pem.keyPem);
    const text = `${LAB_HEAD}  ftps:
    type: proxy
    proxy: ftp
    tls: { mode: inspect, ca: { cert: ${ca.cert}, key: ${ca.key} }, implicit: true }
  ftps_inband:
    type: proxy
    proxy: ftp
    router: inband
    options: { transparent_mode: false }
    tls: { mode: inspect, ca: { cert: ${ca.cert}, key: ${ca.key} } }
rules:
  - { id: 1, src_zone: lan, dst_zone: net, dst_port: 21, service: ftps }
  - { id: 2, src_zone: lan, dst_port: 2100, service: ftps_inband }
`;
    const r = loadPolicyText(text, 'p.yaml', undefined, { lint: false });
    assert.ok(r.policy, r.errors.map((e) => e.format()).join('\n'));
    const b = bindProxies(r.policy);
    assert.deepEqual(
      b.errors.map((e) => e.format().replace(/ \(a non-transparent.*$/, '')),
      ["p.yaml:14:5: TZ1041 service ftps_inband: tls mode 'inspect' on FTP needs a transparent FTP service"],
    );
    const core = b.services
      .get('ftps')!
      .createCore({ sessionId: 's', service: 'ftps', clientZone: null, inband: false });
    // implicit: true: the session waits for the client's ClientHello before it contacts the server
    const cmds = core.handle({
      type: 'start',
      now: 0,
      client: { host: '198.18.1.2', port: 40000, family: 4 },
      clientLocal: { host: '198.18.2.2', port: 21, family: 4 },
    });
    assert.deepEqual(
      cmds.map((c) => c.type),
      ['setTimer', 'setTimer'],
    );
    assert.deepEqual(core.describe().tls, 'hello');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('tls inspect: a CA file or server_ca_file that cannot be used is reported at the line naming it', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tzorp-bind-'));
  try {
    const a = await createCa({ name: 'bind test CA a' });
    const b = await createCa({ name: 'bind test CA b' });
    writeFileSync(join(dir, 'a.crt'), a.certPem);
    writeFileSync(join(dir, 'a.key'), a.keyPem);
    writeFileSync(join(dir, 'b.key'), b.keyPem);
    const text = (cert: string, key: string, bundle: string) => `${LAB_HEAD}  web:
    type: proxy
    proxy: http
    tls:
      mode: inspect
      ca:
        cert: ${join(dir, cert)}
        key: ${join(dir, key)}
      server_ca_file: ${join(dir, bundle)}
rules:
  - { id: 1, src_zone: lan, dst_zone: net, dst_port: 443, service: web }
`;
    const errorsOf = (cert: string, key: string, bundle = 'a.crt') => {
      const r = loadPolicyText(text(cert, key, bundle), 'p.yaml', undefined, { lint: false });
      assert.ok(r.policy, r.errors.map((e) => e.format()).join('\n'));
      return bindProxies(r.policy).errors.map((e) => e.format());
    };
    assert.deepEqual(errorsOf('a.crt', 'a.key'), []);
    const [missingCert] = errorsOf('none.crt', 'a.key');
    assert.match(
      missingCert!,
      /^p\.yaml:11:9: TZ4101 service web tls: the CA certificate .*none\.crt cannot be read: ENOENT/,
    );
    const [otherKey] = errorsOf('a.crt', 'b.key');
    assert.match(otherKey!, /^p\.yaml:12:9: TZ4101 service web tls: .*b\.key is not the key of .*a\.crt/);
    const [noBundle] = errorsOf('a.crt', 'a.key', 'none.pem');
    assert.match(
      noBundle!,
      /^p\.yaml:13:7: TZ4101 service web tls: server_ca_file .*none\.pem cannot be read/,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
