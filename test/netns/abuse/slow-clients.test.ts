// Slow and greedy clients against the HTTP proxy through `tzorp run` (issue 16): COUNT slowloris
// clients (a request head one byte every 1.5 s, never finished) and COUNT clients that connect and
// never send, all at once. While they hold their connections a normal request is still answered;
// timeout_request closes every slowloris client with a 408 and the idle timeout every silent one;
// afterwards no session is left and the daemon's memory is bounded.
//
// COUNT is TZORP_SLOW_CLIENTS (default 1000 of each kind). The goal is 10,000 of each; one
// process may hold 20,000 descriptors here and the machine is shared, so the default stays small.
// A worker takes at most (soft RLIMIT_NOFILE - 128) / 2 sessions (two descriptors each), so 20,000
// one-descriptor slow sessions need three workers under a 20,000 limit: WORKERS is
// TZORP_SLOW_WORKERS, by default 2, or 3 from 4,000 clients of each kind.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import type { StatusResult } from '../../../src/daemon/control-protocol.ts';
import { ADDR, createLab, type Lab, netnsSkipReason } from '../../harness/netns.ts';

const skip = netnsSkipReason();
const TZ = [process.execPath, 'bin/tzorp'];
const COUNT = Number(process.env.TZORP_SLOW_CLIENTS ?? 1000);
const WORKERS = process.env.TZORP_SLOW_WORKERS ?? (COUNT >= 4000 ? '3' : '2');
const dir = mkdtempSync(join(tmpdir(), 'tzorp-slow-'));
after(() => rmSync(dir, { recursive: true, force: true }));

// Every client must still be held when the last one has connected: opening 10,000 takes tens of
// seconds on a shared machine, so the timeouts grow with COUNT (12 s and 8 s at the default).
const IDLE_MS = Math.max(12_000, COUNT * 8);
const REQUEST_MS = Math.max(8_000, COUNT * 6);
const POLICY = `zones:
  clients:
    addresses: [198.18.1.0/24, "2001:db8:1::/64"]
  servers:
    addresses: [198.18.2.0/24, "2001:db8:2::/64"]
services:
  web:
    type: proxy
    proxy: http
    options: { timeout: ${IDLE_MS}, timeout_request: ${REQUEST_MS} }
rules:
  - { id: 1, service: web, proto: tcp, src_zone: clients, dst_zone: servers, dst_port: 80 }
`;

async function status(lab: Lab, control: string): Promise<StatusResult> {
  const r = await lab.exec('fw', [...TZ, 'status', '--json', '--control', control], { timeoutMs: 60_000 });
  return JSON.parse(r.stdout) as StatusResult;
}

/** Resident memory of the daemon (primary and workers), in MiB. */
function rssMiB(st: StatusResult): number {
  let kb = 0;
  for (const pid of [st.pid, ...st.workerPids]) {
    const m = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    kb += Number(m?.[1] ?? 0);
  }
  return kb / 1024;
}

test(`${COUNT} slowloris and ${COUNT} silent clients: a normal request is answered, timeouts close them all, memory bounded`, {
  skip,
  timeout: 900_000,
}, async (t) => {
  const lab = await createLab();
  try {
    const srv = lab.spawn('server', [
      'python3',
      '-m',
      'http.server',
      '80',
      '--bind',
      '::',
      '--directory',
      dir,
    ]);
    writeFileSync(join(dir, 'index.html'), 'hello\n');
    await srv.waitFor(/Serving HTTP/);
    const policy = join(dir, `${lab.id}.yaml`);
    writeFileSync(policy, POLICY);
    const control = join(dir, `${lab.id}.sock`);
    const d = lab.spawn('fw', [...TZ, 'run', policy, '--control', control, '--workers', WORKERS]);
    await d.waitFor(/tzorp running/, 120_000);
    const normal = () =>
      lab.exec(
        'client',
        [
          'curl',
          '-s',
          '-o',
          '/dev/null',
          '-w',
          '%{http_code}',
          '--max-time',
          '20',
          `http://${ADDR.server4}/`,
        ],
        {
          allowFail: true,
          timeoutMs: 30_000,
        },
      );
    assert.equal((await normal()).stdout, '200');
    const base = rssMiB(await status(lab, control));

    const loris = lab.spawnTs('client', 'test/netns/abuse/slow-clients.ts', [
      ADDR.server4,
      '80',
      String(COUNT),
      'slowloris',
      '1500',
    ]);
    const silent = lab.spawnTs('client', 'test/netns/abuse/slow-clients.ts', [
      ADDR.server4,
      '80',
      String(COUNT),
      'silent',
    ]);
    await loris.waitFor(new RegExp(`^open ${COUNT}$`, 'm'), 300_000);
    await silent.waitFor(new RegExp(`^open ${COUNT}$`, 'm'), 300_000);
    // every one of them is a session now, and still a normal request goes through
    const busy = await status(lab, control);
    const running = busy.services.find((s) => s.name === 'web')!.sessionsRunning;
    const answer = await normal();
    const peak = rssMiB(await status(lab, control));
    assert.equal(answer.stdout, '200', 'a normal request is answered while the slow clients hold on');

    const lorisOut = JSON.parse((await loris.waitFor(/^\{.*\}$/m, 600_000))[0]);
    const silentOut = JSON.parse((await silent.waitFor(/^\{.*\}$/m, 600_000))[0]);
    t.diagnostic(`slowloris ${JSON.stringify(lorisOut)} silent ${JSON.stringify(silentOut)}`);
    assert.deepEqual(
      { opened: lorisOut.opened, closed: lorisOut.closed, failed: lorisOut.failed, got408: lorisOut.got408 },
      { opened: COUNT, closed: COUNT, failed: 0, got408: COUNT },
      'timeout_request answers every slowloris client with 408 and closes it',
    );
    assert.deepEqual(
      { opened: silentOut.opened, closed: silentOut.closed, failed: silentOut.failed },
      { opened: COUNT, closed: COUNT, failed: 0 },
      'the idle timeout closes every silent client',
    );
    let left = -1;
    for (let i = 0; i < 100 && left !== 0; i++) {
      left = (await status(lab, control)).services.find((s) => s.name === 'web')!.sessionsRunning;
      if (left !== 0) await new Promise((r) => setTimeout(r, 200));
    }
    assert.equal(left, 0, 'no session is left');
    const afterMiB = rssMiB(await status(lab, control));
    const perConnKiB = ((peak - base) * 1024) / (2 * COUNT);
    t.diagnostic(
      `sessions running at peak ${running}; daemon RSS base ${base.toFixed(1)} MiB, peak ${peak.toFixed(1)} MiB (${perConnKiB.toFixed(1)} KiB per slow connection), after ${afterMiB.toFixed(1)} MiB`,
    );
    assert.ok(running >= 2 * COUNT * 0.9, `most slow clients were sessions at once (${running})`);
    // Bounded: a held connection costs a socket, a session and a few small buffers, not a request's
    // worth of memory (max_header_bytes is 64 KiB).
    assert.ok(perConnKiB < 48, `${perConnKiB.toFixed(1)} KiB per slow connection`);
    d.kill('SIGTERM');
    await d.exited();
  } finally {
    await lab.destroy();
  }
});
