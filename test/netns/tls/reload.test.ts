// A TLS service that arrives by a reload: the daemon started with a policy without TLS (its workers
// have not loaded the TLS layer: it is loaded on first use), then `tzorp reload` makes port 443 an
// inspecting HTTP service. The client gets tzorp's certificate for its name and the server's answer
// through it, IPv4 and IPv6; before the reload the same port was a plain relay (the server's own
// certificate, which the client does not trust).
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { createLab, netnsSkipReason } from '../../harness/netns.ts';
import { testCa, testLeaf } from './test-ca.ts';
import { curlTls, LAB_ZONES, runTzorp, TZ, tzorpCa } from './tls-lab.ts';

const skip = netnsSkipReason();
const dir = mkdtempSync(join(tmpdir(), 'tzorp-tls-reload-'));
after(() => rmSync(dir, { recursive: true, force: true }));

test('a reload brings the first TLS service: inspected at once, IPv4 and IPv6', {
  skip,
  timeout: 240_000,
}, async () => {
  const ca = testCa(dir, 'test-ca');
  const san = 'DNS:www.example.org,IP:198.18.2.2,IP:2001:db8:2::2';
  const good = testLeaf(dir, 'good', ca, 'www.example.org', san);
  const tz = tzorpCa(dir, 'tzorp-ca', 'tzorp reload test');
  const lab = await createLab();
  try {
    const server = lab.spawnTs('server', 'test/netns/tls/inspect-server.ts', [
      `443:${good.cert}:${good.key}`,
    ]);
    await server.waitFor(/ready/);
    const policy = join(dir, `${lab.id}.yaml`);
    const rule =
      '  - { id: 1, service: web, proto: tcp, src_zone: clients, dst_zone: servers, dst_port: 443 }\n';
    writeFileSync(policy, `${LAB_ZONES}services:\n  web:\n    type: proxy\n    proxy: plug\nrules:\n${rule}`);
    const control = join(dir, `${lab.id}.sock`);
    const daemon = await runTzorp(lab, policy, control);
    const curl = (family: 4 | 6) => curlTls(lab, tz.cert, 'www.example.org', family, 443, '/');

    // a plain relay: the server's own certificate, which tzorp's CA did not sign
    const before = await curl(4);
    assert.notEqual(before.code, 0, before.stdout);
    assert.match(before.stderr, /certificate/i);

    writeFileSync(
      policy,
      `${LAB_ZONES}services:
  web:
    type: proxy
    proxy: http
    tls:
      mode: inspect
      ca: { cert: ${tz.cert}, key: ${tz.key} }
      server_ca_file: ${ca.cert}
rules:
${rule}`,
    );
    const r = await lab.exec('fw', [...TZ, 'reload', '--control', control], {
      allowFail: true,
      timeoutMs: 120_000,
    });
    assert.equal(r.code, 0, r.stderr);
    for (const family of [4, 6] as const) {
      const got = await curl(family);
      assert.equal(got.code, 0, `IPv${family}: ${got.stderr}`);
      assert.match(got.stdout, /^hello from www\.example\.org over TLSv1\.3/, got.stdout);
    }
    await daemon.waitFor(
      /Server TLS session established; side='server', sni='www\.example\.org'[^\n]*verify='ok'/,
      10_000,
    );
    assert.doesNotMatch(daemon.stdout() + daemon.stderr(), /Worker exited unexpectedly/);
  } finally {
    await lab.destroy();
  }
});
