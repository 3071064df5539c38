// The FTP proxy end to end in network namespaces, before the daemon: the FTP core through the real
// session driver (relay-entry.ts), transparent listeners, and a hand-written nft TPROXY ruleset in the
// firewall namespace (the seed's minimal ruleset: no conntrack helper anywhere). Real servers
// (vsftpd, pyftpdlib) and real clients (curl, lftp, Python's ftplib), IPv4 and IPv6.
//
// The firewall diverts port 21 (vsftpd) and 2121 (pyftpdlib) per destination address, so one relay
// process serves several option sets:
//   server .2 / ::2  data_mode keep       .3 / ::3  data_mode passive
//   server .4 / ::4  data_mode active     .5 / ::5  policy_set read_only
// Data connections reach the proxy only through `socket transparent 1` (its transparent listeners and
// its forged-source connects), exactly as in Zorp's ruleset (zorp-semantics §8).
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { nativeRelayAvailable } from '../../../src/net/relay.ts';
import { createLab, type Lab, type LabProcess, netnsSkipReason } from '../../harness/netns.ts';
import { tproxyRuleset, tproxyTo } from '../../harness/tproxy-ruleset.ts';
import {
  bounceAttempt,
  CURL_MODE,
  curlSha as curlShaIn,
  lftpList,
  sha,
  startFtpServers,
  ftpUrl as url,
} from './servers.ts';

const skip = netnsSkipReason();
const HERE = 'test/netns/ftp';
const MARK = '0x80000000';
const BIG_BYTES = 16 * 1024 * 1024;

const hosts = (n: number) => ({ v4: `198.18.2.${n}`, v6: `2001:db8:2::${n}` });
const KEEP = hosts(2);
const PASSIVE = hosts(3);
const ACTIVE = hosts(4);
const RO = hosts(5);

interface Svc {
  name: string;
  port: number;
  dport: number;
  daddr: { v4: string; v6: string };
  options: Record<string, unknown>;
  router?: Record<string, unknown>;
}

/** Non-transparent mode: clients dial the firewall itself (port 2100) and name the server in USER. */
const FW_PROXY = { v4: '198.18.1.1', v6: '2001:db8:1::1' };

const SERVICES: Svc[] = [
  { name: 'ftp_keep', port: 50021, dport: 21, daddr: KEEP, options: { data_mode: 'keep' } },
  { name: 'ftp_passive', port: 50022, dport: 21, daddr: PASSIVE, options: { data_mode: 'passive' } },
  { name: 'ftp_active', port: 50023, dport: 21, daddr: ACTIVE, options: { data_mode: 'active' } },
  { name: 'ftp_ro', port: 50024, dport: 21, daddr: RO, options: { policy_set: 'read_only' } },
  // pyftpdlib connects from a random port in active mode: Zorp's strict_port_checking would refuse it
  {
    name: 'py_keep',
    port: 50031,
    dport: 2121,
    daddr: KEEP,
    options: { data_mode: 'keep', strict_port_checking: false },
  },
  {
    name: 'py_passive',
    port: 50032,
    dport: 2121,
    daddr: PASSIVE,
    options: { data_mode: 'passive', strict_port_checking: false },
  },
  {
    name: 'py_active',
    port: 50033,
    dport: 2121,
    daddr: ACTIVE,
    options: { data_mode: 'active', strict_port_checking: false },
  },
  {
    name: 'ftp_inband',
    port: 50041,
    dport: 2100,
    daddr: FW_PROXY,
    options: { transparent_mode: false, target_port_range: '21,2121', strict_port_checking: false },
    router: { type: 'inband', forgeAddr: false, forgePort: 'any', defaultPort: 21 },
  },
];

function ruleset(): string {
  return tproxyRuleset({
    table: 'tzorp_ftptest',
    divert: SERVICES.flatMap((s) => [
      tproxyTo(`ip daddr ${s.daddr.v4} tcp dport ${s.dport}`, 4, s.port),
      tproxyTo(`ip6 daddr ${s.daddr.v6} tcp dport ${s.dport}`, 6, s.port),
    ]),
  });
}

// Twice: data channels on the native relay (the default), and copied in JavaScript.
for (const native of [true, false])
  describe(`ftp proxy in namespaces (TPROXY, vsftpd and pyftpdlib, curl/lftp, IPv4 and IPv6; native relay ${native ? 'on' : 'off'})`, {
    skip,
  }, () => {
    let lab: Lab;
    let relay: LabProcess;
    let dir = '';
    let vsRoot = '';
    let pyRoot = '';
    let bigSha = '';

    before(async () => {
      dir = mkdtempSync(join(tmpdir(), 'tzorp-ftptest-'));
      lab = await createLab({
        serverAddrs: [PASSIVE, ACTIVE, RO].flatMap((h) => [h.v4, h.v6]),
      });
      await lab.exec('fw', ['nft', '-f', '-'], { input: ruleset() });
      await lab.sh(
        'fw',
        [
          `ip rule add fwmark ${MARK}/${MARK} lookup 100`,
          'ip route add local 0.0.0.0/0 dev lo table 100',
          `ip -6 rule add fwmark ${MARK}/${MARK} lookup 100`,
          'ip -6 route add local ::/0 dev lo table 100',
        ].join(' && '),
      );
      const srv = await startFtpServers(lab, dir, BIG_BYTES);
      vsRoot = srv.vsRoot;
      pyRoot = srv.pyRoot;
      bigSha = srv.bigSha;
      relay = lab.spawnTs(
        'fw',
        `${HERE}/relay-entry.ts`,
        [
          JSON.stringify(
            SERVICES.map(({ name, port, options, router }) => ({ name, port, options, router })),
          ),
        ],
        { env: { TZORP_NATIVE_RELAY: native ? '1' : '0' } },
      );
      await relay.waitFor(/READY/);
    });

    after(async () => {
      await lab?.destroy();
      if (dir) rmSync(dir, { recursive: true, force: true });
    });

    async function curl(args: string[], opts: { allowFail?: boolean } = {}) {
      return lab.exec('client', ['curl', '-sS', '--max-time', '120', ...args], {
        timeoutMs: 150_000,
        allowFail: opts.allowFail ?? false,
      });
    }

    const curlSha = (args: string[]) => curlShaIn(lab, args);

    for (const fam of [4, 6] as const) {
      const pick = (h: { v4: string; v6: string }) => (fam === 4 ? h.v4 : h.v6);
      const modes = fam === 4 ? ['EPSV', 'PASV', 'EPRT', 'PORT'] : ['EPSV', 'EPRT'];

      for (const [label, h] of [
        ['keep', KEEP],
        ['passive', PASSIVE],
        ['active', ACTIVE],
      ] as const) {
        test(`IPv${fam} vsftpd, server side ${label}: 16 MiB download intact with curl ${modes.join('/')}`, async () => {
          for (const m of modes) {
            const got = await curlSha([...CURL_MODE[m]!, url(pick(h), 21, '/pub/big.bin')]);
            assert.equal(got, bigSha, `${m} via ${label}`);
          }
        });

        test(`IPv${fam} pyftpdlib, server side ${label}: download intact (EPSV and ${fam === 4 ? 'PORT' : 'EPRT'})`, async () => {
          for (const m of ['EPSV', fam === 4 ? 'PORT' : 'EPRT']) {
            const got = await curlSha([...CURL_MODE[m]!, url(pick(h), 2121, '/pub/big.bin')]);
            assert.equal(got, bigSha, `${m} via ${label}`);
          }
        });
      }

      test(`IPv${fam}: uploads (STOR) arrive intact, passive and active, both servers`, async () => {
        const up = readFileSync(join(dir, 'up.bin'));
        for (const [m, h, port, root] of [
          ['EPSV', KEEP, 21, vsRoot],
          ['EPRT', ACTIVE, 21, vsRoot],
          ['EPSV', PASSIVE, 2121, pyRoot],
          ['EPRT', KEEP, 2121, pyRoot],
        ] as const) {
          const name = `up-${fam}-${m}-${port}-${h.v4.split('.')[3]}.bin`;
          await curl([...CURL_MODE[m]!, '-T', join(dir, 'up.bin'), url(pick(h), port, `/incoming/${name}`)]);
          assert.equal(sha(readFileSync(join(root, 'incoming', name))), sha(up), name);
        }
      });

      test(`IPv${fam}: directory listings with lftp, passive and active`, async () => {
        for (const passive of [true, false]) {
          const out = await lftpList(lab, url(pick(KEEP), 21, ''), passive);
          assert.match(out, /big\.bin/, `passive ${passive}`);
          assert.match(out, /hello\.txt/);
        }
      });

      test(`IPv${fam}: lftp get through the active-mode server side`, async () => {
        const out = join(dir, `lftp-${fam}.bin`);
        await lab.exec(
          'client',
          [
            'lftp',
            '-c',
            `set net:max-retries 1; set net:timeout 20; set ftp:passive-mode off; set ftp:ssl-allow no; open ${url(pick(ACTIVE), 21, '')}; get pub/big.bin -o ${out}`,
          ],
          { timeoutMs: 120_000 },
        );
        assert.equal(sha(readFileSync(out)), bigSha);
      });

      test(`IPv${fam}: several concurrent sessions`, async () => {
        const runs = [KEEP, PASSIVE, ACTIVE, KEEP].map((h, i) =>
          curlSha([...CURL_MODE[i % 2 ? 'EPRT' : 'EPSV']!, url(pick(h), 21, '/pub/big.bin')]),
        );
        for (const got of await Promise.all(runs)) assert.equal(got, bigSha);
      });

      test(`IPv${fam}: read_only policy refuses STOR (the server never sees it)`, async () => {
        const name = `ro-${fam}.bin`;
        const r = await curl(['-T', join(dir, 'up.bin'), url(pick(RO), 21, `/incoming/${name}`)], {
          allowFail: true,
        });
        assert.notEqual(r.code, 0, 'curl reports the failure');
        assert.ok(!existsSync(join(vsRoot, 'incoming', name)));
        await relay.waitFor(/VIOL .*"service":"ftp_ro".*"command":"STOR"/);
        // reading still works through the same policy
        assert.equal(await curlSha([url(pick(RO), 21, '/pub/big.bin')]), bigSha);
      });

      test(`IPv${fam}: non-transparent mode: USER anonymous@server[:port] through the inband router`, async () => {
        const proxy = pick(FW_PROXY);
        const server = pick(KEEP);
        const target = fam === 4 ? server : `[${server}]`;
        // The user name goes into the URL percent-encoded (curl's -u would split it at the first ':').
        const withUser = (user: string) =>
          url(proxy, 2100, '/pub/big.bin').replace('ftp://', `ftp://${encodeURIComponent(user)}:x@`);
        for (const [m, port] of [
          ['EPSV', 21],
          ['EPRT', 2121],
        ] as const) {
          const got = await curlSha([
            ...CURL_MODE[m]!,
            withUser(`anonymous@${target}${port === 21 ? '' : `:${port}`}`),
          ]);
          assert.equal(got, bigSha, `${m} to port ${port}`);
          await relay.waitFor(
            new RegExp(`SUMMARY .*"service":"ftp_inband".*"server":\\{"host":"${server}","port":${port}`),
          );
        }
        // a port outside target_port_range is refused before any connection
        const r = await curl([withUser(`anonymous@${target}:22`)], { allowFail: true });
        assert.notEqual(r.code, 0);
        assert.match(r.stderr, /501|denied/i);
      });

      test(`IPv${fam}: a bounce attempt (PORT/EPRT to a third host) is refused`, async () => {
        assert.match(await bounceAttempt(lab, pick(KEEP), fam), /REFUSED 501/);
        await relay.waitFor(/VIOL .*[Bb]ounce/);
      });
    }

    test('accounting lines name the command, file, direction and bytes', async () => {
      await curlSha([url(KEEP.v4, 21, '/pub/big.bin')]);
      const lines = relay
        .stdout()
        .split('\n')
        .filter((l) => l.startsWith('ACCT '))
        .map((l) => JSON.parse(l.slice(5)) as Record<string, unknown>);
      assert.ok(
        lines.some(
          (a) =>
            a.command === 'RETR' &&
            a.file === 'big.bin' &&
            a.direction === 'download' &&
            a.bytes === BIG_BYTES,
        ),
        JSON.stringify(lines.slice(-3)),
      );
      assert.ok(
        lines.some(
          (a) => a.command === 'STOR' && a.direction === 'upload' && a.bytes === 5 * 1024 * 1024 + 7,
        ),
      );
    });

    test('the server side really used the configured data mode, and saw the firewall`s address', async () => {
      const setups = relay
        .stdout()
        .split('\n')
        .filter((l) => l.startsWith('SETUP '))
        .map((l) => JSON.parse(l.slice(6)) as { service: string; command: string });
      const sent = (svc: string) => new Set(setups.filter((x) => x.service === svc).map((x) => x.command));
      assert.deepEqual([...sent('ftp_active')].sort(), ['EPRT', 'PORT']);
      assert.deepEqual([...sent('ftp_passive')].sort(), ['EPSV', 'PASV']);
      assert.deepEqual([...sent('ftp_keep')].sort(), ['EPRT', 'EPSV', 'PASV', 'PORT']);
      const log = readFileSync(join(dir, 'vsftpd', 'vsftpd.log'), 'utf8');
      assert.match(log, /Client "(::ffff:)?198\.18\.2\.1"/);
      assert.match(log, /Client "2001:db8:2::1"/);
      assert.doesNotMatch(
        log,
        /Client "(::ffff:)?198\.18\.1\.2"/,
        'the server never talks to the client directly',
      );
    });

    test(`data connections ${native ? 'went to' : 'stayed off'} the native relay`, {
      skip: native && !nativeRelayAvailable() ? 'the native addon is not built' : false,
    }, async () => {
      const handed = relay
        .stdout()
        .split('\n')
        .filter((l) => l.startsWith('NATIVE '))
        .map((l) => (JSON.parse(l.slice(7)) as { service: string }).service);
      if (!native) assert.deepEqual(handed, []);
      // every data mode, both servers: the 16 MiB downloads and the uploads above were relayed natively
      else
        for (const svc of ['ftp_keep', 'ftp_passive', 'ftp_active', 'py_keep', 'py_passive', 'py_active'])
          assert.ok(handed.includes(svc), `${svc}: ${JSON.stringify([...new Set(handed)])}`);
    });

    test('no conntrack helper is involved', async () => {
      const rs = await lab.exec('fw', ['nft', 'list', 'ruleset']);
      assert.doesNotMatch(rs.stdout, /helper/);
      const ct = await lab.exec('fw', ['conntrack', '-L'], { allowFail: true });
      assert.doesNotMatch(ct.stdout, /helper=/);
    });
  });
