// The ClientHello reader: real hellos from node:tls, split anywhere and spread over records; what a
// strict reader refuses, each with the alert it names.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ProtocolError } from '../../../../src/errors.ts';
import { ALERT, type ClientHello, readClientHello } from '../../../../src/proxy/tls/index.ts';
import {
  alpnExt,
  captureHello,
  helloMessage,
  helloRecord,
  records,
  sniExt,
  versionsExt,
} from './hello-fixtures.ts';

const MAX = 32 * 1024;

function refused(input: Uint8Array, alert: number, re?: RegExp, max = MAX): void {
  assert.throws(
    () => readClientHello(input, max),
    (e: unknown) => {
      assert.ok(e instanceof ProtocolError, String(e));
      assert.equal(e.side, 'client');
      assert.equal(e.reply, alert, e.message);
      if (re) assert.match(e.message, re);
      return true;
    },
  );
}

test('a real node:tls hello: SNI, ALPN, TLS 1.3 and 1.2 offered', async () => {
  const raw = await captureHello({ servername: 'WWW.Example.COM', ALPNProtocols: ['h2', 'http/1.1'] });
  const h = readClientHello(raw, MAX)!;
  assert.equal(h.sni, 'www.example.com');
  assert.deepEqual(h.alpn, ['h2', 'http/1.1']);
  assert.ok(h.supportedVersions.includes(0x0304) && h.supportedVersions.includes(0x0303));
  assert.equal(h.maxVersion, 0x0304);
  assert.equal(h.consumed, raw.length);
});

test('split at every byte: need more until the last byte, then the same hello', async () => {
  const raw = await captureHello({ servername: 'split.example.org' });
  const whole = readClientHello(raw, MAX);
  for (let k = 0; k < raw.length; k++)
    assert.equal(readClientHello(raw.subarray(0, k), MAX), null, `prefix ${k}`);
  assert.deepEqual(readClientHello(raw, MAX), whole);
});

test('one hello spread over several records, fragmented anywhere, reads the same', () => {
  const hs = helloMessage({
    extensions: [sniExt('frag.example.net'), alpnExt('http/1.1'), versionsExt(0x0304, 0x0303)],
  });
  const want = readClientHello(records(hs), MAX) as ClientHello;
  for (const fragment of [1, 2, 3, 5, 17, 64]) {
    const got = readClientHello(records(hs, fragment), MAX)!;
    assert.deepEqual({ ...got, consumed: 0 }, { ...want, consumed: 0 }, `fragment ${fragment}`);
  }
  assert.equal(want.sni, 'frag.example.net');
});

test('bytes after the hello (TLS 1.3 early records) are left alone; consumed ends at the hello', () => {
  const hello = helloRecord({ extensions: [sniExt('a.example')] });
  const extra = Buffer.from([20, 3, 3, 0, 1, 1, 23, 3, 3, 0, 3, 1, 2, 3]);
  const h = readClientHello(Buffer.concat([hello, extra]), MAX)!;
  assert.equal(h.consumed, hello.length);
});

test('GREASE versions and extension types are ignored; max version is the highest real one', () => {
  const h = readClientHello(
    helloRecord({
      extensions: [[0x0a0a, []], versionsExt(0x3a3a, 0x0304, 0x0303), [0x1a1a, [0]], sniExt('g.example')],
    }),
    MAX,
  )!;
  assert.deepEqual(h.supportedVersions, [0x0304, 0x0303]);
  assert.equal(h.maxVersion, 0x0304);
});

test('no server_name: sni null; no supported_versions: the legacy version counts', () => {
  const h = readClientHello(helloRecord({ legacyVersion: 0x0302, extensions: [alpnExt('http/1.1')] }), MAX)!;
  assert.equal(h.sni, null);
  assert.equal(h.maxVersion, 0x0302);
  const old = readClientHello(helloRecord({ noExtensions: true }), MAX)!;
  assert.deepEqual([old.sni, old.alpn, old.maxVersion], [null, [], 0x0303]);
});

test('a trailing dot is taken off the server name', () => {
  assert.equal(
    readClientHello(helloRecord({ extensions: [sniExt('dot.example.com.')] }), MAX)!.sni,
    'dot.example.com',
  );
});

test('refused: SSLv2-compatible hello, plain HTTP, other record types, bad versions', () => {
  refused(Buffer.from([0x80, 0x2e, 0x01, 0x03, 0x01]), ALERT.protocolVersion, /SSLv2/);
  refused(Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'), ALERT.decodeError, /record type 71/);
  refused(Buffer.from([23, 3, 3, 0, 1, 0]), ALERT.decodeError, /record type 23/);
  refused(Buffer.from([22, 2, 0, 0, 1, 0]), ALERT.protocolVersion);
  refused(helloRecord({ legacyVersion: 0x0200 }), ALERT.protocolVersion);
  const notHello = helloMessage();
  notHello[0] = 2; // ServerHello
  refused(records(notHello), ALERT.decodeError, /not ClientHello/);
});

test('refused: two host names, a duplicated extension, a name that is not DNS text', () => {
  refused(
    helloRecord({ extensions: [sniExt('a.example', 'b.example')] }),
    ALERT.illegalParameter,
    /two host names/,
  );
  refused(helloRecord({ extensions: [alpnExt('h2'), alpnExt('h2')] }), ALERT.illegalParameter, /twice/);
  refused(helloRecord({ extensions: [sniExt('bad name.example')] }), ALERT.illegalParameter);
  refused(helloRecord({ extensions: [sniExt('a..b')] }), ALERT.illegalParameter, /not a DNS name/);
  refused(helloRecord({ extensions: [sniExt('')] }), ALERT.decodeError);
  refused(helloRecord({ extensions: [sniExt('[zz::1]')] }), ALERT.illegalParameter, /not a DNS name/);
});

test('an address literal in server_name (not permitted, but GnuTLS clients send one) is taken as no name', () => {
  for (const literal of ['2001:db8:2::2', '[2001:db8::1]', '198.18.2.2', '::ffff:198.18.2.2']) {
    const h = readClientHello(helloRecord({ extensions: [sniExt(literal), alpnExt('h2')] }), 16384);
    assert.equal(h?.sni, null, literal);
    assert.deepEqual(h?.alpn, ['h2']);
  }
});

test('refused: lengths that do not add up', () => {
  const hs = helloMessage({ extensions: [sniExt('x.example')] });
  const bad = [...hs];
  bad[bad.length - 10]! += 1; // the host name length inside server_name: one byte too long
  refused(records(bad), ALERT.decodeError);
  const tooShort = helloMessage();
  tooShort[3] = tooShort[3]! - 3; // the message says it ends inside compression_methods
  refused(records(tooShort.slice(0, tooShort.length - 3)), ALERT.decodeError);
  refused(Buffer.from([22, 3, 1, 0, 0]), ALERT.decodeError, /empty handshake record/);
  refused(Buffer.from([22, 3, 1, 0x40, 0x01]), ALERT.decodeError, /record of 16385 bytes/);
});

test('bounded: a hello larger than the limit, or no hello within it, is refused as a limit', () => {
  const big = helloRecord({ extensions: [[0xffce, new Array(4000).fill(0)], sniExt('big.example')] });
  assert.ok(readClientHello(big, MAX));
  assert.throws(
    () => readClientHello(big, 1024),
    (e: unknown) => e instanceof ProtocolError && e.id === 'PROXY_LIMIT',
  );
  // records that never complete a hello: the reader stops at the limit
  const dribble = records(helloMessage({ extensions: [[0xffce, new Array(3000).fill(0)]] }), 100);
  assert.throws(
    () => readClientHello(dribble.subarray(0, 2000), 1500),
    (e: unknown) => e instanceof ProtocolError && e.id === 'PROXY_LIMIT',
  );
});
