// Issue 10 item 1, `tzorp reload --confirm SECONDS` as the administrator meets it: a reload that
// drops the management section cuts SSH to the firewall; without `tzorp confirm` the daemon goes back
// to the last confirmed policy by itself (ruleset and proxies, as a new generation) and SSH answers
// again; with `tzorp confirm` in time the new policy stays. `tzorp confirm` with nothing waiting exits 1.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { after, test } from 'node:test';
import type { StatusResult } from '../../../src/daemon/index.ts';
import { ADDR, createLab, netnsSkipReason } from '../../harness/netns.ts';
import { startDaemon, tcpRead, tempDir, tz, waitUntil } from './lab.ts';

const skip = netnsSkipReason();
const tmp = tempDir('reload-confirm');
after(() => tmp.remove());

const BASE = `zones:
  lan:
    addresses: [198.18.1.0/24, "2001:db8:1::/64"]
  servers:
    addresses: [198.18.2.0/24, "2001:db8:2::/64"]
services:
  out: { type: forward }
rules:
  - { id: 1, service: out, proto: tcp, dst_port: 22, src_zone: lan, dst_zone: servers }
`;
const GOOD = `${BASE}management:\n  - { proto: tcp, dst_port: 22, src_zone: lan }\n`;
const LOCKOUT = BASE; // no management: nothing reaches the firewall itself

test('reload --confirm: reverted when not confirmed, kept when confirmed', {
  skip,
  timeout: 300_000,
}, async () => {
  const lab = await createLab();
  try {
    const sshd = lab.spawn('fw', ['python3', 'test/netns/failsafe/banner.py', '22']);
    await sshd.waitFor(/ready/);
    const d = await startDaemon(lab, tmp.dir, GOOD);
    const ssh = async () => /^SSH-2\.0/.test(await tcpRead(lab, ADDR.fwClient4, 22, 2));
    const generation = async () =>
      (JSON.parse((await tz(lab, ['status', '--json', '--control', d.control])).stdout) as StatusResult)
        .generation;
    assert.ok(await ssh(), 'management reaches the firewall');
    assert.equal(await generation(), 1);

    // not confirmed: the lockout undoes itself
    writeFileSync(d.policy, LOCKOUT);
    const r = await tz(lab, ['reload', '--confirm', '4', '--control', d.control]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /reloaded: generation 2 .*\nrun `tzorp confirm` within 4 s/);
    assert.ok(!(await ssh()), 'the reloaded policy has no management: SSH to the firewall is cut');
    await waitUntil('the unconfirmed reload to be reverted', ssh);
    assert.equal(await generation(), 3, 'the revert is a new generation with the confirmed policy');
    await d.proc.waitFor(/Reload not confirmed in time, reverting to the confirmed policy/);

    // confirmed in time: it stays
    const r2 = await tz(lab, ['reload', '--confirm', '3', '--control', d.control]);
    assert.equal(r2.code, 0, r2.stderr);
    assert.ok(!(await ssh()));
    const c = await tz(lab, ['confirm', '--control', d.control]);
    assert.equal(c.code, 0, c.stderr);
    assert.match(c.stdout, /confirmed: generation 4 stays/);
    await new Promise((res) => setTimeout(res, 5000));
    assert.ok(!(await ssh()), 'the confirmed policy stays after its time ran out');
    assert.equal(await generation(), 4);

    const again = await tz(lab, ['confirm', '--control', d.control]);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /nothing waits for a confirmation/);
    await tz(lab, ['stop', '--control', d.control, '--timeout', '1000']);
  } finally {
    await lab.destroy();
  }
});
