// TLS inspect through `tzorp run` in namespaces, IPv4 and IPv6, with real peers: a Node HTTPS server
// with certificates from a test CA (openssl CLI), curl and openssl s_client as clients, and tzorp's own
// CA made by `tzorp tls ca create`. The client sees a certificate for the name it asked for (and the
// verified server certificate's other names), signed by tzorp's CA; the HTTP proxy runs on the
// plaintext (URL filter on https:// URLs, header policy); a 50 MiB download arrives intact; servers with an unknown issuer, the wrong name or an expired certificate are refused (502 over
// the client's TLS session, the reason logged) and a denied SNI gets an alert without the server being
// contacted. `tzorp sessions --json` and the metrics show the handshakes.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { createCa, issueLeaf, loadCa } from '../../../src/proxy/tls/certs.ts';
import { ADDR, createLab, type Lab, type LabProcess, netnsSkipReason } from '../../harness/netns.ts';
import { bigBody } from './inspect-server.ts';
import { testCa, testLeaf } from './test-ca.ts';
import { curlTls, LAB_ZONES, runTzorp, TZ, tzorpCa } from './tls-lab.ts';

const skip = netnsSkipReason();
const dir = mkdtempSync(join(tmpdir(), 'tzorp-inspect-'));
after(() => rmSync(dir, { recursive: true, force: true }));

let lab: Lab;
let server: LabProcess;
let daemon: LabProcess;
let tzca: string;
let control: string;

before(async () => {
  if (skip) return;
  const trusted = testCa(dir, 'test-ca');
  const rogue = testCa(dir, 'rogue-ca');
  const san = 'DNS:www.example.org,DNS:bad.example.org,IP:198.18.2.2,IP:2001:db8:2::2';
  const good = testLeaf(dir, 'good', trusted, 'www.example.org', san);
  const unknown = testLeaf(dir, 'unknown', rogue, 'www.example.org', san);
  const wrong = testLeaf(dir, 'wrong', trusted, 'other.example.net', 'DNS:other.example.net');
  // an expired certificate (valid for a day, a month ago) from a second trusted CA
  const oldCa = await createCa({ name: 'old-ca' });
  const expiredPem = await issueLeaf(
    await loadCa(oldCa),
    ['www.example.org', '198.18.2.2', '2001:db8:2::2'],
    {
      days: 1,
      now: new Date(Date.now() - 30 * 86_400_000),
    },
  );
  const expired = { cert: join(dir, 'expired.crt'), key: join(dir, 'expired.key') };
  writeFileSync(expired.cert, expiredPem.certPem);
  writeFileSync(expired.key, expiredPem.keyPem);
  const bundle = join(dir, 'trusted.pem');
  writeFileSync(bundle, readFileSync(trusted.cert, 'utf8') + oldCa.certPem);
  lab = await createLab();
  // tzorp's own CA, made by the command an administrator runs
  tzca = tzorpCa(dir, 'tzorp-ca', 'tzorp test inspect').cert;
  server = lab.spawnTs('server', 'test/netns/tls/inspect-server.ts', [
    `443:${good.cert}:${good.key}`,
    `8444:${unknown.cert}:${unknown.key}`,
    `8445:${wrong.cert}:${wrong.key}`,
    `9443:${good.cert}:${good.key}`,
    `8446:${expired.cert}:${expired.key}`,
  ]);
  await server.waitFor(/ready/);
  // a server that speaks TLS 1.2 only, with the other implementation (OpenSSL's own test server), one
  // listener per family ([::] is IPv6 only there)
  for (const at of [`${ADDR.server4}:4412`, `[${ADDR.server6}]:4412`])
    lab.spawn('server', [
      'openssl',
      's_server',
      '-tls1_2',
      '-www',
      '-cert',
      good.cert,
      '-key',
      good.key,
      '-accept',
      at,
    ]);
  for (let i = 0; i < 100; i++) {
    const r = await lab.exec('server', ['sh', '-c', `[ "$(ss -ltn | grep -c ':4412 ')" = 2 ]`], {
      allowFail: true,
    });
    if (r.code === 0) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  const policy = join(dir, `${lab.id}.yaml`);
  writeFileSync(
    policy,
    `${LAB_ZONES}services:
  web:
    type: proxy
    proxy: http
    options:
      request_header:
        X-Tzorp-Test: { action: change_value, value: "seen by tzorp" }
      response_header:
        X-Powered-By: drop
      url_filter:
        rules:
          - { host: www.example.org, path: "/secret/*", action: reject }
    tls:
      mode: inspect
      ca: { cert: ${join(dir, 'tzorp-ca', 'ca.crt')}, key: ${join(dir, 'tzorp-ca', 'ca.key')} }
      server_ca_file: ${bundle}
      sni: { deny: [bad.example.org] }
  decrypted:
    type: proxy
    proxy: plug
    tls:
      mode: inspect
      ca: { cert: ${join(dir, 'tzorp-ca', 'ca.crt')}, key: ${join(dir, 'tzorp-ca', 'ca.key')} }
      server_ca_file: ${bundle}
  explicit:
    type: proxy
    proxy: http
    router: { type: inband }
    options:
      transparent_mode: false
      target_port_range: "443,8444"
      request_header:
        X-Tzorp-Test: { action: change_value, value: "seen inside the tunnel" }
    tls:
      mode: inspect
      ca: { cert: ${join(dir, 'tzorp-ca', 'ca.crt')}, key: ${join(dir, 'tzorp-ca', 'ca.key')} }
      server_ca_file: ${bundle}
rules:
  - { id: 1, service: web, proto: tcp, src_zone: clients, dst_zone: servers, dst_port: [443, 4412, 8444, 8445, 8446] }
  - { id: 3, service: explicit, proto: tcp, src_zone: clients, dst_port: 3128 }
  - { id: 2, service: decrypted, proto: tcp, src_zone: clients, dst_zone: servers, dst_port: [9443, 9449] }
management:
  - { proto: tcp, dst_port: 22, src_zone: clients }
`,
  );
  control = join(dir, `${lab.id}.sock`);
  daemon = await runTzorp(lab, policy, control, ['--metrics', '127.0.0.1:9464']);
});

after(async () => {
  if (skip) return;
  await lab?.destroy();
});

const host = (family: 4 | 6) => (family === 4 ? ADDR.server4 : `[${ADDR.server6}]`);

const curl = (name: string, family: 4 | 6, port: number, path: string, extra: string[] = []) =>
  curlTls(lab, tzca, name, family, port, path, extra);
/** A log line the daemon writes: workers write theirs once per event-loop turn, so the client can be
 * done before the line is out; wait for it (a line that never comes fails after 10 s). */
const logged = (re: RegExp) => daemon.waitFor(re, 10_000);
const requests = () =>
  server
    .stdout()
    .split('\n')
    .filter((l) => l.startsWith('req '));

for (const family of [4, 6] as const) {
  test(`IPv${family}: the client gets tzorp's certificate for its name; the server is verified; HTTP policies apply`, {
    skip,
    timeout: 120_000,
  }, async () => {
    // curl trusts only tzorp's CA: the handshake succeeds only with a certificate tzorp made
    const r = await curl('www.example.org', family, 443, '/', ['-v', '--http2']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^hello from www\.example\.org over TLSv1\.3 alpn http\/1\.1/);
    assert.match(r.stderr, /issuer: CN=tzorp test inspect/);
    assert.match(r.stderr, /subject: CN=www\.example\.org/);
    // tzorp's certificate carries the verified server certificate's names besides the one asked for
    const shown = await lab.exec('client', [
      'sh',
      '-c',
      `openssl s_client -connect '${host(family)}:443' -servername www.example.org -CAfile '${tzca}' </dev/null 2>/dev/null | openssl x509 -noout -ext subjectAltName`,
    ]);
    assert.match(shown.stdout, /DNS:www\.example\.org/);
    assert.match(shown.stdout, /DNS:bad\.example\.org/);
    assert.match(shown.stdout, /IP Address:198\.18\.2\.2/);
    // a client offering h2 was answered with http/1.1 (what the HTTP proxy speaks)
    assert.match(r.stderr, /ALPN: server accepted http\/1\.1/);
    // header policy on the plaintext: the server got the changed value
    const h = await curl('www.example.org', family, 443, '/headers', ['-H', 'X-Tzorp-Test: from the client']);
    assert.equal(h.code, 0, h.stderr);
    assert.equal(JSON.parse(h.stdout)['x-tzorp-test'], 'seen by tzorp');
    // URL filter on the https:// URL: refused by tzorp, never reaches the server
    const before = requests().length;
    const s = await curl('www.example.org', family, 443, '/secret/plans', [
      '-w',
      '%{http_code}',
      '-o',
      '/dev/null',
    ]);
    assert.equal(s.stdout, '403');
    assert.equal(requests().length, before);
    await logged(/https:\/\/www\.example\.org\/secret\/plans/);
    // TLS 1.2 on the client side works too
    const t12 = await curl('www.example.org', family, 443, '/', ['--tls-max', '1.2']);
    assert.equal(t12.code, 0, t12.stderr);
    assert.match(t12.stdout, /^hello from www\.example\.org/);
  });

  test(`IPv${family}: a 50 MiB download through inspect arrives intact`, {
    skip,
    timeout: 120_000,
  }, async () => {
    const out = `/tmp/tzorp-inspect-${lab.id}-${family}.bin`;
    const r = await curl('www.example.org', family, 443, '/big?mb=50', ['-o', out]);
    assert.equal(r.code, 0, r.stderr);
    const got = (await lab.exec('client', ['sha256sum', out])).stdout.split(' ')[0];
    rmSync(out, { force: true });
    assert.equal(got, createHash('sha256').update(bigBody(50)).digest('hex'));
  });

  test(`IPv${family}: servers with an unknown issuer, the wrong name or an expired certificate are refused with 502, the reason logged`, {
    skip,
    timeout: 120_000,
  }, async () => {
    for (const [port, reason] of [
      [8444, 'unknown_issuer'],
      [8445, 'wrong_name'],
      [8446, 'expired'],
    ] as const) {
      const before = requests().length;
      const r = await curl('www.example.org', family, port, '/', ['-w', '%{http_code}', '-o', '/dev/null']);
      assert.equal(r.code, 0, r.stderr); // the client's own TLS session is fine: the answer is in it
      assert.equal(r.stdout, '502');
      assert.equal(requests().length, before, 'no request reached the refused server');
      await logged(new RegExp(`Server TLS session refused.*reason='${reason}'`));
    }
  });

  test(`IPv${family}: a denied SNI gets an alert; the server is never contacted`, {
    skip,
    timeout: 60_000,
  }, async () => {
    const before = requests().length;
    const r = await curl('bad.example.org', family, 443, '/');
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /alert|access denied|SSL/i);
    assert.equal(requests().length, before);
  });
}

test('a TLS 1.2-only server (openssl s_server) is verified and inspected; the client keeps TLS 1.3, IPv4 and IPv6', {
  skip,
  timeout: 60_000,
}, async () => {
  for (const family of [4, 6] as const) {
    // two requests: s_server -www closes after each answer, so the second needs a new verified server
    // session (a TLS 1.2 session offered for resumption) or a new client connection
    const r = await curl('www.example.org', family, 4412, '/', [
      '-v',
      '-w',
      '\n%{http_code}\n',
      `https://www.example.org:4412/`,
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /SSL connection using TLSv1\.3/);
    assert.match(r.stderr, /issuer: CN=tzorp test inspect/);
    const pages = r.stdout.split('s_server -tls1_2 -www').length - 1;
    assert.equal(pages, 2, r.stdout);
    assert.equal(r.stdout.match(/^200$/gm)?.length, 2, r.stdout);
  }
  await logged(
    /Server TLS session established; side='server', sni='www\.example\.org', version='TLSv1\.2'[^\n]*verify='ok'/,
  );
});

test('plug with inspect: a decrypted relay between two verified TLS sessions (no ALPN offered)', {
  skip,
  timeout: 60_000,
}, async () => {
  for (const family of [4, 6] as const) {
    const r = await curl('www.example.org', family, 9443, '/', ['-v']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^hello from www\.example\.org over TLSv1\.3 alpn -/);
    assert.match(r.stderr, /issuer: CN=tzorp test inspect/);
  }
});

test('plug with inspect, a server that refuses the connection: the client is reset, the worker lives on', {
  skip,
  timeout: 60_000,
}, async () => {
  // (nothing listens on 9449: the plug core resets the client's TLS session. Resetting the TCP
  // socket under node's TLS layer crashed the worker with SIGSEGV before driver.ts resetStream.)
  const workerDied = () => /Worker exited unexpectedly|SIGSEGV/.test(daemon.stdout() + daemon.stderr());
  for (const family of [4, 6] as const) {
    const r = await curl('www.example.org', family, 9449, '/', ['-v']);
    assert.notEqual(r.code, 0, 'a session whose server refused it must not succeed');
    assert.doesNotMatch(r.stdout, /hello from/);
    await logged(/tls\.violation[^\n]*reason='connect_failed'/);
    assert.ok(!workerDied(), 'the worker must not crash');
    // the same worker still serves
    const ok = await curl('www.example.org', family, 9443, '/');
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stdout, /^hello from www\.example\.org/);
  }
  assert.ok(!workerDied(), 'the worker must not crash');
});

test('CONNECT through the explicit proxy is inspected: a certificate from tzorp, HTTP policy inside the tunnel', {
  skip,
  timeout: 60_000,
}, async () => {
  for (const [proxy, target] of [
    [`http://${ADDR.fwClient4}:3128`, ADDR.server4],
    [`http://[${ADDR.fwClient6}]:3128`, `[${ADDR.server6}]`],
  ] as const) {
    const r = await lab.exec(
      'client',
      [
        'curl',
        '-sS',
        '-v',
        '--max-time',
        '20',
        '--cacert',
        tzca,
        '-x',
        proxy,
        '-H',
        'X-Tzorp-Test: from the client',
        `https://${target}/headers`,
      ],
      { allowFail: true, timeoutMs: 40_000 },
    );
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /issuer: CN=tzorp test inspect/);
    assert.equal(JSON.parse(r.stdout)['x-tzorp-test'], 'seen inside the tunnel');
    // an unknown issuer behind the tunnel: 502 inside it
    const bad = await lab.exec(
      'client',
      [
        'curl',
        '-sS',
        '--max-time',
        '20',
        '--cacert',
        tzca,
        '-x',
        proxy,
        '-o',
        '/dev/null',
        '-w',
        '%{http_code}',
        `https://${target}:8444/`,
      ],
      { allowFail: true, timeoutMs: 40_000 },
    );
    assert.equal(bad.stdout, '502', bad.stderr);
  }
  await logged(/\(svc\/explicit:\d+\): Server TLS session established/);
  await logged(/\(svc\/explicit:\d+\): Server TLS session refused.*reason='unknown_issuer'/);
});

test('sessions --json and the metrics show the inspected handshakes', { skip, timeout: 60_000 }, async () => {
  // a kept-alive connection keeps the session open while we look
  const slow = lab.exec(
    'client',
    [
      'sh',
      '-c',
      `(printf 'GET / HTTP/1.1\\r\\nHost: www.example.org\\r\\n\\r\\n'; sleep 3) | openssl s_client -quiet -no_ign_eof -connect ${ADDR.server4}:443 -servername www.example.org -CAfile ${tzca}`,
    ],
    { allowFail: true, timeoutMs: 20_000 },
  );
  let tls: Record<string, unknown> | undefined;
  for (let i = 0; i < 40 && !tls?.serverVerify; i++) {
    await new Promise((r) => setTimeout(r, 100));
    const out = await lab.exec('fw', [...TZ, 'sessions', '--json', '--control', control], {
      allowFail: true,
    });
    if (out.code !== 0) continue;
    const list = JSON.parse(out.stdout) as { tls?: Record<string, unknown> }[];
    tls = (Array.isArray(list) ? list : (list as { sessions: typeof list }).sessions).find((s) => s.tls)?.tls;
  }
  await slow;
  assert.ok(tls, 'a running session with tls');
  assert.equal(tls.mode, 'inspect');
  assert.equal(tls.sni, 'www.example.org');
  assert.equal(tls.serverVerify, 'ok');
  assert.match(String(tls.serverIssuer), /test-ca/);
  await curl('www.example.org', 4, 8444, '/'); // one refused server, for the metric below
  const m = (await lab.exec('fw', ['curl', '-s', 'http://127.0.0.1:9464/metrics'])).stdout;
  assert.match(m, /tzorp_tls_handshakes_total\{[^}]*mode="inspect"[^}]*result="accepted"[^}]*\} [1-9]/);
  assert.match(m, /tzorp_tls_handshakes_total\{[^}]*mode="inspect"[^}]*result="unknown_issuer"[^}]*\} [1-9]/);
});
