// withoutPeerCertificate: a real session (TLS 1.2 and 1.3) loses exactly its certificate element and
// still resumes; anything it does not understand comes back untouched, and no input makes it throw.
import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import tls from 'node:tls';
import { createCa, issueLeaf, loadCa } from '../../../../src/proxy/tls/certs.ts';
import { withoutPeerCertificate } from '../../../../src/proxy/tls/session-der.ts';

/** The top-level elements of a DER SEQUENCE (tag and bytes), read here independently of the code. */
function elements(der: Buffer): { tag: number; bytes: string }[] {
  const out: { tag: number; bytes: string }[] = [];
  const len = (at: number): [number, number] => {
    const l = der[at + 1]!;
    if (!(l & 0x80)) return [l, 2];
    let v = 0;
    for (let k = 0; k < (l & 0x7f); k++) v = v * 256 + der[at + 2 + k]!;
    return [v, 2 + (l & 0x7f)];
  };
  const [, h] = len(0);
  for (let at = h; at < der.length; ) {
    const [l, hh] = len(at);
    out.push({ tag: der[at]!, bytes: der.subarray(at, at + hh + l).toString('hex') });
    at += hh + l;
  }
  return out;
}

for (const version of ['TLSv1.3', 'TLSv1.2'] as const) {
  test(`withoutPeerCertificate: a ${version} session without its certificate still resumes`, async () => {
    const ca = await createCa({ name: 'session CA' });
    const leaf = await issueLeaf(await loadCa(ca), ['s.example.org']);
    const server = tls.createServer({ cert: leaf.certPem, key: leaf.keyPem, maxVersion: version }, (s) =>
      s.end('x'),
    );
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as AddressInfo).port;
    const connect = (session?: Buffer) =>
      new Promise<{ session: Buffer | null; reused: boolean; cert: boolean }>((resolve, reject) => {
        const s = tls.connect({
          host: '127.0.0.1',
          port,
          servername: 's.example.org',
          rejectUnauthorized: false,
          ...(session ? { session } : {}),
        });
        let got: Buffer | null = null;
        s.on('session', (b: Buffer) => {
          got = b;
        });
        let reused = false;
        let cert = false;
        s.on('secureConnect', () => {
          reused = s.isSessionReused();
          cert = Object.keys(s.getPeerCertificate()).length > 0;
        });
        s.on('data', () => {});
        s.on('end', () => resolve({ session: got, reused, cert }));
        s.on('error', reject);
      });
    try {
      const first = await connect();
      assert.ok(first.session, 'the server gave a session');
      const full = first.session!;
      const bare = withoutPeerCertificate(full);
      assert.ok(bare.length < full.length - 200, `${full.length} -> ${bare.length}`);
      const before = elements(full);
      const after = elements(bare);
      assert.equal(before.filter((e) => e.tag === 0xa3).length, 1, 'the session held the certificate');
      assert.deepEqual(
        after,
        before.filter((e) => e.tag !== 0xa3),
        'every other element unchanged, in order',
      );
      // nothing left to drop: the same buffer back
      assert.equal(withoutPeerCertificate(bare), bare);
      const again = await connect(bare);
      assert.equal(again.reused, true, 'resumed without the certificate');
      assert.equal(again.cert, false);
    } finally {
      server.close();
    }
  });
}

test('withoutPeerCertificate: what it does not understand comes back as it was, and nothing throws', () => {
  for (const hex of ['', '30', '3000', '3080a30100', '02020001', '3003a30100ff', '3082ffff', '301fa3']) {
    const b = Buffer.from(hex, 'hex');
    assert.equal(withoutPeerCertificate(b), b, hex);
  }
  // a well-formed SEQUENCE with a [3] element: dropped, the length byte follows
  assert.equal(
    withoutPeerCertificate(Buffer.from('300a020101a3020500040100', 'hex')).toString('hex'),
    '3006020101040100',
  );
  // random and mutated inputs (seeded): a Buffer back, never longer than the input, never an exception
  let seed = 20261204;
  const rand = (): number => {
    seed = (seed * 1103515245 + 12345) >>> 0;
    return seed / 2 ** 32;
  };
  const base = Buffer.from('3011020101020203040403aabbcca303020100040100', 'hex');
  base[1] = base.length - 2;
  for (let i = 0; i < 5000; i++) {
    const b = Buffer.from(base);
    const n = 1 + Math.floor(rand() * 4);
    for (let k = 0; k < n; k++) b[Math.floor(rand() * b.length)] = Math.floor(rand() * 256);
    const cut = rand() < 0.3 ? b.subarray(0, Math.floor(rand() * b.length)) : b;
    const out = withoutPeerCertificate(cut);
    assert.ok(Buffer.isBuffer(out) && out.length <= cut.length);
  }
});
