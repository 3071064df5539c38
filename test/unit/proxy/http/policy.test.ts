// The http policies through the core: request by method, headers, responses (dimhash order), URL filter.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { checkHttpOptions } from '../../../../src/proxy/http/index.ts';
import { responseAction } from '../../../../src/proxy/http/policy.ts';
import { opened, Script } from './script.ts';

const GET = (path = '/', extra = '', method = 'GET') =>
  `${method} ${path} HTTP/1.1\r\nHost: example.test\r\n${extra}\r\n`;
const OK = 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok';

describe('request policy', () => {
  test('accept, reject with status and text (connection kept), deny (closed)', () => {
    const s = new Script({
      request: {
        get: 'accept',
        PUT: { action: 'reject', status: 405, text: 'No uploads here' },
        DELETE: 'deny',
      },
    });
    s.start();
    s.client(GET('/', 'Content-Length: 0\r\n', 'PUT'));
    assert.deepEqual(s.statuses(), [405]);
    assert.match(s.all.sent('client'), /No uploads here/);
    assert.equal(s.done(), undefined, 'a reject keeps the connection');
    s.client(GET());
    assert.equal(s.connects().length, 1, 'GET accepted (method keys are case-insensitive)');
    s.connected();
    s.server(OK);
    s.client(GET('/', '', 'DELETE'));
    assert.deepEqual(s.statuses(), [405, 200, 403]);
    assert.equal(s.done()?.verdict, 'DENIED_BY_POLICY');
    assert.equal(s.all.sent('server'), GET(), 'only the GET reached the server');
  });

  test('abort: no answer, session ends as ABORTED_BY_POLICY_ACTION', () => {
    const s = new Script({ request: { POST: 'abort', '*': 'accept' } });
    s.start();
    s.client(GET('/', 'Content-Length: 1\r\n', 'POST'));
    assert.equal(s.all.sent('client'), '');
    assert.equal(s.done()?.verdict, 'ABORTED_BY_POLICY_ACTION');
  });

  test("'*' is the fallback; without it unknown methods are denied", () => {
    const a = new Script({ request: { '*': 'accept' } });
    a.start();
    a.client(GET('/', '', 'PROPFIND'));
    assert.equal(a.connects().length, 1);
    const b = new Script({ request: { GET: 'accept' } });
    b.start();
    b.client(GET('/', '', 'PROPFIND'));
    assert.deepEqual(b.statuses(), [403]);
    assert.match(b.all.sent('client'), /Method PROPFIND denied by policy/);
  });

  test('Zorp tuple form: [reject, 451, text]', () => {
    const s = new Script({ request: { GET: ['reject', 451, 'Legal'] } });
    s.start();
    s.client(GET());
    assert.deepEqual(s.statuses(), [451]);
  });
});

describe('header policies', () => {
  test('request headers: drop, change_name, change_value, change_both, insert, replace', () => {
    const s = opened(
      {
        request_header: {
          'User-Agent': { action: 'change_value', value: 'tzorp' },
          Cookie: 'drop',
          'X-Old': { action: 'change_name', name: 'X-New' },
          'X-Both': { action: 'change_both', name: 'X-B2', value: 'v2' },
          'X-Forwarded-Proto': { action: 'insert', value: 'http' },
          'X-Client': { action: 'replace', value: 'hidden' },
        },
      },
      GET(
        '/',
        'User-Agent: curl/8\r\nCookie: a=b\r\nX-Old: 1\r\nX-Both: 1\r\nX-Client: 198.18.1.10\r\nX-Client: again\r\nAccept: */*\r\n',
      ),
    );
    assert.equal(
      s.all.sent('server'),
      'GET / HTTP/1.1\r\nHost: example.test\r\nUser-Agent: tzorp\r\nX-New: 1\r\nX-B2: v2\r\nAccept: */*\r\nX-Forwarded-Proto: http\r\nX-Client: hidden\r\n\r\n',
    );
  });

  test("'*' drop removes unlisted headers but never the ones the proxy manages", () => {
    const s = opened(
      { request_header: { '*': 'drop', Accept: 'accept' } },
      GET('/', 'Accept: */*\r\nX-Secret: 1\r\nContent-Length: 2\r\n', 'POST'),
    );
    s.client('hi');
    assert.equal(
      s.all.sent('server'),
      'POST / HTTP/1.1\r\nHost: example.test\r\nAccept: */*\r\nContent-Length: 2\r\n\r\nhi',
    );
  });

  test('header abort ends the session', () => {
    const s = new Script({ request_header: { 'X-Evil': 'abort' } });
    s.start();
    s.client(GET('/', 'x-evil: 1\r\n'));
    assert.equal(s.done()?.verdict, 'ABORTED_BY_POLICY_ACTION');
    assert.equal(s.connects().length, 0);
  });

  test('response headers: drop Server, insert a security header', () => {
    const s = opened({
      response_header: { Server: 'drop', 'X-Frame-Options': { action: 'replace', value: 'DENY' } },
    });
    s.server(
      'HTTP/1.1 200 OK\r\nServer: Apache/2.4.1\r\nX-Frame-Options: ALLOW\r\nContent-Length: 0\r\n\r\n',
    );
    assert.equal(
      s.all.sent('client'),
      'HTTP/1.1 200 OK\r\nX-Frame-Options: DENY\r\nContent-Length: 0\r\n\r\n',
    );
  });
});

describe('response policy', () => {
  const opts = (response: unknown) => {
    const r = checkHttpOptions({ response });
    assert.deepEqual(r.errors, []);
    return r.options!;
  };

  test("Zorp's dimhash order: method before '*', longer status prefix first", () => {
    const o = opts({
      GET: { '404': 'deny', '4': { action: 'reject', status: 410 } },
      '*': { '404': 'abort', '40': 'deny', '*': { action: 'reject', status: 500 } },
    });
    assert.equal(responseAction(o, 'GET', 404).action, 'deny');
    assert.deepEqual(responseAction(o, 'GET', 403), { action: 'reject', status: 410, text: '' });
    assert.deepEqual(
      responseAction(o, 'GET', 200),
      { action: 'reject', status: 500, text: '' },
      '(GET,*) absent → (*,*)',
    );
    assert.equal(responseAction(o, 'POST', 404).action, 'abort');
    assert.equal(responseAction(o, 'POST', 401).action, 'deny');
    assert.equal(responseAction(opts({}), 'GET', 500).action, 'accept', 'no entry: the response passes');
  });

  test('a denied response is replaced by a 502 page and the server connection dropped', () => {
    const s = opened({ response: { '*': { '5': 'deny' } } });
    s.server('HTTP/1.1 500 Oops\r\nContent-Length: 10\r\n\r\nstacktrace');
    assert.deepEqual(s.statuses(), [502]);
    assert.doesNotMatch(s.all.sent('client'), /stacktrace/);
    assert.deepEqual(s.closedStreams(), ['server']);
    assert.equal(s.done(), undefined, 'the client connection stays');
  });

  test('a rejected response uses the policy status and text', () => {
    const s = opened({
      response: { GET: { '404': { action: 'reject', status: 404, text: 'Nothing here' } } },
    });
    s.server('HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\n\r\nabc');
    assert.deepEqual(s.statuses(), [404]);
    assert.match(s.all.sent('client'), /Nothing here/);
  });

  test('an aborted response ends the session without an answer', () => {
    const s = opened({ response: { '*': { '3': 'abort' } } });
    s.server('HTTP/1.1 302 Found\r\nLocation: http://evil.test/\r\nContent-Length: 0\r\n\r\n');
    assert.equal(s.all.sent('client'), '');
    assert.equal(s.done()?.verdict, 'ABORTED_BY_POLICY_ACTION');
  });
});

describe('URL filter', () => {
  const filter = {
    url_filter: {
      rules: [
        { host: 'ok.bad.test', action: 'accept' },
        { host: '*.bad.test', action: 'reject' },
        { path: '/admin/*', action: 'reject' },
      ],
      reject_status: 403,
      reject_page: '<h1>Blocked: @INFO@</h1><p>@MSG@</p>',
    },
  };

  test('host glob rejects with the custom page; the connection stays', () => {
    const s = new Script(filter);
    s.start();
    s.client('GET /x HTTP/1.1\r\nHost: www.BAD.test\r\n\r\n');
    assert.deepEqual(s.statuses(), [403]);
    assert.match(
      s.all.sent('client'),
      /<h1>Blocked: URL rejected<\/h1><p>Access to http:\/\/www\.bad\.test\/x is not permitted\.<\/p>/,
    );
    assert.equal(s.connects().length, 0);
    assert.equal(s.done(), undefined);
  });

  test('first matching rule wins', () => {
    const s = new Script(filter);
    s.start();
    s.client('GET /x HTTP/1.1\r\nHost: ok.bad.test\r\n\r\n');
    assert.equal(s.connects().length, 1);
  });

  test('path glob matches the canonical path (escapes and dot-segments cannot dodge it)', () => {
    for (const path of ['/admin/x', '/%61dmin/x', '/public/../admin/x', '/./admin/users']) {
      const s = new Script(filter);
      s.start();
      s.client(`GET ${path} HTTP/1.1\r\nHost: www.good.test\r\n\r\n`);
      assert.deepEqual(s.statuses(), [403], path);
    }
  });

  test("default 'reject' with an allow list", () => {
    const s = new Script({
      url_filter: { default: 'reject', rules: [{ host: 'intranet.test', action: 'accept' }] },
    });
    s.start();
    s.client('GET / HTTP/1.1\r\nHost: elsewhere.test\r\n\r\n');
    assert.deepEqual(s.statuses(), [403]);
    const t = new Script({
      url_filter: { default: 'reject', rules: [{ host: 'intranet.test', action: 'accept' }] },
    });
    t.start();
    t.client('GET / HTTP/1.1\r\nHost: intranet.test\r\n\r\n');
    assert.equal(t.connects().length, 1);
  });
});
