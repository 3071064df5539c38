// The TLS layer's certificates: a CA, certificates for server names signed by it, checked with
// node:crypto and by a real TLS handshake on loopback that trusts only that CA.
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import tls from 'node:tls';
import { DEFAULTS } from '../../../../src/defaults.ts';
import { createCa, issueLeaf, LeafCache, leafCacheFor, loadCa } from '../../../../src/proxy/tls/certs.ts';

const DAY = 86_400_000;

test('createCa: a self-signed ECDSA P-256 CA (CA:true, pathlen 0) with the name and validity asked for', async () => {
  const now = new Date('2026-12-03T00:00:00Z');
  const ca = await createCa({ name: 'Example Corp inspection CA', days: 30, now });
  const c = new X509Certificate(ca.certPem);
  assert.equal(c.subject, 'CN=Example Corp inspection CA');
  assert.ok(c.ca);
  assert.ok(c.verify(c.publicKey), 'self-signed');
  assert.equal(c.publicKey.asymmetricKeyDetails?.namedCurve, 'prime256v1');
  assert.equal(new Date(c.validTo).getTime() - new Date(c.validFrom).getTime(), 30 * DAY);
  assert.match(ca.keyPem, /^-----BEGIN PRIVATE KEY-----\n/);
});

test('issueLeaf: signed by the CA, names in subjectAltName, not a CA, short-lived; a TLS client trusting only the CA accepts it', async () => {
  const caPem = await createCa({ name: 'test CA' });
  const ca = await loadCa(caPem);
  const leaf = await issueLeaf(ca, ['www.example.org', '198.18.2.2']);
  const c = new X509Certificate(leaf.certPem);
  assert.ok(c.verify(new X509Certificate(caPem.certPem).publicKey));
  assert.ok(!c.ca);
  assert.equal(c.subject, 'CN=www.example.org');
  assert.equal(c.checkHost('www.example.org'), 'www.example.org');
  assert.equal(c.checkIP('198.18.2.2'), '198.18.2.2');
  assert.equal(c.checkHost('other.example.org'), undefined);
  const life = new Date(c.validTo).getTime() - Date.now();
  assert.ok(life > 6 * DAY && life <= 7 * DAY, `valid for ${life / DAY} days`);

  const server = tls.createServer({ cert: leaf.certPem, key: leaf.keyPem }, (s) => s.end('ok'));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  try {
    const port = (server.address() as AddressInfo).port;
    const got = await new Promise<string>((resolve, reject) => {
      const s = tls.connect(
        { host: '127.0.0.1', port, servername: 'www.example.org', ca: caPem.certPem },
        () => {
          assert.ok(s.authorized, String(s.authorizationError));
        },
      );
      let text = '';
      s.on('data', (d) => (text += d));
      s.on('end', () => resolve(text));
      s.on('error', reject);
    });
    assert.equal(got, 'ok');
    // and a name the certificate does not carry is refused by the client
    await assert.rejects(
      new Promise((resolve, reject) => {
        const s = tls.connect(
          { host: '127.0.0.1', port, servername: 'evil.example.com', ca: caPem.certPem },
          () => resolve(null),
        );
        s.on('error', reject);
      }),
      /altnames|ERR_TLS_CERT_ALTNAME_INVALID/,
    );
  } finally {
    server.close();
  }
});

test('loadCa refuses a key of another CA, a certificate that is not a CA, and garbage', async () => {
  const a = await createCa({ name: 'a' });
  const b = await createCa({ name: 'b' });
  await assert.rejects(loadCa({ certPem: a.certPem, keyPem: b.keyPem }), /does not belong/);
  const leaf = await issueLeaf(await loadCa(a), ['x.example']);
  await assert.rejects(loadCa({ certPem: leaf.certPem, keyPem: leaf.keyPem }), /not a CA/);
  await assert.rejects(loadCa({ certPem: 'nonsense', keyPem: a.keyPem }), /cannot be read/);
  await assert.rejects(loadCa({ certPem: a.certPem, keyPem: 'nonsense' }), /no PRIVATE KEY|cannot be read/);
});

test('LeafCache: one certificate per name set while valid, least recently used out at the bound, made again near expiry', async () => {
  const cache = new LeafCache(await loadCa(await createCa({ name: 'c' })), 2, 7);
  const t0 = Date.now();
  const a1 = cache.get(['a.example'], t0);
  assert.equal(cache.get(['a.example'], t0 + 1000), a1);
  cache.get(['b.example'], t0);
  cache.get(['a.example'], t0); // a is now the most recently used
  cache.get(['c.example'], t0); // evicts b
  assert.equal(cache.size, 2);
  assert.equal(cache.get(['a.example'], t0), a1);
  assert.notEqual(cache.get(['a.example'], t0 + 6.5 * DAY), a1, 'within a day of expiry: made again');
  const pem = await cache.get(['c.example'], t0);
  assert.equal(new X509Certificate(pem.certPem).subject, 'CN=c.example');
});

test('leafCacheFor: a reload loading the same CA files keeps its certificates, a new CA starts afresh', async () => {
  const files = await createCa({ name: 'reload' });
  const first = leafCacheFor(await loadCa(files)).get(['r.example'], Date.now());
  // a reload reads the files again: a new SigningCa object with the same certificate
  const again = leafCacheFor(await loadCa({ certPem: `${files.certPem}`, keyPem: `${files.keyPem}` }));
  assert.equal(again.get(['r.example'], Date.now()), first);
  const other = leafCacheFor(await loadCa(await createCa({ name: 'reload' })));
  const made = other.get(['r.example'], Date.now());
  assert.notEqual(made, first);
  assert.notEqual((await made).certPem, (await first).certPem);
  for (let i = 0; i < DEFAULTS.tlsLeafCaches; i++)
    leafCacheFor(await loadCa(await createCa({ name: `n${i}` })));
  assert.notEqual(leafCacheFor(await loadCa(files)), again, 'the oldest CA left after the bound');
});
