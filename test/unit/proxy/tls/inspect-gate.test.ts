// The TLS inspect gate in front of the HTTP core, on the playbook harness: after the hello, TLS is put
// on the client stream (the hello replayed into it); the HTTP core starts only once that handshake is
// done; its server connection is held until TLS is up there too; a server that fails verification
// becomes a connectFailed for the HTTP core (which answers 502) and the stream's own close is not
// passed on. The handshakes themselves are the driver's (test/netns/tls/inspect.test.ts).
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

function gate() {
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
  return new Playbook(new TlsInspectGate(compileTls(policy), http, endpoint, ['http/1.1']), { tick: 1 });
}

const hello = (name?: string) =>
  helloRecord({
    extensions: [...(name ? [sniExt(name)] : []), alpnExt('h2', 'http/1.1'), versionsExt(0x0304)],
  });
const GET = Buffer.from('GET /x HTTP/1.1\r\nHost: www.example.com\r\n\r\n');

test('inspect: client TLS first (hello replayed, a certificate for the SNI), then HTTP on the plaintext', () => {
  const p = gate();
  const h = hello('www.example.com');
  p.feed({ type: 'start', client, clientLocal });
  p.feed({ type: 'data', stream: 'client', data: h });
  const start = p.last.of('startTls')[0] as { stream: string; side: Record<string, unknown> };
  assert.equal(start.stream, 'client');
  assert.equal(start.side.role, 'terminate');
  assert.deepEqual(start.side.names, ['www.example.com']);
  assert.deepEqual(start.side.alpn, ['http/1.1']);
  assert.equal(Buffer.from(start.side.held as Uint8Array).toString('latin1'), h.toString('latin1'));
  assert.equal(p.all.of('connect').length, 0, 'nothing connects before the client handshake');
  // the HTTP core starts when the client's TLS is up, and reads the decrypted request
  p.feed({ type: 'tls', stream: 'client', ok: true, info: info() });
  assert.equal(
    p.last.of('log')[0] && (p.last.of('log')[0] as { msg: string }).msg,
    'Client TLS session established',
  );
  p.feed({ type: 'data', stream: 'client', data: GET });
  assert.equal(p.last.of('connect').length, 1);
  // the server's 'connected' is held: TLS goes on first, with the client's SNI
  p.on({ type: 'connected', stream: 'server', local: serverLocal, remote: clientLocal })
    .out({
      type: 'startTls',
      stream: 'server',
      side: { role: 'originate', sni: 'www.example.com', verifyName: 'www.example.com', alpn: ['http/1.1'] },
      endpoint: any,
    })
    .check();
  p.feed({
    type: 'tls',
    stream: 'server',
    ok: true,
    info: info({ verify: 'ok', subject: 'CN=www.example.com' }),
  });
  // now the HTTP core has its server: the request goes out (on the TLS stream)
  assert.match(p.all.sent('server'), /^GET \/x HTTP\/1\.1\r\n/);
  const acc = p.all.of('account').at(-1) as { fields: Record<string, unknown> };
  assert.equal(acc.fields.tls_mode, 'inspect');
  assert.equal(acc.fields.tls_result, 'accepted');
  assert.equal(acc.fields.tls_server_verify, 'ok');
});

test('inspect: a server that fails verification is a connection failure for HTTP: 502 to the client', () => {
  const p = gate();
  p.feed({ type: 'start', client, clientLocal });
  p.feed({ type: 'data', stream: 'client', data: hello('www.example.com') });
  p.feed({ type: 'tls', stream: 'client', ok: true, info: info() });
  p.feed({ type: 'data', stream: 'client', data: GET });
  p.feed({ type: 'connected', stream: 'server', local: serverLocal, remote: clientLocal });
  p.feed({
    type: 'tls',
    stream: 'server',
    ok: false,
    reason: 'unknown_issuer',
    detail: 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
    info: info({ verify: 'unknown_issuer' }),
  });
  assert.match(p.last.sent('client'), /^HTTP\/1\.1 502 /);
  const v = p.last.of('log').find((l) => (l as { category: string }).category === 'tls.violation') as {
    fields: Record<string, unknown>;
  };
  assert.equal(v.fields.reason, 'unknown_issuer');
  assert.equal(p.all.sent('server'), '', 'nothing was sent to the refused server');
  // the driver's 'closed' for the failed stream is not passed on to the HTTP core
  assert.deepEqual(p.feed({ type: 'closed', stream: 'server' }).commands, []);
});

test('inspect: without SNI, the certificate names the dialled address and the server is verified by address', () => {
  const p = gate();
  p.feed({ type: 'start', client, clientLocal });
  p.feed({ type: 'data', stream: 'client', data: hello() });
  const start = p.last.of('startTls')[0] as { side: Record<string, unknown> };
  assert.deepEqual(start.side.names, ['198.18.2.2']);
  p.feed({ type: 'tls', stream: 'client', ok: true, info: info({ sni: null }) });
  p.feed({ type: 'data', stream: 'client', data: GET });
  p.feed({ type: 'connected', stream: 'server', local: serverLocal, remote: clientLocal });
  const s = p.last.of('startTls')[0] as { side: Record<string, unknown> };
  assert.equal(s.side.sni, null);
  assert.equal(s.side.verifyName, '198.18.2.2');
});

test('inspect: a denied SNI is refused in the hello phase, no TLS started; a failed client handshake ends it', () => {
  const p = gate();
  p.feed({ type: 'start', client, clientLocal });
  p.feed({ type: 'data', stream: 'client', data: hello('bad.example.com') });
  assert.equal(p.all.of('startTls').length, 0);
  assert.equal((p.last.of('done')[0] as { verdict: string }).verdict, 'DENIED_BY_POLICY');
  const q = gate();
  q.feed({ type: 'start', client, clientLocal });
  q.feed({ type: 'data', stream: 'client', data: hello('www.example.com') });
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
