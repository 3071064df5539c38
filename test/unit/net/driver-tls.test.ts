// The driver's TLS layer (`startTls`) with scripted cores over loopback: a second connection to a server
// resumes the first one's session (`role: 'resume'`, what FTP data channels need), verified with the
// first one's name; a reset of a TLS stream resets its TCP connection (a TLS socket has no TCP handle
// of its own: node throws if asked to reset it) and the session ends cleanly.
import assert from 'node:assert/strict';
import net, { type AddressInfo } from 'node:net';
import { after, test } from 'node:test';
import tls from 'node:tls';
import { openListener, runSession, type SessionSummary } from '../../../src/net/index.ts';
import type { ProxyCommand, ProxyEvent, TlsEndpoint } from '../../../src/proxy/core/types.ts';
import { createCa, issueLeaf, LeafCache, loadCa } from '../../../src/proxy/tls/certs.ts';

const cleanups: (() => unknown)[] = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

test('resume: a second connection offers the first one’s TLS session; a reset TLS stream resets its TCP connection', async () => {
  const serverCa = await createCa({ name: 'driver server CA' });
  const inspectCa = await createCa({ name: 'driver inspect CA' });
  const leaves = new LeafCache(await loadCa(inspectCa));
  const serverLeaf = await issueLeaf(await loadCa(serverCa), ['data.example.org']);
  const reused: boolean[] = [];
  const server = tls.createServer({ cert: serverLeaf.certPem, key: serverLeaf.keyPem }, (s) => {
    reused.push(s.isSessionReused());
    s.end(`conn ${reused.length}`);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  cleanups.push(() => server.close());
  const target = { host: '127.0.0.1', port: (server.address() as AddressInfo).port, family: 4 as const };
  const endpoint: TlsEndpoint = {
    minVersion: 'TLSv1.2',
    verify: true,
    serverCa: serverCa.certPem,
    leaf: (names, now) => leaves.get(names, now),
  };
  const got: Record<string, string> = { a: '', b: '' };
  const tlsEvents: Extract<ProxyEvent, { type: 'tls' }>[] = [];
  const core = {
    handle(ev: ProxyEvent): ProxyCommand[] {
      switch (ev.type) {
        case 'start':
          return [
            {
              type: 'startTls',
              stream: 'client',
              side: { role: 'terminate', names: ['proxy.example.org'] },
              endpoint,
            },
          ];
        case 'tls':
          tlsEvents.push(ev);
          if (ev.stream === 'client') return [{ type: 'connect', stream: 'a', options: { target } }];
          if (ev.stream === 'a') return [{ type: 'setTimer', timer: 'tickets', ms: 100 }];
          return [];
        case 'timer':
          return [{ type: 'connect', stream: 'b', options: { target } }];
        case 'connected':
          return [
            {
              type: 'startTls',
              stream: ev.stream,
              side:
                ev.stream === 'a'
                  ? { role: 'originate', sni: 'data.example.org', verifyName: 'data.example.org' }
                  : { role: 'resume', from: 'a' },
              endpoint,
            },
          ];
        case 'data':
          got[ev.stream] = (got[ev.stream] ?? '') + Buffer.from(ev.data).toString();
          return [];
        case 'end':
          // both server connections read to their end: reset the client's TLS stream
          return ev.stream === 'b' ? [{ type: 'close', stream: 'client', reset: true }] : [];
        case 'closed':
          return ev.stream === 'client' ? [{ type: 'done', verdict: 'ACCEPTED' }] : [];
        default:
          return [];
      }
    },
    describe: () => ({ proxy: 'scripted', state: 'tls' }),
  };
  let summary!: Promise<SessionSummary>;
  const l = await openListener({
    host: '127.0.0.1',
    port: 0,
    transparent: false,
    onConnection: (socket) => {
      summary = runSession({
        id: 'svc/tls:1',
        service: 'tls',
        socket,
        createCore: () => core,
        log: () => {},
      }).done;
    },
  });
  cleanups.push(() => l.close());
  const client = tls.connect({
    host: '127.0.0.1',
    port: l.local.port,
    servername: 'proxy.example.org',
    ca: inspectCa.certPem,
  });
  const clientEnd = await new Promise<string>((resolve) => {
    client.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
    client.on('close', () => resolve('closed without an error'));
  });
  assert.equal(clientEnd, 'ECONNRESET');
  const s = await summary;
  assert.equal(s.verdict, 'ACCEPTED');
  assert.deepEqual(
    tlsEvents.map((e) => [e.stream, e.ok, e.info.verify]),
    [
      ['client', true, null],
      ['a', true, 'ok'],
      ['b', true, 'ok'],
    ],
  );
  // the second connection resumed the first one's session, and it was sent the same SNI
  assert.deepEqual(reused, [false, true]);
  assert.equal(tlsEvents[2]!.info.sni, 'data.example.org');
  assert.equal(tlsEvents[2]!.info.subject, 'CN=data.example.org');
  assert.deepEqual(got, { a: 'conn 1', b: 'conn 2' });
});

test('resume of a stream without TLS fails the handshake, and the stream is closed', async () => {
  const seen: ProxyEvent[] = [];
  const plain = net.createServer((s) => {
    s.on('error', () => {}); // (the driver resets it after the failed handshake)
    s.end('plain');
  });
  await new Promise<void>((r) => plain.listen(0, '127.0.0.1', r));
  cleanups.push(() => plain.close());
  const target = { host: '127.0.0.1', port: (plain.address() as AddressInfo).port, family: 4 as const };
  const endpoint: TlsEndpoint = {
    minVersion: 'TLSv1.2',
    verify: true,
    leaf: () => Promise.reject(new Error('no leaf here')),
  };
  let accepted!: (s: Promise<SessionSummary>) => void;
  const summary = new Promise<Promise<SessionSummary>>((r) => {
    accepted = r;
  });
  const l = await openListener({
    host: '127.0.0.1',
    port: 0,
    transparent: false,
    onConnection: (socket) => {
      accepted(
        runSession({
          id: 'svc/tls:2',
          service: 'tls',
          socket,
          log: () => {},
          createCore: () => ({
            handle(ev) {
              seen.push(ev);
              if (ev.type === 'start') return [{ type: 'connect', stream: 'd', options: { target } }];
              if (ev.type === 'connected')
                return [
                  { type: 'startTls', stream: 'd', side: { role: 'resume', from: 'client' }, endpoint },
                ];
              if (ev.type === 'closed' && ev.stream === 'd') return [{ type: 'done', verdict: 'ACCEPTED' }];
              return [];
            },
            describe: () => ({ proxy: 'scripted', state: 'x' }),
          }),
        }).done,
      );
    },
  });
  cleanups.push(() => l.close());
  const c = net.connect(l.local.port, '127.0.0.1');
  c.on('error', () => {});
  await await summary;
  c.destroy();
  const t = seen.find((e) => e.type === 'tls');
  assert.ok(t && t.type === 'tls' && !t.ok && /no TLS to resume/.test(t.detail ?? ''), JSON.stringify(t));
  assert.ok(seen.some((e) => e.type === 'closed' && e.stream === 'd'));
});
