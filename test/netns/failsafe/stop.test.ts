// Issue 10 item 2, as the administrator meets it: after `tzorp stop` (and after a crash cleaned up by
// `tzorp flush`, as the unit's ExecStopPost does) the firewall is closed for forwarded traffic, SSH
// to it still works (management is kept), and the sysctls tzorp changed have their earlier values.
// `tzorp flush --open` removes the table.
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { ADDR, createLab, type Lab, netnsSkipReason } from '../../harness/netns.ts';
import { startDaemon, tcpRead, tempDir, tz, waitUntil } from './lab.ts';

const skip = netnsSkipReason();
const tmp = tempDir('stop');
after(() => tmp.remove());

const POLICY = `zones:
  clients:
    addresses: [198.18.1.0/24, "2001:db8:1::/64"]
  servers:
    addresses: [198.18.2.0/24, "2001:db8:2::/64"]
services:
  fwd:
    type: forward
  plug:
    type: proxy
    proxy: plug
rules:
  - { id: 1, service: fwd, proto: tcp, dst_port: 8080, src_zone: clients, dst_zone: servers }
  - { id: 2, service: plug, proto: tcp, dst_port: 8081, src_zone: clients, dst_zone: servers }
management:
  - { proto: tcp, dst_port: 22, src_zone: clients }
`;

async function servers(lab: Lab): Promise<void> {
  for (const [ns, port] of [
    ['fw', '22'],
    ['server', '8080'],
    ['server', '8081'],
  ] as const) {
    const p = lab.spawn(ns, ['python3', 'test/netns/failsafe/banner.py', port]);
    await p.waitFor(/ready/);
  }
}

const sysctl = async (lab: Lab, name: string) => (await lab.exec('fw', ['sysctl', '-n', name])).stdout.trim();
const hasTable = async (lab: Lab, t: string) =>
  (await lab.exec('fw', ['nft', 'list', 'table', 'inet', t], { allowFail: true })).code === 0;

test('tzorp stop leaves the firewall closed (management kept); flush --open opens it', {
  skip,
  timeout: 300_000,
}, async () => {
  const lab = await createLab();
  try {
    await servers(lab);
    assert.match(await tcpRead(lab, ADDR.server4, 8080), /^SSH-2\.0/, 'the lab forwards without tzorp');
    const d = await startDaemon(lab, tmp.dir, POLICY);
    for (const s of [ADDR.server4, ADDR.server6]) {
      assert.match(await tcpRead(lab, s, 8080), /^SSH-2\.0/, `forwarded to ${s}`);
      assert.match(await tcpRead(lab, s, 8081), /^SSH-2\.0/, `proxied to ${s}`);
    }
    const st = await tz(lab, ['stop', '--control', d.control, '--timeout', '1000']);
    assert.equal(st.code, 0, st.stderr);
    await d.proc.exited();
    for (const s of [ADDR.server4, ADDR.server6]) {
      assert.equal(await tcpRead(lab, s, 8080), '', `nothing is forwarded to ${s} after stop`);
      assert.equal(await tcpRead(lab, s, 8081), '', `nor sent around the stopped proxy to ${s}`);
    }
    for (const fw of [ADDR.fwClient4, ADDR.fwClient6]) {
      assert.match(await tcpRead(lab, fw, 22), /^SSH-2\.0/, `ssh to ${fw} still works`);
    }
    // forwarding was on before tzorp started: it stays on (the closed table is what stops traffic)
    assert.equal(await sysctl(lab, 'net.ipv4.ip_forward'), '1');
    assert.equal(await hasTable(lab, 'tzorp_sysctls'), false);
    const rules = await lab.exec('fw', ['ip', 'rule', 'show']);
    assert.doesNotMatch(rules.stdout, /fwmark/, 'policy routing removed');

    // a crash: kill -9, then the unit's ExecStopPost (tzorp flush)
    const d2 = await startDaemon(lab, tmp.dir, POLICY);
    assert.match(await tcpRead(lab, ADDR.server4, 8080), /^SSH-2\.0/);
    const { pid } = JSON.parse((await tz(lab, ['status', '--json', '--control', d2.control])).stdout);
    process.kill(pid, 'SIGKILL');
    await d2.proc.exited();
    const fl = await tz(lab, ['flush']);
    assert.equal(fl.code, 0, fl.stderr);
    assert.match(fl.stdout, /closed table inet tzorp: nothing is forwarded; management entries kept/);
    assert.equal(await tcpRead(lab, ADDR.server4, 8080), '', 'nothing forwarded after crash + flush');
    assert.match(await tcpRead(lab, ADDR.fwClient4, 22), /^SSH-2\.0/);

    const open = await tz(lab, ['flush', '--open']);
    assert.equal(open.code, 0, open.stderr);
    assert.equal(await hasTable(lab, 'tzorp'), false);
    await waitUntil('forwarding without tzorp', async () =>
      /^SSH-2\.0/.test(await tcpRead(lab, ADDR.server4, 8080)),
    );
  } finally {
    await lab.destroy();
  }
});

test('the sysctls tzorp set are restored on stop (forwarding was off)', {
  skip,
  timeout: 300_000,
}, async () => {
  const lab = await createLab({ noForwarding: true });
  try {
    await servers(lab);
    const before = {
      f4: await sysctl(lab, 'net.ipv4.ip_forward'),
      f6: await sysctl(lab, 'net.ipv6.conf.all.forwarding'),
      fwmark: await sysctl(lab, 'net.ipv4.tcp_fwmark_accept'),
    };
    assert.deepEqual(before, { f4: '0', f6: '0', fwmark: '0' });
    const d = await startDaemon(lab, tmp.dir, POLICY);
    // a forward service needs forwarding: tzorp turned it on, and the proxy's rule id needs fwmark_accept
    assert.equal(await sysctl(lab, 'net.ipv4.ip_forward'), '1');
    assert.equal(await sysctl(lab, 'net.ipv4.tcp_fwmark_accept'), '1');
    assert.match(await tcpRead(lab, ADDR.server4, 8080), /^SSH-2\.0/);
    // a reload keeps the values from before the first change
    assert.equal((await tz(lab, ['reload', '--control', d.control])).code, 0);
    await tz(lab, ['stop', '--control', d.control, '--timeout', '1000']);
    await d.proc.exited();
    assert.deepEqual(
      {
        f4: await sysctl(lab, 'net.ipv4.ip_forward'),
        f6: await sysctl(lab, 'net.ipv6.conf.all.forwarding'),
        fwmark: await sysctl(lab, 'net.ipv4.tcp_fwmark_accept'),
      },
      before,
    );
    assert.equal(await tcpRead(lab, ADDR.server4, 8080), '');
  } finally {
    await lab.destroy();
  }
});
