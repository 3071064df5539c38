// FTPS in the FTP core (tls.mode inspect, RFC 4217), step by step: AUTH TLS carried to the server, the
// client's ClientHello read and decided before anything else, TLS to the server first (its names go
// on the client's certificate), then to the client; PBSZ/PROT; protected data channels; and every
// refusal: a server that refuses AUTH, CCC, PROT before TLS, bytes pipelined after AUTH, a denied
// SNI, a server that fails verification, a client handshake that fails, a data channel whose TLS
// fails. Implicit FTPS: the ClientHello first, the server connected after it.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { ProxyCommand, TlsEndpoint, TlsHandshakeInfo } from '../../../../src/proxy/core/index.ts';
import type { FtpTls } from '../../../../src/proxy/ftp/options.ts';
import { ALERT, compileTls } from '../../../../src/proxy/tls/index.ts';
import { alpnExt, helloRecord, sniExt } from '../tls/hello-fixtures.ts';
import { CLIENT, FW_SERVER_SIDE, Script, SERVER_ADDR } from './script.ts';

const endpoint: TlsEndpoint = {
  minVersion: 'TLSv1.2',
  verify: true,
  leaf: () => Promise.reject(new Error('not in a unit test')),
};

function tlsOptions(extra: { deny?: string[]; implicit?: boolean | 'auto' } = {}): FtpTls {
  return {
    policy: compileTls({
      mode: 'inspect',
      ca: { cert: '/c', key: '/k' },
      serverVerify: true,
      serverCaFile: null,
      sni: { allow: [], deny: extra.deny ?? [], missing: 'accept' },
      minVersion: 'TLSv1.2',
      pos: { file: 'p.yaml', line: 1, col: 1 },
    }),
    endpoint,
    implicit: extra.implicit ?? 'auto',
  };
}

const info = (over: Partial<TlsHandshakeInfo> = {}): TlsHandshakeInfo => ({
  sni: null,
  version: 'TLSv1.3',
  cipher: 'TLS_AES_256_GCM_SHA384',
  alpn: null,
  subject: 'CN=ftp.example.org',
  issuer: 'CN=test CA',
  verify: 'ok',
  altNames: ['ftp.example.org', '198.18.2.2'],
  ...over,
});

type StartTls = Extract<ProxyCommand, { type: 'startTls' }>;
const startTls = (cmds: readonly ProxyCommand[]) => cmds.filter((c): c is StartTls => c.type === 'startTls');
const logs = (cmds: readonly ProxyCommand[], category: string) =>
  cmds.flatMap((c) => (c.type === 'log' && c.category === category ? [c.msg] : []));

/** Through AUTH TLS and both handshakes: the control connection is TLS on both sides. */
function explicitTls(s: Script, sni: string | null = 'ftp.example.org'): void {
  s.open();
  s.fromClient('AUTH TLS\r\n');
  assert.equal(s.last.sent('server'), 'AUTH TLS\r\n');
  s.fromServer('234 Proceed with negotiation.\r\n');
  assert.equal(s.last.sent('client'), '234 Proceed with negotiation.\r\n');
  const hello = helloRecord({ extensions: sni ? [sniExt(sni), alpnExt('ftp')] : [alpnExt('ftp')] });
  // the hello in two pieces: nothing happens until it is whole
  s.data('client', hello.subarray(0, 20));
  assert.deepEqual(startTls(s.last.commands), []);
  s.data('client', hello.subarray(20));
  const [server] = startTls(s.last.commands);
  assert.deepEqual(server?.side, {
    role: 'originate',
    sni,
    verifyName: sni ?? SERVER_ADDR.host,
  });
  assert.equal(server?.stream, 'server');
  s.ev({ type: 'tls', stream: 'server', ok: true, info: info({ sni }) });
  const [client] = startTls(s.last.commands);
  assert.equal(client?.stream, 'client');
  // the client's certificate: its name first, then the verified server certificate's other names
  assert.deepEqual(client?.side, {
    role: 'terminate',
    names: [sni ?? SERVER_ADDR.host, ...(sni ? ['198.18.2.2'] : ['ftp.example.org'])],
    held: new Uint8Array(hello),
  });
  s.ev({ type: 'tls', stream: 'client', ok: true, info: info({ sni, subject: null, verify: null }) });
  assert.deepEqual(logs(s.last.commands, 'tls.session'), ['Client TLS session established']);
}

/** Through AUTH TLS and PROT P, a PASV whose client-side listener is up. */
function protectedPassive() {
  const s = new Script({}, { tls: tlsOptions() });
  explicitTls(s);
  s.fromClient('PROT P\r\n');
  s.fromServer('200 PROT now Private.\r\n');
  s.fromClient('PASV\r\n');
  s.fromServer('227 Entering Passive Mode (198,18,2,2,195,80).\r\n');
  const listen = s.last.of('listen')[0]!;
  s.ev({ type: 'listening', listener: listen.listener, local: { ...SERVER_ADDR, port: 40100 } });
  return { s, listen };
}

describe('ftp core: FTPS (tls.mode inspect)', () => {
  it('AUTH TLS: server first, then the client; commands wait for both; PBSZ and PROT P go on', () => {
    const s = new Script({}, { tls: tlsOptions() });
    explicitTls(s);
    s.fromClient('USER ftp\r\n');
    assert.equal(s.last.sent('server'), 'USER ftp\r\n');
    s.fromServer('331 Password please\r\n');
    s.fromClient('PASS x\r\n');
    s.fromServer('230 Logged in\r\n');
    s.fromClient('PBSZ 0\r\n');
    assert.equal(s.last.sent('server'), 'PBSZ 0\r\n');
    s.fromServer('200 PBSZ set to 0.\r\n');
    s.fromClient('PROT P\r\n');
    assert.equal(s.last.sent('server'), 'PROT P\r\n');
    s.fromServer('200 PROT now Private.\r\n');
    assert.equal(s.last.sent('client'), '200 PROT now Private.\r\n');
    assert.equal(s.core.describe().data_protected, true);
  });

  it('PROT P: each data connection gets TLS on both sides, the server side resuming the control session', () => {
    const { s, listen } = protectedPassive();
    s.ev({ type: 'accepted', listener: listen.listener, stream: 'cd1', local: SERVER_ADDR, remote: CLIENT });
    assert.deepEqual(startTls(s.last.commands)[0]?.side, {
      role: 'terminate',
      names: ['ftp.example.org', '198.18.2.2'],
    });
    s.fromClient('RETR f\r\n');
    const connect = s.last.of('connect')[0]!;
    s.ev({ type: 'connected', stream: connect.stream, local: FW_SERVER_SIDE, remote: SERVER_ADDR });
    assert.deepEqual(startTls(s.last.commands)[0]?.side, { role: 'resume', from: 'server' });
    // server data is not relayed before both data connections are secured
    s.fromServer('150 Opening\r\n');
    s.ev({ type: 'tls', stream: connect.stream, ok: true, info: info() });
    s.data(connect.stream, 'file bytes');
    assert.deepEqual(s.last.of('send'), []);
    s.ev({ type: 'tls', stream: 'cd1', ok: true, info: info({ verify: null }) });
    assert.equal(s.last.sent('cd1'), 'file bytes');
    assert.deepEqual(s.all.of('relay'), [], 'protected data is never offered to the native relay');
    s.ev({ type: 'end', stream: connect.stream });
    s.ev({ type: 'closed', stream: connect.stream });
    s.fromServer('226 Transfer complete.\r\n');
    s.ev({ type: 'end', stream: 'cd1' });
    s.ev({ type: 'closed', stream: 'cd1' });
    assert.match(s.all.sent('client'), /226 Transfer complete/);
  });

  it('a data connection whose TLS fails: the transfer is answered 425, logged as tls.violation', () => {
    const { s } = protectedPassive();
    s.fromClient('RETR f\r\n');
    const connect = s.last.of('connect')[0]!;
    s.ev({ type: 'connected', stream: connect.stream, local: FW_SERVER_SIDE, remote: SERVER_ADDR });
    s.ev({
      type: 'tls',
      stream: connect.stream,
      ok: false,
      reason: 'handshake_failure',
      detail: 'session reuse required',
      info: info({ verify: 'handshake_failure' }),
    });
    assert.deepEqual(logs(s.last.commands, 'tls.violation'), ['Data connection TLS failed']);
    assert.match(s.last.sent('client'), /^425 /);
  });

  it('refusals: CCC, PROT and PBSZ before TLS, AUTH twice, AUTH of an unknown mechanism', () => {
    const s = new Script({}, { tls: tlsOptions() });
    s.open();
    s.fromClient('PROT P\r\n');
    assert.match(s.last.sent('client'), /^503 /);
    s.fromClient('PBSZ 0\r\n');
    assert.match(s.last.sent('client'), /^503 /);
    s.fromClient('AUTH KERBEROS\r\n');
    assert.match(s.last.sent('client'), /^504 /);
    assert.equal(s.all.sent('server'), '');
    explicitTls(s);
    s.fromClient('CCC\r\n');
    assert.match(s.last.sent('client'), /^533 /);
    s.fromClient('AUTH TLS\r\n');
    assert.match(s.last.sent('client'), /^503 /);
    s.fromClient('PROT S\r\n');
    assert.match(s.last.sent('client'), /^536 /);
    assert.doesNotMatch(s.all.sent('server'), /CCC|PROT S/);
  });

  it('a server that refuses AUTH: its answer goes to the client, the session stays in clear', () => {
    const s = new Script({}, { tls: tlsOptions() });
    s.open();
    s.fromClient('AUTH TLS\r\n');
    s.fromServer('534 TLS not available\r\n');
    assert.equal(s.last.sent('client'), '534 TLS not available\r\n');
    s.fromClient('USER ftp\r\n');
    assert.equal(s.last.sent('server'), 'USER ftp\r\n');
  });

  it('FEAT offers AUTH TLS, PBSZ and PROT (not CCC) whatever the server lists', () => {
    const s = new Script({}, { tls: tlsOptions() });
    s.open();
    s.fromClient('FEAT\r\n');
    s.fromServer('211-Features:\r\n EPSV\r\n CCC\r\n211 End\r\n');
    const feat = s.last.sent('client');
    for (const f of [' AUTH TLS', ' PBSZ', ' PROT', ' EPSV']) assert.ok(feat.includes(`${f}\r\n`), feat);
    assert.ok(!feat.includes('CCC'), feat);
    // without tls inspect the TLS features are dropped (the proxy could not carry them)
    const plain = new Script();
    plain.open();
    plain.fromClient('FEAT\r\n');
    plain.fromServer('211-Features:\r\n AUTH TLS\r\n EPSV\r\n211 End\r\n');
    assert.ok(!plain.last.sent('client').includes('AUTH'));
  });

  it('bytes pipelined after AUTH TLS, before its 234: refused with an alert', () => {
    const s = new Script({}, { tls: tlsOptions() });
    s.open();
    s.fromClient('AUTH TLS\r\nUSER ftp\r\n');
    s.fromServer('234 Proceed\r\n');
    assert.equal(s.done()?.verdict, 'DENIED_BY_POLICY');
    assert.deepEqual(logs(s.all.commands, 'tls.violation'), ['TLS handshake refused']);
  });

  it('a denied SNI: an access_denied alert, the server never sees a handshake', () => {
    const s = new Script({}, { tls: tlsOptions({ deny: ['bad.example.org'] }) });
    s.open();
    s.fromClient('AUTH TLS\r\n');
    s.fromServer('234 Proceed\r\n');
    s.data('client', helloRecord({ extensions: [sniExt('bad.example.org')] }));
    const sent = s.last.of('send').find((c) => c.stream === 'client');
    assert.deepEqual([...(sent?.data ?? [])], [0x15, 0x03, 0x03, 0x00, 0x02, 0x02, ALERT.accessDenied]);
    assert.deepEqual(startTls(s.all.commands), []);
    assert.equal(s.done()?.verdict, 'DENIED_BY_POLICY');
  });

  it('a server that fails verification: the client gets a handshake_failure alert, never a session', () => {
    const s = new Script({}, { tls: tlsOptions() });
    s.open();
    s.fromClient('AUTH TLS\r\n');
    s.fromServer('234 Proceed\r\n');
    s.data('client', helloRecord({ extensions: [sniExt('ftp.example.org')] }));
    s.ev({
      type: 'tls',
      stream: 'server',
      ok: false,
      reason: 'unknown_issuer',
      detail: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
      info: info({ verify: 'unknown_issuer' }),
    });
    const sent = s.last.of('send').find((c) => c.stream === 'client');
    assert.deepEqual([...(sent?.data ?? [])].slice(-1), [ALERT.handshakeFailure]);
    assert.equal(startTls(s.all.commands).length, 1); // the server's only: the client got none
    assert.deepEqual(logs(s.last.commands, 'tls.violation'), ['Server TLS session refused']);
    assert.equal(s.done()?.verdict, 'DENIED_BY_CONNECTION_FAIL');
  });

  it('a client handshake that fails ends the session; the server connection is closed', () => {
    const s = new Script({}, { tls: tlsOptions() });
    s.open();
    s.fromClient('AUTH TLS\r\n');
    s.fromServer('234 Proceed\r\n');
    s.data('client', helloRecord());
    s.ev({ type: 'tls', stream: 'server', ok: true, info: info() });
    s.ev({
      type: 'tls',
      stream: 'client',
      ok: false,
      reason: 'client_handshake',
      detail: 'unknown ca',
      info: info(),
    });
    assert.ok(s.last.of('close').some((c) => c.stream === 'server'));
    assert.equal(s.done()?.verdict, 'DENIED_BY_POLICY');
  });

  it('implicit FTPS (port 990): the ClientHello first, then the server; the greeting comes over TLS', () => {
    const s = new Script({}, { tls: tlsOptions() });
    const on990 = { ...SERVER_ADDR, port: 990 };
    s.ev({ type: 'start', client: CLIENT, clientLocal: on990 });
    assert.deepEqual(s.last.of('connect'), []);
    s.data('client', helloRecord({ extensions: [sniExt('ftp.example.org')] }));
    assert.equal(s.last.of('connect').length, 1);
    s.ev({ type: 'connected', stream: 'server', local: FW_SERVER_SIDE, remote: on990 });
    assert.deepEqual(startTls(s.last.commands)[0]?.side, {
      role: 'originate',
      sni: 'ftp.example.org',
      verifyName: 'ftp.example.org',
    });
    s.ev({ type: 'tls', stream: 'server', ok: true, info: info() });
    assert.equal(startTls(s.last.commands)[0]?.stream, 'client');
    s.fromServer('220 Welcome\r\n');
    assert.equal(s.last.sent('client'), '220 Welcome\r\n');
    s.ev({ type: 'tls', stream: 'client', ok: true, info: info({ verify: null }) });
    s.fromClient('USER ftp\r\n');
    assert.equal(s.last.sent('server'), 'USER ftp\r\n');
    // implicit: false keeps port 990 in clear (AUTH TLS then); true makes any port implicit
    const clear = new Script({}, { tls: tlsOptions({ implicit: false }) });
    clear.ev({ type: 'start', client: CLIENT, clientLocal: on990 });
    assert.equal(clear.last.of('connect').length, 1);
    const forced = new Script({}, { tls: tlsOptions({ implicit: true }) });
    forced.ev({ type: 'start', client: CLIENT, clientLocal: SERVER_ADDR });
    assert.deepEqual(forced.last.of('connect'), []);
  });

  it('no ClientHello in time: the session ends, logged', () => {
    const s = new Script({}, { tls: tlsOptions() });
    s.ev({ type: 'start', client: CLIENT, clientLocal: { ...SERVER_ADDR, port: 990 } });
    s.ev({ type: 'timer', timer: 'tls.hello' });
    assert.deepEqual(logs(s.last.commands, 'tls.violation'), ['TLS handshake not complete in time']);
    assert.equal(s.done()?.verdict, 'DENIED_BY_POLICY');
  });
});
