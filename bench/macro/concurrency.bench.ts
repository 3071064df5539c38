// Concurrency benchmark: N idle plug connections held through the whole daemon (`tzorp run`, real
// policy, kernel ruleset, worker, plug core; native relay on and off) against HAProxy 2.6 holding the
// same number in transparent mode. Reports the start-up RSS and the RSS growth per held connection of
// each (the daemon: primary and workers together). Each path gets a fresh lab (client -- fw -- server
// namespaces), one after the other. Needs root.
//
//   node --import tsx bench/macro/concurrency.bench.ts [--conns 5000] [--workers 1] [--json]
//
// The client (relay-peers.ts idle) opens the connections 100 at a time; each echoes one byte end to
// end first, so both legs of every relay exist. Descriptors: both proxies run with `ulimit -n` at the
// hard limit (2 per connection for either). Numbers compare within one run only.

import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ADDR, createLab, type LabProcess, netnsSkipReason } from '../../test/harness/netns.ts';
import { tproxyRuleset, tproxyTo } from '../../test/harness/tproxy-ruleset.ts';
import {
  haproxyTransparentTcp,
  openIdle,
  plugPolicy,
  startEcho,
  treePids,
  tzorpRunArgv,
  ulimitMax,
} from './bench-kit.ts';
import { ensurePackages } from './peers-install.ts';

ensurePackages(['haproxy']);

const arg = (name: string, dflt: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const CONNS = arg('conns', 5000);
const WORKERS = arg('workers', 1);
const JSON_OUT = process.argv.includes('--json');
const PORT = 7000;

const skip = netnsSkipReason();
if (skip) {
  console.error(`concurrency bench skipped: ${skip}`);
  process.exit(0);
}

const policy = plugPolicy(PORT);

const haproxyCfg = (n: number) => haproxyTransparentTcp(n + 100, 600);

/** RSS and PSS of a process and all its descendants (the daemon's primary and workers), KiB. RSS
 * counts the pages the processes share (node's own code: about 42 MB in each) once per process; PSS
 * divides each shared page among its sharers, so the sum is the memory the daemon really holds. */
function treeMemKiB(root: number): { rss: number; pss: number } {
  const sum = { rss: 0, pss: 0 };
  for (const p of treePids(root)) {
    try {
      const t = readFileSync(`/proc/${p}/smaps_rollup`, 'utf8');
      sum.rss += Number(/^Rss:\s+(\d+) kB/m.exec(t)?.[1] ?? 0);
      sum.pss += Number(/^Pss:\s+(\d+) kB/m.exec(t)?.[1] ?? 0);
    } catch {}
  }
  return sum;
}

interface Result {
  path: string;
  held: number;
  startRssMiB: number;
  startPssMiB: number;
  rssMiB: number;
  kibPerConn: number;
}

async function measure(
  path: string,
  start: (dir: string, lab: Awaited<ReturnType<typeof createLab>>) => Promise<LabProcess>,
): Promise<Result> {
  const dir = mkdtempSync(join(tmpdir(), 'tzorp-concbench-'));
  const lab = await createLab();
  try {
    await startEcho(lab, PORT);
    const proxy = await start(dir, lab);
    const pid = proxy.child.pid!;
    // settle: let start-up garbage be collected before the baseline
    await new Promise((r) => setTimeout(r, 3000));
    const before = treeMemKiB(pid);
    const { idle, held } = await openIdle(lab, ADDR.server4, PORT, CONNS, 600_000);
    await new Promise((r) => setTimeout(r, 2000));
    const after = treeMemKiB(pid);
    idle.kill('SIGKILL');
    await idle.exited();
    return {
      path,
      held,
      startRssMiB: before.rss / 1024,
      startPssMiB: before.pss / 1024,
      rssMiB: after.rss / 1024,
      kibPerConn: (after.rss - before.rss) / held,
    };
  } finally {
    await lab.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
}

const tzorp = (native: boolean) => async (dir: string, lab: Awaited<ReturnType<typeof createLab>>) => {
  const file = join(dir, 'policy.yaml');
  writeFileSync(file, policy);
  const proc = lab.spawn(
    'fw',
    ulimitMax(tzorpRunArgv(file, dir, WORKERS, native ? [] : ['--no-native-relay'])),
  );
  await proc.waitFor(/tzorp running/, 120_000);
  return proc;
};

const haproxy = async (dir: string, lab: Awaited<ReturnType<typeof createLab>>) => {
  await lab.exec('fw', ['nft', '-f', '-'], {
    input: tproxyRuleset({
      table: 'tzorp_concbench',
      divert: [tproxyTo(`ip daddr ${ADDR.server4} tcp dport ${PORT}`, 4, 50090)],
      input: ['ct state established,related accept'],
    }),
  });
  await lab.sh(
    'fw',
    'ip rule add fwmark 0x80000000/0x80000000 lookup 100 && ip route add local 0.0.0.0/0 dev lo table 100',
  );
  writeFileSync(join(dir, 'haproxy.cfg'), haproxyCfg(CONNS));
  const proc = lab.spawn('fw', ulimitMax(['haproxy', '-db', '-f', join(dir, 'haproxy.cfg')]));
  // haproxy says nothing when it is up: wait until its listener exists
  for (let i = 0; i < 100; i++) {
    const ss = await lab.exec('fw', ['ss', '-ltn', 'sport = :50090'], { allowFail: true });
    if (ss.stdout.includes('50090')) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  return proc;
};

const results: Result[] = [];
results.push(await measure(`tzorp run --workers ${WORKERS}, native relay`, tzorp(true)));
results.push(await measure(`tzorp run --workers ${WORKERS}, --no-native-relay`, tzorp(false)));
results.push(await measure('haproxy 2.6 (transparent, 1 thread)', haproxy));
const load = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
if (JSON_OUT) console.log(JSON.stringify({ conns: CONNS, workers: WORKERS, load, results }, null, 2));
else {
  console.log(`concurrency bench: ${CONNS} idle plug connections held, load average at the end ${load}`);
  console.log('| path | held | RSS at start MiB | PSS at start MiB | RSS holding MiB | KiB per connection |');
  console.log('|---|---|---|---|---|---|');
  for (const r of results)
    console.log(
      `| ${r.path} | ${r.held} | ${r.startRssMiB.toFixed(1)} | ${r.startPssMiB.toFixed(1)} | ${r.rssMiB.toFixed(1)} | ${r.kibPerConn.toFixed(2)} |`,
    );
  const hp = results.at(-1)!;
  for (const r of results.slice(0, -1))
    console.log(`${r.path}: ${(r.kibPerConn / hp.kibPerConn).toFixed(2)}x HAProxy's memory per connection`);
}
