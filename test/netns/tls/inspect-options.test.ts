// TLS inspect options through `tzorp run` in namespaces, with real peers (a Node HTTPS server with
// certificates from openssl-made CAs, curl as the client): the settings the main inspect test leaves at
// what it needs.
//   - `server_verify: false`: a server whose certificate no trust anchor signed is inspected anyway
//     (the client still gets tzorp's certificate for the name), and `tzorp check` warns with TZ1530;
//   - no `server_ca_file`: the trust anchors are the system's bundle (or node's roots), not "anything":
//     a server signed by a private CA is refused with 502 and the reason logged;
//   - `min_version: TLSv1.3`: a client whose highest version is TLS 1.2 gets a protocol_version alert
//     and the server never sees a connection from tzorp; a TLS 1.3 client is inspected.
// Each on IPv4 and IPv6.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { createLab, type Lab, type LabProcess, netnsSkipReason } from '../../harness/netns.ts';
import { testCa, testLeaf } from './test-ca.ts';
import { curlTls, LAB_ZONES, runTzorp, tzorpCa } from './tls-lab.ts';

const skip = netnsSkipReason();
const dir = mkdtempSync(join(tmpdir(), 'tzorp-inspect-opts-'));
after(() => rmSync(dir, { recursive: true, force: true }));

let lab: Lab;
let server: LabProcess;
let daemon: LabProcess;
let tzca: string;
let policy: string;

before(async () => {
  if (skip) return;
  const privateCa = testCa(dir, 'private-ca');
  const san = 'DNS:www.example.org,IP:198.18.2.2,IP:2001:db8:2::2';
  const leaf = testLeaf(dir, 'leaf', privateCa, 'www.example.org', san);
  lab = await createLab();
  tzca = tzorpCa(dir, 'tzorp-ca', 'tzorp opts').cert;
  const ca = `ca: { cert: ${tzca}, key: ${join(dir, 'tzorp-ca', 'ca.key')} }`;
  // one server certificate from a private CA that no service is told about, on three ports
  server = lab.spawnTs('server', 'test/netns/tls/inspect-server.ts', [
    `7443:${leaf.cert}:${leaf.key}`,
    `7444:${leaf.cert}:${leaf.key}`,
    `7445:${leaf.cert}:${leaf.key}`,
  ]);
  await server.waitFor(/ready/);
  policy = join(dir, `${lab.id}.yaml`);
  writeFileSync(
    policy,
    `${LAB_ZONES}services:
  unverified:
    type: proxy
    proxy: http
    tls: { mode: inspect, ${ca}, server_verify: false }
  system_roots:
    type: proxy
    proxy: http
    tls: { mode: inspect, ${ca} }
  modern:
    type: proxy
    proxy: http
    tls: { mode: inspect, ${ca}, server_verify: false, min_version: TLSv1.3 }
rules:
  - { id: 1, service: unverified, proto: tcp, src_zone: clients, dst_zone: servers, dst_port: 7443 }
  - { id: 2, service: system_roots, proto: tcp, src_zone: clients, dst_zone: servers, dst_port: 7444 }
  - { id: 3, service: modern, proto: tcp, src_zone: clients, dst_zone: servers, dst_port: 7445 }
management:
  - { proto: tcp, dst_port: 22, src_zone: clients }
`,
  );
  daemon = await runTzorp(lab, policy, join(dir, `${lab.id}.sock`));
});

after(async () => {
  if (skip) return;
  await lab?.destroy();
});

const curl = (family: 4 | 6, port: number, extra: string[] = []) =>
  curlTls(lab, tzca, 'www.example.org', family, port, '/', extra);

const requests = (port: number) =>
  server
    .stdout()
    .split('\n')
    .filter((l) => l.startsWith(`req ${port} `)).length;

test('tzorp check warns that a service does not verify its servers (TZ1530)', { skip }, () => {
  let out = '';
  try {
    out = execFileSync(process.execPath, ['bin/tzorp', 'check', policy], { encoding: 'utf8', stdio: 'pipe' });
  } catch (e) {
    const x = e as { stdout?: string; stderr?: string };
    out = `${x.stdout ?? ''}${x.stderr ?? ''}`;
  }
  assert.match(out, /TZ1530/);
  assert.match(out, /unverified/);
});

for (const family of [4, 6] as const) {
  test(`IPv${family}: server_verify false inspects a server no trust anchor signed`, {
    skip,
    timeout: 60_000,
  }, async () => {
    const before = requests(7443);
    const r = await curl(family, 7443, ['-w', '\n%{http_code} %{ssl_verify_result}']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^hello from www\.example\.org over TLSv1\.3/m);
    assert.match(r.stdout, /\n200 0$/, "the client verified tzorp's certificate for the name");
    assert.equal(requests(7443), before + 1);
  });

  test(`IPv${family}: without server_ca_file a privately signed server is refused (502, unknown_issuer)`, {
    skip,
    timeout: 60_000,
  }, async () => {
    const before = requests(7444);
    const r = await curl(family, 7444, ['-w', '%{http_code}', '-o', '/dev/null']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, '502');
    assert.equal(requests(7444), before, 'no request reached the refused server');
    await daemon.waitFor(/Server TLS session refused.*reason='unknown_issuer'/, 10_000);
  });

  test(`IPv${family}: min_version TLSv1.3 refuses a TLS 1.2 client with an alert; a TLS 1.3 client is inspected`, {
    skip,
    timeout: 60_000,
  }, async () => {
    const before = requests(7445);
    const old = await curl(family, 7445, ['--tls-max', '1.2']);
    assert.notEqual(old.code, 0, 'the TLS 1.2 client is refused');
    assert.match(old.stderr, /protocol version|alert/i, old.stderr);
    assert.equal(requests(7445), before, 'the server never saw the refused client');
    const now = await curl(family, 7445, ['--tlsv1.3']);
    assert.equal(now.code, 0, now.stderr);
    assert.match(now.stdout, /^hello from www\.example\.org over TLSv1\.3/m);
    assert.equal(requests(7445), before + 1);
  });
}
