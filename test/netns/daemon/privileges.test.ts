// tzorp run --user: after the ruleset and listeners are in place the primary and every worker run as
// the given user with CAP_NET_ADMIN, CAP_NET_RAW and CAP_NET_BIND_SERVICE only (read from
// /proc/<pid>/status and every thread's status), the control socket is 0660 root:<group>, and the
// dropped daemon still forges client addresses (IPv4, IPv6), reloads a changed policy into the kernel
// (nft and ip as that user, a sysctl set again), restarts a killed worker the same way, and stops
// cleanly, removing its table. A throw-away system user per run.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { ReloadResult, StatusResult } from '../../../src/daemon/control-protocol.ts';
import { KEPT_CAPABILITY_MASK } from '../../../src/daemon/privileges.ts';
import { ADDR, createLab, type Lab, type LabProcess, netnsSkipReason } from '../../harness/netns.ts';

const skip = netnsSkipReason() || (spawnSync('useradd', ['--help']).status !== 0 && 'useradd is missing');
const TZ = [process.execPath, 'bin/tzorp'];
const USER = `tzp${process.pid}`;
const dir = mkdtempSync(join(tmpdir(), 'tzorp-privs-'));
chmodSync(dir, 0o755); // the dropped daemon reads its policy again on reload

let uid = -1;
let gid = -1;
before(() => {
  if (skip) return;
  execFileSync('useradd', [
    '--system',
    '--user-group',
    '--no-create-home',
    '--shell',
    '/usr/sbin/nologin',
    USER,
  ]);
  uid = Number(execFileSync('id', ['-u', USER], { encoding: 'utf8' }));
  gid = Number(execFileSync('id', ['-g', USER], { encoding: 'utf8' }));
});
after(() => {
  rmSync(dir, { recursive: true, force: true });
  if (!skip) spawnSync('userdel', [USER]); // its group goes with it (--user-group)
});

const ZONES = `zones:
  clients: { addresses: [198.18.1.0/24, "2001:db8:1::/64"] }
  servers: { addresses: [198.18.2.0/24, "2001:db8:2::/64"] }
`;
/** A plug service that forges the client's address toward the server (IP_TRANSPARENT + foreign bind). */
const POLICY_A = `${ZONES}services:
  forged:
    type: proxy
    proxy: plug
    router: { type: transparent, forge_addr: true }
rules:
  - { id: 1, service: forged, proto: tcp, src_zone: clients, dst_zone: servers, dst_port: 8080 }
`;
/** A plus a new service (a new listener and new kernel rules) for port 8081, not forging. */
const POLICY_B =
  `${POLICY_A}  - { id: 2, service: plain, proto: tcp, src_zone: clients, dst_zone: servers, dst_port: 8081 }
`.replace(
    'rules:',
    `  plain:
    type: proxy
    proxy: plug
rules:`,
  );

interface ProcStatus {
  uid: string[];
  gid: string[];
  capEff: string;
  capPrm: string;
  capInh: string;
  capBnd: string;
  capAmb: string;
}

function procStatus(file: string): ProcStatus {
  const text = readFileSync(file, 'utf8');
  const field = (name: string) => new RegExp(`^${name}:\\s*(.*)$`, 'm').exec(text)?.[1]?.trim() ?? '';
  return {
    uid: field('Uid').split(/\s+/),
    gid: field('Gid').split(/\s+/),
    capEff: field('CapEff'),
    capPrm: field('CapPrm'),
    capInh: field('CapInh'),
    capBnd: field('CapBnd'),
    capAmb: field('CapAmb'),
  };
}

/** The process and each of its threads run as the user; the process holds exactly the kept
 * capabilities and no thread holds any other. */
function assertDropped(pid: number, what: string): void {
  const p = procStatus(`/proc/${pid}/status`);
  assert.deepEqual(p.uid, [uid, uid, uid, uid].map(String), `${what} Uid`);
  assert.deepEqual(p.gid, [gid, gid, gid, gid].map(String), `${what} Gid`);
  for (const k of ['capEff', 'capPrm', 'capInh', 'capBnd', 'capAmb'] as const) {
    assert.equal(p[k], KEPT_CAPABILITY_MASK, `${what} ${k}`);
  }
  const mask = BigInt(`0x${KEPT_CAPABILITY_MASK}`);
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    const t = procStatus(`/proc/${pid}/task/${tid}/status`);
    assert.deepEqual(t.uid, [uid, uid, uid, uid].map(String), `${what} thread ${tid} Uid`);
    assert.equal(BigInt(`0x${t.capEff}`) & ~mask, 0n, `${what} thread ${tid} CapEff ${t.capEff}`);
    assert.equal(BigInt(`0x${t.capPrm}`) & ~mask, 0n, `${what} thread ${tid} CapPrm ${t.capPrm}`);
  }
}

function peer(lab: Lab, host: string, port: number) {
  const url = host.includes(':') ? `telnet://[${host}]:${port}` : `telnet://${host}:${port}`;
  return lab.exec('client', ['curl', '-s', '--max-time', '5', url], { allowFail: true });
}

test('tzorp run --user: least privilege for the primary and every worker; forging, reload and stop work', {
  skip,
  timeout: 300_000,
}, async () => {
  const lab = await createLab();
  try {
    const srv: LabProcess = lab.spawn('server', ['python3', 'test/netns/daemon/peer-server.py']);
    await srv.waitFor(/ready/);
    const policy = join(dir, 'policy.yaml');
    writeFileSync(policy, POLICY_A);
    chmodSync(policy, 0o644);
    const control = join(dir, 'control.sock');
    const daemon = lab.spawn('fw', [
      ...TZ,
      'run',
      policy,
      '--control',
      control,
      '--workers',
      '2',
      '--user',
      USER,
    ]);
    await daemon.waitFor(/Running as an unprivileged user/, 120_000);
    const tz = (args: string[]) =>
      lab.exec('fw', [...TZ, ...args, '--control', control], { allowFail: true });

    const st = await tz(['status', '--json']);
    assert.equal(st.code, 0, st.stderr);
    const status = JSON.parse(st.stdout) as StatusResult;
    assert.equal(status.workerPids.length, 2);
    assertDropped(status.pid, 'primary');
    for (const w of status.workerPids) assertDropped(w, `worker ${w}`);

    const sock = statSync(control);
    assert.equal(sock.mode & 0o777, 0o660);
    assert.deepEqual([sock.uid, sock.gid], [0, gid]);

    // forge_addr: the server sees the client's own address, through a socket a worker bound to it
    assert.match((await peer(lab, ADDR.server4, 8080)).stdout, /^peer ::ffff:198\.18\.1\.2$/m);
    assert.match((await peer(lab, ADDR.server6, 8080)).stdout, /^peer 2001:db8:1::2$/m);
    assert.equal((await peer(lab, ADDR.server4, 8081)).stdout, '', 'no rule for 8081 yet');

    // reload as the user: the new rule reaches the kernel, the new listener opens, and a sysctl the
    // ruleset depends on, changed behind the daemon's back, is set again (CAP_NET_ADMIN, not root)
    await lab.exec('fw', ['sysctl', '-qw', 'net.ipv4.tcp_fwmark_accept=0']);
    writeFileSync(policy, POLICY_B);
    const rl = await tz(['reload', '--json']);
    assert.equal(rl.code, 0, rl.stderr + rl.stdout);
    assert.equal((JSON.parse(rl.stdout) as ReloadResult).generation, 2);
    const fwmark = await lab.exec('fw', ['sysctl', '-n', 'net.ipv4.tcp_fwmark_accept']);
    assert.equal(fwmark.stdout.trim(), '1', 'the dropped daemon wrote the sysctl');
    assert.match((await peer(lab, ADDR.server4, 8081)).stdout, /^peer ::ffff:198\.18\.2\.1$/m);
    assert.match((await peer(lab, ADDR.server6, 8080)).stdout, /^peer 2001:db8:1::2$/m);
    const again = JSON.parse((await tz(['status', '--json'])).stdout) as StatusResult;
    assert.equal(again.generation, 2);
    assertDropped(again.pid, 'primary after reload');
    for (const w of again.workerPids) assertDropped(w, `worker ${w} after reload`);

    // a worker killed now is started again by the dropped primary, and is dropped the same way
    process.kill(again.workerPids[0]!, 'SIGKILL');
    let restarted: number[] = [];
    for (let i = 0; i < 150 && restarted.length === 0; i++) {
      await new Promise((r) => setTimeout(r, 200));
      const s = await tz(['status', '--json']);
      if (s.code !== 0) continue;
      const pids = (JSON.parse(s.stdout) as StatusResult).workerPids;
      restarted = pids.length === 2 ? pids.filter((p) => !again.workerPids.includes(p)) : [];
    }
    assert.equal(restarted.length, 1, 'the killed worker was replaced');
    assertDropped(restarted[0]!, 'restarted worker');

    // stop as the user: sessions drained, the table and policy routing removed, exit 0
    const stop = await tz(['stop']);
    assert.equal(stop.code, 0, stop.stderr);
    const code = await new Promise<number | null>((r) =>
      daemon.child.exitCode !== null ? r(daemon.child.exitCode) : daemon.child.once('exit', (c) => r(c)),
    );
    assert.equal(code, 0, daemon.stderr());
    const table = await lab.exec('fw', ['nft', 'list', 'table', 'inet', 'tzorp'], { allowFail: true });
    // stop leaves the closed table (docs/operations.md): nothing decided, nothing forwarded
    assert.equal(table.code, 0, 'the closed table is left');
    assert.doesNotMatch(table.stdout, /chain prerouting/);
    assert.match(table.stdout, /tzorp is stopped: nothing is forwarded/);
  } finally {
    await lab.destroy();
  }
});

test('tzorp run --user with an unknown user is refused before anything starts (TZ3030, no table)', {
  skip,
  timeout: 120_000,
}, async () => {
  const lab = await createLab();
  try {
    const policy = join(dir, 'refused.yaml');
    writeFileSync(policy, POLICY_A);
    const r = await lab.exec(
      'fw',
      [...TZ, 'run', policy, '--control', join(dir, 'refused.sock'), '--user', 'no-such-user-tzorp-test'],
      { allowFail: true, timeoutMs: 60_000 },
    );
    assert.equal(r.code, 1);
    assert.match(r.stderr, /TZ3030 no user 'no-such-user-tzorp-test'/);
    const table = await lab.exec('fw', ['nft', 'list', 'table', 'inet', 'tzorp'], { allowFail: true });
    assert.notEqual(table.code, 0, 'no table was installed');
  } finally {
    await lab.destroy();
  }
});
