// Faults without leaks through `tzorp run` (issue 16): a server that resets mid-body, one that never
// answers, an unreachable server, a refused connection, a client that vanishes mid-body. Each session
// ends with the right answer and a log line; after N sessions of each kind the workers' descriptors,
// handles and timers (counted through the control socket, status workerResources) are back to their
// baseline and memory is bounded. Then a worker killed mid-transfer: its sessions are lost, the log
// line says how many, the others go on, and new sessions work.
//
// N is TZORP_FAULT_SESSIONS (default 200 of each kind; the goal is 10,000).
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import type { StatusResult } from '../../../src/daemon/control-protocol.ts';
import { ADDR, createLab, type Lab, netnsSkipReason } from '../../harness/netns.ts';

const skip = netnsSkipReason();
const TZ = [process.execPath, 'bin/tzorp'];
const N = Number(process.env.TZORP_FAULT_SESSIONS ?? 200);
const dir = mkdtempSync(join(tmpdir(), 'tzorp-faults-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const UNREACHABLE = '198.18.2.99'; // in the servers' subnet, no host answers for it

const POLICY = `zones:
  clients:
    addresses: [198.18.1.0/24, "2001:db8:1::/64"]
  servers:
    addresses: [198.18.2.0/24, "2001:db8:2::/64"]
services:
  web:
    type: proxy
    proxy: http
    options: { timeout_response: 2000, timeout: 30000 }
rules:
  - { id: 1, service: web, proto: tcp, src_zone: clients, dst_zone: servers, dst_port: [80, 8001-8004] }
`;

async function status(lab: Lab, control: string): Promise<StatusResult> {
  const r = await lab.exec('fw', [...TZ, 'status', '--json', '--control', control], { timeoutMs: 60_000 });
  return JSON.parse(r.stdout) as StatusResult;
}

interface Totals {
  fds: number;
  handles: Record<string, number>;
  rssMiB: number;
  sessions: number;
  /** NativeSockets open, and made in all (HTTP sessions run on native socket I/O). */
  nativeOpen: number;
  nativeMade: number;
}

function totals(st: StatusResult): Totals {
  const t: Totals = { fds: 0, handles: {}, rssMiB: 0, sessions: 0, nativeOpen: 0, nativeMade: 0 };
  for (const w of st.workerResources ?? []) {
    t.fds += w.fds - (w.relayPoolFds ?? 0); // (the relay's pipe pool is bounded, not a leak)
    t.rssMiB += w.rssBytes / 2 ** 20;
    t.sessions += w.sessions;
    t.nativeOpen += w.nativeSockets.open;
    t.nativeMade += w.nativeSockets.made;
    for (const [k, v] of Object.entries(w.handles)) t.handles[k] = (t.handles[k] ?? 0) + v;
  }
  return t;
}

async function idle(lab: Lab, control: string): Promise<Totals> {
  let t = totals(await status(lab, control));
  for (let i = 0; i < 150 && t.sessions > 0; i++) {
    await new Promise((r) => setTimeout(r, 200));
    t = totals(await status(lab, control));
  }
  assert.equal(t.sessions, 0, 'every session ended');
  return t;
}

test(`faults without leaks: ${N} sessions of each kind, then a worker killed mid-transfer`, {
  skip,
  timeout: 1_200_000,
}, async (t) => {
  const lab = await createLab();
  try {
    const srv = lab.spawnTs('server', 'test/netns/abuse/fault-server.ts');
    await srv.waitFor(/ready/);
    const policy = join(dir, `${lab.id}.yaml`);
    writeFileSync(policy, POLICY);
    const control = join(dir, `${lab.id}.sock`);
    const d = lab.spawn('fw', [...TZ, 'run', policy, '--control', control, '--workers', '2']);
    await d.waitFor(/tzorp running/, 120_000);
    const logText = () => d.stdout() + d.stderr();
    const kinds = [
      { name: 'server resets mid-body', host: ADDR.server4, port: 8001, mode: 'normal', want: { '200': 1 } },
      { name: 'server never answers', host: ADDR.server4, port: 8002, mode: 'normal', want: { '504': 1 } },
      { name: 'connection refused', host: ADDR.server4, port: 8003, mode: 'normal', want: { '502': 1 } },
      { name: 'unreachable server', host: UNREACHABLE, port: 80, mode: 'normal', want: { '502': 1 } },
      {
        name: 'client vanishes mid-body',
        host: ADDR.server4,
        port: 8004,
        mode: 'vanish',
        want: { '200': 1 },
      },
    ];
    const run = async (k: (typeof kinds)[number], n: number) => {
      const r = await lab.exec(
        'client',
        [
          process.execPath,
          '--import',
          'tsx',
          'test/netns/abuse/fault-client.ts',
          k.host,
          String(k.port),
          String(n),
          k.mode,
          '20',
        ],
        { timeoutMs: 600_000 },
      );
      return JSON.parse(r.stdout) as { statuses: Record<string, number>; peerClosed: number };
    };
    // warm up every path once, then the baseline
    for (const k of kinds) await run(k, 5);
    const base = await idle(lab, control);
    for (const k of kinds) {
      const r = await run(k, N);
      const want = Object.fromEntries(Object.entries(k.want).map(([s]) => [s, N]));
      assert.deepEqual(r.statuses, want, `${k.name}: ${JSON.stringify(r)}`);
      t.diagnostic(`${k.name}: ${JSON.stringify(r)}`);
    }
    const end = await idle(lab, control);
    t.diagnostic(`baseline ${JSON.stringify(base)}; after ${5 * N} fault sessions ${JSON.stringify(end)}`);
    assert.ok(end.fds - base.fds <= 2, `descriptors ${base.fds} -> ${end.fds}`);
    // the sessions ran on native socket I/O (tzorp run's default for HTTP), and none is left open
    assert.ok(
      end.nativeMade - base.nativeMade >= 2 * N,
      `NativeSockets made: ${end.nativeMade - base.nativeMade}`,
    );
    assert.equal(end.nativeOpen, 0, 'no NativeSocket left open');
    for (const h of new Set([...Object.keys(base.handles), ...Object.keys(end.handles)])) {
      const diff = (end.handles[h] ?? 0) - (base.handles[h] ?? 0);
      assert.ok(diff <= 1, `${h}: ${base.handles[h] ?? 0} -> ${end.handles[h] ?? 0}`);
    }
    assert.ok(end.rssMiB - base.rssMiB < 64, `RSS ${base.rssMiB.toFixed(0)} -> ${end.rssMiB.toFixed(0)} MiB`);
    // a log line for each kind of ending
    const log = logText();
    assert.match(log, /Server connection failed/);
    assert.match(log, /Gateway timeout|did not answer in time/);
    assert.match(log, /verdict='DENIED_BY_CONNECTION_FAIL'/);

    // --- a worker killed mid-transfer
    const downloads = lab.spawnTs('client', 'test/netns/abuse/fault-client.ts', [
      ADDR.server4,
      '8004',
      '8',
      'normal',
      '8',
    ]);
    let st = await status(lab, control);
    for (let i = 0; i < 100 && totals(st).sessions < 8; i++) {
      await new Promise((r) => setTimeout(r, 100));
      st = await status(lab, control);
    }
    const victim = (st.workerResources ?? []).reduce((a, b) => (b.sessions > a.sessions ? b : a));
    assert.ok(victim.sessions > 0);
    process.kill(victim.pid, 'SIGKILL');
    await d.waitFor(
      new RegExp(
        `Worker exited unexpectedly; starting it again; worker='${victim.worker}'.*sessions_lost='${victim.sessions}'`,
      ),
      60_000,
    );
    await d.waitFor(new RegExp(`Worker started again; worker='${victim.worker}'`), 120_000);
    const done = JSON.parse((await downloads.waitFor(/^\{.*\}$/m, 120_000))[0]) as {
      statuses: Record<string, number>;
      peerClosed: number;
    };
    t.diagnostic(`downloads across the kill: ${JSON.stringify(done)}; lost ${victim.sessions}`);
    assert.equal(done.statuses['200'], 8, 'every download had started');
    const after = await run(kinds[0]!, 10);
    assert.deepEqual(after.statuses, { '200': 10 }, 'new sessions work after the restart');
    d.kill('SIGTERM');
    await d.exited();
  } finally {
    await lab.destroy();
  }
});
