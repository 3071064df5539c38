// Scripted event/command sequences for the HTTP proxy core: keep-alive, pipelining, framing, 1xx,
// Expect, Upgrade, explicit mode and CONNECT, timeouts, server failures, logs.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { Addr } from '../../../../src/proxy/core/types.ts';
import { DEST, opened, Script } from './script.ts';

const GET = (path = '/', extra = '') => `GET ${path} HTTP/1.1\r\nHost: example.test\r\n${extra}\r\n`;
const OK = (body = 'ok', extra = '') =>
  `HTTP/1.1 200 OK\r\nContent-Length: ${body.length}\r\n${extra}\r\n${body}`;

describe('keep-alive and pipelining', () => {
  test('two requests on one connection use one server connection, answered in order', () => {
    const s = opened();
    s.server(OK('one'));
    s.client(GET('/2'));
    s.server(OK('two'));
    assert.equal(s.connects().length, 1);
    assert.equal(s.all.sent('client'), `${OK('one')}${OK('two')}`);
    assert.equal(s.done(), undefined, 'the session stays open');
    const acc = s.logs('http.accounting');
    assert.equal(acc.length, 2);
    assert.deepEqual(
      { ...acc[1]!.fields, duration_ms: 0 },
      {
        method: 'GET',
        url: 'http://example.test/2',
        status: 200,
        bytes: 3,
        bytes_to_client: 3,
        bytes_to_server: 0,
        duration_ms: 0,
        service: 'http_test',
        session_id: 'svc/test:1',
      },
    );
  });

  test('pipelined requests: the second goes to the server only after the first response', () => {
    const s = new Script();
    s.start();
    s.client(GET('/1') + GET('/2'));
    s.connected();
    assert.equal(s.all.sent('server'), GET('/1'));
    s.server(OK('a'));
    assert.equal(s.all.sent('server'), GET('/1') + GET('/2'));
    s.server(OK('b'));
    assert.equal(s.all.sent('client'), OK('a') + OK('b'));
  });

  test('a pipelined flood pauses the client, and reading resumes once it is consumed', () => {
    const s = new Script();
    s.start();
    s.client(GET('/0'));
    const flood = GET('/x').repeat(5000);
    const cmds = s.client(flood);
    assert.ok(cmds.commands.some((c) => c.type === 'pause' && c.stream === 'client'));
    s.connected();
    for (let i = 0; i < 5001 && !s.all.commands.some((c) => c.type === 'resume'); i++) s.server(OK());
    assert.ok(s.all.commands.some((c) => c.type === 'resume' && c.stream === 'client'));
  });

  test('Connection: close from the client ends the session after the response', () => {
    const s = opened({}, GET('/', 'Connection: close\r\n'));
    assert.match(s.all.sent('server'), /Connection: close\r\n/);
    s.server(OK());
    assert.match(s.all.sent('client'), /Connection: close\r\n/);
    assert.equal(s.done()?.verdict, 'ACCEPTED');
  });

  test('a closing response: the FIN to the client follows the response, before the accounting', () => {
    const s = opened({}, GET('/', 'Connection: close\r\n'));
    const types = s.server(OK()).types();
    const at = (t: string) => types.indexOf(t);
    assert.ok(at('send:client') >= 0 && at('shutdown:client') === at('send:client') + 1, types.join(' '));
    assert.ok(at('shutdown:client') < at('log'), types.join(' '));
    assert.ok(at('close:client') > at('log'), types.join(' '));
    // a keep-alive response: no FIN
    const k = opened({}, GET('/'));
    assert.equal(k.server(OK()).types().includes('shutdown:client'), false);
    // over TLS the close keeps its old order (the client's session resumption suffered)
    const t = new Script({}, { tls: true });
    t.start();
    t.client(GET('/', 'Connection: close\r\n'));
    t.connected();
    const tt = t.server(OK()).types();
    assert.equal(tt.includes('shutdown:client'), false, tt.join(' '));
    assert.ok(tt.includes('close:client'), tt.join(' '));
  });

  test('HTTP/1.0 client: response says close and the session ends', () => {
    const s = opened({}, 'GET / HTTP/1.0\r\nHost: example.test\r\n\r\n');
    s.server(OK());
    assert.match(s.all.sent('client'), /^HTTP\/1\.1 200 OK\r\n/);
    assert.match(s.all.sent('client'), /Connection: close/);
    assert.ok(s.done());
  });

  test('max_keepalive_requests closes after the n-th request', () => {
    const s = opened({ max_keepalive_requests: 2 });
    s.server(OK());
    assert.equal(s.done(), undefined);
    s.client(GET('/2'));
    s.server(OK());
    assert.match(s.all.sent('client').split('HTTP/1.1 200').at(-1)!, /Connection: close/);
    assert.equal(s.done()?.verdict, 'ACCEPTED');
  });

  test('client half-close after a complete request: the response is still delivered', () => {
    const s = opened();
    s.end('client');
    assert.equal(s.done(), undefined);
    s.server(OK('late'));
    assert.equal(s.all.sent('client'), OK('late'));
    assert.ok(s.done());
  });

  test('server closing an idle keep-alive connection: the next request reconnects', () => {
    const s = opened();
    s.server(OK());
    s.end('server');
    assert.deepEqual(s.closedStreams(), ['server']);
    s.client(GET('/2'));
    assert.equal(s.connects().length, 1, 'waits for the old stream to be closed');
    s.closed('server');
    assert.equal(s.connects().length, 2);
    s.connected();
    s.server(OK('b'));
    assert.ok(s.all.sent('client').endsWith(OK('b')));
  });
});

describe('framing', () => {
  test('HEAD: Content-Length kept, no body read', () => {
    const s = opened({}, 'HEAD / HTTP/1.1\r\nHost: example.test\r\n\r\n');
    s.server('HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n');
    assert.equal(s.all.sent('client'), 'HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n');
    s.client(GET('/next'));
    assert.ok(s.all.sent('server').endsWith(GET('/next')));
  });

  test('204 and 304 have no body', () => {
    const s = opened();
    s.server('HTTP/1.1 204 No Content\r\n\r\n');
    s.client(GET('/2'));
    s.server('HTTP/1.1 304 Not Modified\r\nETag: "x"\r\n\r\n');
    assert.equal(
      s.all.sent('client'),
      'HTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 304 Not Modified\r\nETag: "x"\r\n\r\n',
    );
    assert.equal(s.logs('http.accounting').length, 2);
  });

  test('chunked request body is re-chunked; chunk extensions and trailers are not forwarded', () => {
    const s = opened({}, 'POST /up HTTP/1.1\r\nHost: example.test\r\nTransfer-Encoding: chunked\r\n\r\n');
    s.client('3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\nX-T: 1\r\n\r\n');
    // Chunks that arrived together leave as one (review finding 5).
    assert.equal(
      s.all.sent('server'),
      'POST /up HTTP/1.1\r\nHost: example.test\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nabcde\r\n0\r\n\r\n',
    );
    s.server(OK());
    assert.equal(s.logs('http.accounting')[0]!.fields!.bytes_to_server, 5);
  });

  test('close-delimited response goes to an HTTP/1.1 client chunked; the server connection is dropped', () => {
    const s = opened();
    s.server('HTTP/1.1 200 OK\r\n\r\npart1');
    s.server('part2');
    s.end('server');
    assert.equal(
      s.all.sent('client'),
      'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\npart1\r\n5\r\npart2\r\n0\r\n\r\n',
    );
    assert.equal(s.done(), undefined, 'the client keeps its connection');
    assert.deepEqual(s.closedStreams(), ['server']);
  });

  test('close-delimited response to an HTTP/1.0 client stays close-delimited', () => {
    const s = opened({}, 'GET / HTTP/1.0\r\nHost: example.test\r\n\r\n');
    s.server('HTTP/1.0 200 OK\r\n\r\nbody');
    s.end('server');
    assert.equal(s.all.sent('client'), 'HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nbody');
    assert.ok(s.done());
  });

  test('the head and body of a small response leave in one send', () => {
    const s = opened();
    const cmds = s.server(OK('hello'));
    const sends = cmds.commands.filter((c) => c.type === 'send');
    assert.equal(sends.length, 1);
    assert.equal(Buffer.from((sends[0] as { data: Uint8Array }).data).toString('latin1'), OK('hello'));
  });

  test('a body split across many events is passed through byte for byte', () => {
    const s = opened();
    const body = Buffer.alloc(100_000, 7);
    s.server('HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n');
    for (let i = 0; i < body.length; i += 1000) s.server(body.subarray(i, i + 1000));
    const got = Buffer.from(s.all.sent('client'), 'latin1');
    assert.equal(got.length, 'HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n'.length + 100_000);
    assert.equal(s.logs('http.accounting')[0]!.fields!.bytes, 100_000);
  });

  test('the response head is re-serialised: hop-by-hop headers removed, names kept', () => {
    const s = opened();
    s.server(
      'HTTP/1.1 200 Fine\r\nConnection: keep-alive, X-Hop\r\nX-Hop: 1\r\nKeep-Alive: timeout=5\r\nx-lower:  v \r\nContent-Length: 0\r\n\r\n',
    );
    assert.equal(s.all.sent('client'), 'HTTP/1.1 200 Fine\r\nx-lower: v\r\nContent-Length: 0\r\n\r\n');
  });

  test('an early response to an unfinished upload closes the client connection afterwards', () => {
    const s = opened({}, 'POST / HTTP/1.1\r\nHost: example.test\r\nContent-Length: 100\r\n\r\n0123456789');
    s.server('HTTP/1.1 413 Content Too Large\r\nContent-Length: 0\r\n\r\n');
    assert.match(s.all.sent('client'), /Connection: close/);
    assert.ok(s.done());
  });
});

describe('1xx, Expect and Upgrade', () => {
  test('Expect: 100-continue is forwarded and the 100 relayed', () => {
    const s = opened(
      {},
      'POST / HTTP/1.1\r\nHost: example.test\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n',
    );
    assert.match(s.all.sent('server'), /Expect: 100-continue/);
    s.server('HTTP/1.1 100 Continue\r\n\r\n');
    assert.equal(s.all.sent('client'), 'HTTP/1.1 100 Continue\r\n\r\n');
    s.client('data');
    assert.ok(s.all.sent('server').endsWith('\r\n\r\ndata'));
    s.server(OK());
    assert.deepEqual(s.statuses(), [100, 200]);
    assert.equal(s.logs('http.accounting').length, 1);
  });

  test('a 100-continue request refused by policy is answered at once, no body awaited', () => {
    const s = new Script();
    s.start();
    s.client('PUT / HTTP/1.1\r\nHost: example.test\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n');
    assert.deepEqual(s.statuses(), [403]);
    assert.equal(s.all.sent('server'), '');
  });

  test('interim responses are not sent to HTTP/1.0 clients', () => {
    const s = opened({}, 'GET / HTTP/1.0\r\nHost: example.test\r\n\r\n');
    s.server('HTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\n');
    s.server(OK());
    assert.deepEqual(s.statuses(), [200]);
  });

  test('Upgrade is stripped unless permitted', () => {
    const s = opened({}, GET('/ws', 'Connection: Upgrade\r\nUpgrade: websocket\r\n'));
    assert.doesNotMatch(s.all.sent('server'), /Upgrade/i);
  });

  test('a permitted WebSocket upgrade becomes a plug relay after 101', () => {
    const s = opened(
      { permit_upgrade: ['websocket'] },
      GET(
        '/ws',
        'Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n',
      ),
    );
    assert.match(s.all.sent('server'), /Connection: Upgrade\r\nUpgrade: websocket\r\n/);
    s.server(
      'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n\x81\x02hi',
    );
    assert.match(s.all.sent('client'), /^HTTP\/1\.1 101 Switching Protocols\r\n/);
    assert.ok(s.all.sent('client').endsWith('\x81\x02hi'), 'frames after the 101 are relayed');
    s.client('\x81\x82abcd\x00\x00');
    assert.ok(s.all.sent('server').endsWith('\x81\x82abcd\x00\x00'));
    s.end('client');
    assert.ok(s.all.commands.some((c) => c.type === 'shutdown' && c.stream === 'server'));
    s.end('server');
    assert.equal(s.done()?.verdict, 'ACCEPTED');
  });

  test('a permit_upgrade list without the requested protocol strips it', () => {
    const s = opened({ permit_upgrade: ['websocket'] }, GET('/', 'Connection: Upgrade\r\nUpgrade: h2c\r\n'));
    assert.doesNotMatch(s.all.sent('server'), /h2c/);
  });
});

describe('explicit proxy mode', () => {
  const explicit = { transparent_mode: false };

  test('absolute URI: inband connect to the host, origin-form and Host rewritten for the server', () => {
    const s = new Script({ ...explicit, target_port_range: '80,443,8080' }, { inband: true });
    s.start();
    s.client('GET http://www.example.test:8080/a?b HTTP/1.1\r\nHost: other.test\r\n\r\n');
    assert.deepEqual(s.connects()[0]!.options, {
      inband: { host: 'www.example.test', port: 8080 },
      sendsFirst: true,
    });
    s.connected();
    assert.equal(s.all.sent('server'), 'GET /a?b HTTP/1.1\r\nHost: www.example.test:8080\r\n\r\n');
  });

  test('target_port_range refuses other ports', () => {
    const s = new Script({ ...explicit, target_port_range: '80,443' }, { inband: true });
    s.start();
    s.client('GET http://www.example.test:8080/ HTTP/1.1\r\nHost: www.example.test:8080\r\n\r\n');
    assert.deepEqual(s.statuses(), [403]);
    assert.equal(s.connects().length, 0);
  });

  test('rewrite_host_header false keeps the client Host', () => {
    const s = new Script({ ...explicit, rewrite_host_header: false }, { inband: true });
    s.start();
    s.client('GET http://a.test/ HTTP/1.1\r\nHost: b.test\r\n\r\n');
    s.connected();
    assert.match(s.all.sent('server'), /^GET \/ HTTP\/1\.1\r\nHost: b\.test\r\n/);
  });

  test('a request for another host closes the server connection and opens a new one', () => {
    const s = new Script(explicit, { inband: true });
    s.start();
    s.client('GET http://a.test/ HTTP/1.1\r\nHost: a.test\r\n\r\n');
    s.connected();
    s.server(OK());
    s.client('GET http://b.test/ HTTP/1.1\r\nHost: b.test\r\n\r\n');
    assert.deepEqual(s.closedStreams(), ['server']);
    s.closed('server');
    assert.deepEqual(s.connects()[1]!.options, { inband: { host: 'b.test', port: 80 }, sendsFirst: true });
    s.connected();
    assert.ok(s.all.sent('server').endsWith('GET / HTTP/1.1\r\nHost: b.test\r\n\r\n'));
  });

  test('CONNECT to a permitted port: 200, then a plug relay', () => {
    const s = new Script(explicit, { inband: true });
    s.start();
    s.client('CONNECT secure.test:443 HTTP/1.1\r\nHost: secure.test:443\r\n\r\n\x16\x03\x01');
    assert.deepEqual(s.connects()[0]!.options, { inband: { host: 'secure.test', port: 443 } });
    assert.equal(s.all.sent('client'), '');
    s.connected();
    assert.equal(s.all.sent('client'), 'HTTP/1.1 200 Connection established\r\n\r\n');
    assert.equal(s.all.sent('server'), '\x16\x03\x01', 'bytes sent early are relayed, no HTTP head');
    s.server('\x16\x03\x03');
    assert.ok(s.all.sent('client').endsWith('\x16\x03\x03'));
    s.closed('server');
    assert.equal(s.done()?.verdict, 'ACCEPTED');
    const acc = s.logs('http.accounting');
    assert.equal(acc.length, 1);
    assert.equal(acc[0]!.fields!.method, 'CONNECT');
    assert.equal(acc[0]!.fields!.bytes_to_server, 3);
  });

  test('CONNECT with inspection: the nested session learns the host name asked for (null for an address)', () => {
    for (const [target, name] of [
      ['secure.test:443', 'secure.test'],
      ['198.18.2.20:443', null],
      ['[2001:db8:2::20]:443', null],
    ] as const) {
      const asked: [Addr, string | null][] = [];
      const s = new Script(explicit, {
        inband: true,
        inspectConnect: (at, n) => {
          asked.push([at, n]);
          return { handle: () => [], describe: () => ({ proxy: 'nested', state: 'test' }) };
        },
      });
      s.start();
      s.client(`CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\n\r\n`);
      s.connected();
      assert.equal(s.all.sent('client'), 'HTTP/1.1 200 Connection established\r\n\r\n');
      assert.deepEqual(asked, [[DEST, name]], target);
    }
  });

  test('origin-form requests refused when permit_server_requests is false', () => {
    const s = new Script({ ...explicit, permit_server_requests: false }, { inband: true });
    s.start();
    s.client(GET());
    assert.deepEqual(s.statuses(), [400]);
  });

  test('parent_proxy: connect to the parent, absolute URI kept', () => {
    const s = new Script({ ...explicit, parent_proxy: 'parent.test:3128' }, { inband: true });
    s.start();
    s.client('GET http://a.test/x HTTP/1.1\r\nHost: a.test\r\n\r\n');
    assert.deepEqual(s.connects()[0]!.options, {
      inband: { host: 'parent.test', port: 3128 },
      sendsFirst: true,
    });
    s.connected();
    assert.match(s.all.sent('server'), /^GET http:\/\/a\.test\/x HTTP\/1\.1\r\nHost: a\.test\r\n/);
  });

  test('parent_proxy: CONNECT goes to the parent and its 200 opens the tunnel', () => {
    const s = new Script({ ...explicit, parent_proxy: '198.18.3.3' }, { inband: true });
    s.start();
    s.client('CONNECT secure.test:443 HTTP/1.1\r\nHost: secure.test:443\r\n\r\n');
    assert.deepEqual(s.connects()[0]!.options, {
      inband: { host: '198.18.3.3', port: 3128 },
      sendsFirst: true,
    });
    s.connected();
    assert.equal(s.all.sent('server'), 'CONNECT secure.test:443 HTTP/1.1\r\nHost: secure.test:443\r\n\r\n');
    s.server('HTTP/1.1 200 Connection established\r\n\r\n\x16\x03\x03');
    assert.equal(s.all.sent('client'), 'HTTP/1.1 200 Connection established\r\n\r\n\x16\x03\x03');
    s.client('\x16\x03\x01');
    assert.ok(s.all.sent('server').endsWith('\r\n\r\n\x16\x03\x01'));
  });

  test('parent_proxy: a refused CONNECT is relayed and the connection closed', () => {
    const s = new Script({ ...explicit, parent_proxy: 'parent.test:8080' }, { inband: true });
    s.start();
    s.client('CONNECT secure.test:443 HTTP/1.1\r\nHost: secure.test:443\r\n\r\n');
    s.connected();
    s.server('HTTP/1.1 403 Forbidden\r\nContent-Length: 2\r\n\r\nno');
    assert.equal(
      s.all.sent('client'),
      'HTTP/1.1 403 Forbidden\r\nContent-Length: 2\r\nConnection: close\r\n\r\nno',
    );
    assert.ok(s.done());
  });

  test('transparent mode with an inband router routes by Host', () => {
    const s = new Script({ target_port_range: '80,8000' }, { inband: true });
    s.start();
    s.client('GET / HTTP/1.1\r\nHost: web.test:8000\r\n\r\n');
    assert.deepEqual(s.connects()[0]!.options, {
      inband: { host: 'web.test', port: 8000 },
      sendsFirst: true,
    });
  });
});

describe('transparent mode Host checks', () => {
  test('check_host_matches_destination refuses an IP Host that is not the destination', () => {
    const s = new Script({ check_host_matches_destination: true });
    s.start();
    s.client('GET / HTTP/1.1\r\nHost: 198.18.9.9\r\n\r\n');
    assert.deepEqual(s.statuses(), [400]);
    const t = new Script({ check_host_matches_destination: true });
    t.start();
    t.client('GET / HTTP/1.1\r\nHost: 198.18.2.20\r\n\r\n');
    assert.equal(t.connects().length, 1);
  });

  test('check_host_matches_destination compares IPv6 literals in any spelling', () => {
    const dst6 = { host: '2001:db8:2::2', port: 80, family: 6 as const };
    const ok = new Script({ check_host_matches_destination: true }, { clientLocal: dst6 });
    ok.start();
    ok.client('GET / HTTP/1.1\r\nHost: [2001:0DB8:2:0::2]:80\r\n\r\n');
    assert.equal(ok.connects().length, 1);
    const bad = new Script({ check_host_matches_destination: true }, { clientLocal: dst6 });
    bad.start();
    bad.client('GET / HTTP/1.1\r\nHost: [2001:db8:2::3]\r\n\r\n');
    assert.deepEqual(bad.statuses(), [400]);
  });

  test('require_host_header false: an HTTP/1.0 request without Host goes to the destination', () => {
    const s = new Script({ require_host_header: false });
    s.start();
    s.client('GET / HTTP/1.0\r\n\r\n');
    s.connected();
    assert.match(s.all.sent('server'), /^GET \/ HTTP\/1\.1\r\nHost: 198\.18\.2\.20\r\n/);
  });
});

describe('timeouts', () => {
  test('idle timer re-arms lazily and closes an idle connection', () => {
    const s = opened({ timeout: 1000 });
    s.server(OK());
    s.now += 600;
    s.client(GET('/2'));
    s.server(OK());
    s.now += 500;
    const re = s.timer('idle');
    assert.deepEqual(re.commands, [{ type: 'setTimer', timer: 'idle', ms: 500 }]);
    s.now += 500;
    s.timer('idle');
    assert.equal(s.done()?.verdict, 'ACCEPTED');
  });

  test('a request head that does not complete in time gets 408', () => {
    const s = new Script({ timeout_request: 50 });
    s.start();
    const cmds = s.client('GET / HTTP/1.1\r\nHo');
    assert.ok(cmds.commands.some((c) => c.type === 'setTimer' && c.timer === 'request' && c.ms === 50));
    s.timer('request');
    assert.deepEqual(s.statuses(), [408]);
    assert.equal(s.done()?.verdict, 'DENIED_BY_LIMIT');
  });

  test('a complete head clears the request timer', () => {
    const s = new Script();
    s.start();
    s.client('GET / HTTP/1.1\r\n');
    const cmds = s.client('Host: example.test\r\n\r\n');
    assert.ok(cmds.commands.some((c) => c.type === 'clearTimer' && c.timer === 'request'));
  });

  test('no response head in time: 504', () => {
    const s = opened({ timeout_response: 100 });
    assert.ok(s.all.commands.some((c) => c.type === 'setTimer' && c.timer === 'response' && c.ms === 100));
    s.timer('response');
    assert.deepEqual(s.statuses(), [504]);
    assert.ok(s.done());
  });
});

describe('server failures', () => {
  test('connect failure: 502 and DENIED_BY_CONNECTION_FAIL', () => {
    const s = new Script();
    s.start();
    s.client(GET());
    s.feed({ type: 'connectFailed', now: s.now, stream: 'server', error: 'ECONNREFUSED' });
    assert.deepEqual(s.statuses(), [502]);
    assert.equal(s.done()?.verdict, 'DENIED_BY_CONNECTION_FAIL');
  });

  test('server closes before answering: 502', () => {
    const s = opened();
    s.end('server');
    assert.deepEqual(s.statuses(), [502]);
  });

  test('server closes inside a Content-Length body: the client connection is closed, nothing invented', () => {
    const s = opened();
    s.server('HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc');
    s.end('server');
    assert.equal(s.all.sent('client'), 'HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc');
    assert.ok(s.done());
    assert.ok(s.closedStreams().includes('client'));
  });

  test('bytes from the server with no request outstanding drop the server connection only', () => {
    const s = opened();
    s.server(OK());
    s.server('HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n');
    assert.deepEqual(s.closedStreams(), ['server']);
    assert.equal(s.done(), undefined);
  });

  test('client reset mid-response ends the session', () => {
    const s = opened();
    s.server('HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc');
    s.closed('client', 'ECONNRESET');
    assert.ok(s.done());
    assert.equal(s.logs('http.accounting').length, 1);
  });

  test('events after done are ignored', () => {
    const s = opened({}, GET('/', 'Connection: close\r\n'));
    s.server(OK());
    assert.ok(s.done());
    assert.deepEqual(s.client(GET()).commands, []);
  });
});

describe('error pages and logs', () => {
  test('template placeholders are filled and escaped', () => {
    const s = new Script({ error_template: '[@INFO@|@MSG@|@VERSION@|@HOST@|@DATE@]', hostname: 'fw-1.test' });
    s.now = Date.UTC(2026, 0, 2, 3, 4, 5);
    s.start();
    s.client('TRACE /x HTTP/1.1\r\nHost: example.test\r\n\r\n');
    const body = s.all.sent('client').split('\r\n\r\n')[1]!;
    assert.equal(
      body,
      '[Method denied|Method TRACE denied by policy.|0.1.0|fw-1.test|Fri, 02 Jan 2026 03:04:05 GMT]',
    );
    assert.match(s.all.sent('client'), /Content-Length: \d+\r\n/);
  });

  test('a violation log names the reason, status, method and url', () => {
    const s = new Script();
    s.start();
    s.client('DELETE /x HTTP/1.1\r\nHost: example.test\r\n\r\n');
    const v = s.logs('http.violation')[0]!;
    assert.equal(v.fields!.status, 403);
    assert.equal(v.fields!.method, 'DELETE');
    assert.equal(v.fields!.url, 'http://example.test/x');
    assert.equal(v.fields!.session_id, 'svc/test:1');
  });

  test('error page for HEAD has no body', () => {
    const s = new Script({ request: { GET: 'accept' } });
    s.start();
    s.client('HEAD / HTTP/1.1\r\nHost: example.test\r\n\r\n');
    assert.ok(s.all.sent('client').endsWith('\r\n\r\n'));
    assert.match(s.all.sent('client'), /^HTTP\/1\.1 403 /);
  });

  test('Via is added when add_via is set', () => {
    const s = opened({ add_via: true, hostname: 'fw1' });
    assert.match(s.all.sent('server'), /Via: 1\.1 fw1\r\n/);
    s.server(OK());
    assert.match(s.all.sent('client'), /Via: 1\.1 fw1\r\n/);
  });
});
