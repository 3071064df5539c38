// The TLS passthrough gate in front of the plug core, on the playbook harness: the decision on the
// ClientHello, the alert of a refusal (the server never asked for), and the handover that gives the plug
// core every byte the client sent, the hello first, once its server is connected.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { TlsPolicy } from '../../../../src/policy/model.ts';
import type { Addr } from '../../../../src/proxy/core/types.ts';
import { bindCore } from '../../../../src/proxy/index.ts';
import { plugModule } from '../../../../src/proxy/plug/index.ts';
import { ALERT, alertRecord, compileTls, TlsPassthroughGate } from '../../../../src/proxy/tls/index.ts';
import { any, Playbook, text } from '../playbook.ts';
import { alpnExt, helloRecord, sniExt, versionsExt } from './hello-fixtures.ts';

const client: Addr = { host: '198.18.1.2', port: 40000, family: 4 };
const clientLocal: Addr = { host: '198.18.2.2', port: 443, family: 4 };
const serverLocal: Addr = { host: '198.18.2.1', port: 50000, family: 4 };

function tlsPolicy(
  sni: Partial<TlsPolicy['sni']> = {},
  minVersion: TlsPolicy['minVersion'] = 'TLSv1.2',
): TlsPolicy {
  return {
    mode: 'passthrough',
    ca: null,
    serverVerify: true,
    serverCaFile: null,
    sni: { allow: [], deny: [], missing: 'accept', ...sni },
    minVersion,
    pos: { file: 'p.yaml', line: 1, col: 1 },
  };
}

function gate(policy: TlsPolicy) {
  const plug = bindCore(plugModule, { timeout: 1000 })({
    sessionId: 's:1',
    service: 't',
    clientZone: null,
    inband: false,
  });
  return new Playbook(new TlsPassthroughGate(compileTls(policy), plug), { tick: 1 });
}

const hello = (name?: string) =>
  helloRecord({
    extensions: [...(name ? [sniExt(name)] : []), alpnExt('http/1.1'), versionsExt(0x0304, 0x0303)],
  });

test('accepted: nothing connects before the hello; the plug core gets the hello once its server is up', () => {
  const p = gate(tlsPolicy({ allow: ['*.example.com'] }));
  const h = hello('www.example.com');
  p.on({ type: 'start', client, clientLocal })
    .out({ type: 'setTimer', timer: 'tls.hello', ms: 10_000 })
    .on({ type: 'data', stream: 'client', data: h.subarray(0, 10) })
    .out()
    .on({ type: 'data', stream: 'client', data: h.subarray(10) })
    .out(
      { type: 'clearTimer', timer: 'tls.hello' },
      { type: 'log', category: 'tls.session', level: 'info', msg: text(/accepted/), fields: any },
      { type: 'account', fields: any },
      { type: 'pause', stream: 'client' },
      { type: 'connect', stream: 'server', options: {} },
      { type: 'setTimer', timer: 'connect', ms: 1000 },
    )
    // a byte after the hello, while the plug core has the client paused: held, in order
    .on({ type: 'data', stream: 'client', data: Buffer.from('X') })
    .out()
    .on({ type: 'connected', stream: 'server', local: serverLocal, remote: clientLocal })
    .out(
      { type: 'clearTimer', timer: 'connect' },
      { type: 'resume', stream: 'client' },
      { type: 'setTimer', timer: 'idle', ms: 1000 },
      // the plug core asks for the native relay; the driver hands over after this batch, so the held
      // hello still goes first
      { type: 'relay', a: 'client', b: 'server', idleMs: 1000 },
      { type: 'send', stream: 'server', data: h },
      { type: 'send', stream: 'server', data: 'X' },
    )
    .on({ type: 'data', stream: 'server', data: Buffer.from('server hello') })
    .out({ type: 'send', stream: 'client', data: 'server hello' })
    .check();
  assert.equal((p.all.of('account')[0] as { fields: Record<string, unknown> }).fields.tls_result, 'accepted');
  const log = p.all.of('log')[0] as { fields: Record<string, unknown> };
  assert.equal(log.fields.sni, 'www.example.com');
  assert.equal(log.fields.alpn, 'http/1.1');
  assert.equal(log.fields.offered_max_version, 'TLSv1.3');
  assert.equal(log.fields.sni_allow_matched, '*.example.com');
});

for (const [name, policy, sni, alert, why] of [
  [
    'a denied name',
    tlsPolicy({ deny: ['bad.example.com'] }),
    'bad.example.com',
    ALERT.accessDenied,
    /matches sni deny 'bad\.example\.com'/,
  ],
  [
    'a name outside the allow list',
    tlsPolicy({ allow: ['*.example.org'] }),
    'www.example.com',
    ALERT.accessDenied,
    /matches no sni allow glob/,
  ],
  [
    'no name with missing: reject',
    tlsPolicy({ missing: 'reject' }),
    undefined,
    ALERT.unrecognizedName,
    /names no server/,
  ],
  [
    'deny wins over allow',
    tlsPolicy({ allow: ['*.example.com'], deny: ['bad.*'] }),
    'bad.example.com',
    ALERT.accessDenied,
    /deny/,
  ],
] as const) {
  test(`refused, ${name}: a fatal alert, a close, tls.violation; no connect`, () => {
    const p = gate(policy);
    p.feed({ type: 'start', client, clientLocal });
    p.feed({ type: 'data', stream: 'client', data: hello(sni) });
    p.expect(
      { type: 'send', stream: 'client', data: Buffer.from(alertRecord(alert)).toString('latin1') },
      { type: 'log', category: 'tls.violation', level: 'warn', msg: 'TLS handshake refused', fields: any },
      { type: 'clearTimer', timer: 'tls.hello' },
      { type: 'close', stream: 'client' },
      { type: 'account', fields: any },
      { type: 'done', verdict: 'DENIED_BY_POLICY', info: text(why) },
    );
    assert.equal(p.all.of('connect').length, 0);
    const account = p.all.of('account')[0] as { fields: Record<string, unknown> };
    assert.equal(
      account.fields.tls_result,
      alert === ALERT.accessDenied ? 'access_denied' : 'unrecognized_name',
      'the metrics label: the alert by its RFC 8446 name',
    );
    assert.deepEqual(p.feed({ type: 'data', stream: 'client', data: Buffer.from('more') }).commands, []);
  });
}

test('min_version TLSv1.3: a client offering at most TLS 1.2 gets protocol_version', () => {
  const p = gate(tlsPolicy({}, 'TLSv1.3'));
  p.feed({ type: 'start', client, clientLocal });
  p.feed({
    type: 'data',
    stream: 'client',
    data: helloRecord({ extensions: [sniExt('a.example'), versionsExt(0x0303)] }),
  });
  assert.equal(p.last.sent('client'), Buffer.from(alertRecord(ALERT.protocolVersion)).toString('latin1'));
  assert.match(
    String((p.last.of('done')[0] as { info: string }).info),
    /at most TLSv1\.2, below min_version TLSv1\.3/,
  );
});

test('not TLS at all (plain HTTP): decode_error alert, no connect', () => {
  const p = gate(tlsPolicy());
  p.feed({ type: 'start', client, clientLocal });
  p.feed({ type: 'data', stream: 'client', data: Buffer.from('GET / HTTP/1.1\r\n') });
  assert.equal(p.last.sent('client'), Buffer.from(alertRecord(ALERT.decodeError)).toString('latin1'));
  assert.equal(p.all.of('connect').length, 0);
});

test('a client that sends nothing: the hello timer ends the session; one that leaves early too', () => {
  const p = gate(tlsPolicy());
  p.feed({ type: 'start', client, clientLocal });
  p.feed({ type: 'timer', timer: 'tls.hello' });
  assert.match(String((p.last.of('done')[0] as { info: string }).info), /no TLS ClientHello within 10000 ms/);
  const q = gate(tlsPolicy());
  q.feed({ type: 'start', client, clientLocal });
  q.feed({ type: 'data', stream: 'client', data: hello('x.example').subarray(0, 20) });
  q.feed({ type: 'end', stream: 'client' });
  assert.equal((q.last.of('done')[0] as { verdict: string }).verdict, 'DENIED_BY_POLICY');
  assert.equal(q.all.of('connect').length, 0);
});

test('the server refuses the connection: the plug core ends the session, held bytes are dropped', () => {
  const p = gate(tlsPolicy());
  p.feed({ type: 'start', client, clientLocal });
  p.feed({ type: 'data', stream: 'client', data: hello('a.example') });
  p.feed({ type: 'connectFailed', stream: 'server', error: 'ECONNREFUSED' });
  assert.equal((p.last.of('done')[0] as { verdict: string }).verdict, 'DENIED_BY_CONNECTION_FAIL');
  assert.equal(p.all.sent('server').length, 0);
});

test('describe() names the state and, after the hello, the inner core', () => {
  const p = gate(tlsPolicy());
  const g = p.core as TlsPassthroughGate;
  assert.equal(g.describe().state, 'init');
  p.feed({ type: 'start', client, clientLocal });
  assert.equal(g.describe().state, 'hello');
  p.feed({ type: 'data', stream: 'client', data: hello('a.example') });
  assert.equal(g.describe().state, 'handover');
  assert.equal((g.describe().inner as { proxy: string }).proxy, 'plug');
  p.feed({ type: 'connected', stream: 'server', local: serverLocal, remote: clientLocal });
  assert.equal(g.describe().state, 'relay');
  assert.equal(p.all.sent('server').length, hello('a.example').length);
});
