// The FTP proxy end to end through `tzorp run`: the real policy loader, kernel ruleset (nftables +
// TPROXY, policy routing), workers and the FTP core, in the lab's firewall namespace; vsftpd and
// pyftpdlib in the server namespace; curl, lftp and Python's ftplib in the client namespace. IPv4 and
// IPv6. The data connections get through only because tzorp's own sockets are transparent (the
// socket rule of the tzorp table); no conntrack helper is configured anywhere.
//
// Services by destination (one policy, several option sets):
//   vsftpd .2 / ::2  data_mode keep    .3 / ::3  passive    .4 / ::4  active    .5 / ::5  read_only
//   pyftpdlib :2121 on any server address  (strict_port_checking off: it connects from random ports)
//   the firewall's own 198.18.1.1 / 2001:db8:1::1 port 2100: non-transparent (USER user@host)
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ADDR, createLab, type Lab, type LabProcess, netnsSkipReason } from '../../harness/netns.ts';
import {
  bounceAttempt,
  CURL_MODE,
  curlSha,
  lftpList,
  sha,
  startFtpServers,
  ftpUrl as url,
} from './servers.ts';

const skip = netnsSkipReason();
const TZ = [process.execPath, 'bin/tzorp'];
const BIG_BYTES = 16 * 1024 * 1024;

const hosts = (n: number) => ({ v4: `198.18.2.${n}`, v6: `2001:db8:2::${n}` });
const KEEP = hosts(2);
const PASSIVE = hosts(3);
const ACTIVE = hosts(4);
const RO = hosts(5);
const FW = { v4: ADDR.fwClient4, v6: ADDR.fwClient6 };

const subnet = (h: { v4: string; v6: string }) => `[${h.v4}, "${h.v6}"]`;
const POLICY = `zones:
  clients:
    addresses: [198.18.1.0/24, "2001:db8:1::/64"]
  servers:
    addresses: [198.18.2.0/24, "2001:db8:2::/64"]
services:
  ftp_keep:
    type: proxy
    proxy: ftp
  ftp_passive:
    type: proxy
    proxy: ftp
    options: { data_mode: passive }
  ftp_active:
    type: proxy
    proxy: ftp
    options: { data_mode: active }
  ftp_ro:
    type: proxy
    proxy: ftp
    options: { policy_set: read_only }
  ftp_py:
    type: proxy
    proxy: ftp
    options: { strict_port_checking: false }
  ftp_inband:
    type: proxy
    proxy: ftp
    router: { type: inband }
    options: { transparent_mode: false, target_port_range: "21,2121", strict_port_checking: false }
rules:
  - { id: 1, service: ftp_keep, proto: tcp, dst_port: 21, src_zone: clients, dst_subnet: ${subnet(KEEP)} }
  - { id: 2, service: ftp_passive, proto: tcp, dst_port: 21, src_zone: clients, dst_subnet: ${subnet(PASSIVE)} }
  - { id: 3, service: ftp_active, proto: tcp, dst_port: 21, src_zone: clients, dst_subnet: ${subnet(ACTIVE)} }
  - { id: 4, service: ftp_ro, proto: tcp, dst_port: 21, src_zone: clients, dst_subnet: ${subnet(RO)} }
  - { id: 5, service: ftp_py, proto: tcp, dst_port: 2121, src_zone: clients, dst_zone: servers }
  - { id: 6, service: ftp_inband, proto: tcp, dst_port: 2100, src_zone: clients, dst_subnet: ${subnet(FW)} }
`;

describe('ftp through `tzorp run` (kernel ruleset, workers; vsftpd, pyftpdlib; IPv4 and IPv6)', {
  skip,
}, () => {
  let lab: Lab;
  let daemon: LabProcess;
  let dir = '';
  let control = '';
  let vsRoot = '';
  let pyRoot = '';
  let bigSha = '';
  let upload = '';
  let uploadSha = '';
  let vsLog = '';
  let srv: Awaited<ReturnType<typeof startFtpServers>>;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tzorp-ftprun-'));
    lab = await createLab({ serverAddrs: [PASSIVE, ACTIVE, RO].flatMap((h) => [h.v4, h.v6]) });
    srv = await startFtpServers(lab, dir, BIG_BYTES);
    ({ vsRoot, pyRoot, bigSha, upload, uploadSha, vsLog } = srv);
    const policy = join(dir, 'policy.yaml');
    writeFileSync(policy, POLICY);
    control = join(dir, 'control.sock');
    daemon = lab.spawn('fw', [
      ...TZ,
      'run',
      policy,
      '--control',
      control,
      '--workers',
      '2',
      '--log-spec',
      'core.summary:4,ftp.accounting:4,ftp.violation:3,ftp.policy:4',
    ]);
    await daemon.waitFor(/tzorp running/, 120_000);
  });

  after(async () => {
    if (daemon) {
      await lab.exec('fw', [...TZ, 'stop', '--control', control], { allowFail: true, timeoutMs: 60_000 });
    }
    await lab?.destroy();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const curl = (args: string[], allowFail = false) =>
    lab.exec('client', ['curl', '-sS', '--max-time', '120', ...args], { timeoutMs: 150_000, allowFail });

  for (const fam of [4, 6] as const) {
    const pick = (h: { v4: string; v6: string }) => (fam === 4 ? h.v4 : h.v6);
    const modes = fam === 4 ? ['EPSV', 'PASV', 'EPRT', 'PORT'] : ['EPSV', 'EPRT'];

    for (const [label, h] of [
      ['keep', KEEP],
      ['passive', PASSIVE],
      ['active', ACTIVE],
    ] as const) {
      test(`IPv${fam} vsftpd, server side ${label}: 16 MiB downloads intact, curl ${modes.join('/')}`, async () => {
        for (const m of modes) {
          assert.equal(await curlSha(lab, [...CURL_MODE[m]!, url(pick(h), 21, '/pub/big.bin')]), bigSha, m);
        }
      });
    }

    test(`IPv${fam} pyftpdlib: downloads intact, passive and active`, async () => {
      for (const m of ['EPSV', 'EPRT']) {
        assert.equal(
          await curlSha(lab, [...CURL_MODE[m]!, url(pick(KEEP), 2121, '/pub/big.bin')]),
          bigSha,
          m,
        );
      }
    });

    test(`IPv${fam}: uploads arrive intact (vsftpd and pyftpdlib, passive and active)`, async () => {
      for (const [m, h, port, root] of [
        ['EPSV', PASSIVE, 21, vsRoot],
        ['EPRT', ACTIVE, 21, vsRoot],
        ['EPRT', KEEP, 2121, pyRoot],
      ] as const) {
        const name = `run-${fam}-${m}-${port}.bin`;
        await curl([...CURL_MODE[m]!, '-T', upload, url(pick(h), port, `/incoming/${name}`)]);
        assert.equal(sha(readFileSync(join(root, 'incoming', name))), uploadSha, name);
      }
    });

    test(`IPv${fam}: lftp listings, passive and active`, async () => {
      for (const passive of [true, false]) {
        const out = await lftpList(lab, url(pick(KEEP), 21, ''), passive);
        assert.match(out, /big\.bin/, `passive ${passive}`);
      }
    });

    test(`IPv${fam}: several concurrent sessions`, async () => {
      const runs = [KEEP, PASSIVE, ACTIVE, KEEP, PASSIVE, ACTIVE].map((h, i) =>
        curlSha(lab, [...CURL_MODE[i % 2 ? 'EPRT' : 'EPSV']!, url(pick(h), 21, '/pub/big.bin')]),
      );
      for (const got of await Promise.all(runs)) assert.equal(got, bigSha);
    });

    test(`IPv${fam}: several transfers in one session (curl reuses the control connection)`, async () => {
      for (const m of ['EPSV', 'EPRT']) {
        const urls = [1, 2, 3].map(() => url(pick(ACTIVE), 21, '/pub/big.bin'));
        const r = await lab.exec(
          'client',
          ['sh', '-c', `curl -sS --max-time 120 ${CURL_MODE[m]!.join(' ')} ${urls.join(' ')} | sha256sum`],
          { timeoutMs: 150_000 },
        );
        assert.equal(r.stdout.split(' ')[0], sha(Buffer.concat([srv.big, srv.big, srv.big])), m);
      }
    });

    test(`IPv${fam}: a partial download (curl -r) ends with ABOR and the session goes on`, async () => {
      const hello = readFileSync(join(vsRoot, 'pub', 'hello.txt'));
      for (const m of ['EPSV', 'EPRT']) {
        const out = join(dir, `partial-${fam}-${m}.bin`);
        const r = await lab.exec(
          'client',
          [
            'curl',
            '-v',
            '-sS',
            '--max-time',
            '60',
            ...CURL_MODE[m]!,
            '-r',
            '0-99999',
            url(pick(KEEP), 21, '/pub/big.bin'),
            '-o',
            `${out}.1`,
            url(pick(KEEP), 21, '/pub/hello.txt'),
            '-o',
            `${out}.2`,
          ],
          { timeoutMs: 90_000, allowFail: true },
        );
        // the trace of a failure says which reply the client was waiting for
        const trace = r.stderr
          .split('\n')
          .filter((l) => /^[<>*]/.test(l))
          .slice(-15)
          .join('\n');
        assert.equal(r.code, 0, `${m}: curl exited ${r.code}\n${trace}`);
        assert.equal(sha(readFileSync(`${out}.1`)), sha(srv.big.subarray(0, 100000)), m);
        assert.equal(sha(readFileSync(`${out}.2`)), sha(hello), `${m}: the next transfer in the session`);
      }
    });

    test(`IPv${fam}: the read_only service refuses STOR`, async () => {
      const name = `run-ro-${fam}.bin`;
      const r = await curl(['-T', upload, url(pick(RO), 21, `/incoming/${name}`)], true);
      assert.notEqual(r.code, 0);
      assert.ok(!existsSync(join(vsRoot, 'incoming', name)));
      assert.equal(await curlSha(lab, [url(pick(RO), 21, '/pub/big.bin')]), bigSha, 'reading still works');
    });

    test(`IPv${fam}: a bounce attempt is refused`, async () => {
      assert.match(await bounceAttempt(lab, pick(KEEP), fam), /REFUSED 501/);
    });

    test(`IPv${fam}: non-transparent mode on the firewall's address (USER anonymous@server)`, async () => {
      const target = fam === 4 ? pick(KEEP) : `[${pick(KEEP)}]`;
      for (const [m, port] of [
        ['EPSV', 21],
        ['EPRT', 2121],
      ] as const) {
        const user = encodeURIComponent(`anonymous@${target}${port === 21 ? '' : `:${port}`}`);
        const u = url(pick(FW), 2100, '/pub/big.bin').replace('ftp://', `ftp://${user}:x@`);
        assert.equal(await curlSha(lab, [...CURL_MODE[m]!, u]), bigSha, `${m} to ${port}`);
      }
    });
  }

  test('the daemon logs accounting and violations; the server saw only the firewall', async () => {
    await daemon.waitFor(
      /ftp\.accounting.*Accounting;.*command='RETR'.*direction='download'.*bytes='16777216'/,
    );
    await daemon.waitFor(/ftp\.accounting.*command='STOR'.*direction='upload'/);
    await daemon.waitFor(/ftp\.policy.*STOR/);
    await daemon.waitFor(/ftp\.violation.*[Bb]ounce/);
    const log = readFileSync(vsLog, 'utf8');
    assert.match(log, /Client "(::ffff:)?198\.18\.2\.1"/);
    assert.doesNotMatch(log, /Client "(::ffff:)?198\.18\.1\.2"/);
    assert.match(
      log,
      /FTP command: Client "[^"]+", "ABOR"/,
      'the partial downloads reached the server as ABOR',
    );
  });

  test('no conntrack helper is involved', async () => {
    const rs = await lab.exec('fw', ['nft', 'list', 'ruleset']);
    assert.doesNotMatch(rs.stdout, /helper/);
    const ct = await lab.exec('fw', ['conntrack', '-L'], { allowFail: true });
    assert.doesNotMatch(ct.stdout, /helper=/);
  });
});
