// Issue 10 item 1, as the administrator meets it: SSH to the firewall's own address through `tzorp
// run` with a catch-all deny rule for the same zone. Management wins for traffic to the firewall
// itself (IPv4 and IPv6), the deny rule still refuses the same port through the firewall, and
// `tzorp explain --dst-local` says management decides.
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { ADDR, createLab, netnsSkipReason } from '../../harness/netns.ts';
import { startDaemon, tcpRead, tempDir, tz } from './lab.ts';

const skip = netnsSkipReason();
const tmp = tempDir('lockout');
after(() => tmp.remove());

const POLICY = `zones:
  lan:
    addresses: [198.18.1.0/24, "2001:db8:1::/64"]
  servers:
    addresses: [198.18.2.0/24, "2001:db8:2::/64"]
services:
  reject_all:
    type: deny
    ipv4: tcp-reset
    ipv6: tcp-reset
rules:
  - { id: 99, service: reject_all, src_zone: lan }
management:
  - { proto: tcp, dst_port: 22, src_zone: lan }
`;

test('a catch-all deny rule does not lock SSH to the firewall out; explain shows management', {
  skip,
  timeout: 300_000,
}, async () => {
  const lab = await createLab();
  try {
    const sshd = lab.spawn('fw', ['python3', 'test/netns/failsafe/banner.py', '22']);
    await sshd.waitFor(/ready/);
    const srv = lab.spawn('server', ['python3', 'test/netns/failsafe/banner.py', '22']);
    await srv.waitFor(/ready/);
    // without tzorp both answer (the probe works)
    assert.match(await tcpRead(lab, ADDR.server4, 22), /^SSH-2\.0/);
    const d = await startDaemon(lab, tmp.dir, POLICY);
    for (const fw of [ADDR.fwClient4, ADDR.fwClient6, ADDR.fwServer4, ADDR.fwServer6]) {
      assert.match(await tcpRead(lab, fw, 22), /^SSH-2\.0/, `ssh to the firewall at ${fw}`);
    }
    for (const s of [ADDR.server4, ADDR.server6]) {
      assert.equal(await tcpRead(lab, s, 22), '', `rule 99 refuses ${s}:22 through the firewall`);
    }
    // other ports of the firewall stay closed: management is exactly what it names
    const other = lab.spawn('fw', ['python3', 'test/netns/failsafe/banner.py', '2222']);
    await other.waitFor(/ready/);
    assert.equal(await tcpRead(lab, ADDR.fwClient4, 2222), '');

    const ex = await tz(lab, [
      'explain',
      d.policy,
      '--proto',
      'tcp',
      '--src',
      ADDR.client4,
      '--dst',
      ADDR.fwClient4,
      '--dport',
      '22',
      '--iface',
      'eth0',
      '--dst-local',
      '--json',
    ]);
    assert.equal(ex.code, 0, ex.stderr);
    const j = JSON.parse(ex.stdout);
    assert.deepEqual([j.verdict, j.management, j.rule], ['management', 1, null]);
    const fwd = await tz(lab, [
      'explain',
      d.policy,
      '--proto',
      'tcp',
      '--src',
      ADDR.client4,
      '--dst',
      ADDR.server4,
      '--dport',
      '22',
      '--iface',
      'eth0',
    ]);
    assert.equal(fwd.code, 3, 'refused: exit 3');
    assert.match(fwd.stdout, /Rule: 99/);
    await tz(lab, ['stop', '--control', d.control, '--timeout', '1000']);
  } finally {
    await lab.destroy();
  }
});
