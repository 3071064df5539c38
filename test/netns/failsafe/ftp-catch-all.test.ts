// Issue 10 item 3: FTP data connections behind catch-all rules, through `tzorp run`. The FTP proxy's
// forged data listeners (client side, passive) and its forged-source data connections (server side,
// active) are tzorp's own transparent sockets: their packets must reach them before any policy
// decision, so a catch-all deny rule cannot refuse them and a catch-all forward rule cannot route
// them around the proxy. Each policy here has one FTP rule for port 21 and a catch-all rule for
// everything else; passive (EPSV, PASV) and active (EPRT, PORT) transfers must all arrive intact.
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { ADDR, createLab, type Lab, netnsSkipReason } from '../../harness/netns.ts';
import { CURL_MODE, ftpUrl, sha, startFtpServers } from '../ftp/servers.ts';
import { type Daemon, startDaemon, tempDir, tz } from './lab.ts';

const skip = netnsSkipReason();
const tmp = tempDir('ftpcatch');
after(() => tmp.remove());

const head = `zones:
  clients:
    addresses: [198.18.1.0/24, "2001:db8:1::/64"]
  servers:
    addresses: [198.18.2.0/24, "2001:db8:2::/64"]
services:
  ftp:
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
`;
const FTP_RULES = `  - { id: 1, service: ftp, proto: tcp, dst_port: 21, src_zone: clients, dst_subnet: [198.18.2.2, "2001:db8:2::2"] }
  - { id: 2, service: ftp_passive, proto: tcp, dst_port: 21, src_zone: clients, dst_subnet: [198.18.2.3, "2001:db8:2::3"] }
  - { id: 3, service: ftp_active, proto: tcp, dst_port: 21, src_zone: clients, dst_subnet: [198.18.2.4, "2001:db8:2::4"] }
`;
const POLICIES: Record<string, string> = {
  'a catch-all deny rule': `${head}  deny_all:
    type: deny
    ipv4: icmp-admin-prohibited
    ipv6: icmp-admin-prohibited
rules:
${FTP_RULES}  - { id: 100, service: deny_all }
`,
  'a catch-all forward rule': `${head}  forward_all:
    type: forward
rules:
${FTP_RULES}  - { id: 100, service: forward_all }
`,
};

const EXTRA = ['198.18.2.3', '2001:db8:2::3', '198.18.2.4', '2001:db8:2::4'];

for (const [label, policy] of Object.entries(POLICIES)) {
  describe(`ftp through ${label} (tzorp run, vsftpd)`, { skip }, () => {
    let lab: Lab;
    let d: Daemon;
    let bigSha = '';
    test('set up', { timeout: 300_000 }, async () => {
      lab = await createLab({ serverAddrs: EXTRA });
      const srv = await startFtpServers(lab, `${tmp.dir}/${label.replace(/\W/g, '')}`, 256 * 1024);
      bigSha = srv.bigSha;
      assert.equal(sha(srv.big), bigSha);
      d = await startDaemon(lab, tmp.dir, policy);
    });
    for (const fam of [4, 6] as const) {
      const modes = fam === 4 ? ['EPSV', 'PASV', 'EPRT', 'PORT'] : ['EPSV', 'EPRT'];
      for (const [svc, host] of [
        ['keep', fam === 4 ? ADDR.server4 : ADDR.server6],
        ['server side passive', fam === 4 ? '198.18.2.3' : '2001:db8:2::3'],
        ['server side active', fam === 4 ? '198.18.2.4' : '2001:db8:2::4'],
      ] as const) {
        test(`IPv${fam}, ${svc}: ${modes.join(', ')} transfers arrive intact`, {
          timeout: 200_000,
        }, async () => {
          for (const m of modes) {
            const args = ['-sS', '--max-time', '30', ...CURL_MODE[m]!, ftpUrl(host, 21, '/pub/big.bin')];
            const r = await lab.exec(
              'client',
              ['sh', '-c', `curl ${args.map((a) => `'${a}'`).join(' ')} | sha256sum`],
              { timeoutMs: 60_000 },
            );
            assert.equal(r.stdout.split(' ')[0], bigSha, `${m}: ${r.stderr}`);
          }
        });
      }
    }
    test('the catch-all rule still decides other traffic', async () => {
      const r = await lab.exec(
        'client',
        ['curl', '-sS', '--max-time', '5', `telnet://${ADDR.server4}:2121`],
        {
          allowFail: true,
        },
      );
      // pyftpdlib answers on 2121: the forward rule lets it through, the deny rule refuses it
      if (label.includes('forward')) assert.match(r.stdout, /^220/);
      else assert.equal(r.stdout, '');
    });
    test('tear down', { timeout: 120_000 }, async () => {
      if (d) await tz(lab, ['stop', '--control', d.control, '--timeout', '1000']);
      await lab?.destroy();
    });
  });
}
