// The HTTP proxy end to end in namespaces: `tzorp run` in the lab's firewall, curl and small Node
// clients in the client namespace, a Node HTTP server, Python's http.server and raw corpus servers in
// the server namespace. IPv4 and IPv6. Then the smuggling/malformed corpus, case by case: what the
// client got and what the server received.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ADDR, createLab, type Lab, type LabProcess, netnsSkipReason } from '../harness/netns.ts';
import { CORPUS, DEFAULT_RESPONSE } from '../unit/proxy/http/corpus.ts';

const skip = netnsSkipReason();
const TZ = [process.execPath, 'bin/tzorp'];
const dir = mkdtempSync(join(tmpdir(), 'tzorp-http-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const WEB = 8080; // Node server, through the transparent service `web`
const PY = 8081; // python3 -m http.server, through the transparent service `py`
const EXPLICIT = 3128; // explicit proxy service `proxy` (clients dial any server address on 3128)
const RAW_BASE = 9000; // corpus services: one per distinct option set

/** The corpus's distinct option sets, each becomes a service `corpus<i>` on port RAW_BASE + i. */
const optionSets = [...new Set(CORPUS.map((c) => JSON.stringify(c.options ?? {})))];
const portOf = (c: { options?: Record<string, unknown> }) =>
  RAW_BASE + optionSets.indexOf(JSON.stringify(c.options ?? {}));

function policy(): string {
  const corpusServices = optionSets
    .map((o, i) => {
      const opts = JSON.parse(o) as Record<string, unknown>;
      const router = opts.transparent_mode === false ? '\n    router: { type: inband }' : '';
      return `  corpus${i}:\n    type: proxy\n    proxy: http${router}\n    options: ${o}\n`;
    })
    .join('');
  const corpusRules = optionSets
    .map(
      (_, i) =>
        `  - { id: ${10 + i}, service: corpus${i}, proto: tcp, src_zone: clients, dst_zone: servers, dst_port: ${RAW_BASE + i} }\n`,
    )
    .join('');
  const web = {
    request: {
      GET: 'accept',
      HEAD: 'accept',
      POST: 'accept',
      PUT: { action: 'reject', status: 405, text: 'read only' },
      DELETE: 'deny',
    },
    request_header: {
      'User-Agent': { action: 'change_value', value: 'tzorp-e2e' },
      'X-Forwarded-For': { action: 'insert', value: 'hidden' },
    },
    response_header: { Server: 'drop' },
    response: { '*': { '500': 'deny' } },
    url_filter: { rules: [{ path: '/admin*', action: 'reject' }], reject_page: '<h1>blocked: @INFO@</h1>' },
    permit_upgrade: ['websocket'],
    max_keepalive_requests: 100,
  };
  return `zones:
  clients:
    addresses: [198.18.1.0/24, "2001:db8:1::/64"]
  servers:
    addresses: [198.18.2.0/24, "2001:db8:2::/64"]
services:
  web:
    type: proxy
    proxy: http
    options: ${JSON.stringify(web)}
  py:
    type: proxy
    proxy: http
  proxy:
    type: proxy
    proxy: http
    router: { type: inband }
    options: { transparent_mode: false, target_port_range: "${WEB}" }
${corpusServices}rules:
  - { id: 1, service: web, proto: tcp, src_zone: clients, dst_zone: servers, dst_port: ${WEB} }
  - { id: 2, service: py, proto: tcp, src_zone: clients, dst_zone: servers, dst_port: ${PY} }
  - { id: 3, service: proxy, proto: tcp, src_zone: clients, dst_zone: servers, dst_port: ${EXPLICIT} }
${corpusRules}`;
}

let lab: Lab;
let daemon: LabProcess;
let server: LabProcess;
let rawClient: LabProcess;
const control = join(dir, 'control.sock');

/** Send a line to a helper and wait for its answer line starting with `prefix`. */
async function ask(p: LabProcess, line: string, prefix: string): Promise<string> {
  const before = p.stdout().length;
  p.child.stdin!.write(`${line}\n`);
  const re = new RegExp(`^${prefix}(?: (.*))?$`, 'm');
  for (let i = 0; i < 300; i++) {
    const m = re.exec(p.stdout().slice(before));
    if (m) return m[1] ?? '';
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`no '${prefix}' from helper:\n${p.stdout().slice(-500)}\n${p.stderr().slice(-2000)}`);
}

function curl(args: string[]) {
  return lab.exec('client', ['curl', '-sS', '--max-time', '30', ...args], {
    allowFail: true,
    timeoutMs: 60_000,
  });
}

function url(host: string, port: number, path: string): string {
  return host.includes(':') ? `http://[${host}]:${port}${path}` : `http://${host}:${port}${path}`;
}

// Twice: HTTP sessions on native socket I/O (tzorp run's default) and on Node's sockets (--no-native-io).
for (const nativeIo of [true, false])
  describe(`http proxy end to end${nativeIo ? '' : ' (--no-native-io)'}`, { skip, timeout: 900_000 }, () => {
    before(async () => {
      lab = await createLab();
      const policyFile = join(dir, 'policy.yaml');
      writeFileSync(policyFile, policy());
      const rawPorts = optionSets.map((_, i) => RAW_BASE + i).join(',');
      server = lab.spawnTs('server', 'test/netns/http-peer-server.ts', [`web=${WEB}`, `raw=${rawPorts}`]);
      await server.waitFor(/^ready$/m, 60_000);
      const www = join(dir, 'www');
      await lab.sh('server', `mkdir -p ${www} && head -c 3000000 /dev/urandom > ${www}/file.bin`);
      const py = lab.spawn('server', [
        'python3',
        '-m',
        'http.server',
        String(PY),
        '--bind',
        '::',
        '--directory',
        www,
      ]);
      await py.waitFor(/Serving HTTP/, 30_000);
      rawClient = lab.spawnTs('client', 'test/netns/http-raw-client.ts');
      await rawClient.waitFor(/^ready$/m, 60_000);
      daemon = lab.spawn('fw', [
        ...TZ,
        'run',
        policyFile,
        '--control',
        control,
        '--workers',
        '2',
        '--log-spec',
        'http.*:4',
        ...(nativeIo ? [] : ['--no-native-io']),
      ]);
      await daemon.waitFor(/tzorp running/, 120_000);
    });
    after(async () => {
      await lab?.exec('fw', [...TZ, 'stop', '--control', control], { allowFail: true, timeoutMs: 60_000 });
      await lab?.destroy();
    });

    for (const host of [ADDR.server4, ADDR.server6]) {
      const v = host.includes(':') ? 'IPv6' : 'IPv4';

      test(`${v}: GET through the transparent proxy, header policy applied, keep-alive reused`, async () => {
        const r = await curl(['-v', url(host, WEB, '/echo'), url(host, WEB, '/echo')]);
        assert.equal(r.code, 0, r.stderr);
        const first = JSON.parse(r.stdout.slice(0, r.stdout.indexOf('}{') + 1)) as { headers: string[] };
        const h = first.headers;
        assert.equal(h[h.indexOf('User-Agent') + 1], 'tzorp-e2e');
        assert.equal(h[h.indexOf('X-Forwarded-For') + 1], 'hidden');
        assert.match(r.stderr, /Re-using existing connection|Reusing existing/i);
      });

      test(`${v}: large download (chunked and sized) arrives intact`, async () => {
        for (const q of ['n=20000000', 'n=5000000&chunked=1']) {
          const out = join(dir, `big-${v}-${q.length}`);
          const r = await curl(['-D', '-', '-o', out, url(host, WEB, `/big?${q}`)]);
          assert.equal(r.code, 0, r.stderr);
          const want = /x-sha256: ([0-9a-f]{64})/i.exec(r.stdout)![1];
          const got = await lab.exec('client', ['sha256sum', out]);
          assert.equal(got.stdout.split(' ')[0], want, q);
        }
      });

      test(`${v}: chunked and sized uploads arrive intact`, async () => {
        const file = join(dir, `up-${v}.bin`);
        await lab.sh('client', `head -c 3000000 /dev/urandom > ${file}`);
        const sum = (await lab.exec('client', ['sha256sum', file])).stdout.split(' ')[0];
        const chunked = await curl([
          '-H',
          'Transfer-Encoding: chunked',
          '--data-binary',
          `@${file}`,
          url(host, WEB, '/upload'),
        ]);
        assert.equal(chunked.code, 0, chunked.stderr);
        assert.deepEqual(JSON.parse(chunked.stdout), { sha256: sum, length: 3_000_000, te: 'chunked' });
        const sized = await curl(['--data-binary', `@${file}`, url(host, WEB, '/upload')]);
        assert.deepEqual(JSON.parse(sized.stdout), { sha256: sum, length: 3_000_000, te: null });
        const expect = await curl([
          '-H',
          'Expect: 100-continue',
          '--data-binary',
          `@${file}`,
          url(host, WEB, '/upload'),
        ]);
        assert.equal(JSON.parse(expect.stdout).sha256, sum);
      });

      test(`${v}: Python http.server through the proxy`, async () => {
        const out = join(dir, `py-${v}`);
        const r = await curl(['-o', out, '-w', '%{http_code}', url(host, PY, '/file.bin')]);
        assert.equal(r.stdout, '200', r.stderr);
        const a = await lab.exec('client', ['sha256sum', out]);
        const b = await lab.exec('server', ['sha256sum', join(dir, 'www', 'file.bin')]);
        assert.equal(a.stdout.split(' ')[0], b.stdout.split(' ')[0]);
      });

      test(`${v}: policy actions: reject, deny, URL filter, response deny, response header drop`, async () => {
        const code = async (args: string[]) =>
          (await curl(['-o', '/dev/null', '-w', '%{http_code}', ...args])).stdout;
        assert.equal(await code(['-X', 'PUT', '-d', 'x', url(host, WEB, '/upload')]), '405');
        assert.equal(await code(['-X', 'DELETE', url(host, WEB, '/echo')]), '403');
        const blocked = await curl(['-w', '%{http_code}', url(host, WEB, '/admin/x')]);
        assert.match(blocked.stdout, /<h1>blocked: URL rejected<\/h1>403$/);
        assert.equal(await code([url(host, WEB, '/status/500')]), '502');
        assert.equal(await code([url(host, WEB, '/status/404')]), '404');
        const hdr = await curl(['-D', '-', '-o', '/dev/null', url(host, WEB, '/server-header')]);
        assert.doesNotMatch(hdr.stdout, /^server:/im);
      });

      test(`${v}: explicit proxy mode: absolute URI and CONNECT`, async () => {
        const proxy = url(host, EXPLICIT, '');
        const r = await curl(['--proxy', proxy, url(host, WEB, '/echo')]);
        assert.equal(r.code, 0, r.stderr);
        assert.equal((JSON.parse(r.stdout) as { url: string }).url, '/echo');
        const t = await curl(['--proxytunnel', '--proxy', proxy, url(host, WEB, '/echo')]);
        assert.equal(t.code, 0, t.stderr);
        assert.equal((JSON.parse(t.stdout) as { url: string }).url, '/echo');
        const bad = await curl([
          '-o',
          '/dev/null',
          '-w',
          '%{http_code}',
          '--proxy',
          proxy,
          url(host, PY, '/'),
        ]);
        assert.equal(bad.stdout, '403', 'port outside target_port_range');
      });

      test(`${v}: WebSocket upgrade permitted, then a byte relay`, async () => {
        const script = `
        const net = require('node:net');
        const s = net.connect({ host: ${JSON.stringify(host)}, port: ${WEB} }, () => {
          s.write('GET /ws HTTP/1.1\\r\\nHost: x\\r\\nConnection: Upgrade\\r\\nUpgrade: websocket\\r\\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\\r\\nSec-WebSocket-Version: 13\\r\\n\\r\\n');
        });
        let buf = '';
        let sent = false;
        s.on('data', (d) => {
          buf += d.toString('latin1');
          if (!sent && buf.includes('\\r\\n\\r\\n')) { sent = true; s.write('\\x81\\x05hello'); }
          if (buf.endsWith('\\x81\\x05hello')) { console.log(buf.split('\\r\\n')[0]); console.log(buf.includes('s3pPLMBiTxaQ9kYGzzhZRbK+xOo=') ? 'accept-ok' : 'accept-bad'); s.end(); }
        });
        setTimeout(() => { console.log('timeout ' + JSON.stringify(buf)); process.exit(1); }, 10000);
      `;
        const r = await lab.exec('client', [process.execPath, '-e', script], {
          allowFail: true,
          timeoutMs: 30_000,
        });
        assert.match(r.stdout, /^HTTP\/1\.1 101 Switching Protocols\naccept-ok$/m, r.stdout + r.stderr);
      });
    }

    test(`the sessions ran on ${nativeIo ? 'native socket I/O' : "Node's sockets"} (status workerResources)`, async () => {
      const r = await lab.exec('fw', [...TZ, 'status', '--json', '--control', control], {
        timeoutMs: 60_000,
      });
      const st = JSON.parse(r.stdout) as { workerResources: { nativeSockets: { made: number } }[] };
      const made = st.workerResources.reduce((n, w) => n + w.nativeSockets.made, 0);
      if (nativeIo) assert.ok(made > 0, 'NativeSockets made');
      else assert.equal(made, 0, 'no NativeSocket with --no-native-io');
    });

    test('accounting and violation logs in the daemon output', async () => {
      await daemon.waitFor(
        /http\.accounting\(4\): \(svc\/web:\d+\): Accounting; method='GET', url='http:\/\/198\.18\.2\.2:8080\/echo', status='200', bytes='\d+'/,
        30_000,
      );
      await daemon.waitFor(
        /http\.violation\(3\): \(svc\/web:\d+\): Request refused; reason='Method denied', status='403', method='DELETE'/,
        30_000,
      );
    });

    test(`corpus end to end (${CORPUS.length} cases): client statuses and what the server received`, async () => {
      const failures: string[] = [];
      let id = 0;
      for (const c of CORPUS) {
        id++;
        await ask(
          server,
          `reset ${id} ${Buffer.from(c.response ?? DEFAULT_RESPONSE, 'latin1').toString('base64')}`,
          `reset-ok ${id}`,
        );
        const res = Buffer.from(
          await ask(
            rawClient,
            `${id} ${ADDR.server4} ${portOf(c)} ${Buffer.from(c.input, 'latin1').toString('base64')}`,
            `result ${id}`,
          ),
          'base64',
        ).toString('latin1');
        await new Promise((r) => setTimeout(r, 50));
        const [n, b64] = (await ask(server, `dump ${id}`, `dump ${id}`)).split(' ') as [
          string,
          string | undefined,
        ];
        const got = Buffer.from(b64 ?? '', 'base64').toString('latin1');
        const statuses = [...res.matchAll(/HTTP\/1\.1 (\d{3}) /g)].map((m) => Number(m[1]));
        const problems: string[] = [];
        if (JSON.stringify(statuses) !== JSON.stringify(c.statuses))
          problems.push(`statuses ${JSON.stringify(statuses)} != ${JSON.stringify(c.statuses)}`);
        if (!c.serverMaySee && got !== '') problems.push(`server saw ${JSON.stringify(got.slice(0, 200))}`);
        if (c.serverRequests !== undefined && Number(n) !== c.serverRequests)
          problems.push(`server parsed ${n} requests, want ${c.serverRequests}`);
        if (c.serverHas && !got.includes(c.serverHas))
          problems.push(`server lacks ${JSON.stringify(c.serverHas)}`);
        if (c.serverLacks && got.toLowerCase().includes(c.serverLacks.toLowerCase()))
          problems.push(`server got ${JSON.stringify(c.serverLacks)}`);
        if (problems.length) failures.push(`${c.name}: ${problems.join('; ')}`);
      }
      assert.deepEqual(failures, []);
    });
  });
