// Start-up memory of the daemon (issue 14: "daemon start-up RSS ≤ 150 MB for primary plus two workers"):
// `tzorp run --workers N` on the plug bench policy in a fresh lab, and each process's memory a few
// seconds after it logged `tzorp running`: RSS and PSS, and RSS split into node's own binary (file
// pages of /usr/bin/node: shared, clean), other files (libraries, the addon) and anonymous memory (V8's
// heap, malloc, stacks). A bare `node -e 'setTimeout(()=>{},1e9)'` in the same namespace is measured
// beside it, the floor each node process starts from. Memory is counted, not timed, so the load of
// the machine does not change it; the daemon runs from dist/. Needs root.
//
//   node --import tsx bench/macro/startup-memory.bench.ts [--workers 2] [--runs 3] [--settle-ms 4000]
//     [--policy FILE] [--json]

import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLab, netnsSkipReason } from '../../test/harness/netns.ts';
import { plugPolicy, treePids, tzorpRunArgv } from './bench-kit.ts';

const argv = process.argv.slice(2);
const opt = (name: string): string | undefined => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? argv[i + 1] : undefined;
};
const WORKERS = Number(opt('workers') ?? 2);
const RUNS = Number(opt('runs') ?? 3);
const SETTLE_MS = Number(opt('settle-ms') ?? 4000);
const POLICY = opt('policy');
const JSON_OUT = argv.includes('--json');
/** Issue 14's aim for primary plus two workers: 150 MB, in MiB. */
const GOAL_MIB = 150e6 / 2 ** 20;

const skip = netnsSkipReason();
if (skip) {
  console.error(`startup-memory bench skipped: ${skip}`);
  process.exit(0);
}

interface Mem {
  rss: number;
  pss: number;
  /** RSS of /usr/bin/node's (process.execPath's) mappings */
  binary: number;
  /** RSS of other file mappings */
  files: number;
  anon: number;
}

/** One process's memory from /proc/PID/smaps, KiB. */
function memOf(pid: number): Mem {
  const m: Mem = { rss: 0, pss: 0, binary: 0, files: 0, anon: 0 };
  let kind: 'binary' | 'files' | 'anon' = 'anon';
  for (const line of readFileSync(`/proc/${pid}/smaps`, 'utf8').split('\n')) {
    const head = /^[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ (\d+)\s*(.*)$/.exec(line);
    if (head) {
      const path = head[2]!;
      kind =
        path === process.execPath ? 'binary' : head[1] !== '0' && path.startsWith('/') ? 'files' : 'anon';
      continue;
    }
    const f = /^(Rss|Pss):\s+(\d+) kB/.exec(line);
    if (!f) continue;
    const kib = Number(f[2]);
    if (f[1] === 'Pss') m.pss += kib;
    else {
      m.rss += kib;
      m[kind] += kib;
    }
  }
  return m;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Run {
  processes: { role: string; mem: Mem }[];
  sum: Mem;
  bare: Mem;
}

async function once(): Promise<Run> {
  const dir = mkdtempSync(join(tmpdir(), 'tzorp-startmem-'));
  const lab = await createLab();
  try {
    const file = POLICY ?? join(dir, 'policy.yaml');
    if (!POLICY) writeFileSync(file, plugPolicy(7000));
    const proc = lab.spawn('fw', tzorpRunArgv(file, dir, WORKERS));
    const bare = lab.spawn('fw', [process.execPath, '-e', 'setTimeout(()=>{},1e9)']);
    await proc.waitFor(/tzorp running/, 120_000);
    await sleep(SETTLE_MS);
    const pids = treePids(proc.child.pid);
    const processes = pids.map((pid, i) => ({ role: i === 0 ? 'primary' : `worker ${i}`, mem: memOf(pid) }));
    const sum: Mem = { rss: 0, pss: 0, binary: 0, files: 0, anon: 0 };
    for (const p of processes) for (const k of Object.keys(sum) as (keyof Mem)[]) sum[k] += p.mem[k];
    const bareMem = memOf(bare.child.pid!);
    return { processes, sum, bare: bareMem };
  } finally {
    await lab.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
}

const runs: Run[] = [];
for (let i = 0; i < RUNS; i++) runs.push(await once());

const mib = (kib: number) => (kib / 1024).toFixed(1);
const row = (name: string, m: Mem) =>
  `| ${name} | ${mib(m.rss)} | ${mib(m.pss)} | ${mib(m.binary)} | ${mib(m.files)} | ${mib(m.anon)} |`;
if (JSON_OUT) console.log(JSON.stringify({ workers: WORKERS, settleMs: SETTLE_MS, runs }, null, 2));
else {
  const load = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
  console.log(
    `startup-memory bench: tzorp run --workers ${WORKERS}, ${SETTLE_MS} ms after \`tzorp running\`, ${RUNS} runs (load average at the end ${load})`,
  );
  console.log('| process | RSS MiB | PSS MiB | node binary MiB | other files MiB | anonymous MiB |');
  console.log('|---|---|---|---|---|---|');
  runs.forEach((r, i) => {
    for (const p of r.processes) console.log(row(`run ${i + 1}: ${p.role}`, p.mem));
    console.log(row(`run ${i + 1}: **sum**`, r.sum));
  });
  console.log(row('bare `node -e setTimeout` (last run)', runs.at(-1)!.bare));
  const sums = runs.map((r) => r.sum.rss / 1024).sort((a, b) => a - b);
  const median = sums[Math.floor(sums.length / 2)]!;
  const verdict =
    WORKERS === 2 ? ` (goal ≤ ${GOAL_MIB.toFixed(1)} MiB: ${median <= GOAL_MIB ? 'met' : 'not met'})` : '';
  console.log(
    `summed RSS: median ${median.toFixed(1)} MiB, min ${sums[0]!.toFixed(1)}, max ${sums.at(-1)!.toFixed(1)}${verdict}`,
  );
}
