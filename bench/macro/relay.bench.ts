// Relay benchmark: the tzorp plug relay (real driver, plug core, transparent listener, transparent
// upstream) against HAProxy in transparent mode and against plain kernel forwarding, side by side in one
// run, in network namespaces (client -- fw -- server). Needs root.
//
//   node --import tsx bench/macro/relay.bench.ts [--seconds 5] [--idle 2000] [--rounds 3] [--json]
//
// Server addresses: .2 is forwarded by the kernel (baseline), .3 is diverted (TPROXY) to tzorp with the
// native splice relay (src/native/tzorp_relay.c), .5 to tzorp copying in JavaScript
// (TZORP_NATIVE_RELAY=0), .4 to HAProxy (`bind ... transparent`, `server 0.0.0.0` = the original
// destination, nbthread 1). All relays are pinned to the same single CPU (taskset -c 1), so "per core"
// is the same for all.
// Measured: iperf3 throughput with 1 and 8 streams, new connections per second and latency with
// wrk (`Connection: close`: one connection per request) against nginx, and memory per idle connection
// (RSS growth of the relay process with N idle relayed connections). Numbers are for comparison
// within one run only; bench/README.md (relay section) has the ratios of a recorded run.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLab, type LabProcess, netnsSkipReason } from '../../test/harness/netns.ts';
import { tproxyRuleset, tproxyTo } from '../../test/harness/tproxy-ruleset.ts';
import {
  CLK_TCK,
  cpuTicks,
  haproxyTransparentTcp,
  inRoundOrder,
  openIdle,
  pinned,
  startEcho,
  startNginx,
  tproxyLab,
} from './bench-kit.ts';
import { ensurePackages } from './peers-install.ts';

ensurePackages(['haproxy', 'nginx', 'wrk', 'iperf3']);

const arg = (name: string, dflt: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const SECONDS = arg('seconds', 5);
const IDLE = arg('idle', 2000);
/** Every path is measured once per round, paths interleaved; medians are reported (a shared machine's
 * load drifts: interleaving keeps the comparison fair). */
const ROUNDS = arg('rounds', 3);
const JSON_OUT = process.argv.includes('--json');
const MARK = '0x80000000';
const HERE = 'bench/macro';

const skip = netnsSkipReason();
if (skip) {
  console.error(`relay bench skipped: ${skip}`);
  process.exit(0);
}

const TZORP = '198.18.2.3';
const HAPROXY = '198.18.2.4';
const TZORP_JS = '198.18.2.5';
const FORWARD = '198.18.2.2';
const PORTS = '{ 80, 5201, 7000 }';

const ruleset = tproxyRuleset({
  table: 'tzorp_relaybench',
  divert: [
    tproxyTo(`ip daddr ${TZORP} tcp dport ${PORTS}`, 4, 50080),
    tproxyTo(`ip daddr ${HAPROXY} tcp dport ${PORTS}`, 4, 50090),
    tproxyTo(`ip daddr ${TZORP_JS} tcp dport ${PORTS}`, 4, 50081),
  ],
  input: ['ct state established,related accept'],
  forward: [`ip daddr ${FORWARD} accept`, `ip saddr ${FORWARD} accept`],
});

const haproxyCfg = haproxyTransparentTcp(8000, 120);

function rssKiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : 0;
}

interface PathResult {
  path: string;
  gbps1: number;
  gbps8: number;
  connPerSec: number;
  latencyMs: number;
  cpu1: number | null;
  cpuConn: number | null;
  idleKiBPerConn: number | null;
}

const dir = mkdtempSync(join(tmpdir(), 'tzorp-relaybench-'));
const lab = await createLab({ serverAddrs: [TZORP, HAPROXY, TZORP_JS] });
try {
  await tproxyLab(lab, ruleset, MARK);
  writeFileSync(join(dir, 'haproxy.cfg'), haproxyCfg);
  // As many descriptors as the hard limit allows (the idle test holds 2 per relayed connection).
  startNginx(lab, dir, 1);
  lab.spawn('server', ['iperf3', '-s']);
  await startEcho(lab, 7000);
  const tz = lab.spawn(
    'fw',
    pinned([process.execPath, '--import', 'tsx', `${HERE}/relay-peers.ts`, 'relay', '50080']),
  );
  await tz.waitFor(/READY/, 90_000);
  const tzJs = lab.spawn(
    'fw',
    pinned([process.execPath, '--import', 'tsx', `${HERE}/relay-peers.ts`, 'relay', '50081']),
    { env: { TZORP_NATIVE_RELAY: '0' } },
  );
  await tzJs.waitFor(/READY/, 90_000);
  const hap = lab.spawn('fw', pinned(['haproxy', '-db', '-f', join(dir, 'haproxy.cfg')]));
  // Wait for every server to answer through every path.
  const ready = async (host: string) => {
    for (let i = 0; i < 30; i++) {
      const r = await lab.exec('client', ['curl', '-s', '-m', '2', `http://${host}/`], { allowFail: true });
      if (r.stdout === 'ok\n') return;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`no answer through ${host}; haproxy said: ${hap.stderr()} ${hap.stdout()}`);
  };
  for (const h of [FORWARD, TZORP, TZORP_JS, HAPROXY]) await ready(h);
  const pidOf = (p: LabProcess | null) => p?.child.pid;

  const paths: { name: string; host: string; proc: LabProcess | null }[] = [
    { name: 'kernel forwarding', host: FORWARD, proc: null },
    { name: 'tzorp plug relay, native relay', host: TZORP, proc: tz },
    { name: 'tzorp plug relay, JavaScript copy', host: TZORP_JS, proc: tzJs },
    { name: 'haproxy 2.6 (transparent, 1 thread)', host: HAPROXY, proc: hap },
  ];
  const perPath = new Map<string, PathResult[]>();
  for (let round = 0; round < ROUNDS; round++)
    for (const p of inRoundOrder(paths, round)) {
      const pid = pidOf(p.proc);
      const measure = async <T>(f: () => Promise<T>): Promise<{ value: T; cpu: number | null }> => {
        const t0 = Date.now();
        const c0 = cpuTicks(pid ? [pid] : []);
        const value = await f();
        const cpu = pid ? (cpuTicks(pid ? [pid] : []) - c0) / CLK_TCK / ((Date.now() - t0) / 1000) : null;
        return { value, cpu };
      };
      const iperf = async (streams: number) => {
        const r = await lab.exec(
          'client',
          ['iperf3', '-c', p.host, '-t', String(SECONDS), '-P', String(streams), '-J'],
          { timeoutMs: (SECONDS + 30) * 1000 },
        );
        return (JSON.parse(r.stdout).end.sum_received.bits_per_second as number) / 1e9;
      };
      const one = await measure(() => iperf(1));
      const eight = await iperf(8);
      const wrk = await measure(async () => {
        const r = await lab.exec(
          'client',
          ['wrk', '-t1', '-c16', `-d${SECONDS}s`, '-H', 'Connection: close', `http://${p.host}/`],
          { timeoutMs: (SECONDS + 30) * 1000 },
        );
        const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(r.stdout)?.[1] ?? 0);
        const lat = /Latency\s+([\d.]+)(us|ms|s)/.exec(r.stdout);
        const ms = lat ? Number(lat[1]) * (lat[2] === 'us' ? 0.001 : lat[2] === 's' ? 1000 : 1) : Number.NaN;
        return { rps, ms };
      });
      let idleKiBPerConn: number | null = null;
      if (pid && round === 0) {
        // First round only: a fresh process, before earlier connections grew its heap.
        const before = rssKiB(pid);
        const { idle } = await openIdle(lab, p.host, 7000, IDLE, 120_000);
        idleKiBPerConn = (rssKiB(pid) - before) / IDLE;
        idle.kill('SIGKILL');
        await idle.exited();
      }
      if (!perPath.has(p.name)) perPath.set(p.name, []);
      perPath.get(p.name)!.push({
        path: p.name,
        gbps1: one.value,
        gbps8: eight,
        connPerSec: wrk.value.rps,
        latencyMs: wrk.value.ms,
        cpu1: one.cpu,
        cpuConn: wrk.cpu,
        idleKiBPerConn,
      });
      // Let TIME_WAIT of this path's short connections age a little before the next path.
      await new Promise((r) => setTimeout(r, 2000));
    }

  const median = (xs: (number | null)[]): number | null => {
    const v = xs.filter((x): x is number => x !== null && !Number.isNaN(x)).sort((a, b) => a - b);
    return v.length === 0 ? null : v[Math.floor(v.length / 2)]!;
  };
  const results: PathResult[] = paths.map((p) => {
    const rs = perPath.get(p.name)!;
    return {
      path: p.name,
      gbps1: median(rs.map((r) => r.gbps1))!,
      gbps8: median(rs.map((r) => r.gbps8))!,
      connPerSec: median(rs.map((r) => r.connPerSec))!,
      latencyMs: median(rs.map((r) => r.latencyMs)) ?? Number.NaN,
      cpu1: median(rs.map((r) => r.cpu1)),
      cpuConn: median(rs.map((r) => r.cpuConn)),
      idleKiBPerConn: median(rs.map((r) => r.idleKiBPerConn)),
    };
  });
  const load = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
  if (JSON_OUT)
    console.log(
      JSON.stringify(
        { seconds: SECONDS, idle: IDLE, rounds: ROUNDS, load, perPath: Object.fromEntries(perPath), results },
        null,
        2,
      ),
    );
  else {
    const f = (n: number | null, d = 2) => (n === null || Number.isNaN(n) ? 'n/a' : n.toFixed(d));
    console.log(
      `relay bench: medians of ${ROUNDS} interleaved rounds, ${SECONDS} s per run, ${IDLE} idle connections, relays pinned to one CPU, load average at the end ${load}`,
    );
    console.log(
      '| path | 1 stream Gbit/s | 8 streams Gbit/s | conn/s | latency ms | relay CPU (1 stream) | relay CPU (conn) | KiB per idle conn |',
    );
    console.log('|---|---|---|---|---|---|---|---|');
    for (const r of results) {
      console.log(
        `| ${r.path} | ${f(r.gbps1)} | ${f(r.gbps8)} | ${f(r.connPerSec, 0)} | ${f(r.latencyMs)} | ${r.cpu1 === null ? 'n/a' : `${Math.round(r.cpu1 * 100)} %`} | ${r.cpuConn === null ? 'n/a' : `${Math.round(r.cpuConn * 100)} %`} | ${f(r.idleKiBPerConn, 1)} |`,
      );
    }
    const [fwd, ...rest] = results as [PathResult, PathResult, PathResult, PathResult];
    const hp = rest.at(-1)!;
    for (const tzr of rest.slice(0, -1)) {
      console.log('');
      console.log(`ratios (${tzr.path} / haproxy, / kernel forwarding):`);
      console.log(`  1 stream:   ${f(tzr.gbps1 / hp.gbps1)}  ${f(tzr.gbps1 / fwd.gbps1)}`);
      console.log(`  8 streams:  ${f(tzr.gbps8 / hp.gbps8)}  ${f(tzr.gbps8 / fwd.gbps8)}`);
      console.log(
        `  conn/s:     ${f(tzr.connPerSec / hp.connPerSec)}  ${f(tzr.connPerSec / fwd.connPerSec)}`,
      );
      if (tzr.cpu1 !== null && hp.cpu1 !== null)
        console.log(
          `  throughput per CPU-second (1 stream): ${f(tzr.gbps1 / tzr.cpu1 / (hp.gbps1 / hp.cpu1))}`,
        );
      if (tzr.idleKiBPerConn !== null && hp.idleKiBPerConn !== null)
        console.log(`  KiB/idle conn: ${f(tzr.idleKiBPerConn, 1)} vs ${f(hp.idleKiBPerConn, 1)}`);
    }
  }
} finally {
  await lab.destroy();
  rmSync(dir, { recursive: true, force: true });
}
