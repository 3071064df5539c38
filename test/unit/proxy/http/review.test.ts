// Regression tests for the security review's findings (issue 16), driven through the core with
// scripted events, as the review drove it. Each test names its finding.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { checkHttpOptions } from '../../../../src/proxy/http/index.ts';
import { canonicalPath, parseAuthority, removeDotSegments } from '../../../../src/proxy/http/url.ts';
import { opened, Script } from './script.ts';

const OK = 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok';
const denyAdmin = { url_filter: { rules: [{ path: '/admin*', action: 'reject' }] } };
const denyHost = (host: string) => ({ url_filter: { rules: [{ host, action: 'reject' }] } });

function request(options: Record<string, unknown>, req: string, ctx = {}): Script {
  const s = new Script(options, ctx);
  s.start();
  s.client(req);
  return s;
}

describe('finding 1: dot segments and repeated slashes', () => {
  for (const target of ['/x/..//admin', '/.//admin', '/a//../admin', '/x/%2e%2e//admin', '/x/..///admin/']) {
    test(`GET ${target} is filtered as /admin`, () => {
      const s = request(denyAdmin, `GET ${target} HTTP/1.1\r\nHost: example.test\r\n\r\n`);
      assert.deepEqual(s.statuses(), [403]);
      assert.equal(s.all.sent('server'), '');
    });
  }
  test('the server gets the merged path', () => {
    const s = opened({}, 'GET /a//b///c HTTP/1.1\r\nHost: example.test\r\n\r\n');
    assert.match(s.all.sent('server'), /^GET \/a\/b\/c HTTP\/1\.1\r\n/);
  });
  test('absolute-form with // after the authority', () => {
    const s = request(
      { ...denyAdmin, permit_proxy_requests: true },
      'GET http://example.test//admin HTTP/1.1\r\nHost: example.test\r\n\r\n',
    );
    assert.deepEqual(s.statuses(), [403]);
  });
  test('canonicalPath never returns //', () => {
    for (const p of ['/', '//', '/..//', '/././/', '/a/..//..//b', '/a/b/../../..//']) {
      assert.ok(!canonicalPath(p).includes('//'), p);
    }
  });
  test("a path without '%', '//' or '/.' is its own canonical form (canonicalPath's shortcut)", () => {
    // Every path of up to 6 pieces from this alphabet: the shortcut's condition must imply what the
    // full steps (merge slashes, remove dot segments) give, and the others must go through them.
    const pieces = ['/', 'a', '.', '..', ';', '%41', 'x.y', '/.', '.;'];
    const paths: string[] = ['/'];
    for (let n = 0; n < 5; n++)
      for (const p of [...paths]) for (const q of pieces) if (paths.length < 60_000) paths.push(p + q);
    let short = 0;
    for (const p of paths) {
      if (p.includes('%') || p.includes('//') || p.includes('/.')) continue;
      short++;
      assert.equal(removeDotSegments(p.replace(/\/{2,}/g, '/')), p, p);
      assert.equal(canonicalPath(p), p, p);
    }
    assert.ok(short > 1000, `${short} paths took the shortcut`);
  });
});

describe('finding 2: hosts are canonical before any rule', () => {
  const cases: [string, string][] = [
    ['evil.com.', 'evil.com'],
    ['EVIL.com.', 'evil.com'],
    ['2130706433', '127.0.0.1'],
    ['127.1', '127.0.0.1'],
    ['0x7f.0.0.1', '127.0.0.1'],
    ['0177.0.0.1', '127.0.0.1'],
    ['0x7f000001', '127.0.0.1'],
    ['127.0.0.1.', '127.0.0.1'],
    ['[0::1]', '::1'],
    ['[0:0:0:0:0:0:0:1]', '::1'],
    ['[2001:DB8:0:0:1:0:0:1]', '2001:db8::1:0:0:1'],
    ['[::ffff:127.0.0.1]', '127.0.0.1'],
    ['[::FFFF:7f00:1]', '127.0.0.1'],
  ];
  for (const [written, canonical] of cases) {
    test(`${written} is ${canonical}`, () => {
      assert.equal(parseAuthority(written, 256).host, canonical);
      const s = request(denyHost(canonical), `GET / HTTP/1.1\r\nHost: ${written}\r\n\r\n`);
      assert.deepEqual(s.statuses(), [403], `${written} must meet the rule for ${canonical}`);
      assert.equal(s.all.sent('server'), '');
    });
  }
  for (const bad of ['1.2.3.4.5', '256.1.1.1', 'foo.123', '08.1.1.1', 'a..b', '0x100000000', '.']) {
    test(`${bad} is refused (ambiguous)`, () => {
      const s = request({}, `GET / HTTP/1.1\r\nHost: ${bad}\r\n\r\n`);
      assert.deepEqual(s.statuses(), [400]);
    });
  }
  test('the server and the router get the canonical host', () => {
    const s = new Script({ target_port_range: '80' }, { inband: true });
    s.start();
    s.client('GET / HTTP/1.1\r\nHost: 0x7f.1\r\n\r\n');
    assert.deepEqual(s.connects()[0]!.options, { inband: { host: '127.0.0.1', port: 80 }, sendsFirst: true });
    s.connected();
    assert.match(s.all.sent('server'), /\r\nHost: 127\.0\.0\.1\r\n/);
  });
});

describe('finding 3: Host in transparent mode', () => {
  const dest = { clientLocal: { host: '198.18.2.20', port: 80, family: 4 as const } };
  test('a host name is refused while check_host_matches_destination is on', () => {
    const s = request(
      { check_host_matches_destination: true },
      'GET / HTTP/1.1\r\nHost: allowed.test\r\n\r\n',
      dest,
    );
    assert.deepEqual(s.statuses(), [400]);
    assert.equal(s.connects().length, 0);
  });
  test('the destination address in any spelling passes the check', () => {
    for (const h of ['198.18.2.20', '198.18.532', '[::ffff:198.18.2.20]', '198.18.2.20.']) {
      const s = request(
        { check_host_matches_destination: true },
        `GET / HTTP/1.1\r\nHost: ${h}\r\n\r\n`,
        dest,
      );
      assert.equal(s.connects().length, 1, h);
    }
  });
  test('an inband router is bound by target_port_range in transparent mode', () => {
    const s = request({}, 'GET / HTTP/1.1\r\nHost: 10.0.0.5:6379\r\n\r\n', { inband: true });
    assert.deepEqual(s.statuses(), [403]);
    assert.equal(s.connects().length, 0);
    const t = request({}, 'GET / HTTP/1.1\r\nHost: 10.0.0.5\r\n\r\n', { inband: true });
    assert.equal(t.connects().length, 1);
  });
  test('without an inband router the Host port does not pick the server (no range check)', () => {
    const s = request({}, 'GET / HTTP/1.1\r\nHost: example.test:8080\r\n\r\n');
    assert.equal(s.connects().length, 1);
  });
});

describe('finding 5: tiny chunks are coalesced', () => {
  test('one pump of 1-byte chunks leaves as one chunk', () => {
    const s = opened({}, 'POST / HTTP/1.1\r\nHost: example.test\r\nTransfer-Encoding: chunked\r\n\r\n');
    const before = s.all.commands.filter((c) => c.type === 'send' && c.stream === 'server').length;
    s.client('1\r\na\r\n'.repeat(1000));
    const sends = s.all.commands.filter((c) => c.type === 'send' && c.stream === 'server').length - before;
    assert.equal(sends, 1);
    assert.ok(s.all.sent('server').endsWith(`3e8\r\n${'a'.repeat(1000)}\r\n`));
    s.client('0\r\n\r\n');
    s.server(OK);
    assert.deepEqual(s.statuses(), [200]);
  });
  test('a response of 1-byte chunks reaches the client whole', () => {
    const s = opened();
    s.server(`HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n${'1\r\nz\r\n'.repeat(500)}0\r\n\r\n`);
    assert.equal(s.all.sent('client').split('\r\n\r\n')[1], `1f4\r\n${'z'.repeat(500)}\r\n0`);
    assert.equal(s.done(), undefined);
  });
});

describe('finding 6: 101 must answer the Upgrade the client asked for', () => {
  const req = 'GET /ws HTTP/1.1\r\nHost: example.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n';
  test('a 101 to another protocol is a 502, no tunnel', () => {
    const s = opened({ permit_upgrade: true }, req);
    s.server('HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n');
    assert.deepEqual(s.statuses(), [502]);
    assert.equal(s.logs('http.info').filter((l) => l.msg === 'Tunnel established').length, 0);
  });
  test('a 101 to the protocol asked for opens the tunnel', () => {
    const s = opened({ permit_upgrade: ['websocket'] }, req);
    s.server('HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: WebSocket\r\n\r\n');
    assert.deepEqual(s.statuses(), [101]);
    assert.equal(s.logs('http.info').filter((l) => l.msg === 'Tunnel established').length, 1);
  });
});

describe('finding 7: bytes after a response are not the next response', () => {
  for (const [name, req, resp] of [
    ['HEAD with a body', 'HEAD / HTTP/1.1', 'HTTP/1.1 200 OK\r\nContent-Length: 36\r\n\r\n'],
    ['204 with a body', 'GET / HTTP/1.1', 'HTTP/1.1 204 No Content\r\n\r\n'],
    ['304 with a body', 'GET / HTTP/1.1', 'HTTP/1.1 304 Not Modified\r\n\r\n'],
  ] as const) {
    test(name, () => {
      const s = opened({}, `${req}\r\nHost: example.test\r\n\r\n`);
      s.server(`${resp}HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nEVIL!`);
      assert.deepEqual(s.closedStreams(), ['server']);
      assert.equal(s.logs('http.violation').length, 1);
      // The next request gets a new connection and the real answer.
      s.client('GET /next HTTP/1.1\r\nHost: example.test\r\n\r\n');
      s.closed('server');
      assert.equal(s.connects().length, 2);
      s.connected();
      s.server(OK);
      assert.ok(!s.all.sent('client').includes('EVIL!'));
      assert.ok(s.all.sent('client').endsWith('ok'));
    });
  }
});

describe('finding 8: encoded separators and Tomcat path parameters', () => {
  for (const target of [
    '/private%2Fx',
    '/private%2fsecret',
    '/a%5C..%5Cprivate',
    '/x%00.txt',
    '/..;/private',
    '/a/.;x/b',
    '/a/%2e%2e;/private',
  ]) {
    test(`${target} is refused`, () => {
      const s = request({}, `GET ${target} HTTP/1.1\r\nHost: example.test\r\n\r\n`);
      assert.deepEqual(s.statuses(), [400]);
      assert.equal(s.all.sent('server'), '');
    });
  }
  test('a semicolon elsewhere in a path passes', () => {
    const s = opened({}, 'GET /a;jsessionid=1/b HTTP/1.1\r\nHost: example.test\r\n\r\n');
    assert.match(s.all.sent('server'), /^GET \/a;jsessionid=1\/b /);
  });
});

describe('finding 9: timeouts and hostname are checked at load', () => {
  for (const k of ['timeout', 'timeout_request', 'timeout_response']) {
    test(`${k} above 2^31-1 ms is refused`, () => {
      assert.equal(checkHttpOptions({ [k]: 2 ** 31 - 1 }).errors.length, 0);
      const r = checkHttpOptions({ [k]: 2 ** 31 });
      assert.equal(r.options, null);
      assert.match(r.errors[0]!.message, new RegExp(k));
    });
  }
  for (const h of ['fw\r\nX-Injected: 1', 'fw<1>', 'a b', '']) {
    test(`hostname ${JSON.stringify(h)} is refused`, () => {
      const r = checkHttpOptions({ hostname: h, add_via: true });
      assert.equal(r.options, null);
      assert.match(r.errors[0]!.message, /hostname/);
    });
  }
});

describe('finding 11: method case', () => {
  for (const m of ['head', 'Get', 'post']) {
    test(`${m} is refused, not forwarded as written`, () => {
      const s = request({}, `${m} / HTTP/1.1\r\nHost: example.test\r\n\r\n`);
      assert.deepEqual(s.statuses(), [400]);
      assert.equal(s.connects().length, 0);
    });
  }
  test('an extension method in lower case is looked up by the policy as before', () => {
    const s = request(
      { request: { PROPFIND: 'accept' } },
      'propfind / HTTP/1.1\r\nHost: example.test\r\n\r\n',
    );
    assert.equal(s.connects().length, 1);
  });
});
