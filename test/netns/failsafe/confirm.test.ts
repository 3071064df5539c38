// Issue 10 item 1, `tzorp apply --confirm SECONDS` and `tzorp confirm`, as the administrator meets
// them: a new policy that locks SSH out is rolled back by itself when no confirmation comes; a
// confirmed one stays; with no table before, the rollback removes the table.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { ADDR, createLab, type Lab, netnsSkipReason } from '../../harness/netns.ts';
import { tcpRead, tempDir, tz, waitUntil } from './lab.ts';

const skip = netnsSkipReason();
const tmp = tempDir('confirm');
after(() => tmp.remove());

const ZONES = `zones:
  clients:
    addresses: [198.18.1.0/24, "2001:db8:1::/64"]
  servers:
    addresses: [198.18.2.0/24, "2001:db8:2::/64"]
services:
  fwd:
    type: forward
rules:
  - { id: 1, service: fwd, proto: tcp, dst_port: 8080, src_zone: clients, dst_zone: servers }
`;
const GOOD = `${ZONES}management:
  - { proto: tcp, dst_port: 22, src_zone: clients }
`;
/** The mistake: the management entry names the wrong port. */
const LOCKOUT = `${ZONES}management:
  - { proto: tcp, dst_port: 2222, src_zone: clients }
`;

function file(name: string, text: string): string {
  const f = join(tmp.dir, name);
  writeFileSync(f, text);
  return f;
}

const env = { TZORP_RUN_DIR: join(tmp.dir, 'run') };
const ssh = async (lab: Lab) => /^SSH-2\.0/.test(await tcpRead(lab, ADDR.fwClient4, 22));
const pending = async (lab: Lab) =>
  (await lab.exec('fw', ['nft', 'list', 'table', 'inet', 'tzorp_pending'], { allowFail: true })).code === 0;
const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

test('apply --confirm rolls back unless tzorp confirm follows', { skip, timeout: 300_000 }, async () => {
  const lab = await createLab();
  try {
    const sshd = lab.spawn('fw', ['python3', 'test/netns/failsafe/banner.py', '22']);
    await sshd.waitFor(/ready/);
    const good = file('good.yaml', GOOD);
    const bad = file('lockout.yaml', LOCKOUT);

    // no table before: the rollback removes the table it would have left
    const first = await tz(lab, ['apply', good, '--confirm', '1', '--json'], env);
    assert.equal(first.code, 0, first.stderr);
    assert.equal(JSON.parse(first.stdout).confirm.seconds, 1);
    await waitUntil('the rollback to no table', async () => !(await pending(lab)));
    const none = await lab.exec('fw', ['nft', 'list', 'table', 'inet', 'tzorp'], { allowFail: true });
    assert.notEqual(none.code, 0, 'no table before: none after the rollback');

    assert.equal((await tz(lab, ['apply', good], env)).code, 0);
    assert.ok(await ssh(lab), 'ssh with the good policy');
    const applied = await tz(lab, ['apply', bad, '--confirm', '8'], env);
    assert.equal(applied.code, 0, applied.stderr);
    assert.match(applied.stdout, /run `tzorp confirm` within 8 s/);
    // a second apply --confirm while one waits is refused
    const again = await tz(lab, ['apply', bad, '--confirm', '8'], env);
    assert.equal(again.code, 1, again.stdout);
    assert.match(again.stderr, /TZ2020/);
    assert.equal(await ssh(lab), false, 'locked out by the new policy');
    // nobody confirms: the previous ruleset comes back by itself
    await waitUntil('the rollback', () => ssh(lab), 40);
    await waitUntil('the pending confirmation to go', async () => !(await pending(lab)));

    // confirmed in time: the new ruleset stays, the waiting process ends
    assert.equal((await tz(lab, ['apply', bad, '--confirm', '600'], env)).code, 0);
    const nft = await lab.exec('fw', ['nft', 'list', 'table', 'inet', 'tzorp_pending']);
    const pid = Number(/pid=(\d+)/.exec(nft.stdout)?.[1]);
    assert.ok(alive(pid), 'the rollback process waits');
    const ok = await tz(lab, ['confirm'], env);
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stdout, /confirmed/);
    assert.equal(await pending(lab), false);
    await waitUntil('the rollback process to end', async () => !alive(pid));
    assert.equal(await ssh(lab), false, 'the confirmed ruleset stays');
    const nothing = await tz(lab, ['confirm'], env);
    assert.equal(nothing.code, 1);
    assert.match(nothing.stderr, /nothing waits/);
  } finally {
    await lab.destroy();
  }
});
