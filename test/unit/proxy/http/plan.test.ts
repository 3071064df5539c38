// planRequest as a table: a request head, the options and the session's context in; the decision out.
// No core and no commands: only what the request would become.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Addr } from '../../../../src/proxy/core/index.ts';
import { type HttpOptions, HttpReader, httpModule } from '../../../../src/proxy/http/index.ts';
import {
  forwardable,
  HOP_BY_HOP,
  isHopByHop,
  planRequest,
  type RequestDecision,
} from '../../../../src/proxy/http/plan.ts';
import { OptionProblems } from '../../../../src/proxy/index.ts';

const DEST: Addr = { host: '198.18.2.20', port: 80, family: 4 };

function options(raw: Record<string, unknown>): HttpOptions {
  const o = httpModule.parseOptions(raw);
  if (o instanceof OptionProblems) throw new Error(o.problems.map((p) => p.message).join('; '));
  return o;
}

/** The decision for one request, read by the real reader, and the parts a row compares. */
function decide(raw: Record<string, unknown>, request: string, ctx: { inband?: boolean; n?: number } = {}) {
  const o = options(raw);
  const r = new HttpReader('request', o.limits);
  r.push(Buffer.from(request, 'latin1'));
  const item = r.read();
  if (item.type !== 'head' || item.head.kind !== 'request')
    throw new Error(`not a request head: ${item.type}`);
  const d = planRequest(item.head, o, {
    inband: ctx.inband ?? false,
    clientLocal: DEST,
    requestNumber: ctx.n ?? 1,
    framing: item.framing,
  });
  return summary(d);
}

function summary(d: RequestDecision): Record<string, unknown> {
  const base = { url: d.url, closeAfter: d.closeAfter };
  if (d.kind === 'plan') {
    return {
      ...base,
      plan: d.connectTunnel ? 'tunnel' : 'forward',
      head: d.serverHead?.toString('latin1') ?? null,
      server: d.serverKey,
      connect: d.connect,
      upgrade: d.upgrade,
    };
  }
  if (d.action === 'respond')
    return { ...base, respond: d.page.status, reason: d.reason, close: d.close, template: d.template };
  if (d.action === 'abort') return { ...base, abort: d.info };
  return { ...base, invalid: d.error.reply, message: d.error.message };
}

const GET = (target = '/a', extra = '', host = 'example.test') =>
  `GET ${target} HTTP/1.1\r\nHost: ${host}\r\n${extra}\r\n`;

interface Row {
  name: string;
  options?: Record<string, unknown>;
  request: string;
  inband?: boolean;
  n?: number;
  want: Record<string, unknown>;
}

const ROWS: Row[] = [
  {
    name: 'transparent origin-form: forwarded to the default server, Host kept',
    request: GET('/a?b=1'),
    want: {
      url: 'http://example.test/a?b=1',
      closeAfter: false,
      plan: 'forward',
      head: 'GET /a?b=1 HTTP/1.1\r\nHost: example.test\r\n\r\n',
      server: 'default',
      connect: { sendsFirst: true },
      upgrade: null,
    },
  },
  {
    name: 'Connection: close is not forwarded as such, but the exchange closes',
    request: GET('/', 'Connection: close, X-Secret\r\nX-Secret: 1\r\nAccept: */*\r\n'),
    want: {
      url: 'http://example.test/',
      closeAfter: true,
      plan: 'forward',
      head: 'GET / HTTP/1.1\r\nHost: example.test\r\nAccept: */*\r\nConnection: close\r\n\r\n',
      server: 'default',
      connect: { sendsFirst: true },
      upgrade: null,
    },
  },
  {
    name: 'the last request max_keepalive_requests allows closes the connection',
    options: { max_keepalive_requests: 3 },
    request: GET(),
    n: 3,
    want: {
      url: 'http://example.test/a',
      closeAfter: true,
      plan: 'forward',
      head: 'GET /a HTTP/1.1\r\nHost: example.test\r\nConnection: close\r\n\r\n',
      server: 'default',
      connect: { sendsFirst: true },
      upgrade: null,
    },
  },
  {
    name: 'CONNECT in transparent mode: 405',
    request: 'CONNECT example.test:443 HTTP/1.1\r\nHost: example.test:443\r\n\r\n',
    want: {
      url: 'example.test:443',
      closeAfter: false,
      respond: 405,
      reason: 'CONNECT refused',
      close: true,
      template: null,
    },
  },
  {
    name: 'explicit mode, inband router: CONNECT becomes a tunnel to the named host',
    options: { transparent_mode: false, target_port_range: '443' },
    inband: true,
    request: 'CONNECT example.test:443 HTTP/1.1\r\nHost: example.test:443\r\n\r\n',
    want: {
      url: 'example.test:443',
      closeAfter: false,
      plan: 'tunnel',
      head: null,
      server: 'example.test 443',
      connect: { inband: { host: 'example.test', port: 443 } },
      upgrade: null,
    },
  },
  {
    name: 'CONNECT to a host the URL filter rejects is refused like GET of that host (issue 10 item 4)',
    options: {
      transparent_mode: false,
      target_port_range: '443',
      url_filter: { rules: [{ host: '*.facebook.com', action: 'reject' }] },
    },
    inband: true,
    request: 'CONNECT WWW.Facebook.com:443 HTTP/1.1\r\nHost: www.facebook.com:443\r\n\r\n',
    want: {
      url: 'www.facebook.com:443',
      closeAfter: false,
      respond: 403,
      reason: 'URL rejected by the URL filter',
      close: false,
      template: null,
    },
  },
  {
    name: 'CONNECT: rules with a path are skipped (the path is inside the tunnel), then the default',
    options: {
      transparent_mode: false,
      target_port_range: '443',
      url_filter: {
        rules: [
          { host: '*.facebook.com', path: '/games/*', action: 'reject' },
          { host: 'allowed.test', path: '/*', action: 'accept' },
        ],
        default: 'reject',
      },
    },
    inband: true,
    request: 'CONNECT www.facebook.com:443 HTTP/1.1\r\nHost: www.facebook.com:443\r\n\r\n',
    want: {
      url: 'www.facebook.com:443',
      closeAfter: false,
      respond: 403,
      reason: 'URL rejected by the URL filter',
      close: false,
      template: null,
    },
  },
  {
    name: 'CONNECT to a host no rule rejects still tunnels',
    options: {
      transparent_mode: false,
      target_port_range: '443',
      url_filter: { rules: [{ host: '*.facebook.com', action: 'reject' }] },
    },
    inband: true,
    request: 'CONNECT example.test:443 HTTP/1.1\r\nHost: example.test:443\r\n\r\n',
    want: {
      url: 'example.test:443',
      closeAfter: false,
      plan: 'tunnel',
      head: null,
      server: 'example.test 443',
      connect: { inband: { host: 'example.test', port: 443 } },
      upgrade: null,
    },
  },
  {
    name: 'explicit mode: a port outside target_port_range is refused with 403',
    options: { transparent_mode: false },
    inband: true,
    request: GET('http://example.test:6379/'),
    want: {
      url: 'http://example.test:6379/',
      closeAfter: false,
      respond: 403,
      reason: 'Port not permitted',
      close: true,
      template: null,
    },
  },
  {
    name: 'explicit mode without permit_server_requests: origin-form is refused',
    options: { transparent_mode: false, permit_server_requests: false },
    request: GET(),
    want: {
      url: '/a',
      closeAfter: false,
      respond: 400,
      reason: 'Server request refused',
      close: true,
      template: null,
    },
  },
  {
    name: 'absolute-form in transparent mode without permit_proxy_requests: 400',
    request: GET('http://example.test/x'),
    want: {
      url: 'http://example.test/x',
      closeAfter: false,
      respond: 400,
      reason: 'Proxy request refused',
      close: true,
      template: null,
    },
  },
  {
    name: 'a malformed request-target is the client protocol error 400',
    request: GET('/a#frag'),
    want: { url: '/a#frag', closeAfter: false, invalid: 400, message: 'fragment in request-target' },
  },
  {
    name: 'check_host_matches_destination: another address is refused',
    options: { check_host_matches_destination: true },
    request: GET('/', '', '198.18.9.9'),
    want: {
      url: 'http://198.18.9.9/',
      closeAfter: false,
      respond: 400,
      reason: 'Host mismatch',
      close: true,
      template: null,
    },
  },
  {
    name: 'check_host_matches_destination: the destination in another spelling passes',
    options: { check_host_matches_destination: true },
    request: GET('/', '', '[::ffff:198.18.2.20]:80'),
    want: {
      url: 'http://198.18.2.20/',
      closeAfter: false,
      plan: 'forward',
      head: 'GET / HTTP/1.1\r\nHost: 198.18.2.20\r\n\r\n',
      server: 'default',
      connect: { sendsFirst: true },
      upgrade: null,
    },
  },
  {
    name: 'method denied by policy: 403, the connection closes',
    options: { request: { DELETE: 'deny' } },
    request: 'DELETE /x HTTP/1.1\r\nHost: example.test\r\n\r\n',
    want: {
      url: 'http://example.test/x',
      closeAfter: false,
      respond: 403,
      reason: 'Method denied',
      close: true,
      template: null,
    },
  },
  {
    name: 'method rejected by policy: its status and text, the connection stays',
    options: { request: { GET: ['reject', 451, 'Legal'] } },
    request: GET(),
    want: {
      url: 'http://example.test/a',
      closeAfter: false,
      respond: 451,
      reason: 'Legal',
      close: false,
      template: null,
    },
  },
  {
    name: 'method aborted by policy: the session ends without an answer',
    options: { request: { POST: 'abort', '*': 'accept' } },
    request: 'POST /p HTTP/1.1\r\nHost: example.test\r\nContent-Length: 0\r\n\r\n',
    want: { url: 'http://example.test/p', closeAfter: false, abort: 'method POST aborted by policy' },
  },
  {
    name: 'a standard method in another case is refused',
    request: GET().replace('GET', 'get'),
    want: {
      url: 'http://example.test/a',
      closeAfter: false,
      respond: 400,
      reason: 'Bad method',
      close: true,
      template: null,
    },
  },
  {
    name: 'URL filter: rejected with its status, the connection stays',
    options: { url_filter: { default: 'reject', rules: [{ host: 'intranet.test', action: 'accept' }] } },
    request: GET('/secret'),
    want: {
      url: 'http://example.test/secret',
      closeAfter: false,
      respond: 403,
      reason: 'URL rejected by the URL filter',
      close: false,
      template: null,
    },
  },
  {
    name: 'Expect other than 100-continue: 417',
    request: GET('/', 'Expect: magic\r\n'),
    want: {
      url: 'http://example.test/',
      closeAfter: false,
      respond: 417,
      reason: 'Expectation failed',
      close: true,
      template: null,
    },
  },
  {
    name: 'a permitted Upgrade is passed on with its Connection token',
    options: { permit_upgrade: ['websocket'] },
    request: GET('/ws', 'Connection: Upgrade\r\nUpgrade: websocket\r\n'),
    want: {
      url: 'http://example.test/ws',
      closeAfter: false,
      plan: 'forward',
      head: 'GET /ws HTTP/1.1\r\nHost: example.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n',
      server: 'default',
      connect: { sendsFirst: true },
      upgrade: 'websocket',
    },
  },
  {
    name: 'a request header aborted by policy ends the session',
    options: { request_header: { 'X-Evil': { action: 'abort' } } },
    request: GET('/', 'X-Evil: 1\r\n'),
    want: {
      url: 'http://example.test/',
      closeAfter: false,
      abort: 'request header X-Evil aborted by policy',
    },
  },
  {
    name: 'a body is framed by the proxy (chunked passes as chunked)',
    request: 'POST /up HTTP/1.1\r\nHost: example.test\r\nTransfer-Encoding: chunked\r\n\r\n',
    want: {
      url: 'http://example.test/up',
      closeAfter: false,
      plan: 'forward',
      head: 'POST /up HTTP/1.1\r\nHost: example.test\r\nTransfer-Encoding: chunked\r\n\r\n',
      server: 'default',
      connect: { sendsFirst: true },
      upgrade: null,
    },
  },
];

describe('planRequest', () => {
  for (const row of ROWS) {
    it(row.name, () => {
      assert.deepEqual(decide(row.options ?? {}, row.request, { inband: row.inband, n: row.n }), row.want);
    });
  }
});

describe('hop-by-hop names', () => {
  it('isHopByHop (by length, no hashing) says what the HOP_BY_HOP set says', () => {
    const others = [
      '',
      't',
      'tE',
      'ta',
      'hosts',
      'hos',
      'keep-alivE',
      'connectioN',
      'content-type',
      'x-upgrade',
      'trailers',
      'proxy-authorizatio',
      'transfer-encodinG',
      'date',
      'server',
      'upgrade ',
      'via',
    ];
    for (const n of [...HOP_BY_HOP, ...others]) assert.equal(isHopByHop(n), HOP_BY_HOP.has(n), n);
    assert.ok(HOP_BY_HOP.size >= 11);
  });
  it("forwardable: not hop-by-hop, not named by Connection, no '_'", () => {
    assert.equal(forwardable('content-type', new Set()), true);
    assert.equal(forwardable('keep-alive', new Set()), false);
    assert.equal(forwardable('x-a', new Set(['x-a'])), false);
    assert.equal(forwardable('x-a', new Set(['close'])), true);
    assert.equal(forwardable('content_length', new Set()), false);
  });
});
