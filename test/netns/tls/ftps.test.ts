// FTPS through `tzorp run` (tls.mode inspect on an FTP service), IPv4 and IPv6, with real peers:
// vsftpd with TLS (explicit on 21, implicit on 990, `require_ssl_reuse` on both: a data connection must
// resume the control connection's TLS session), curl and lftp as clients trusting only tzorp's CA.
//
// What it shows: AUTH TLS, PBSZ and PROT P are carried on both sides; every data connection is TLS on
// both sides (vsftpd refuses clear data with force_anon_data_ssl, and refuses a data connection that
// does not resume the control session); downloads and uploads arrive intact in every data mode; the
// client sees tzorp's certificate carrying the verified server certificate's names; a server whose
// certificate tzorp cannot verify never gets the client's session (the client gets an alert); a
// denied SNI on implicit FTPS is refused before the server is contacted.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { appendFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, before, test } from 'node:test';
import { prepareVsftpd } from '../../../src/lab/vsftpd.ts';
import { ADDR, createLab, type Lab, type LabProcess, netnsSkipReason } from '../../harness/netns.ts';
import { testCa, testLeaf } from './test-ca.ts';
import { LAB_ZONES, runTzorp, TZ, tzorpCa } from './tls-lab.ts';

const skip = netnsSkipReason();
const dir = mkdtempSync(join(tmpdir(), 'tzorp-ftps-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** vsftpd with TLS required for anonymous logins and data, and session reuse required. */
function vsftpd(name: string, port: number, cert: { cert: string; key: string }, implicit: boolean) {
  const vs = prepareVsftpd(join(dir, name), port);
  appendFileSync(
    vs.config,
    [
      'ssl_enable=YES',
      'allow_anon_ssl=YES',
      'force_anon_logins_ssl=YES',
      'force_anon_data_ssl=YES',
      'require_ssl_reuse=YES',
      'ssl_ciphers=HIGH',
      `rsa_cert_file=${cert.cert}`,
      `rsa_private_key_file=${cert.key}`,
      `implicit_ssl=${implicit ? 'YES' : 'NO'}`,
      '',
    ].join('\n'),
  );
  return vs;
}

const BIG = Buffer.alloc(6 * 1024 * 1024 + 13);
for (let i = 0, x = 7; i < BIG.length; i++) {
  x = (x * 1103515245 + 12345) >>> 0;
  BIG[i] = x >>> 24;
}
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

let lab: Lab;
let daemon: LabProcess;
let tzca = '';
let control = '';
let logs: { explicit: string; implicit: string; rogue: string };
let roots: { explicit: string; implicit: string };

before(async () => {
  if (skip) return;
  const testCaFiles = testCa(dir, 'test-ca');
  const rogueCa = testCa(dir, 'rogue-ca');
  const san = `DNS:ftp.example.org,IP:${ADDR.server4},IP:${ADDR.server6}`;
  const good = testLeaf(dir, 'good', testCaFiles, 'ftp.example.org', san);
  const rogue = testLeaf(dir, 'rogue', rogueCa, 'ftp.example.org', san);
  tzca = tzorpCa(dir, 'tzca', 'tzorp ftps test').cert;
  const explicit = vsftpd('explicit', 21, good, false);
  const implicit = vsftpd('implicit', 990, good, true);
  const rogueVs = vsftpd('rogue', 2121, rogue, false);
  for (const vs of [explicit, implicit]) writeFileSync(join(vs.paths.root, 'pub', 'big.bin'), BIG);
  logs = { explicit: explicit.paths.log, implicit: implicit.paths.log, rogue: rogueVs.paths.log };
  roots = { explicit: explicit.paths.root, implicit: implicit.paths.root };
  lab = await createLab();
  for (const vs of [explicit, implicit, rogueVs]) lab.spawn('server', ['vsftpd', vs.config]);
  for (const port of [21, 990, 2121]) {
    for (let i = 0; i < 100; i++) {
      const r = await lab.exec('server', ['sh', '-c', `ss -ltn | grep -q ":${port} "`], { allowFail: true });
      if (r.code === 0) break;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  const policy = join(dir, 'policy.yaml');
  writeFileSync(
    policy,
    `${LAB_ZONES}services:
  ftps:
    type: proxy
    proxy: ftp
    tls:
      mode: inspect
      ca: { cert: ${tzca}, key: ${join(dir, 'tzca', 'ca.key')} }
      server_ca_file: ${testCaFiles.cert}
      sni: { deny: [bad.example.org] }
  ftps_nowhere:
    type: proxy
    proxy: ftp
    tls:
      mode: inspect
      implicit: true
      ca: { cert: ${tzca}, key: ${join(dir, 'tzca', 'ca.key')} }
      server_ca_file: ${testCaFiles.cert}
rules:
  - { id: 1, service: ftps, proto: tcp, src_zone: clients, dst_zone: servers, dst_port: [21, 990, 2121] }
  - { id: 2, service: ftps_nowhere, proto: tcp, src_zone: clients, dst_zone: servers, dst_port: 9990 }
`,
  );
  control = join(dir, `${lab.id}.sock`);
  daemon = await runTzorp(lab, policy, control, [
    '--metrics',
    '127.0.0.1:9464',
    '--log-spec',
    'core.summary:4,tls.*:5,ftp.violation:3,ftp.data:6,ftp.accounting:4',
  ]);
});

after(async () => {
  if (skip) return;
  if (daemon)
    await lab.exec('fw', [...TZ, 'stop', '--control', control], { allowFail: true, timeoutMs: 60_000 });
  await lab?.destroy();
});

afterEach(() => {
  if (process.env.FTPS_DEBUG && daemon) writeFileSync('/tmp/ftps-daemon.log', daemonLog());
});

const daemonLog = () => daemon.stdout() + daemon.stderr();
/** A log line the daemon writes: workers write theirs once per event-loop turn, so the client can be
 * done before the line is out; wait for it (a line that never comes fails after 10 s). */
const logged = (re: RegExp) => daemon.waitFor(re, 10_000);

function curl(args: string[]) {
  return lab.exec('client', ['curl', '-sS', '--max-time', '60', '--cacert', tzca, ...args], {
    allowFail: true,
    timeoutMs: 90_000,
  });
}

async function curlSha(args: string[]): Promise<string> {
  const r = await lab.exec(
    'client',
    [
      'sh',
      '-c',
      `curl -sS --max-time 60 --cacert '${tzca}' ${args.map((a) => `'${a}'`).join(' ')} | sha256sum`,
    ],
    { timeoutMs: 90_000 },
  );
  return r.stdout.split(' ')[0]!;
}

// curl's active-mode FTPS hangs in curl 7.87-7.88 (curl/curl#10666, Debian 12 has 7.88, also straight
// against vsftpd): curl takes the passive modes, lftp the active ones.
const CURL_MODES: Record<string, string[]> = { EPSV: [], PASV: ['--disable-epsv'] };

/** lftp in the client namespace: TLS required for login and data, trusting only tzorp's CA. */
function lftp(url: string, commands: string[], active: boolean) {
  return lab.exec(
    'client',
    [
      'lftp',
      '-c',
      [
        `set ssl:ca-file ${tzca}`,
        'set ftp:ssl-force true',
        'set ftp:ssl-protect-data true',
        'set ssl:verify-certificate true',
        `set ftp:passive-mode ${active ? 'false' : 'true'}`,
        'set net:max-retries 1',
        'set net:timeout 20',
        `open ${url}`,
        'user anonymous x',
        ...commands,
      ].join('; '),
    ],
    { allowFail: true, timeoutMs: 120_000 },
  );
}

/** A download by lftp in active mode (PORT/EPRT): the file's sha256. */
async function lftpActiveSha(url: string, name: string): Promise<string> {
  const out = join(dir, name);
  rmSync(out, { force: true });
  const r = await lftp(url, [`get pub/big.bin -o ${out}`], true);
  assert.equal(r.code, 0, r.stderr);
  return sha(readFileSync(out));
}

for (const family of [4, 6] as const) {
  const modes = family === 4 ? ['EPSV', 'PASV'] : ['EPSV'];
  const h = family === 4 ? ADDR.server4 : `[${ADDR.server6}]`;

  test(`IPv${family} explicit FTPS (AUTH TLS, PROT P): downloads intact, curl ${modes.join('/')} and lftp active; tzorp's certificate`, {
    skip,
    timeout: 180_000,
  }, async () => {
    const want = sha(BIG);
    for (const m of modes) {
      const got = await curlSha(['--ssl-reqd', ...CURL_MODES[m]!, `ftp://${h}/pub/big.bin`]);
      assert.equal(got, want, `${m}: the download through FTPS`);
    }
    assert.equal(await lftpActiveSha(`ftp://${h}`, `active${family}.bin`), want, 'lftp, active mode');
    // the certificate the client saw: made by tzorp for the address it dialled, with the names of the
    // verified server certificate
    const v = await curl(['-v', '--ssl-reqd', `ftp://${h}/pub/hello.txt`]);
    assert.equal(v.code, 0, v.stderr);
    assert.equal(v.stdout, 'hello from the tzorp lab FTP server\n');
    assert.match(v.stderr, /issuer: CN=tzorp ftps test/);
    const vsLog = readFileSync(logs.explicit, 'utf8');
    assert.match(vsLog, /"AUTH TLS"/);
    assert.match(vsLog, /"PBSZ 0"/);
    assert.match(vsLog, /"PROT P"/);
    assert.match(vsLog, /"EPRT |"PORT /);
    await logged(/Server TLS session established; side='server'.*verify='ok'/);
  });

  test(`IPv${family} explicit FTPS: an upload through PROT P arrives intact; lftp lists and fetches`, {
    skip,
    timeout: 180_000,
  }, async () => {
    const up = join(dir, `up${family}.bin`);
    writeFileSync(up, BIG.subarray(0, 1024 * 1024 + 5));
    const r = await curl(['--ssl-reqd', '-T', up, `ftp://${h}/incoming/up${family}.bin`]);
    assert.equal(r.code, 0, r.stderr);
    const stored = readFileSync(join(roots.explicit, 'incoming', `up${family}.bin`));
    assert.equal(sha(stored), sha(BIG.subarray(0, 1024 * 1024 + 5)));
    const l = await lftp(`ftp://${h}`, ['cls -1 pub', 'cat pub/hello.txt'], false);
    assert.equal(l.code, 0, l.stderr);
    assert.match(l.stdout, /pub\/big\.bin/);
    assert.match(l.stdout, /hello from the tzorp lab FTP server/);
  });

  test(`IPv${family} implicit FTPS on 990: downloads intact, passive and active`, {
    skip,
    timeout: 180_000,
  }, async () => {
    assert.equal(await curlSha([`ftps://${h}:990/pub/big.bin`]), sha(BIG), 'curl, passive');
    assert.equal(await lftpActiveSha(`ftps://${h}:990`, `implicit${family}.bin`), sha(BIG), 'lftp, active');
  });

  test(`IPv${family} a server with a certificate tzorp cannot verify is refused; the client gets no session`, {
    skip,
    timeout: 120_000,
  }, async () => {
    const r = await curl(['--ssl-reqd', `ftp://${h}:2121/pub/hello.txt`]);
    assert.notEqual(r.code, 0);
    assert.equal(r.stdout, '');
    await logged(/tls\.violation\(3\): [^\n]*Server TLS session refused[^\n]*reason='unknown_issuer'/);
    // the rogue server got our handshake but never a login
    assert.doesNotMatch(readFileSync(logs.rogue, 'utf8'), /"USER anonymous"/);
  });
}

test('implicit FTPS: a denied SNI gets an alert and the server is never contacted', {
  skip,
  timeout: 120_000,
}, async () => {
  const before = readFileSync(logs.implicit, 'utf8').split('\n').length;
  const r = await curl([
    '--resolve',
    `bad.example.org:990:${ADDR.server4}`,
    'ftps://bad.example.org:990/pub/hello.txt',
  ]);
  assert.notEqual(r.code, 0);
  await logged(/bad\.example\.org/);
  await logged(/tls\.violation\(3\): [^\n]*TLS handshake refused[^\n]*matches sni deny/);
  // vsftpd logs every connection (CONNECT): none came
  assert.equal(readFileSync(logs.implicit, 'utf8').split('\n').length, before);
  // with an allowed name the same path works, and the certificate carries that name
  const ok = await curl([
    '-v',
    '--resolve',
    `ftp.example.org:990:${ADDR.server4}`,
    'ftps://ftp.example.org:990/pub/hello.txt',
  ]);
  assert.equal(ok.code, 0, ok.stderr);
  assert.match(ok.stderr, /subject: CN=ftp\.example\.org/);
});

test('implicit FTPS to a server that cannot be reached: the client gets a handshake_failure alert, the reason is logged and counted', {
  skip,
  timeout: 120_000,
}, async () => {
  // nothing listens on 9990 (implicit: true on a port other than 990): the client, waiting for its
  // ServerHello, must get a TLS alert, not the clear-text 421 a plain FTP client gets
  for (const h of [ADDR.server4, `[${ADDR.server6}]`]) {
    const r = await curl([`ftps://${h}:9990/pub/hello.txt`]);
    assert.equal(r.code, 35, r.stderr); // CURLE_SSL_CONNECT_ERROR
    assert.match(r.stderr, /alert handshake failure/i);
  }
  await logged(
    /tls\.violation\(3\): \(svc\/ftps_nowhere:\d+\): Server connection failed[^\n]*reason='connect_failed'/,
  );
  const count = async () =>
    (await lab.exec('fw', ['curl', '-sS', 'http://127.0.0.1:9464/metrics'])).stdout
      .split('\n')
      .filter(
        (l) =>
          l.startsWith('tzorp_tls_handshakes_total{') &&
          l.includes('service="ftps_nowhere"') &&
          l.includes('result="connect_failed"'),
      )
      .reduce((n, l) => n + Number(l.split(' ').pop()), 0);
  let n = await count();
  for (let i = 0; i < 50 && n < 2; i++) {
    await new Promise((res) => setTimeout(res, 100));
    n = await count();
  }
  assert.equal(n, 2, 'IPv4 and IPv6, counted as connect_failed');
});

test('metrics count the FTPS handshakes', { skip, timeout: 60_000 }, async () => {
  const m = await lab.exec('fw', ['curl', '-sS', 'http://127.0.0.1:9464/metrics']);
  assert.match(
    m.stdout,
    /tzorp_tls_handshakes_total\{[^}]*service="ftps"[^}]*result="accepted"[^}]*\} [1-9]/,
  );
});
