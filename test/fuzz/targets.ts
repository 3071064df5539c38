// Fuzz targets: every reader that takes untrusted bytes (issue 16). A target's run() throws only for a
// bug of ours: the protocol errors a peer can cause are caught here, anything else is a crash. The same
// functions replay the kept corpus in `npm test` (corpus.test.ts) and run under the coverage-guided
// fuzzer (`npm run fuzz -- TARGET --minutes N`, engine.ts).
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { ProtocolError } from '../../src/errors.ts';
import { loadPolicyText } from '../../src/policy/index.ts';
import { readYamlFast } from '../../src/policy/yaml-fast.ts';
import { readYamlFull } from '../../src/policy/yaml-reader.ts';
import type { ProxyCommand, ProxyEvent } from '../../src/proxy/core/types.ts';
import { CommandReader, ftpModule, ReplyReader } from '../../src/proxy/ftp/index.ts';
import { HttpReader, httpModule } from '../../src/proxy/http/index.ts';
import { bindCore } from '../../src/proxy/index.ts';
import { plugModule } from '../../src/proxy/plug/index.ts';
import { compileTls, readClientHello, TlsPassthroughGate } from '../../src/proxy/tls/index.ts';
import { CORPUS } from '../unit/proxy/http/corpus.ts';
import { alpnExt, helloRecord, sniExt, versionsExt } from '../unit/proxy/tls/hello-fixtures.ts';

export interface FuzzTarget {
  /** What the target reads. */
  what: string;
  run(data: Uint8Array): void;
  seeds(): Uint8Array[];
  /** Tokens the mutator inserts (protocol keywords and delimiters). */
  dict: string[];
  /** Longest input the mutator makes (default 4096 bytes). */
  maxLen?: number;
}

const enc = (s: string) => Buffer.from(s, 'latin1');
const ADDR = { host: '198.18.2.20', port: 80, family: 4 as const };
const CLIENT = { host: '198.18.1.10', port: 40000, family: 4 as const };

const HTTP_LIMITS = {
  maxLineLength: 4096,
  maxUrlLength: 4096,
  maxHostnameLength: 256,
  maxHeaderLines: 50,
  maxHeaderBytes: 65536,
  maxBodyLength: 0,
  maxChunkLength: 0,
  maxChunkExtensionBytes: 16384,
};

const HTTP_DICT = [
  '\r\n',
  '\r\n\r\n',
  ': ',
  ' HTTP/1.1',
  'HTTP/1.1 ',
  'HTTP/1.0',
  'GET ',
  'HEAD ',
  'POST ',
  'CONNECT ',
  'OPTIONS * ',
  'Host: ',
  'Content-Length: ',
  'Transfer-Encoding: chunked',
  'Connection: close',
  'Connection: Upgrade',
  'Upgrade: websocket',
  'Expect: 100-continue',
  '0\r\n\r\n',
  ';ext="v"',
  'http://',
  '[::1]',
  '%2e%2e/',
  '/../',
  '//',
  '100 Continue',
  '101 Switching Protocols',
  '204 ',
  '304 ',
];

/** Split `data` into pieces at positions chosen by its own bytes: the same bytes arrive in several
 * reads, as on a socket (readers must give the same answer however the input is split). */
function pieces(data: Uint8Array): Uint8Array[] {
  if (data.length < 2) return [data];
  const step = 1 + (data[0]! % 64);
  const out: Uint8Array[] = [];
  for (let i = 1; i < data.length; i += step) out.push(data.subarray(i, Math.min(data.length, i + step)));
  return out;
}

function expectedProtocolError(e: unknown): void {
  if (!(e instanceof ProtocolError)) throw e;
}

function readAllHttp(r: HttpReader, max = 10_000): void {
  for (let i = 0; i < max; i++) {
    const it = r.read();
    if (it.type === 'need' || it.type === 'eof') return;
  }
  throw new Error('reader returned 10,000 items without asking for more input');
}

function httpReaderTarget(kind: 'request' | 'response'): FuzzTarget {
  return {
    what: `HttpReader('${kind}')`,
    dict: HTTP_DICT,
    seeds: () =>
      kind === 'request'
        ? CORPUS.map((c) => Buffer.concat([Buffer.from([7]), enc(c.input)]))
        : CORPUS.filter((c) => c.response).map((c) => Buffer.concat([Buffer.from([7]), enc(c.response!)])),
    run(data) {
      const r = new HttpReader(kind, HTTP_LIMITS);
      // The first byte also picks the request method a response answers (HEAD: no body).
      if (kind === 'response') r.expectResponse((data[0] ?? 0) & 1 ? 'HEAD' : 'GET');
      try {
        for (const p of pieces(data)) {
          r.push(p);
          readAllHttp(r);
        }
        r.finish();
        readAllHttp(r);
      } catch (e) {
        expectedProtocolError(e);
      }
    },
  };
}

/** A byte stream read as a script of events for a core: 0xF0-0xFE bytes are events (end, close,
 * connected, timers ...), runs of other bytes are data for the stream the last 0xF0/0xF1 chose. */
function scriptEvents(data: Uint8Array, now: () => number): ProxyEvent[] {
  const out: ProxyEvent[] = [];
  let stream: 'client' | 'server' = 'client';
  let run: number[] = [];
  const flush = () => {
    if (run.length) out.push({ type: 'data', now: now(), stream, data: Uint8Array.from(run) });
    run = [];
  };
  for (const b of data) {
    if (b < 0xf0 || b === 0xff) {
      run.push(b);
      continue;
    }
    flush();
    switch (b) {
      case 0xf0:
        stream = 'client';
        break;
      case 0xf1:
        stream = 'server';
        break;
      case 0xf2:
        out.push({ type: 'connected', now: now(), stream: 'server', local: ADDR, remote: ADDR });
        break;
      case 0xf3:
        out.push({ type: 'end', now: now(), stream: 'client' });
        break;
      case 0xf4:
        out.push({ type: 'end', now: now(), stream: 'server' });
        break;
      case 0xf5:
        out.push({ type: 'closed', now: now(), stream: 'server' });
        break;
      case 0xf6:
        out.push({ type: 'closed', now: now(), stream: 'client' });
        break;
      case 0xf7:
        out.push({ type: 'connectFailed', now: now(), stream: 'server', error: 'ECONNREFUSED' });
        break;
      case 0xf8:
        out.push({ type: 'timer', now: now(), timer: 'idle' });
        break;
      case 0xf9:
        out.push({ type: 'timer', now: now(), timer: 'request' });
        break;
      case 0xfa:
        out.push({ type: 'timer', now: now(), timer: 'response' });
        break;
      case 0xfb:
        out.push({ type: 'drain', now: now(), stream: 'client' });
        break;
      default:
        out.push({ type: 'timer', now: now(), timer: 'data' });
    }
  }
  flush();
  return out;
}

/** Drive a core through a scripted session; the core must never throw, emit nothing after 'done',
 * and set only positive timers. */
function driveCore(
  core: { handle(e: ProxyEvent): ProxyCommand[] },
  events: ProxyEvent[],
  start: ProxyEvent,
): void {
  let done = false;
  const check = (cmds: ProxyCommand[]) => {
    if (done && cmds.length > 0) throw new Error(`commands after done: ${cmds.map((c) => c.type).join(',')}`);
    for (const c of cmds) {
      if (c.type === 'done') done = true;
      if (c.type === 'setTimer' && !(c.ms > 0)) throw new Error(`timer of ${c.ms} ms`);
    }
  };
  check(core.handle(start));
  for (const e of events) check(core.handle(e));
}

const HTTP_CORE_OPTIONS: Record<string, unknown>[] = [
  {},
  { transparent_mode: false, target_port_range: '1-65535' },
  { permit_upgrade: true, request: { '*': 'accept' }, add_via: true },
  { max_body_length: 10, url_filter: { rules: [{ path: '/admin*', action: 'reject' }] } },
];

const httpCore: FuzzTarget = {
  what: 'the HTTP core (sans-IO) fed scripted client and server bytes and events',
  dict: [...HTTP_DICT, '\xf0', '\xf1', '\xf2', '\xf3', '\xf4', '\xf5', '\xf8', '\xfa'],
  seeds: () =>
    CORPUS.map((c) =>
      Buffer.concat([
        Buffer.from([0]),
        enc(c.input),
        Buffer.from([0xf2, 0xf1]),
        enc(c.response ?? 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok'),
      ]),
    ),
  run(data) {
    let t = 0;
    const now = () => (t += 10);
    const options = HTTP_CORE_OPTIONS[(data[0] ?? 0) % HTTP_CORE_OPTIONS.length]!;
    const core = bindCore(
      httpModule,
      options,
    )({
      sessionId: 's',
      service: 'h',
      clientZone: null,
      inband: ((data[0] ?? 0) & 4) !== 0,
      clientLocal: ADDR,
    });
    driveCore(core, scriptEvents(data.subarray(1), now), {
      type: 'start',
      now: now(),
      client: CLIENT,
      clientLocal: ADDR,
    });
  },
};

const FTP_DICT = [
  '\r\n',
  'USER ',
  'PASS ',
  'RETR ',
  'STOR ',
  'PASV',
  'EPSV',
  'PORT 198,18,1,10,4,1',
  'EPRT |1|198.18.1.10|1025|',
  'ABOR',
  'FEAT',
  'QUIT',
  '\xff\xf4\xff\xf2',
  '\xff\xff',
  '220 ',
  '230 ',
  '227 Entering Passive Mode (198,18,2,20,4,1)',
  '229 Entering Extended Passive Mode (|||1025|)',
  '150 ',
  '226 ',
  '211-',
  '211 End',
];

const ftpCommandReader: FuzzTarget = {
  what: 'FTP CommandReader (Telnet, line limits)',
  dict: FTP_DICT,
  seeds: () => [
    enc('\x05USER anonymous\r\nPASS x@y\r\nPASV\r\nRETR file.txt\r\nQUIT\r\n'),
    enc('\x02\xff\xf4\xff\xf2ABOR\r\nRETR a\xff\xffb\r\n\r\nNOOP\n'),
  ],
  run(data) {
    const r = new CommandReader({ maxLineBytes: 255 });
    for (const p of pieces(data)) {
      r.push(p);
      for (let i = 0; i < 100_000 && r.next() !== null; i++);
    }
  },
};

const ftpReplyReader: FuzzTarget = {
  what: 'FTP ReplyReader (multi-line replies, limits)',
  dict: FTP_DICT,
  seeds: () => [
    enc('\x03220 Welcome\r\n331 Password\r\n230-Hi\r\n 230 x\r\n230 Done\r\n'),
    enc('\x09211-Features:\r\n EPSV\r\n MDTM\r\n211 End\r\n227 Entering Passive Mode (1,2,3,4,5,6)\r\n'),
  ],
  run(data) {
    const r = new ReplyReader({ maxLineBytes: 255, maxLines: 100 });
    try {
      for (const p of pieces(data)) {
        r.push(p);
        for (let i = 0; i < 100_000 && r.next() !== null; i++);
      }
    } catch (e) {
      expectedProtocolError(e);
    }
  },
};

const FTP_CORE_OPTIONS: Record<string, unknown>[] = [
  {},
  { data_mode: 'active' },
  { data_mode: 'passive', policy_set: 'read_only' },
  { transparent_mode: false },
];

const ftpCore: FuzzTarget = {
  what: 'the FTP core (sans-IO) fed scripted client commands, server replies and events',
  dict: [...FTP_DICT, '\xf0', '\xf1', '\xf2', '\xf3', '\xf4', '\xf5'],
  seeds: () => [
    enc(
      '\x00\xf2\xf1220 Hi\r\n\xf0USER ftp\r\n\xf1331 P\r\n\xf0PASS x\r\n\xf1230 OK\r\n\xf0PASV\r\n\xf1227 Entering Passive Mode (198,18,2,20,4,1)\r\n\xf0RETR f\r\n\xf1150 go\r\n226 done\r\n\xf0QUIT\r\n\xf1221 bye\r\n',
    ),
    enc(
      '\x03\xf0USER ftp@198.18.2.20\r\n\xf2\xf1220 Hi\r\n331 P\r\n\xf0PASS x\r\n\xf1230 OK\r\n\xf0FEAT\r\n\xf1211-F\r\n EPSV\r\n211 End\r\n',
    ),
  ],
  run(data) {
    let t = 0;
    const now = () => (t += 10);
    const options = FTP_CORE_OPTIONS[(data[0] ?? 0) % FTP_CORE_OPTIONS.length]!;
    const core = bindCore(
      ftpModule,
      options,
    )({
      sessionId: 's',
      service: 'f',
      clientZone: null,
      inband: options.transparent_mode === false,
      clientLocal: { ...ADDR, port: 21 },
    });
    driveCore(core, scriptEvents(data.subarray(1), now), {
      type: 'start',
      now: now(),
      client: CLIENT,
      clientLocal: { ...ADDR, port: 21 },
    });
  },
};

/** Small policies: the loader costs milliseconds per kilobyte, so short inputs fuzz much faster. */
const SMALL_POLICIES = [
  'zones:\n  c: { addresses: [198.18.1.0/24] }\n  s: { addresses: ["2001:db8:2::/64"], parent: c }\nservices:\n  web: { type: proxy, proxy: http, max_sessions_per_client: 5 }\nrules:\n  - { id: 1, service: web, proto: tcp, src_zone: c, dst_port: 80 }\n',
  'services:\n  f: { type: forward, router: { type: directed, targets: ["198.18.2.2:80"] } }\n  d: { type: deny, ipv4: tcp-reset }\nrules:\n  - { service: f, dst_port: [80, 8000-8080] }\n  - { service: d, src_subnet: 198.18.0.0/15 }\n',
  'settings: { tproxy_mark: 0x80000000 }\nservices:\n  p:\n    type: proxy\n    proxy: plug\n    new_sessions_per_client: { rate: 3, per_seconds: 10 }\n    router: { type: inband, default_port: 21 }\nmanagement:\n  - { proto: tcp, dst_port: 22 }\nrules:\n  - { service: p }\n',
];

function examples(ext: 'yaml' | 'json'): Uint8Array[] {
  const dir = new URL('../../examples/', import.meta.url);
  const out: Uint8Array[] = SMALL_POLICIES.map((text) =>
    ext === 'yaml' ? enc(text) : Buffer.from(JSON.stringify(parseYaml(text)).slice(1)),
  );
  for (const f of readdirSync(dir)) {
    if (!f.endsWith('.yaml')) continue;
    const text = readFileSync(new URL(f, dir), 'utf8');
    // JSON seeds without their leading '{' (run() puts it back, so the JSON reader is always tried).
    out.push(ext === 'yaml' ? enc(text) : Buffer.from(JSON.stringify(parseYaml(text)).slice(1)));
  }
  return out;
}

const POLICY_DICT = [
  'zones:',
  'services:',
  'rules:',
  'settings:',
  'type: proxy',
  'proxy: http',
  'addresses: [',
  '198.18.0.0/15',
  '2001:db8::/32',
  'parent: ',
  'service: ',
  'dst_port: ',
  'src_zone: ',
  'options:',
  '- { id: 1, ',
  '{"zones":{',
  '"services":{',
  '"rules":[',
  '"type":"proxy"',
  '&a',
  '*a',
  '<<: ',
  '!!',
  '\n  ',
];

function policyTarget(file: string): FuzzTarget {
  return {
    what: `the policy loader (${file.endsWith('json') ? 'JSON' : 'YAML'} text to errors or a policy)`,
    dict: POLICY_DICT,
    maxLen: 1024,
    seeds: () => examples(file.endsWith('json') ? 'json' : 'yaml'),
    run(data) {
      const text = Buffer.from(data).toString('utf8');
      const r = loadPolicyText(file.endsWith('json') ? `{${text}` : text, file, undefined, { lint: true });
      if (r.policy === null && r.errors.length === 0) throw new Error('no policy and no error');
      if (!file.endsWith('json')) {
        // the fast YAML reader gives up or gives the full reader's tree, positions included
        const fast = readYamlFast(text);
        if (fast !== null) {
          const full = readYamlFull(text);
          if (!full.ok) throw new Error('the fast YAML reader read a text the full reader refuses');
          assert.deepEqual(fast, full.root, 'the fast and the full YAML reader disagree');
        }
      }
    },
  };
}

const TLS_MAX_HELLO = 32 * 1024;

/** The ClientHello reader on the whole input and on prefixes (a prefix of a hello is "need more", never
 * a different answer), then the passthrough gate in front of plug fed the same bytes in pieces. */
const tlsClientHello: FuzzTarget = {
  what: 'TLS ClientHello reader and the passthrough gate (SNI policy) in front of plug',
  dict: [
    '\x16\x03\x01',
    '\x16\x03\x03',
    '\x01\x00',
    '\x00\x00',
    '\x00\x10',
    '\x00\x2b',
    '\x0a\x0a',
    '\x03\x04',
    'h2',
    'http/1.1',
    '.example.org',
  ],
  maxLen: 8192,
  seeds: () => [
    helloRecord({
      extensions: [sniExt('www.example.org'), alpnExt('h2', 'http/1.1'), versionsExt(0x0a0a, 0x0304, 0x0303)],
    }),
    helloRecord({ extensions: [sniExt('bad.example.org'), versionsExt(0x0303)] }, 7),
    helloRecord({ legacyVersion: 0x0301, noExtensions: true }),
    enc('GET / HTTP/1.1\r\n\r\n'),
  ],
  run(data) {
    let whole: ReturnType<typeof readClientHello> = null;
    try {
      whole = readClientHello(data, TLS_MAX_HELLO);
    } catch (e) {
      expectedProtocolError(e);
    }
    if (whole !== null) {
      for (const cut of [whole.consumed - 1, whole.consumed >> 1]) {
        if (cut < 0) continue;
        let got: unknown;
        try {
          got = readClientHello(data.subarray(0, cut), TLS_MAX_HELLO);
        } catch (e) {
          got = e;
        }
        if (got !== null)
          throw new Error(`a prefix of ${cut} bytes of a complete hello answered ${String(got)}`);
      }
    }
    const policy = compileTls({
      mode: 'passthrough',
      ca: null,
      serverVerify: true,
      serverCaFile: null,
      sni: { allow: ['*.example.org'], deny: ['bad.example.org'], missing: 'reject' },
      minVersion: 'TLSv1.2',
      pos: { file: 'f', line: 1, col: 1 },
    });
    const plug = bindCore(
      plugModule,
      {},
    )({ sessionId: 's:1', service: 's', clientZone: null, inband: false });
    const gate = new TlsPassthroughGate(policy, plug);
    let now = 0;
    gate.handle({ type: 'start', now, client: CLIENT, clientLocal: ADDR });
    for (const p of pieces(data)) gate.handle({ type: 'data', now: ++now, stream: 'client', data: p });
    gate.handle({ type: 'connected', now: ++now, stream: 'server', local: CLIENT, remote: ADDR });
    gate.handle({ type: 'end', now: ++now, stream: 'client' });
    gate.handle({ type: 'timer', now: ++now, timer: 'tls.hello' });
  },
};

export const TARGETS: Record<string, FuzzTarget> = {
  'tls-client-hello': tlsClientHello,
  'http-request-reader': httpReaderTarget('request'),
  'http-response-reader': httpReaderTarget('response'),
  'http-core': httpCore,
  'ftp-command-reader': ftpCommandReader,
  'ftp-reply-reader': ftpReplyReader,
  'ftp-core': ftpCore,
  'policy-yaml': policyTarget('p.yaml'),
  'policy-json': policyTarget('p.json'),
};
