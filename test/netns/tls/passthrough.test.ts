// TLS passthrough through `tzorp run` in namespaces, IPv4 and IPv6, with real peers: a Node HTTPS server
// holding a certificate from a test CA (made here with the openssl CLI), curl and openssl s_client as
// clients. Allowed names reach the server and see its own certificate (curl verifies it against the test
// CA); denied names, a missing name and a too-old client get the TLS alert the policy names, the server
// never sees a TCP connection for them, and the daemon logs why.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { SessionInfo } from '../../../src/daemon/control-protocol.ts';
import { ADDR, createLab, type Lab, type LabProcess, netnsSkipReason } from '../../harness/netns.ts';
import { testCa, testLeaf } from './test-ca.ts';
import { LAB_ZONES, runTzorp, TZ } from './tls-lab.ts';

const skip = netnsSkipReason();
const dir = mkdtempSync(join(tmpdir(), 'tzorp-tls-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const POLICY = `${LAB_ZONES}services:
  sni_filtered:
    type: proxy
    proxy: plug
    tls:
      mode: passthrough
      sni: { allow: ["*.example.org"], deny: [bad.example.org] }
  tls13_only:
    type: proxy
    proxy: plug
    tls: { mode: passthrough, min_version: TLSv1.3 }
rules:
  - { id: 1, service: sni_filtered, proto: tcp, src_zone: clients, dst_zone: servers, dst_port: 443 }
  - { id: 2, service: tls13_only, proto: tcp, src_zone: clients, dst_zone: servers, dst_port: 8443 }
`;

/** A test CA and a server certificate for the names the tests use, with the openssl CLI. */
function makeCerts(): { ca: string; cert: string; key: string } {
  const ca = testCa(dir, 'tzorp test CA');
  const server = testLeaf(
    dir,
    'server',
    ca,
    'www.example.org',
    'DNS:www.example.org,DNS:bad.example.org,DNS:www.example.com,IP:198.18.2.2,IP:2001:db8:2::2',
  );
  return { ca: ca.cert, cert: server.cert, key: server.key };
}

let lab: Lab;
let server: LabProcess;
let daemon: LabProcess;
let certs: { ca: string; cert: string; key: string };

before(async () => {
  if (skip) return;
  certs = makeCerts();
  lab = await createLab();
  server = lab.spawnTs('server', 'test/netns/tls/https-server.ts', [certs.cert, certs.key, '443', '8443']);
  await server.waitFor(/ready/);
  const policy = join(dir, `${lab.id}.yaml`);
  writeFileSync(policy, POLICY);
  daemon = await runTzorp(lab, policy, join(dir, `${lab.id}.sock`), [
    '--metrics',
    '127.0.0.1:9464', // inside the lab's firewall namespace
  ]);
});

after(async () => {
  if (skip) return;
  await lab?.destroy();
});

const host = (family: 4 | 6) => (family === 4 ? ADDR.server4 : `[${ADDR.server6}]`);

function curl(name: string, family: 4 | 6, port = 443, extra: string[] = []) {
  return lab.exec(
    'client',
    [
      'curl',
      '-sS',
      '--max-time',
      '10',
      '--cacert',
      certs.ca,
      '--resolve',
      `${name}:${port}:${host(family)}`,
      ...extra,
      `https://${name}:${port}/`,
    ],
    { allowFail: true },
  );
}

const tcpCount = () =>
  server
    .stdout()
    .split('\n')
    .filter((l) => l.startsWith('tcp ')).length;
const daemonLog = () => daemon.stdout() + daemon.stderr();
/** A log line the daemon writes: workers write theirs once per event-loop turn, so the client can be
 * done before the line is out; wait for it (a line that never comes fails after 10 s). */
const logged = (re: RegExp) => daemon.waitFor(re, 10_000);

for (const family of [4, 6] as const) {
  test(`IPv${family}: an allowed name reaches the server, which shows its own certificate`, {
    skip,
    timeout: 60_000,
  }, async () => {
    const accepted = () => daemonLog().split('TLS ClientHello accepted').length - 1;
    const before = accepted();
    const r = await curl('www.example.org', family);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^hello from www\.example\.org over TLSv1\.3$/m);
    await daemon.waitFor(
      /tls\.session.*TLS ClientHello accepted; relaying unchanged.*sni='www\.example\.org'/,
    );
    await logged(/sni_allow_matched='\*\.example\.org'/);
    for (let i = 0; i < 50 && accepted() === before; i++) await new Promise((res) => setTimeout(res, 100));
    assert.equal(accepted(), before + 1, 'one tls.session line for this handshake');
  });

  for (const [name, alert, reason] of [
    [
      'bad.example.org',
      /access denied/i,
      /server name .{0,2}bad\.example\.org.{0,2} matches sni deny .{0,2}bad\.example\.org/,
    ],
    [
      'www.example.com',
      /access denied/i,
      /server name .{0,2}www\.example\.com.{0,2} matches no sni allow glob/,
    ],
  ] as const) {
    test(`IPv${family}: ${name} is refused with a TLS alert; the server sees no connection`, {
      skip,
      timeout: 60_000,
    }, async () => {
      const before = tcpCount();
      const r = await curl(name, family);
      assert.equal(r.code, 35, `curl exit ${r.code}: ${r.stderr}`); // CURLE_SSL_CONNECT_ERROR
      assert.match(r.stderr, alert);
      await daemon.waitFor(
        new RegExp(`tls\\.violation.*TLS handshake refused; reason=.*${reason.source}.*alert='49'`),
      );
      assert.equal(tcpCount(), before, server.stdout());
    });
  }

  test(`IPv${family}: no server name (an address, no SNI) is refused with unrecognized_name`, {
    skip,
    timeout: 60_000,
  }, async () => {
    const before = tcpCount();
    const target = family === 4 ? `${ADDR.server4}:443` : `[${ADDR.server6}]:443`;
    const r = await lab.exec(
      'client',
      [
        'sh',
        '-c',
        `openssl s_client -connect '${target}' -noservername -CAfile '${certs.ca}' </dev/null 2>&1`,
      ],
      { allowFail: true },
    );
    assert.match(r.stdout, /unrecognized name.*alert number 112/i, r.stdout);
    assert.match(r.stdout, /no peer certificate available/);
    assert.equal(tcpCount(), before);
    await daemon.waitFor(/tls\.violation.*TLS handshake refused; reason=.*names no server.*alert='112'/);
  });
}

test('min_version TLSv1.3: a TLS 1.2 client gets protocol_version, a TLS 1.3 client passes', {
  skip,
  timeout: 60_000,
}, async () => {
  const before = tcpCount();
  const old = await curl('www.example.org', 4, 8443, ['--tls-max', '1.2']);
  assert.equal(old.code, 35, old.stderr);
  assert.match(old.stderr, /protocol version/i);
  assert.equal(tcpCount(), before);
  await daemon.waitFor(/at most TLSv1\.2, below min_version TLSv1\.3/);
  const ok = await curl('www.example.org', 6, 8443);
  assert.equal(ok.code, 0, ok.stderr);
  assert.match(ok.stdout, /hello from www\.example\.org over TLSv1\.3/);
});

test('a plain-HTTP client on the TLS port gets decode_error and nothing reaches the server', {
  skip,
  timeout: 60_000,
}, async () => {
  const before = tcpCount();
  const r = await lab.exec(
    'client',
    ['curl', '-sS', '--max-time', '10', '-o', '/dev/null', `http://${ADDR.server4}:443/`],
    { allowFail: true },
  );
  assert.notEqual(r.code, 0);
  await daemon.waitFor(
    /tls\.violation.*TLS handshake refused; .*expected a handshake record \(22\), got record type 71/,
  );
  assert.equal(tcpCount(), before);
});

test('metrics: tzorp_tls_handshakes_total counts every handshake above by service, mode and result', {
  skip,
  timeout: 60_000,
}, async () => {
  const scrape = async () =>
    (await lab.exec('fw', ['curl', '-sS', '--max-time', '10', 'http://127.0.0.1:9464/metrics'])).stdout;
  const count = (text: string, service: string, result: string) =>
    text
      .split('\n')
      .filter(
        (l) =>
          l.startsWith('tzorp_tls_handshakes_total{') &&
          l.includes(`service="${service}"`) &&
          l.includes('mode="passthrough"') &&
          l.includes(`result="${result}"`),
      )
      .reduce((n, l) => n + Number(l.split(' ').pop()), 0);
  // the sessions above end when their clients go; the counter moves when they have ended
  let text = await scrape();
  for (let i = 0; i < 50 && count(text, 'sni_filtered', 'accepted') < 2; i++) {
    await new Promise((res) => setTimeout(res, 100));
    text = await scrape();
  }
  assert.equal(count(text, 'sni_filtered', 'accepted'), 2, text); // IPv4 and IPv6
  assert.equal(count(text, 'sni_filtered', 'access_denied'), 4, text); // two names, both families
  assert.equal(count(text, 'sni_filtered', 'unrecognized_name'), 2, text);
  assert.equal(count(text, 'sni_filtered', 'decode_error'), 1, text); // plain HTTP
  assert.equal(count(text, 'tls13_only', 'protocol_version'), 1, text);
  assert.equal(count(text, 'tls13_only', 'accepted'), 1, text);
});

test('tzorp sessions --json shows a running passthrough session under tls (sni, offered version, ALPN)', {
  skip,
  timeout: 60_000,
}, async () => {
  // openssl s_client keeps the session open while its stdin is (sleep holds it)
  const held = lab.spawn('client', [
    'sh',
    '-c',
    `sleep 30 | openssl s_client -connect '[${ADDR.server6}]:443' -servername www.example.org -alpn h2,http/1.1 -CAfile '${certs.ca}' 2>&1`,
  ]);
  try {
    await held.waitFor(/Verify return code: 0/);
    const r = await lab.exec('fw', [...TZ, 'sessions', '--json', '--control', join(dir, `${lab.id}.sock`)]);
    const list = JSON.parse(r.stdout) as SessionInfo[];
    const mine = list.filter((s) => s.service === 'sni_filtered');
    assert.equal(mine.length, 1, r.stdout);
    assert.deepEqual(mine[0]!.tls, {
      mode: 'passthrough',
      sni: 'www.example.org',
      offeredMaxVersion: 'TLSv1.3',
      alpnOffered: ['h2', 'http/1.1'],
      result: 'accepted',
    });
  } finally {
    held.kill();
  }
});
