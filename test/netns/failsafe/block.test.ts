// Issue 10 item 9, as the administrator meets it: a `block:` entry drops traffic that a more specific
// allow rule would otherwise let through (the iptables user's blocklist), through `tzorp run`, IPv4
// and IPv6; a block entry naming the firewall's own SSH does not lock management out; `tzorp explain`
// answers "block" (exit 3); `tzorp check` warns (TZ1525) about the deny rule that was meant as a
// blocklist and loses port 8081 to the allow rule.
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { ADDR, createLab, netnsSkipReason } from '../../harness/netns.ts';
import { startDaemon, tcpRead, tempDir, tz } from './lab.ts';

const skip = netnsSkipReason();
const tmp = tempDir('block');
after(() => tmp.remove());

const POLICY = `zones:
  lan:
    addresses: [198.18.1.0/24, "2001:db8:1::/64"]
  servers:
    addresses: [198.18.2.0/24, "2001:db8:2::/64"]
services:
  out: { type: forward }
  reject_all: { type: deny, ipv4: tcp-reset, ipv6: tcp-reset }
rules:
  - { id: 10, service: out, proto: tcp, dst_port: [22, 8081], src_zone: lan, dst_zone: servers }
  - { id: 90, service: reject_all, src_subnet: [${ADDR.client4}, "${ADDR.client6}"] }
management:
  - { proto: tcp, dst_port: 22, src_zone: lan }
block:
  - { description: nothing to 8081 from the client, proto: tcp, dst_port: 8081, src_subnet: [${ADDR.client4}, "${ADDR.client6}"] }
  - { description: ssh to the firewall itself, proto: tcp, dst_port: 22, dst_subnet: [${ADDR.fwClient4}, "${ADDR.fwClient6}"] }
`;

test('block: drops what a more specific allow rule would pass; management still reaches the firewall; explain says block', {
  skip,
  timeout: 300_000,
}, async () => {
  const lab = await createLab();
  try {
    const banners = [
      lab.spawn('fw', ['python3', 'test/netns/failsafe/banner.py', '22']),
      lab.spawn('server', ['python3', 'test/netns/failsafe/banner.py', '22']),
      lab.spawn('server', ['python3', 'test/netns/failsafe/banner.py', '8081']),
    ];
    for (const b of banners) await b.waitFor(/ready/);
    const d = await startDaemon(lab, tmp.dir, POLICY);
    for (const s of [ADDR.server4, ADDR.server6]) {
      // rule 10 wins port 22 over the deny rule 90 (it names a port): forwarded
      assert.match(await tcpRead(lab, s, 22), /^SSH-2\.0/, `rule 10 forwards ${s}:22`);
      // and would win 8081 too, but the block entry comes first
      assert.equal(await tcpRead(lab, s, 8081), '', `block 1 drops ${s}:8081`);
    }
    for (const fw of [ADDR.fwClient4, ADDR.fwClient6]) {
      assert.match(await tcpRead(lab, fw, 22), /^SSH-2\.0/, `management wins over block 2 at ${fw}`);
    }
    const list = await lab.exec('fw', ['nft', 'list', 'chain', 'inet', 'tzorp', 'decide']);
    assert.match(
      list.stdout,
      /counter packets [1-9]\d* bytes \d+ drop comment "block 1: nothing to 8081 from the client"/,
    );

    const ex = await tz(lab, [
      'explain',
      d.policy,
      '--proto',
      'tcp',
      '--src',
      ADDR.client6,
      '--dst',
      ADDR.server6,
      '--dport',
      '8081',
      '--iface',
      'eth0',
      '--json',
    ]);
    assert.equal(ex.code, 3, ex.stderr);
    const j = JSON.parse(ex.stdout);
    assert.deepEqual([j.verdict, j.block, j.rule], ['block', 1, null]);
    const text = await tz(lab, [
      'explain',
      d.policy,
      '--proto',
      'tcp',
      '--src',
      ADDR.client4,
      '--dst',
      ADDR.server4,
      '--dport',
      '8081',
      '--iface',
      'eth0',
    ]);
    assert.equal(text.code, 3);
    assert.match(
      text.stdout,
      /Verdict: block: block entry 1 \(.*:\d+\) drops it before any rule is consulted/,
    );

    const check = await tz(lab, ['check', d.policy]);
    assert.equal(check.code, 0, check.stdout);
    assert.match(
      check.stdout,
      /warning: TZ1525 deny rule 90 \(service reject_all\) does not refuse everything it matches: .*rule 10 \(service out\) wins tcp 198\.18\.1\.2 -> 198\.18\.2\.\d+ port 22/,
    );
    await tz(lab, ['stop', '--control', d.control, '--timeout', '1000']);
  } finally {
    await lab.destroy();
  }
});
