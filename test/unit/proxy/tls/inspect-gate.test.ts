// The TLS inspect gate in front of the HTTP core, on the playbook harness: after the hello the gate
// connects the server and puts TLS on it first (verified with the client's SNI), then on the client
// stream (the hello replayed into it) with a certificate carrying the server's names; the HTTP core
// starts only once that handshake is done, and its first connect is answered with the connection
// already made; a server that fails verification (or cannot be reached, or does not finish its
// handshake) becomes a connectFailed for the HTTP core (which answers 502 over the client's TLS) and
// the stream's own close is not passed on. The handshakes themselves are the driver's
// (test/netns/tls/inspect.test.ts).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { TlsPolicy } from '../../../../src/policy/model.ts';
import type { Addr, TlsEndpoint, TlsHandshakeInfo } from '../../../../src/proxy/core/types.ts';
import { httpModule } from '../../../../src/proxy/http/index.ts';
import { bindCore } from '../../../../src/proxy/index.ts';
import { compileTls, TlsInspectGate } from '../../../../src/proxy/tls/index.ts';
import { any, Playbook, text } from '../playbook.ts';
import { alpnExt, helloRecord, sniExt, versionsExt } from './hello-fixtures.ts';

const client: Addr = { host: '198.18.1.2', port: 40000, family: 4 };
const clientLocal: Addr = { host: '198.18.2.2', port: 443, family: 4 };
const serverLocal: Addr = { host: '198.18.2.1', port: 50000, family: 4 };

const policy: TlsPolicy = {
  mode: 'inspect',
  ca: { cert: '/ca.crt', key: '/ca.key' },
  serverVerify: true,
  serverCaFile: null,
  sni: { allow: [], deny: ['bad.example.com'], missing: 'accept' },
  minVersion: 'TLSv1.2',
  pos: { file: 'p.yaml', line: 1, col: 1 },
};
const endpoint: TlsEndpoint = {
  minVersion: 'TLSv1.2',
  verify: true,
  leaf: () => Promise.reject(new Error('not in a unit test')),
};
const info = (over: Partial<TlsHandshakeInfo> = {}): TlsHandshakeInfo => ({
  sni: 'www.example.com',
  version: 'TLSv1.3',
  cipher: 'TLS_AES_128_GCM_SHA256',
  alpn: 'http/1.1',
  subject: null,
  issuer: null,
  verify: null,
  altNames: [],
  ...over,
});

function gate(targetName: string | null = null) {
  const http = bindCore(
    httpModule,
    {},
  )({
    sessionId: 's:1',
    service: 'web',
    clientZone: null,
    inband: false,
    clientLocal,
    tls: true,
  });
  return new Playbook(new TlsInspectGate(compileTls(policy), http, endpoint, ['http/1.1'], targetName), {
    tick: 1,
  });
}

const hello = (name?: string) =>
  helloRecord({
    extensions: [...(name ? [sniExt(name)] : []), alpnExt('h2', 'http/1.1'), versionsExt(0x0304)],
  });
const GET = Buffer.from('GET /x HTTP/1.1\r\nHost: www.example.com\r\n\r\n');

/** Through the hello and the server's TLS (verified, with `altNames`); the client's handshake is next. */
function throughServer(p: Playbook, sni: string | undefined, altNames: string[]) {
  p.feed({ type: 'start', client, clientLocal });
  p.feed({ type: 'data', stream: 'client', data: hello(sni) });
  p.feed({ type: 'connected', stream: 'server', local: serverLocal, remote: clientLocal });
  p.feed({
    type: 'tls',
    stream: 'server',
    ok: true,
    info: info({ sni: sni ?? null, verify: 'ok', subject: 'CN=www.example.com', altNames }),
  });
}

test('inspect: server first (verified with the client SNI), then the client TLS with the server names, then HTTP on the plaintext', () => {
  const p = gate();
  const h = hello('www.example.com');
  p.feed({ type: 'start', client, clientLocal });
  // the hello accepted: the gate connects the server itself, before any TLS toward the client
  p.on({ type: 'data', stream: 'client', data: h })
    .out(
      { type: 'clearTimer', timer: 'tls.hello' },
      {
        type: 'log',
        category: 'tls.session',
        level: 'info',
        msg: 'TLS ClientHello accepted; terminating',
        fields: any,
      },
      { type: 'connect', stream: 'server', options: {} },
    )
    .on({ type: 'connected', stream: 'server', local: serverLocal, remote: clientLocal })
    .out(
      {
        type: 'startTls',
        stream: 'server',
        side: {
          role: 'originate',
          sni: 'www.example.com',
          verifyName: 'www.example.com',
          alpn: ['http/1.1'],
        },
        endpoint: any,
      },
      { type: 'setTimer', timer: 'tls.hello', ms: any },
    )
    .check();
  p.feed({
    type: 'tls',
    stream: 'server',
    ok: true,
    info: info({
      verify: 'ok',
      subject: 'CN=www.example.com',
      altNames: ['www.example.com', 'alt.example.com'],
    }),
  });
  const start = p.last.of('startTls')[0] as { stream: string; side: Record<string, unknown> };
  assert.equal(start.stream, 'client');
  assert.equal(start.side.role, 'terminate');
  // the client's certificate: its name, then the verified server certificate's other names
  assert.deepEqual(start.side.names, ['www.example.com', 'alt.example.com']);
  assert.deepEqual(start.side.alpn, ['http/1.1']);
  assert.equal(Buffer.from(start.side.held as Uint8Array).toString('latin1'), h.toString('latin1'));
  // the HTTP core starts when the client's TLS is up, and reads the decrypted request
  p.feed({ type: 'tls', stream: 'client', ok: true, info: info() });
  assert.ok(p.last.of('log').some((l) => (l as { msg: string }).msg === 'Client TLS session established'));
  // its first connect is answered with the connection already made: the request goes out at once
  p.feed({ type: 'data', stream: 'client', data: GET });
  assert.match(p.last.sent('server'), /^GET \/x HTTP\/1\.1\r\n/);
  assert.equal(p.all.of('connect').length, 1, 'one server connection');
  const acc = p.all.of('account').at(-1) as { fields: Record<string, unknown> };
  assert.equal(acc.fields.tls_mode, 'inspect');
  assert.equal(acc.fields.tls_result, 'accepted');
  assert.equal(acc.fields.tls_server_verify, 'ok');
  // the server closes the kept-alive connection; the next request connects again, TLS first
  p.feed({
    type: 'data',
    stream: 'server',
    data: Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok'),
  });
  p.feed({ type: 'end', stream: 'server' });
  p.feed({ type: 'closed', stream: 'server' });
  p.feed({ type: 'data', stream: 'client', data: GET });
  assert.equal(p.last.of('connect').length, 1);
  p.feed({ type: 'connected', stream: 'server', local: serverLocal, remote: clientLocal });
  assert.equal((p.last.of('startTls')[0] as { stream: string }).stream, 'server');
  assert.equal(p.last.sent('server'), '');
  p.feed({ type: 'tls', stream: 'server', ok: true, info: info({ verify: 'ok' }) });
  assert.match(p.last.sent('server'), /^GET \/x HTTP\/1\.1\r\n/);
});

test('inspect: what the server sends before the HTTP core has it is held and passed on after its connected', () => {
  const p = gate();
  throughServer(p, 'www.example.com', []);
  // the server closes before the client's handshake is done: the HTTP core hears of it later, in order
  assert.deepEqual(p.feed({ type: 'end', stream: 'server' }).commands, []);
  assert.deepEqual(p.feed({ type: 'closed', stream: 'server' }).commands, []);
  p.feed({ type: 'tls', stream: 'client', ok: true, info: info() });
  p.feed({ type: 'data', stream: 'client', data: GET });
  // the HTTP core got connected (sent the request), then the close: it reconnects for a new server
  assert.match(p.all.sent('server'), /^GET \/x HTTP\/1\.1\r\n/);
});

test('inspect: a server that fails verification is a connection failure for HTTP: 502 over the client TLS', () => {
  const p = gate();
  p.feed({ type: 'start', client, clientLocal });
  p.feed({ type: 'data', stream: 'client', data: hello('www.example.com') });
  p.feed({ type: 'connected', stream: 'server', local: serverLocal, remote: clientLocal });
  p.feed({
    type: 'tls',
    stream: 'server',
    ok: false,
    reason: 'unknown_issuer',
    detail: 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
    info: info({ verify: 'unknown_issuer' }),
  });
  const v = p.last.of('log').find((l) => (l as { category: string }).category === 'tls.violation') as {
    fields: Record<string, unknown>;
  };
  assert.equal(v.fields.reason, 'unknown_issuer');
  // the client still gets a session (for the 502), with its own name only
  const start = p.last.of('startTls')[0] as { stream: string; side: Record<string, unknown> };
  assert.equal(start.stream, 'client');
  assert.deepEqual(start.side.names, ['www.example.com']);
  // the driver's 'closed' for the failed stream is not passed on to the HTTP core
  assert.deepEqual(p.feed({ type: 'closed', stream: 'server' }).commands, []);
  p.feed({ type: 'tls', stream: 'client', ok: true, info: info() });
  p.feed({ type: 'data', stream: 'client', data: GET });
  assert.match(p.last.sent('client'), /^HTTP\/1\.1 502 /);
  assert.equal(p.all.sent('server'), '', 'nothing was sent to the refused server');
});

test('inspect: a server that cannot be reached: the client gets its session and a 502 inside it', () => {
  const p = gate();
  p.feed({ type: 'start', client, clientLocal });
  p.feed({ type: 'data', stream: 'client', data: hello('www.example.com') });
  p.feed({ type: 'connectFailed', stream: 'server', error: 'ECONNREFUSED', target: clientLocal });
  assert.equal((p.last.of('startTls')[0] as { stream: string }).stream, 'client');
  // the tls.violation line names the reason, as for a server that fails its TLS (docs/tls.md)
  const v = p.last.of('log').find((l) => (l as { category: string }).category === 'tls.violation') as
    | { msg: string; fields: Record<string, unknown> }
    | undefined;
  assert.ok(v, 'a tls.violation line for the unreachable server');
  assert.equal(v.fields.reason, 'connect_failed');
  assert.equal(v.fields.sni, 'www.example.com');
  assert.match(String(v.fields.error), /ECONNREFUSED/);
  p.feed({ type: 'tls', stream: 'client', ok: true, info: info() });
  p.feed({ type: 'data', stream: 'client', data: GET });
  assert.match(p.last.sent('client'), /^HTTP\/1\.1 502 /);
  const acc = p.all
    .of('account')
    .map((a) => (a as { fields: Record<string, unknown> }).fields)
    .filter((f) => 'tls_result' in f);
  assert.equal(acc.at(-1)?.tls_result, 'connect_failed');
});

test('inspect: without SNI, the server is verified by address and the certificate names the dialled address', () => {
  const p = gate();
  p.feed({ type: 'start', client, clientLocal });
  p.feed({ type: 'data', stream: 'client', data: hello() });
  p.feed({ type: 'connected', stream: 'server', local: serverLocal, remote: clientLocal });
  const s = p.last.of('startTls')[0] as { side: Record<string, unknown> };
  assert.equal(s.side.sni, null);
  assert.equal(s.side.verifyName, '198.18.2.2');
  p.feed({
    type: 'tls',
    stream: 'server',
    ok: true,
    info: info({ sni: null, verify: 'ok', altNames: ['198.18.2.2', 'srv.example.net'] }),
  });
  const start = p.last.of('startTls')[0] as { side: Record<string, unknown> };
  assert.deepEqual(start.side.names, ['198.18.2.2', 'srv.example.net']);
});

test('inspect: a denied SNI is refused in the hello phase, nothing connected; a failed client handshake ends it', () => {
  const p = gate();
  p.feed({ type: 'start', client, clientLocal });
  p.feed({ type: 'data', stream: 'client', data: hello('bad.example.com') });
  assert.equal(p.all.of('startTls').length, 0);
  assert.equal(p.all.of('connect').length, 0);
  assert.equal((p.last.of('done')[0] as { verdict: string }).verdict, 'DENIED_BY_POLICY');
  const q = gate();
  throughServer(q, 'www.example.com', []);
  q.on({
    type: 'tls',
    stream: 'client',
    ok: false,
    reason: 'client_handshake',
    detail: 'unknown ca',
    info: info(),
  })
    .out(
      {
        type: 'log',
        category: 'tls.violation',
        level: 'warn',
        msg: 'Client TLS handshake failed',
        fields: any,
      },
      { type: 'clearTimer', timer: 'tls.hello' },
      { type: 'close', stream: 'client' },
      { type: 'account', fields: any },
      { type: 'done', verdict: 'DENIED_BY_POLICY', info: text(/client handshake failed: unknown ca/) },
    )
    .check();
});

test('inspect: a server that does not finish its handshake in time: closed, and a 502 for the client', () => {
  const p = gate();
  p.feed({ type: 'start', client, clientLocal });
  p.feed({ type: 'data', stream: 'client', data: hello('www.example.com') });
  p.feed({ type: 'connected', stream: 'server', local: serverLocal, remote: clientLocal });
  p.feed({ type: 'timer', timer: 'tls.hello' });
  assert.ok(p.last.of('close').some((c) => (c as { stream: string }).stream === 'server'));
  const v = p.last
    .of('log')
    .find((l) => (l as { msg: string }).msg === 'Server TLS handshake not complete in time') as
    | { category: string; fields: Record<string, unknown> }
    | undefined;
  assert.equal(v?.category, 'tls.violation');
  assert.equal(v.fields.reason, 'handshake_failure');
  assert.deepEqual(p.feed({ type: 'closed', stream: 'server' }).commands, []);
  p.feed({ type: 'tls', stream: 'client', ok: true, info: info() });
  p.feed({ type: 'data', stream: 'client', data: GET });
  assert.match(p.last.sent('client'), /^HTTP\/1\.1 502 /);
});

test('inspect in a CONNECT tunnel to a name, without SNI: the server is asked for, and verified against, the name; the certificate names it first', () => {
  const p = gate('www.example.org');
  p.feed({ type: 'start', client, clientLocal });
  p.feed({ type: 'data', stream: 'client', data: hello() });
  p.feed({ type: 'connected', stream: 'server', local: serverLocal, remote: clientLocal });
  const s = p.last.of('startTls')[0] as { side: Record<string, unknown> };
  assert.equal(s.side.sni, 'www.example.org');
  assert.equal(s.side.verifyName, 'www.example.org');
  p.feed({
    type: 'tls',
    stream: 'server',
    ok: true,
    info: info({ sni: 'www.example.org', verify: 'ok', altNames: ['www.example.org', '198.18.2.2'] }),
  });
  const start = p.last.of('startTls')[0] as { side: Record<string, unknown> };
  assert.deepEqual(start.side.names, ['www.example.org', '198.18.2.2']);
});

test("inspect in a CONNECT tunnel to a name: the client's own SNI still comes first", () => {
  const p = gate('www.example.org');
  p.feed({ type: 'start', client, clientLocal });
  p.feed({ type: 'data', stream: 'client', data: hello('other.example.org') });
  p.feed({ type: 'connected', stream: 'server', local: serverLocal, remote: clientLocal });
  const s = p.last.of('startTls')[0] as { side: Record<string, unknown> };
  assert.equal(s.side.sni, 'other.example.org');
  assert.equal(s.side.verifyName, 'other.example.org');
});

test('inspect in a CONNECT tunnel to a denied name, without SNI: refused in the hello phase as that name, nothing connected', () => {
  const p = gate('bad.example.com');
  p.feed({ type: 'start', client, clientLocal });
  p.feed({ type: 'data', stream: 'client', data: hello() });
  assert.equal(p.all.of('startTls').length, 0);
  assert.equal(p.all.of('connect').length, 0);
  assert.equal((p.last.of('done')[0] as { verdict: string }).verdict, 'DENIED_BY_POLICY');
  const violation = p.all.of('log').find((l) => (l as { category?: string }).category === 'tls.violation') as
    | { fields: Record<string, unknown> }
    | undefined;
  assert.match(
    String(violation?.fields.reason),
    /CONNECT name \(no SNI\) 'bad\.example\.com' matches sni deny/,
  );
  // an allowed name passes as before
  const q = gate('www.example.com');
  q.feed({ type: 'start', client, clientLocal });
  q.feed({ type: 'data', stream: 'client', data: hello() });
  q.feed({ type: 'connected', stream: 'server', local: serverLocal, remote: clientLocal });
  assert.equal((q.last.of('startTls')[0] as { side: Record<string, unknown> }).side.sni, 'www.example.com');
});
