// New connections per second through the whole daemon: `tzorp run --workers 1` (real policy, kernel
// ruleset, worker runtime with its session ids, logs and metrics, driver, plug core, native relay)
// against HAProxy 2.6 in transparent mode, both pinned to the same single CPU, side by side in one run.
// The relay bench (relay.bench.ts) measures the relay alone (relay-peers.ts); this one adds what the
// daemon does per session. Three labs (client -- fw -- server namespaces) exist at once, one per path
// (tzorp with the native relay, tzorp with --no-native-relay, HAProxy), and the rounds alternate
// between them. Needs root.
//
//   node --import tsx bench/macro/daemon.bench.ts [--seconds 5] [--rounds 3] [--warmup 3] [--cpu-prof DIR] [--json]
//     [--max-sessions N] [--proxy plug|http] [--close-only] [--threads] [--relay-thread] [--log-spec SPEC] [--gc]
//
// `--gc`: the daemon runs under `node --trace-gc` (its workers too), and each tzorp path reports its
// young-generation collections over the `Connection: close` rounds: new connections per scavenge and
// the scavenges' pause per connection. Unlike the rates, these hardly move with the machine's load:
// what a change to a session's allocations does shows here first.
//
// `--log-spec SPEC`: passed to both tzorp paths' `tzorp run` (e.g. 'core.session:0' writes no line per
// session: what the session lines cost, as the difference between two runs).
// `--max-sessions N`: the plug service has `max_sessions: N` (admission on every session).
// `--proxy http`: the service is the HTTP proxy (default options, Zorp's default verbosity: the
// session lines and an http.accounting line per request are written), against HAProxy in `mode http`;
// each path is then also measured with keep-alive (wrk without `Connection: close`), and tzorp runs
// with native socket I/O (its default) and with `--no-native-io` (bodies of `ok` never reach the relay,
// so the native relay is on in both).
//
// wrk -t1 -c16 with `Connection: close` (one TCP connection per request) against nginx in the server
// namespace. `--cpu-prof DIR`: the daemon's processes write V8 CPU profiles into DIR when it stops
// (node --cpu-prof bin/tzorp run: the worker gets the flag too; its profile is the session path).
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { ADDR, createLab, type Lab, type LabProcess, netnsSkipReason } from '../../test/harness/netns.ts';
import { tproxyRuleset, tproxyTo } from '../../test/harness/tproxy-ruleset.ts';
import {
  CLK_TCK,
  cpuTicks,
  haproxyTransparentHttp,
  haproxyTransparentTcp,
  inRoundOrder,
  pinned,
  plugPolicy,
  shortConnections,
  startNginx,
  threadTicks,
  tproxyLab,
  treePids,
} from './bench-kit.ts';
import { ensurePackages } from './peers-install.ts';

ensurePackages(['haproxy', 'nginx', 'wrk']);

const argAt = (name: string): string | undefined => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : undefined;
};
const SECONDS = Number(argAt('seconds') ?? 5);
const ROUNDS = Number(argAt('rounds') ?? 3);
/** Seconds of load on each path before the measured rounds, not measured: tzorp's JIT reaches its
 * steady state (a daemon runs for months), HAProxy's C has none to reach. */
const WARMUP = Number(argAt('warmup') ?? 3);
const PROF = argAt('cpu-prof');
const LOG_SPEC = argAt('log-spec');
const JSON_OUT = process.argv.includes('--json');
const MAX_SESSIONS = Number(argAt('max-sessions') ?? 0);
const PROXY = argAt('proxy') ?? 'plug';
if (PROXY !== 'plug' && PROXY !== 'http') {
  console.error('--proxy must be plug or http');
  process.exit(2);
}
const HTTP = PROXY === 'http';
/** `--relay-thread`: the second tzorp path is the native relay on a thread of its own in the worker
 * (tzorp run --relay-thread) instead of --no-native-relay (resp. --no-native-io); the first has it on
 * the worker's event loop, the default. */
const RELAY_THREAD = process.argv.includes('--relay-thread');
/** `--close-only` (with --proxy http): skip the keep-alive runs (for a profile of the session start). */
const KEEP_ALIVE = HTTP && !process.argv.includes('--close-only');
/** `--threads`: where each path's CPU per new connection goes, by thread (user and system µs). */
const THREADS = process.argv.includes('--threads');
/** `--gc`: young-generation collections per connection (node --trace-gc on the daemon). */
const GC = process.argv.includes('--gc');

const skip = netnsSkipReason();
if (skip) {
  console.error(`daemon bench skipped: ${skip}`);
  process.exit(0);
}

const haproxyCfg = HTTP ? haproxyTransparentHttp(50090) : haproxyTransparentTcp(8000, 60);

async function ready(lab: Lab, what: string): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const r = await lab.exec('client', ['curl', '-s', '-m', '2', `http://${ADDR.server4}/`], {
      allowFail: true,
    });
    if (r.stdout === 'ok\n') return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`no answer through ${what}`);
}

interface Path {
  name: string;
  lab: Lab;
  proc: LabProcess;
  dir: string;
}

async function tzorpPath(native: boolean, nativeIo = true, relayThread = false): Promise<Path> {
  const dir = mkdtempSync(join(tmpdir(), 'tzorp-daemonbench-'));
  const lab = await createLab();
  startNginx(lab, dir, 1);
  await shortConnections(lab);
  const policy = plugPolicy(80).replace('proxy: plug }', `proxy: ${PROXY} }`);
  writeFileSync(
    join(dir, 'policy.yaml'),
    MAX_SESSIONS > 0
      ? policy.replace(`proxy: ${PROXY} }`, `proxy: ${PROXY}, max_sessions: ${MAX_SESSIONS} }`)
      : policy,
  );
  if (PROF) mkdirSync(PROF, { recursive: true });
  const proc = lab.spawn(
    'fw',
    pinned([
      process.execPath,
      ...(PROF ? ['--cpu-prof', `--cpu-prof-dir=${resolve(PROF)}`] : []),
      ...(GC ? ['--trace-gc'] : []),
      'bin/tzorp',
      'run',
      join(dir, 'policy.yaml'),
      '--control',
      join(dir, 'control.sock'),
      '--workers',
      '1',
      ...(native ? [] : ['--no-native-relay']),
      ...(nativeIo ? [] : ['--no-native-io']),
      ...(relayThread ? ['--relay-thread'] : []),
      ...(LOG_SPEC !== undefined ? ['--log-spec', LOG_SPEC] : []),
    ]),
  );
  await proc.waitFor(/tzorp running/, 120_000);
  await ready(lab, 'tzorp');
  return {
    name: `tzorp run --workers 1 (${PROXY}, ${native ? (relayThread ? 'native relay, --relay-thread' : 'native relay') : '--no-native-relay'}${HTTP ? (nativeIo ? ', native I/O' : ', --no-native-io') : ''}${MAX_SESSIONS > 0 ? `, max_sessions ${MAX_SESSIONS}` : ''})`,
    lab,
    proc,
    dir,
  };
}

async function haproxyPath(): Promise<Path> {
  const dir = mkdtempSync(join(tmpdir(), 'tzorp-daemonbench-hap-'));
  const lab = await createLab();
  startNginx(lab, dir, 1);
  await tproxyLab(
    lab,
    tproxyRuleset({
      table: 'tzorp_daemonbench',
      divert: [tproxyTo(`ip daddr ${ADDR.server4} tcp dport 80`, 4, 50090)],
      input: ['ct state established,related accept'],
    }),
    '0x80000000',
  );
  writeFileSync(join(dir, 'haproxy.cfg'), haproxyCfg);
  const proc = lab.spawn('fw', pinned(['haproxy', '-db', '-f', join(dir, 'haproxy.cfg')]));
  await ready(lab, 'haproxy');
  return { name: `haproxy 2.6 (transparent, 1 thread${HTTP ? ', mode http' : ''})`, lab, proc, dir };
}

interface Run {
  /** --threads: µs of CPU per new connection by thread (threadTicks' names). */
  threads?: Map<string, { user: number; sys: number }>;
  connPerSec: number;
  cpu: number;
  /** --proxy http: requests per second with keep-alive. */
  keepAlive: number | null;
  /** --gc: the daemon's scavenges during the run and their pauses (ms), with the run's connections. */
  gc?: { scavenges: number; pauseMs: number; connections: number };
}

/** The scavenges in a stretch of `node --trace-gc` output and their summed pauses. */
function scavenges(out: string): { scavenges: number; pauseMs: number } {
  let n = 0;
  let ms = 0;
  for (const m of out.matchAll(/: Scavenge[^,\n]*, ([\d.]+) \/ [\d.]+ ms/g)) {
    n++;
    ms += Number(m[1]);
  }
  return { scavenges: n, pauseMs: ms };
}

async function wrkRate(p: Path, seconds: number, close: boolean): Promise<number> {
  const r = await p.lab.exec(
    'client',
    [
      'wrk',
      '-t1',
      '-c16',
      `-d${seconds}s`,
      ...(close ? ['-H', 'Connection: close'] : []),
      `http://${ADDR.server4}/`,
    ],
    { timeoutMs: (seconds + 30) * 1000 },
  );
  return Number(/Requests\/sec:\s+([\d.]+)/.exec(r.stdout)?.[1] ?? 0);
}

async function wrk(p: Path, seconds = SECONDS): Promise<Run> {
  const pids = treePids(p.proc.child.pid);
  const t0 = Date.now();
  const c0 = cpuTicks(pids);
  const th0 = THREADS ? threadTicks(pids) : null;
  const out0 = p.proc.stdout().length;
  const connPerSec = await wrkRate(p, seconds, true);
  const elapsed = (Date.now() - t0) / 1000;
  const gc =
    GC && p.name.startsWith('tzorp')
      ? { ...scavenges(p.proc.stdout().slice(out0)), connections: connPerSec * seconds }
      : undefined;
  const cpu = (cpuTicks(pids) - c0) / CLK_TCK / elapsed;
  let threads: Run['threads'];
  if (th0) {
    threads = new Map();
    const perConn = 1e6 / CLK_TCK / (connPerSec * elapsed);
    for (const [k, t] of threadTicks(pids)) {
      const b = th0.get(k) ?? { user: 0, sys: 0 };
      if (t.user + t.sys - b.user - b.sys > 0)
        threads.set(k, { user: (t.user - b.user) * perConn, sys: (t.sys - b.sys) * perConn });
    }
  }
  return {
    connPerSec,
    cpu,
    keepAlive: KEEP_ALIVE ? await wrkRate(p, seconds, false) : null,
    ...(threads ? { threads } : {}),
    ...(gc ? { gc } : {}),
  };
}

const paths: Path[] = [];
try {
  paths.push(await tzorpPath(true));
  paths.push(
    RELAY_THREAD
      ? await tzorpPath(true, true, true)
      : HTTP
        ? await tzorpPath(true, false)
        : await tzorpPath(false),
  );
  paths.push(await haproxyPath());
  const runs = new Map<string, Run[]>(paths.map((p) => [p.name, []]));
  if (WARMUP > 0)
    for (const p of paths) {
      await wrk(p, WARMUP);
      await new Promise((r) => setTimeout(r, 2000));
    }
  for (let round = 0; round < ROUNDS; round++)
    for (const p of inRoundOrder(paths, round)) {
      runs.get(p.name)!.push(await wrk(p));
      await new Promise((r) => setTimeout(r, 2000)); // TIME_WAIT ages a little
    }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const results = paths.map((p) => ({
    path: p.name,
    connPerSec: median(runs.get(p.name)!.map((r) => r.connPerSec)),
    cpu: median(runs.get(p.name)!.map((r) => r.cpu)),
    rounds: runs.get(p.name)!.map((r) => Math.round(r.connPerSec)),
    keepAlive: KEEP_ALIVE ? median(runs.get(p.name)!.map((r) => r.keepAlive ?? 0)) : null,
    keepAliveRounds: KEEP_ALIVE ? runs.get(p.name)!.map((r) => Math.round(r.keepAlive ?? 0)) : null,
  }));
  const load = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
  if (JSON_OUT) console.log(JSON.stringify({ seconds: SECONDS, rounds: ROUNDS, load, results }, null, 2));
  else {
    console.log(`daemon bench: ${ROUNDS} rounds of ${SECONDS} s, load average at the end ${load}`);
    console.log(
      `| path | new connections/s (median) | rounds | CPU (cores) |${KEEP_ALIVE ? ' keep-alive req/s (median) | rounds |' : ''}`,
    );
    console.log(`|---|---|---|---|${KEEP_ALIVE ? '---|---|' : ''}`);
    for (const r of results)
      console.log(
        `| ${r.path} | ${r.connPerSec.toFixed(0)} | ${r.rounds.join(', ')} | ${r.cpu.toFixed(2)} |${KEEP_ALIVE ? ` ${r.keepAlive!.toFixed(0)} | ${r.keepAliveRounds!.join(', ')} |` : ''}`,
      );
    const hap = results.at(-1)!;
    for (const r of results.slice(0, -1))
      console.log(
        `${r.path}: ${(r.connPerSec / hap.connPerSec).toFixed(2)}x HAProxy (new connections)${KEEP_ALIVE ? `, ${(r.keepAlive! / hap.keepAlive!).toFixed(2)}x (keep-alive)` : ''}`,
      );
    if (GC) {
      console.log('\nYoung-generation collections over the Connection: close rounds (all rounds summed):');
      console.log(
        '| path | connections | scavenges | connections per scavenge | scavenge pause per connection (µs) |',
      );
      console.log('|---|---|---|---|---|');
      for (const p of paths) {
        const rs = runs.get(p.name)!.filter((r) => r.gc);
        if (rs.length === 0) continue;
        const conns = rs.reduce((s, r) => s + r.gc!.connections, 0);
        const n = rs.reduce((s, r) => s + r.gc!.scavenges, 0);
        const ms = rs.reduce((s, r) => s + r.gc!.pauseMs, 0);
        console.log(
          `| ${p.name} | ${conns.toFixed(0)} | ${n} | ${n > 0 ? (conns / n).toFixed(0) : '-'} | ${((ms * 1000) / conns).toFixed(2)} |`,
        );
      }
    }
    if (THREADS) {
      console.log('\nCPU per new connection by thread (mean of the rounds, µs):');
      console.log('| path | thread | user | system |');
      console.log('|---|---|---|---|');
      for (const p of paths) {
        const sum = new Map<string, { user: number; sys: number }>();
        const rs = runs.get(p.name)!;
        for (const r of rs)
          for (const [k, t] of r.threads ?? []) {
            const a = sum.get(k) ?? { user: 0, sys: 0 };
            a.user += t.user / rs.length;
            a.sys += t.sys / rs.length;
            sum.set(k, a);
          }
        let u = 0;
        let sy = 0;
        for (const [k, t] of [...sum].sort((a, b) => b[1].user + b[1].sys - a[1].user - a[1].sys)) {
          u += t.user;
          sy += t.sys;
          console.log(`| ${p.name} | ${k} | ${t.user.toFixed(0)} | ${t.sys.toFixed(0)} |`);
        }
        console.log(`| ${p.name} | **all** | **${u.toFixed(0)}** | **${sy.toFixed(0)}** |`);
      }
    }
  }
} finally {
  for (const p of paths) {
    if (p.name.startsWith('tzorp')) {
      // a graceful stop, so that --cpu-prof profiles are written
      await p.lab.exec(
        'fw',
        [process.execPath, 'bin/tzorp', 'stop', '--control', join(p.dir, 'control.sock')],
        {
          allowFail: true,
        },
      );
      await Promise.race([p.proc.exited(), new Promise((r) => setTimeout(r, 15_000))]);
    }
    await p.lab.destroy();
    rmSync(p.dir, { recursive: true, force: true });
  }
}
