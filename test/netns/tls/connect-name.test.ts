// CONNECT to a host name through the explicit proxy with TLS inspect, end to end (issue 13): the
// firewall resolves the name (the lab's fw namespace gets an /etc/hosts of its own: `ip netns exec`
// mounts /etc/netns/<ns>/hosts over /etc/hosts), and a client that sends no SNI (openssl s_client
// -noservername) still gets a certificate for the name it asked the proxy for, the server is asked for
// and verified against that name, and the SNI policy decides by it (a denied name gets no server).
// IPv4 and IPv6 (the name resolves to both; the proxy is reached over each family).
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { ADDR, createLab, type Lab, type LabProcess, netnsSkipReason } from '../../harness/netns.ts';
import { testCa, testLeaf } from './test-ca.ts';
import { LAB_ZONES, runTzorp, tzorpCa } from './tls-lab.ts';

const skip = netnsSkipReason();
const dir = mkdtempSync(join(tmpdir(), 'tzorp-connect-name-'));
after(() => rmSync(dir, { recursive: true, force: true }));

let lab: Lab;
let server: LabProcess;
let tzca: string;
let hostsDir = '';

before(async () => {
  if (skip) return;
  const ca = testCa(dir, 'connect-ca');
  const san = 'DNS:www.example.org,DNS:bad.example.org';
  const leaf = testLeaf(dir, 'named', ca, 'www.example.org', san);
  lab = await createLab();
  hostsDir = join('/etc/netns', lab.ns.fw);
  mkdirSync(hostsDir, { recursive: true });
  writeFileSync(
    join(hostsDir, 'hosts'),
    `127.0.0.1 localhost\n${ADDR.server4} www.example.org bad.example.org\n${ADDR.server6} www.example.org bad.example.org\n`,
  );
  tzca = tzorpCa(dir, 'tzorp-ca', 'tzorp connect').cert;
  server = lab.spawnTs('server', 'test/netns/tls/inspect-server.ts', [`443:${leaf.cert}:${leaf.key}`]);
  await server.waitFor(/ready/);
  const policy = join(dir, `${lab.id}.yaml`);
  writeFileSync(
    policy,
    `${LAB_ZONES}services:
  explicit:
    type: proxy
    proxy: http
    router: { type: inband }
    options:
      transparent_mode: false
      target_port_range: "443"
    tls:
      mode: inspect
      ca: { cert: ${tzca}, key: ${join(dir, 'tzorp-ca', 'ca.key')} }
      server_ca_file: ${ca.cert}
      sni: { deny: [bad.example.org] }
rules:
  - { id: 3, service: explicit, proto: tcp, src_zone: clients, dst_port: 3128 }
management:
  - { proto: tcp, dst_port: 22, src_zone: clients }
`,
  );
  await runTzorp(lab, policy, join(dir, `${lab.id}.sock`));
});

after(async () => {
  if (skip) return;
  await lab?.destroy();
  if (hostsDir) rmSync(hostsDir, { recursive: true, force: true });
  try {
    rmdirSync('/etc/netns'); // (only when empty: another user's namespaces may have theirs)
  } catch {
    // not empty, or not there
  }
});

/** openssl s_client through the proxy to `name`:443 without SNI; sends one request, returns all. */
function sClient(proxy: string, name: string) {
  return lab.exec(
    'client',
    [
      'sh',
      '-c',
      `printf 'GET / HTTP/1.1\\r\\nHost: ${name}\\r\\nConnection: close\\r\\n\\r\\n' | timeout 20 openssl s_client -proxy ${proxy} -connect ${name}:443 -noservername -CAfile ${tzca} -verify_hostname ${name} -verify_return_error -ign_eof 2>&1`,
    ],
    { allowFail: true, timeoutMs: 40_000 },
  );
}

const requests = () =>
  server
    .stdout()
    .split('\n')
    .filter((l) => l.startsWith('req ')).length;

for (const [family, proxy] of [
  [4, `${ADDR.fwClient4}:3128`],
  [6, `[${ADDR.fwClient6}]:3128`],
] as const) {
  test(`IPv${family}: CONNECT www.example.org without SNI: a certificate for the name, the server asked by it`, {
    skip,
    timeout: 60_000,
  }, async () => {
    const before = requests();
    const r = await sClient(proxy, 'www.example.org');
    assert.match(r.stdout, /Verify return code: 0 \(ok\)/, r.stdout);
    assert.match(r.stdout, /issuer=CN ?= ?tzorp connect/, r.stdout);
    // the server saw the name as SNI (its answer names it) and was verified against it
    assert.match(r.stdout, /hello from www\.example\.org over TLSv1\.3/, r.stdout);
    assert.equal(requests(), before + 1);
  });

  test(`IPv${family}: CONNECT to a denied name without SNI: refused, the server never contacted`, {
    skip,
    timeout: 60_000,
  }, async () => {
    const before = requests();
    const r = await sClient(proxy, 'bad.example.org');
    assert.match(r.stdout, /alert access denied/, r.stdout); // (the SNI policy's alert: access_denied)
    assert.match(r.stdout, /no peer certificate available/, r.stdout);
    assert.doesNotMatch(r.stdout, /hello from/, r.stdout);
    assert.equal(requests(), before, 'no request reached the server');
  });
}
