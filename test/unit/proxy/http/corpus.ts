// The request-smuggling and malformed-message corpus. Each case: the bytes a client sends, the statuses
// the client must get (in order), whether the server may see any byte, and how many complete requests
// the server may parse from what it got. Cases with `response` script the server's answer instead of
// the default one (response-side strictness: the client must get a 502). Runs against the core with
// scripted events (corpus.test.ts) and, later, end to end through the daemon.

export interface CorpusCase {
  name: string;
  /** Client bytes (latin1: one char per byte). */
  input: string;
  /** Statuses the client receives, in order (interim 1xx included). */
  statuses: number[];
  /** May the server see any byte at all? false: the proxy answered alone. */
  serverMaySee: boolean;
  /** Complete requests the server may parse from what it received (when it may see something). */
  serverRequests?: number;
  /** The server's answer to every request (default: 200 with a 2-byte body). */
  response?: string;
  /** The client half-closes after sending. */
  eof?: boolean;
  /** http options for this case. */
  options?: Record<string, unknown>;
  /** Text that must (or must not) appear in what the server received. */
  serverHas?: string;
  serverLacks?: string;
}

const H = 'Host: example.test\r\n';
const OK = 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok';
const long = (n: number) => 'a'.repeat(n);
const manyHeaders = (n: number) => Array.from({ length: n }, (_, i) => `X-H${i}: v\r\n`).join('');

export const DEFAULT_RESPONSE = OK;

export const CORPUS: CorpusCase[] = [
  // --- controls: well-formed requests pass -------------------------------------------------------
  {
    name: 'plain GET',
    input: `GET / HTTP/1.1\r\n${H}\r\n`,
    statuses: [200],
    serverMaySee: true,
    serverRequests: 1,
  },
  {
    name: 'pipelined GETs',
    input: `GET /1 HTTP/1.1\r\n${H}\r\nGET /2 HTTP/1.1\r\n${H}\r\n`,
    statuses: [200, 200],
    serverMaySee: true,
    serverRequests: 2,
  },
  {
    name: 'POST with Content-Length',
    input: `POST / HTTP/1.1\r\n${H}Content-Length: 5\r\n\r\nhello`,
    statuses: [200],
    serverMaySee: true,
    serverRequests: 1,
  },
  {
    name: 'chunked POST',
    input: `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n`,
    statuses: [200],
    serverMaySee: true,
    serverRequests: 1,
  },
  {
    name: 'chunked, upper case coding',
    input: `POST / HTTP/1.1\r\n${H}Transfer-Encoding: CHUNKED\r\n\r\n0\r\n\r\n`,
    statuses: [200],
    serverMaySee: true,
    serverRequests: 1,
  },
  {
    name: 'chunked with a valid extension',
    input: `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n5;name="v a"\r\nhello\r\n0\r\n\r\n`,
    statuses: [200],
    serverMaySee: true,
    serverRequests: 1,
    serverLacks: 'name=',
  },
  {
    name: 'chunked with trailers (dropped)',
    input: `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\nX-Trailer: t\r\n\r\n`,
    statuses: [200],
    serverMaySee: true,
    serverRequests: 1,
    serverLacks: 'X-Trailer',
  },
  {
    name: 'body that looks like a request stays a body',
    input: `POST / HTTP/1.1\r\n${H}Content-Length: 30\r\n\r\nGET /smuggled HTTP/1.1\r\nX: y\r\n\r\n`.slice(
      0,
      -2,
    ),
    statuses: [200],
    serverMaySee: true,
    serverRequests: 1,
  },
  {
    name: 'leading empty line tolerated',
    input: `\r\nGET / HTTP/1.1\r\n${H}\r\n`,
    statuses: [200],
    serverMaySee: true,
    serverRequests: 1,
  },
  {
    name: 'HTTP/1.2 treated as 1.1',
    input: `GET / HTTP/1.2\r\n${H}\r\n`,
    statuses: [200],
    serverMaySee: true,
    serverRequests: 1,
  },
  {
    name: 'obs-text in a value passes',
    input: `GET / HTTP/1.1\r\n${H}X-Latin: caf\xe9\r\n\r\n`,
    statuses: [200],
    serverMaySee: true,
    serverRequests: 1,
    serverHas: 'caf\xe9',
  },
  {
    name: 'tab as OWS around a value',
    input: `GET / HTTP/1.1\r\n${H}X-Tab:\tv\t\r\n\r\n`,
    statuses: [200],
    serverMaySee: true,
    serverRequests: 1,
    serverHas: 'X-Tab: v\r\n',
  },
  {
    name: 'dot-segments removed before forwarding',
    input: `GET /a/../b/./c HTTP/1.1\r\n${H}\r\n`,
    statuses: [200],
    serverMaySee: true,
    serverRequests: 1,
    serverHas: 'GET /b/c HTTP/1.1',
  },
  {
    name: 'unreserved escapes decoded',
    input: `GET /%61dmin HTTP/1.1\r\n${H}\r\n`,
    statuses: [200],
    serverMaySee: true,
    serverRequests: 1,
    serverHas: 'GET /admin HTTP/1.1',
  },
  {
    name: 'Content_Length (underscore) is dropped',
    input: `GET / HTTP/1.1\r\n${H}Content_Length: 5\r\n\r\n`,
    statuses: [200],
    serverMaySee: true,
    serverRequests: 1,
    serverLacks: 'Content_Length',
  },
  {
    name: 'hop-by-hop named in Connection removed',
    input: `GET / HTTP/1.1\r\n${H}Connection: X-Secret\r\nX-Secret: 1\r\n\r\n`,
    statuses: [200],
    serverMaySee: true,
    serverRequests: 1,
    serverLacks: 'X-Secret',
  },
  {
    name: 'h2c upgrade not permitted: stripped',
    input: `GET / HTTP/1.1\r\n${H}Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\n`,
    statuses: [200],
    serverMaySee: true,
    serverRequests: 1,
    serverLacks: 'h2c',
  },

  // --- CL / TE conflicts (classic smuggling) ------------------------------------------------------
  {
    name: 'CL.TE',
    input: `POST / HTTP/1.1\r\n${H}Content-Length: 13\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nSMUGGLED`,
    statuses: [400],
    serverMaySee: false,
  },
  {
    name: 'TE.CL',
    input: `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n8\r\nSMUGGLED\r\n0\r\n\r\n`,
    statuses: [400],
    serverMaySee: false,
  },
  {
    name: 'TE.TE: second TE not chunked',
    input: `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\nTransfer-Encoding: x\r\n\r\n0\r\n\r\n`,
    statuses: [400],
    serverMaySee: false,
  },
  {
    name: 'TE chunked twice',
    input: `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`,
    statuses: [400],
    serverMaySee: false,
  },
  {
    name: 'TE: chunked, chunked',
    input: `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n`,
    statuses: [400],
    serverMaySee: false,
  },
  {
    name: 'TE: xchunked',
    input: `POST / HTTP/1.1\r\n${H}Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n`,
    statuses: [400],
    serverMaySee: false,
  },
  {
    name: 'TE: chunked, identity',
    input: `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n`,
    statuses: [400],
    serverMaySee: false,
  },
  {
    name: 'TE: identity',
    input: `POST / HTTP/1.1\r\n${H}Transfer-Encoding: identity\r\n\r\nabc`,
    statuses: [400],
    serverMaySee: false,
  },
  {
    name: 'TE: gzip, chunked (unsupported coding)',
    input: `POST / HTTP/1.1\r\n${H}Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n`,
    statuses: [501],
    serverMaySee: false,
  },
  {
    name: 'TE: empty list element',
    input: `POST / HTTP/1.1\r\n${H}Transfer-Encoding: , chunked\r\n\r\n0\r\n\r\n`,
    statuses: [400],
    serverMaySee: false,
  },
  {
    name: 'TE empty value',
    input: `POST / HTTP/1.1\r\n${H}Transfer-Encoding: \r\n\r\n0\r\n\r\n`,
    statuses: [400],
    serverMaySee: false,
  },
  {
    name: 'TE with vertical tab',
    input: `POST / HTTP/1.1\r\n${H}Transfer-Encoding: \x0bchunked\r\n\r\n0\r\n\r\n`,
    statuses: [400],
    serverMaySee: false,
  },
  {
    name: 'TE space before colon',
    input: `POST / HTTP/1.1\r\n${H}Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n`,
    statuses: [400],
    serverMaySee: false,
  },
  {
    name: 'TE folded (obs-fold)',
    input: `POST / HTTP/1.1\r\n${H}Transfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n`,
    statuses: [400],
    serverMaySee: false,
  },
  {
    name: 'TE in HTTP/1.0',
    input: `POST / HTTP/1.0\r\n${H}Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n`,
    statuses: [400],
    serverMaySee: false,
  },
  {
    name: 'CONNECT with a body',
    input: `CONNECT example.test:443 HTTP/1.1\r\n${H}Content-Length: 3\r\n\r\nabc`,
    statuses: [400],
    serverMaySee: false,
    options: { transparent_mode: false },
  },

  // --- Content-Length ------------------------------------------------------------------------------
  {
    name: 'two Content-Length, different',
    input: `POST / HTTP/1.1\r\n${H}Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!`,
    statuses: [400],
    serverMaySee: false,
  },
  {
    name: 'two Content-Length, same',
    input: `POST / HTTP/1.1\r\n${H}Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello`,
    statuses: [400],
    serverMaySee: false,
  },
  {
    name: 'Content-Length list 5, 5',
    input: `POST / HTTP/1.1\r\n${H}Content-Length: 5, 5\r\n\r\nhello`,
    statuses: [400],
    serverMaySee: false,
  },
  {
    name: 'Content-Length +5',
    input: `POST / HTTP/1.1\r\n${H}Content-Length: +5\r\n\r\nhello`,
    statuses: [400],
    serverMaySee: false,
  },
  {
    name: 'Content-Length -1',
    input: `POST / HTTP/1.1\r\n${H}Content-Length: -1\r\n\r\n`,
    statuses: [400],
    serverMaySee: false,
  },
  {
    name: 'Content-Length hex',
    input: `POST / HTTP/1.1\r\n${H}Content-Length: 0x5\r\n\r\nhello`,
    statuses: [400],
    serverMaySee: false,
  },
  {
    name: 'Content-Length 5.0',
    input: `POST / HTTP/1.1\r\n${H}Content-Length: 5.0\r\n\r\nhello`,
    statuses: [400],
    serverMaySee: false,
  },
  {
    name: 'Content-Length with inner space',
    input: `POST / HTTP/1.1\r\n${H}Content-Length: 1 0\r\n\r\nhello`,
    statuses: [400],
    serverMaySee: false,
  },
  {
    name: 'Content-Length empty',
    input: `POST / HTTP/1.1\r\n${H}Content-Length: \r\n\r\n`,
    statuses: [400],
    serverMaySee: false,
  },
  {
    name: 'Content-Length huge',
    input: `POST / HTTP/1.1\r\n${H}Content-Length: 99999999999999999999\r\n\r\n`,
    statuses: [413],
    serverMaySee: false,
  },
  {
    name: 'Content-Length over max_body_length',
    input: `POST / HTTP/1.1\r\n${H}Content-Length: 11\r\n\r\nhello world`,
    statuses: [413],
    serverMaySee: false,
    options: { max_body_length: 10 },
  },

  // --- chunked body --------------------------------------------------------------------------------
  {
    name: 'chunk size not hex',
    input: `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\ng\r\nx\r\n0\r\n\r\n`,
    statuses: [400],
    serverMaySee: true,
    serverRequests: 0,
  },
  {
    name: 'chunk size 0x prefix',
    input: `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n`,
    statuses: [400],
    serverMaySee: true,
    serverRequests: 0,
  },
  {
    name: 'chunk size negative',
    input: `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n-5\r\nhello\r\n0\r\n\r\n`,
    statuses: [400],
    serverMaySee: true,
    serverRequests: 0,
  },
  {
    name: 'chunk size with trailing space',
    input: `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n5 \r\nhello\r\n0\r\n\r\n`,
    statuses: [400],
    serverMaySee: true,
    serverRequests: 0,
  },
  {
    name: 'chunk size 17 hex digits',
    input: `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n00000000000000005\r\nhello\r\n0\r\n\r\n`,
    statuses: [400],
    serverMaySee: true,
    serverRequests: 0,
  },
  {
    name: 'chunk size overflows 64 bits (hex)',
    input: `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\nhello\r\n0\r\n\r\n`,
    statuses: [413],
    serverMaySee: true,
    serverRequests: 0,
  },
  {
    name: 'chunk data longer than its size',
    input: `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n3\r\nhello\r\n0\r\n\r\n`,
    statuses: [400],
    serverMaySee: true,
    serverRequests: 0,
  },
  {
    name: 'chunk data ended by bare LF',
    input: `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n5\r\nhello\n0\r\n\r\n`,
    statuses: [400],
    serverMaySee: true,
    serverRequests: 0,
  },
  {
    name: 'chunk size line ended by bare LF',
    input: `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n`,
    statuses: [400],
    serverMaySee: true,
    serverRequests: 0,
  },
  {
    name: 'chunk extension with bad character',
    input: `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n5;a=b c\r\nhello\r\n0\r\n\r\n`,
    statuses: [400],
    serverMaySee: true,
    serverRequests: 0,
  },
  {
    name: 'chunk extension unterminated quote',
    input: `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n5;a="b\r\nhello\r\n0\r\n\r\n`,
    statuses: [400],
    serverMaySee: true,
    serverRequests: 0,
  },
  {
    name: 'chunk extension abuse (many small chunks)',
    input: `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n${`1;${long(1000)}\r\na\r\n`.repeat(20)}0\r\n\r\n`,
    statuses: [400],
    serverMaySee: true,
    serverRequests: 0,
  },
  {
    name: 'chunk over max_chunk_length',
    input: `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n10\r\n0123456789abcdef\r\n0\r\n\r\n`,
    statuses: [413],
    serverMaySee: true,
    serverRequests: 0,
    options: { max_chunk_length: 8 },
  },
  {
    name: 'chunked body over max_body_length',
    input: `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n8\r\n01234567\r\n8\r\n01234567\r\n0\r\n\r\n`,
    statuses: [413],
    serverMaySee: true,
    serverRequests: 0,
    options: { max_body_length: 10 },
  },
  {
    name: 'trailer with obs-fold',
    input: `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n0\r\nX: a\r\n b\r\n\r\n`,
    statuses: [400],
    serverMaySee: true,
    serverRequests: 0,
  },
  {
    name: 'trailer with NUL',
    input: `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n0\r\nX: a\x00b\r\n\r\n`,
    statuses: [400],
    serverMaySee: true,
    serverRequests: 0,
  },
  {
    name: 'client closes inside a chunked body',
    input: `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n5\r\nhel`,
    statuses: [400],
    serverMaySee: true,
    serverRequests: 0,
    eof: true,
  },
  {
    name: 'client closes inside a Content-Length body',
    input: `POST / HTTP/1.1\r\n${H}Content-Length: 10\r\n\r\nhello`,
    statuses: [400],
    serverMaySee: true,
    serverRequests: 0,
    eof: true,
  },

  // --- request line --------------------------------------------------------------------------------
  {
    name: 'double space in request line',
    input: `GET  / HTTP/1.1\r\n${H}\r\n`,
    statuses: [400],
    serverMaySee: false,
  },
  {
    name: 'trailing space in request line',
    input: `GET / HTTP/1.1 \r\n${H}\r\n`,
    statuses: [400],
    serverMaySee: false,
  },
  { name: 'tab in request line', input: `GET /\tHTTP/1.1\r\n${H}\r\n`, statuses: [400], serverMaySee: false },
  { name: 'raw space in URL', input: `GET /a b HTTP/1.1\r\n${H}\r\n`, statuses: [400], serverMaySee: false },
  {
    name: 'non-ASCII in URL',
    input: `GET /caf\xe9 HTTP/1.1\r\n${H}\r\n`,
    statuses: [400],
    serverMaySee: false,
  },
  { name: 'NUL in URL', input: `GET /a\x00b HTTP/1.1\r\n${H}\r\n`, statuses: [400], serverMaySee: false },
  { name: 'HTTP/0.9 request', input: 'GET /\r\n', statuses: [400], serverMaySee: false },
  { name: 'HTTP/2.0 version', input: `GET / HTTP/2.0\r\n${H}\r\n`, statuses: [505], serverMaySee: false },
  {
    name: 'HTTP/0.9 version token',
    input: `GET / HTTP/0.9\r\n${H}\r\n`,
    statuses: [505],
    serverMaySee: false,
  },
  { name: 'lower-case version', input: `GET / http/1.1\r\n${H}\r\n`, statuses: [400], serverMaySee: false },
  { name: 'HTTP/2 preface', input: 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', statuses: [505], serverMaySee: false },
  {
    name: 'method with a bad character',
    input: `GE(T / HTTP/1.1\r\n${H}\r\n`,
    statuses: [400],
    serverMaySee: false,
  },
  {
    name: 'URL longer than max_url_length',
    input: `GET /${long(5000)} HTTP/1.1\r\n${H}\r\n`,
    statuses: [414],
    serverMaySee: false,
  },
  { name: 'fragment in URL', input: `GET /a#b HTTP/1.1\r\n${H}\r\n`, statuses: [400], serverMaySee: false },
  {
    name: 'invalid percent escape',
    input: `GET /a%zz HTTP/1.1\r\n${H}\r\n`,
    statuses: [400],
    serverMaySee: false,
  },
  {
    name: 'path starting with //',
    input: `GET //evil.test/ HTTP/1.1\r\n${H}\r\n`,
    statuses: [400],
    serverMaySee: false,
  },
  {
    name: 'absolute-form in transparent mode',
    input: `GET http://other.test/ HTTP/1.1\r\n${H}\r\n`,
    statuses: [400],
    serverMaySee: false,
  },
  {
    name: 'CONNECT in transparent mode',
    input: `CONNECT example.test:443 HTTP/1.1\r\n${H}\r\n`,
    statuses: [405],
    serverMaySee: false,
  },
  {
    name: 'asterisk-form for GET',
    input: `GET * HTTP/1.1\r\n${H}\r\n`,
    statuses: [400],
    serverMaySee: false,
  },
  {
    name: 'bare LF line endings',
    input: 'GET / HTTP/1.1\nHost: example.test\n\n',
    statuses: [400],
    serverMaySee: false,
  },
  {
    name: 'bare CR in request line',
    input: `GET /\r HTTP/1.1\r\n${H}\r\n`,
    statuses: [400],
    serverMaySee: false,
  },
  {
    name: 'too many empty lines before the request',
    input: `${'\r\n'.repeat(9)}GET / HTTP/1.1\r\n${H}\r\n`,
    statuses: [400],
    serverMaySee: false,
  },

  // --- header section ------------------------------------------------------------------------------
  {
    name: 'space before colon',
    input: `GET / HTTP/1.1\r\n${H}X-A : b\r\n\r\n`,
    statuses: [400],
    serverMaySee: false,
  },
  {
    name: 'tab before colon',
    input: `GET / HTTP/1.1\r\n${H}X-A\t: b\r\n\r\n`,
    statuses: [400],
    serverMaySee: false,
  },
  {
    name: 'space inside a field name',
    input: `GET / HTTP/1.1\r\n${H}X A: b\r\n\r\n`,
    statuses: [400],
    serverMaySee: false,
  },
  {
    name: 'obs-fold',
    input: `GET / HTTP/1.1\r\n${H}X-A: b\r\n c\r\n\r\n`,
    statuses: [400],
    serverMaySee: false,
  },
  {
    name: 'obs-fold as first header',
    input: `GET / HTTP/1.1\r\n X-A: b\r\n${H}\r\n`,
    statuses: [400],
    serverMaySee: false,
  },
  {
    name: 'NUL in a value',
    input: `GET / HTTP/1.1\r\n${H}X-A: b\x00c\r\n\r\n`,
    statuses: [400],
    serverMaySee: false,
  },
  {
    name: 'bare CR in a value',
    input: `GET / HTTP/1.1\r\n${H}X-A: b\rc\r\n\r\n`,
    statuses: [400],
    serverMaySee: false,
  },
  {
    name: 'control character 0x01 in a value',
    input: `GET / HTTP/1.1\r\n${H}X-A: b\x01c\r\n\r\n`,
    statuses: [400],
    serverMaySee: false,
  },
  {
    name: 'DEL in a value',
    input: `GET / HTTP/1.1\r\n${H}X-A: b\x7fc\r\n\r\n`,
    statuses: [400],
    serverMaySee: false,
  },
  {
    name: 'header line without colon',
    input: `GET / HTTP/1.1\r\n${H}X-A b\r\n\r\n`,
    statuses: [400],
    serverMaySee: false,
  },
  {
    name: 'empty field name',
    input: `GET / HTTP/1.1\r\n${H}: b\r\n\r\n`,
    statuses: [400],
    serverMaySee: false,
  },
  {
    name: 'header line longer than max_line_length',
    input: `GET / HTTP/1.1\r\n${H}X-A: ${long(5000)}\r\n\r\n`,
    statuses: [431],
    serverMaySee: false,
  },
  {
    name: 'more headers than max_header_lines',
    input: `GET / HTTP/1.1\r\n${H}${manyHeaders(50)}\r\n`,
    statuses: [431],
    serverMaySee: false,
  },
  {
    name: 'head larger than max_header_bytes',
    input: `GET / HTTP/1.1\r\n${H}${`X-A: ${long(3000)}\r\n`.repeat(30)}\r\n`,
    statuses: [431],
    serverMaySee: false,
    options: { max_header_lines: 100 },
  },
  { name: 'HTTP/1.1 without Host', input: 'GET / HTTP/1.1\r\n\r\n', statuses: [400], serverMaySee: false },
  {
    name: 'HTTP/1.0 without Host (require_host_header)',
    input: 'GET / HTTP/1.0\r\n\r\n',
    statuses: [400],
    serverMaySee: false,
  },
  {
    name: 'two Host headers',
    input: `GET / HTTP/1.1\r\n${H}Host: other.test\r\n\r\n`,
    statuses: [400],
    serverMaySee: false,
  },
  {
    name: 'Host with a space',
    input: 'GET / HTTP/1.1\r\nHost: exa mple.test\r\n\r\n',
    statuses: [400],
    serverMaySee: false,
  },
  {
    name: 'Host with userinfo',
    input: 'GET / HTTP/1.1\r\nHost: user@example.test\r\n\r\n',
    statuses: [400],
    serverMaySee: false,
  },
  {
    name: 'Host with a bad port',
    input: 'GET / HTTP/1.1\r\nHost: example.test:99999\r\n\r\n',
    statuses: [400],
    serverMaySee: false,
  },
  {
    name: 'Host empty in HTTP/1.1',
    input: 'GET / HTTP/1.1\r\nHost: \r\n\r\n',
    statuses: [400],
    serverMaySee: false,
  },
  {
    name: 'Host longer than max_hostname_length',
    input: `GET / HTTP/1.1\r\nHost: ${long(300)}.test\r\n\r\n`,
    statuses: [400],
    serverMaySee: false,
  },
  {
    name: 'Expect other than 100-continue',
    input: `GET / HTTP/1.1\r\n${H}Expect: 200-ok\r\n\r\n`,
    statuses: [417],
    serverMaySee: false,
  },

  // --- a second, bad request after a good one: the first is served, the second refused -------------
  {
    name: 'good request then a smuggling attempt',
    input: `GET / HTTP/1.1\r\n${H}\r\nPOST / HTTP/1.1\r\n${H}Content-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`,
    statuses: [200, 400],
    serverMaySee: true,
    serverRequests: 1,
  },

  // --- policy ---------------------------------------------------------------------------------------
  {
    name: 'method not in the policy (PUT)',
    input: `PUT / HTTP/1.1\r\n${H}Content-Length: 1\r\n\r\nx`,
    statuses: [403],
    serverMaySee: false,
  },
  {
    name: 'TRACE denied by default',
    input: `TRACE / HTTP/1.1\r\n${H}\r\n`,
    statuses: [403],
    serverMaySee: false,
  },
  {
    name: 'CONNECT to a port outside target_port_range',
    input: `CONNECT example.test:22 HTTP/1.1\r\n${H}\r\n`,
    statuses: [403],
    serverMaySee: false,
    options: { transparent_mode: false },
  },

  // --- responses from the server --------------------------------------------------------------------
  {
    name: 'response with CL and TE',
    input: `GET / HTTP/1.1\r\n${H}\r\n`,
    response: 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n',
    statuses: [502],
    serverMaySee: true,
    serverRequests: 1,
  },
  {
    name: 'response with two Content-Length',
    input: `GET / HTTP/1.1\r\n${H}\r\n`,
    response: 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok',
    statuses: [502],
    serverMaySee: true,
    serverRequests: 1,
  },
  {
    name: 'response with obs-fold',
    input: `GET / HTTP/1.1\r\n${H}\r\n`,
    response: 'HTTP/1.1 200 OK\r\nX-A: b\r\n c\r\nContent-Length: 2\r\n\r\nok',
    statuses: [502],
    serverMaySee: true,
    serverRequests: 1,
  },
  {
    name: 'response with NUL in a header',
    input: `GET / HTTP/1.1\r\n${H}\r\n`,
    response: 'HTTP/1.1 200 OK\r\nX-A: b\x00\r\nContent-Length: 2\r\n\r\nok',
    statuses: [502],
    serverMaySee: true,
    serverRequests: 1,
  },
  {
    name: 'response status out of range',
    input: `GET / HTTP/1.1\r\n${H}\r\n`,
    response: 'HTTP/1.1 2000 OK\r\nContent-Length: 2\r\n\r\nok',
    statuses: [502],
    serverMaySee: true,
    serverRequests: 1,
  },
  {
    name: 'response HTTP/2',
    input: `GET / HTTP/1.1\r\n${H}\r\n`,
    response: 'HTTP/2 200 OK\r\nContent-Length: 2\r\n\r\nok',
    statuses: [502],
    serverMaySee: true,
    serverRequests: 1,
  },
  {
    name: 'response with bare LF',
    input: `GET / HTTP/1.1\r\n${H}\r\n`,
    response: 'HTTP/1.1 200 OK\nContent-Length: 2\n\nok',
    statuses: [502],
    serverMaySee: true,
    serverRequests: 1,
  },
  {
    name: 'unrequested 101',
    input: `GET / HTTP/1.1\r\n${H}\r\n`,
    response: 'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n',
    statuses: [502],
    serverMaySee: true,
    serverRequests: 1,
  },
  {
    name: 'response TE gzip',
    input: `GET / HTTP/1.1\r\n${H}\r\n`,
    response: 'HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nxx',
    statuses: [502],
    serverMaySee: true,
    serverRequests: 1,
  },
  {
    name: 'response HTTP/0.9 (no status line)',
    input: `GET / HTTP/1.1\r\n${H}\r\n`,
    response: '<html>hello</html>\r\n',
    statuses: [502],
    serverMaySee: true,
    serverRequests: 1,
  },
  {
    name: 'response status line too long',
    input: `GET / HTTP/1.1\r\n${H}\r\n`,
    response: `HTTP/1.1 200 ${long(5000)}\r\nContent-Length: 2\r\n\r\nok`,
    statuses: [502],
    serverMaySee: true,
    serverRequests: 1,
  },
  // --- review findings (issue 16): canonical paths, hosts and methods --------------------------
  ...['/x/..//admin', '/.//admin', '/a//../admin', '/%2e//admin'].map(
    (t): CorpusCase => ({
      name: `finding 1: ${t} is /admin to the URL filter`,
      input: `GET ${t} HTTP/1.1\r\n${H}Connection: close\r\n\r\n`, // a URL refusal keeps the connection
      options: { url_filter: { rules: [{ path: '/admin*', action: 'reject' }] } },
      statuses: [403],
      serverMaySee: false,
    }),
  ),
  {
    name: 'finding 1: repeated slashes are merged towards the server',
    input: `GET /a//b HTTP/1.1\r\n${H}\r\n`,
    statuses: [200],
    serverMaySee: true,
    serverRequests: 1,
    serverHas: 'GET /a/b HTTP/1.1',
  },
  ...['evil.com.', '2130706433', '127.1', '0x7f.0.0.1', '0177.0.0.1', '[0::1]', '[::ffff:127.0.0.1]'].map(
    (h): CorpusCase => ({
      name: `finding 2: Host ${h} meets the rule for its canonical form`,
      input: `GET / HTTP/1.1\r\nHost: ${h}\r\nConnection: close\r\n\r\n`,
      options: {
        url_filter: {
          rules: [
            { host: 'evil.com', action: 'reject' },
            { host: '127.0.0.1', action: 'reject' },
            { host: '::1', action: 'reject' },
          ],
        },
      },
      statuses: [403],
      serverMaySee: false,
    }),
  ),
  ...['/private%2Fsecret', '/..;/manager', '/a%5Cb', '/a%00b'].map(
    (t): CorpusCase => ({
      name: `finding 8: ${t} is refused`,
      input: `GET ${t} HTTP/1.1\r\n${H}\r\n`,
      statuses: [400],
      serverMaySee: false,
    }),
  ),
  {
    name: 'finding 11: lower-case head is refused (would desync the response framing)',
    input: `head / HTTP/1.1\r\n${H}\r\nGET / HTTP/1.1\r\n${H}\r\n`,
    statuses: [400],
    serverMaySee: false,
  },
  {
    name: 'finding 7: a body after a HEAD response is not the next response',
    input: `HEAD / HTTP/1.1\r\n${H}\r\nGET /2 HTTP/1.1\r\n${H}\r\n`,
    response: 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok',
    statuses: [200, 200],
    serverMaySee: true,
    serverRequests: 2,
  },
];
