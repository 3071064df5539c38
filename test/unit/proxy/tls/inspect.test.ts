// Termination and origination for inspect mode, with real handshakes on loopback: a server holding a
// certificate from a test CA is verified (or refused with the reason), and a client trusting only the
// inspection CA accepts the leaf made for its name, with the ClientHello bytes read ahead replayed.
import assert from 'node:assert/strict';
import net, { type AddressInfo } from 'node:net';
import { test } from 'node:test';
import tls from 'node:tls';
import { createCa, issueLeaf, LeafCache, loadCa, type PemPair } from '../../../../src/proxy/tls/certs.ts';
import { originateServer, terminateClient } from '../../../../src/proxy/tls/inspect.ts';

const DAY = 86_400_000;

async function serve(
  leaf: PemPair,
  body: string,
  maxVersion: tls.SecureVersion = 'TLSv1.3',
): Promise<{ port: number; close: () => void }> {
  const server = tls.createServer({ cert: leaf.certPem, key: leaf.keyPem, maxVersion }, (s) => s.end(body));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { port: (server.address() as AddressInfo).port, close: () => server.close() };
}

test('originateServer: a verified server gives the session and its details; unknown issuer, wrong name, expired are refused with the reason', async () => {
  const caPem = await createCa({ name: 'server CA' });
  const ca = await loadCa(caPem);
  const other = await createCa({ name: 'other CA' });
  const good = await serve(await issueLeaf(ca, ['www.example.org']), 'hello');
  const expired = await serve(
    await issueLeaf(ca, ['www.example.org'], { days: 1, now: new Date(Date.now() - 10 * DAY) }),
    'old',
  );
  try {
    const base = {
      sni: 'www.example.org',
      verifyName: 'www.example.org',
      verify: true,
      minVersion: 'TLSv1.2' as const,
    };
    const ok = await originateServer(
      { host: '127.0.0.1', port: good.port },
      { ...base, ca: caPem.certPem, alpn: ['http/1.1'] },
    );
    assert.ok(ok.ok, ok.ok ? '' : ok.detail);
    assert.equal(ok.info.verify, 'ok');
    assert.equal(ok.info.subject, 'CN=www.example.org');
    assert.equal(ok.info.issuer, 'CN=server CA');
    assert.deepEqual(ok.info.altNames, ['www.example.org']);
    assert.match(ok.info.version ?? '', /^TLSv1\.[23]$/);
    ok.socket.destroy();

    const unknown = await originateServer(
      { host: '127.0.0.1', port: good.port },
      { ...base, ca: other.certPem },
    );
    assert.equal(unknown.ok ? 'ok' : unknown.reason, 'unknown_issuer');
    const wrong = await originateServer(
      { host: '127.0.0.1', port: good.port },
      { ...base, sni: 'evil.example.com', verifyName: 'evil.example.com', ca: caPem.certPem },
    );
    assert.equal(wrong.ok ? 'ok' : wrong.reason, 'wrong_name');
    const old = await originateServer(
      { host: '127.0.0.1', port: expired.port },
      { ...base, ca: caPem.certPem },
    );
    assert.equal(old.ok ? 'ok' : old.reason, 'expired');
    const unchecked = await originateServer(
      { host: '127.0.0.1', port: good.port },
      { ...base, ca: other.certPem, verify: false },
    );
    assert.equal(unchecked.ok ? unchecked.info.verify : unchecked.reason, 'disabled');
    if (unchecked.ok) unchecked.socket.destroy();
  } finally {
    good.close();
    expired.close();
  }
});

test('terminateClient: the client trusting the inspection CA gets a leaf for its name; held hello bytes are replayed; h2 falls back', async () => {
  const caPem = await createCa({ name: 'inspection CA' });
  const leaves = new LeafCache(await loadCa(caPem));
  const server = net.createServer((raw) => {
    // read the first bytes ahead, as the gate does, and hand them over
    raw.once('data', (first: Buffer) => {
      raw.pause();
      void terminateClient(raw, {
        leaf: (names, now) => leaves.get(names, now),
        names: ['www.example.org'],
        minVersion: 'TLSv1.2',
        alpn: ['http/1.1'],
        held: first,
      }).then(
        (s) => s.end(`alpn=${s.alpnProtocol || 'none'}`),
        () => raw.destroy(),
      );
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  try {
    const port = (server.address() as AddressInfo).port;
    const got = await new Promise<string>((resolve, reject) => {
      const s = tls.connect({
        host: '127.0.0.1',
        port,
        servername: 'www.example.org',
        ca: caPem.certPem,
        ALPNProtocols: ['h2', 'http/1.1'],
      });
      let text = '';
      s.on('secureConnect', () => assert.ok(s.authorized));
      s.on('data', (d) => (text += d));
      s.on('end', () => resolve(text));
      s.on('error', reject);
    });
    assert.equal(got, 'alpn=http/1.1');
  } finally {
    server.close();
  }
});

test('originateServer over a connected socket (IPv6 loopback), no SNI for an IP target: the address is checked against the certificate', async () => {
  const caPem = await createCa({ name: 'server CA' });
  const ca = await loadCa(caPem);
  const leaf = await issueLeaf(ca, ['::1']);
  const server = tls.createServer({ cert: leaf.certPem, key: leaf.keyPem }, (s) => s.end('v6'));
  await new Promise<void>((r) => server.listen(0, '::1', r));
  try {
    const port = (server.address() as AddressInfo).port;
    const connect = async (): Promise<net.Socket> => {
      const raw = net.connect({ host: '::1', port });
      await new Promise((r) => raw.once('connect', r));
      return raw;
    };
    const base = { sni: null, verify: true, ca: caPem.certPem, minVersion: 'TLSv1.3' as const };
    const ok = await originateServer(await connect(), { ...base, verifyName: '::1' });
    assert.ok(ok.ok, ok.ok ? '' : ok.detail);
    assert.equal(ok.info.version, 'TLSv1.3');
    assert.equal(ok.info.sni, null);
    ok.socket.destroy();
    const wrong = await originateServer(await connect(), { ...base, verifyName: '2001:db8::1' });
    assert.equal(wrong.ok ? 'ok' : wrong.reason, 'wrong_name');
  } finally {
    server.close();
  }
});

for (const version of ['TLSv1.3', 'TLSv1.2'] as const)
  test(`originateServer resumes sessions of verified servers only, and keeps their verification details (${version})`, async () => {
    const caPem = await createCa({ name: 'resume CA' });
    const ca = await loadCa(caPem);
    const other = await createCa({ name: 'resume other CA' });
    // the kept sessions hold no certificate (session-der.ts): resuming them must not need it
    const good = await serve(await issueLeaf(ca, ['r.example.org']), 'hello', version);
    try {
      const opts = {
        sni: 'r.example.org',
        verifyName: 'r.example.org',
        verify: true,
        minVersion: 'TLSv1.2' as const,
        ca: caPem.certPem,
      };
      const reused: boolean[] = [];
      for (let i = 0; i < 3; i++) {
        const r = await originateServer({ host: '127.0.0.1', port: good.port }, opts);
        assert.ok(r.ok, r.ok ? '' : r.detail);
        assert.equal(r.info.verify, 'ok');
        assert.equal(r.info.subject, 'CN=r.example.org');
        assert.equal(r.info.issuer, 'CN=resume CA');
        assert.equal(r.info.version, version);
        reused.push(r.socket.isSessionReused());
        await new Promise((res) => setTimeout(res, 50)); // TLS 1.3 tickets come after the handshake
        r.socket.destroy();
      }
      assert.deepEqual(reused, [false, true, true]);
      // another trust bundle, or another name to check, never resumes what the first verified
      const untrusted = await originateServer(
        { host: '127.0.0.1', port: good.port },
        { ...opts, ca: other.certPem },
      );
      assert.equal(untrusted.ok ? 'ok' : untrusted.reason, 'unknown_issuer');
      const wrong = await originateServer(
        { host: '127.0.0.1', port: good.port },
        { ...opts, verifyName: 'evil.example.com' },
      );
      assert.equal(wrong.ok ? 'ok' : wrong.reason, 'wrong_name');
    } finally {
      good.close();
    }
  });

for (const version of ['TLSv1.3', 'TLSv1.2'] as const)
  test(`terminateClient gives a new ticket on every resumed session, resumable on the same certificate only (${version})`, async () => {
    const caPem = await createCa({ name: 'ticket CA' });
    const leaves = new LeafCache(await loadCa(caPem));
    const server = net.createServer((raw) => {
      raw.once('data', (first: Buffer) => {
        raw.pause();
        // the name the client asked for is in its hello: this test's clients say it in the first byte
        // of their SNI (a./b.example.org), enough to pick the certificate
        const names = first.includes('b.example.org') ? ['b.example.org'] : ['a.example.org'];
        void terminateClient(raw, {
          leaf: (n, now) => leaves.get(n, now),
          names,
          minVersion: 'TLSv1.2',
          held: first,
        }).then(
          (s) => s.end('ok'),
          () => raw.destroy(),
        );
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as AddressInfo).port;
    /** One connection offering `session`: whether it was resumed and the last ticket it got (each used once). */
    const connect = (name: string, session?: Buffer) =>
      new Promise<{ reused: boolean; ticket: Buffer | undefined }>((resolve, reject) => {
        let ticket: Buffer | undefined;
        const s = tls.connect({
          host: '127.0.0.1',
          port,
          servername: name,
          ca: caPem.certPem,
          maxVersion: version,
          ...(session ? { session } : {}),
        });
        s.on('session', (t: Buffer) => (ticket = t));
        s.on('error', reject);
        s.resume();
        s.on('end', () => {
          const reused = s.isSessionReused();
          s.destroy();
          resolve({ reused, ticket });
        });
      });
    try {
      const first = await connect('a.example.org');
      assert.equal(first.reused, false);
      assert.ok(first.ticket, 'a ticket after a full handshake');
      let ticket = first.ticket;
      for (let i = 0; i < 3; i++) {
        const next = await connect('a.example.org', ticket);
        assert.equal(next.reused, true, `resumption ${i + 1}`);
        if (version === 'TLSv1.3') {
          assert.ok(next.ticket, `a new ticket after resumption ${i + 1}`);
          assert.notDeepEqual(next.ticket, ticket);
        }
        ticket = next.ticket ?? ticket;
      }
      // a ticket issued with a.example.org's certificate does not resume a session for b.example.org
      const other = await connect('b.example.org', ticket);
      assert.equal(other.reused, false);
    } finally {
      server.close();
    }
  });
