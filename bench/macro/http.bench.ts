// HTTP proxy benchmark: tzorp's HTTP proxy (real driver, http core) against HAProxy in HTTP mode and
// Squid in tproxy mode, side by side in one run, in network namespaces (client -- fw -- server), all
// three intercepting with TPROXY and each pinned to the same single CPU (taskset -c 1), so requests
// per second are per core for all of them. Kernel forwarding is the baseline. Needs root.
//
//   node --import tsx bench/macro/http.bench.ts [--seconds 5] [--rounds 3] [--warmup 3]
//     [--native-relay 0|1] [--body-kib N] [--haproxy-splice] [--compare DIR] [--quick] [--json]
//
// --native-relay 0 runs tzorp with TZORP_NATIVE_RELAY=0 (default 1): response bodies of known length
// from 256 KiB on go through the native relay when it is on (docs/http.md). --body-kib N makes every
// request fetch a static file of N KiB (Content-Length) instead of nginx's `ok`; the table then
// also shows MB/s. --haproxy-splice gives HAProxy `option splice-auto` (kernel splicing of bodies
// where it sees fit), its own answer to large bodies.
//
// Server addresses: .2 forwarded by the kernel, .3 diverted to tzorp, .4 to HAProxy (`mode http`,
// `bind ... transparent`, `server 0.0.0.0` = the original destination, nbthread 1), .5 to Squid
// (`http_port ... tproxy`, workers 1, no cache), .6 to a Node relay that parses nothing (http-peers.ts
// floor: the ceiling of a proxy on Node's own sockets, for reading the ratios), .7 to tzorp's HTTP
// proxy on Node's sockets (TZORP_NATIVE_IO=0, as `tzorp run --no-native-io`; .3 runs on native I/O, as
// `tzorp run` does), .9 to the HTTP proxy of another built checkout of tzorp (`--compare DIR`: an A/B
// of two trees in the same lab and rounds, what a change is worth when this machine's rates drift
// between runs; `--quick` leaves out Squid and the two Node-socket paths), .8 to the same parse-nothing relay on tzorp's native socket I/O (http-peers.ts
// nfloor: the ceiling of any proxy on the I/O layer tzorp's HTTP proxy runs on). nginx answers `ok`.
// wrk measures requests per second and mean latency with keep-alive (16 connections) and with a new
// connection per request (`Connection: close`). Numbers compare within one run only.
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLab, type LabProcess, netnsSkipReason } from '../../test/harness/netns.ts';
import { tproxyRuleset, tproxyTo } from '../../test/harness/tproxy-ruleset.ts';
import {
  CLK_TCK,
  cpuTicks,
  haproxyTransparentHttp,
  inRoundOrder,
  pinned,
  startNginx,
  tproxyLab,
  treePids,
} from './bench-kit.ts';
import { ensurePackages } from './peers-install.ts';

ensurePackages(['haproxy', 'nginx', 'wrk']);

const arg = (name: string, dflt: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const SECONDS = arg('seconds', 5);
/** Paths are interleaved per round and medians reported: a shared machine's load drifts. */
const ROUNDS = arg('rounds', 3);
/** Seconds of each mode on each path before the measured rounds, not measured: tzorp's JIT reaches
 * its steady state (a proxy runs for months), the C peers have none to reach. */
const WARMUP = arg('warmup', 3);
const JSON_OUT = process.argv.includes('--json');
const NATIVE_RELAY = arg('native-relay', 1);
const BODY_KIB = arg('body-kib', 0);
const PATH = BODY_KIB > 0 ? '/blob.bin' : '/';
const HAPROXY_SPLICE = process.argv.includes('--haproxy-splice');
const COMPARE_AT = process.argv.indexOf('--compare');
const COMPARE = COMPARE_AT > 0 ? process.argv[COMPARE_AT + 1]! : null;
const QUICK = process.argv.includes('--quick');
const TZ_NAME = `tzorp http (native I/O, native relay ${NATIVE_RELAY ? 'on' : 'off'})`;
const MARK = '0x80000000';
const HERE = 'bench/macro';

const skip = netnsSkipReason();
if (skip) {
  console.error(`http bench skipped: ${skip}`);
  process.exit(0);
}
const squidBin = ['/usr/sbin/squid', '/usr/bin/squid'].find((p) => existsSync(p)) ?? null;

const FORWARD = '198.18.2.2';
const TZORP = '198.18.2.3';
const HAPROXY = '198.18.2.4';
const SQUID = '198.18.2.5';
const FLOOR = '198.18.2.6';
const FLOOR_NAME = 'node relay, no HTTP (floor)';
const TZORP_NODE_IO = '198.18.2.7';
const TZ_NODE_IO_NAME = 'tzorp http, Node sockets';
const NFLOOR = '198.18.2.8';
const NFLOOR_NAME = 'native I/O relay, no HTTP (floor)';
const COMPARED = '198.18.2.9';
const COMPARED_NAME = `tzorp http of ${COMPARE ?? ''}`;

const ruleset = tproxyRuleset({
  table: 'tzorp_httpbench',
  divert: [
    tproxyTo(`ip daddr ${TZORP} tcp dport 80`, 4, 50080),
    tproxyTo(`ip daddr ${HAPROXY} tcp dport 80`, 4, 50090),
    tproxyTo(`ip daddr ${SQUID} tcp dport 80`, 4, 50100),
    tproxyTo(`ip daddr ${FLOOR} tcp dport 80`, 4, 50110),
    tproxyTo(`ip daddr ${TZORP_NODE_IO} tcp dport 80`, 4, 50120),
    tproxyTo(`ip daddr ${NFLOOR} tcp dport 80`, 4, 50130),
    tproxyTo(`ip daddr ${COMPARED} tcp dport 80`, 4, 50140),
  ],
  input: ['ct state established,related accept'],
  forward: [`ip daddr ${FORWARD} accept`, `ip saddr ${FORWARD} accept`],
});

const haproxyCfg = haproxyTransparentHttp(50090, HAPROXY_SPLICE);

const squidCfg = (dir: string) => `http_port 127.0.0.1:50100 tproxy
http_port 127.0.0.1:50101
http_access allow all
cache deny all
cache_mem 8 MB
access_log none
cache_log ${dir}/squid-cache.log
pid_filename ${dir}/squid.pid
coredump_dir ${dir}
workers 1
shutdown_lifetime 1 second
client_persistent_connections on
server_persistent_connections on
`;

/** Every process of a tree (Squid forks a worker; the relays run under `sh`/`taskset`). */
interface Result {
  path: string;
  rpsKeepAlive: number;
  latencyKeepAliveMs: number;
  rpsClose: number;
  latencyCloseMs: number;
  cpuKeepAlive: number | null;
}

const dir = mkdtempSync(join(tmpdir(), 'tzorp-httpbench-'));
const lab = await createLab({ serverAddrs: [TZORP, HAPROXY, SQUID, FLOOR, TZORP_NODE_IO, NFLOOR, COMPARED] });
try {
  await tproxyLab(lab, ruleset, MARK);
  writeFileSync(join(dir, 'haproxy.cfg'), haproxyCfg);
  writeFileSync(join(dir, 'squid.conf'), squidCfg(dir));
  if (BODY_KIB > 0) {
    // (nginx's workers run as nobody: the file and the directories to it must be readable for them)
    mkdirSync(join(dir, 'www'), { recursive: true, mode: 0o755 });
    chmodSync(dir, 0o755);
    writeFileSync(join(dir, 'www', 'blob.bin'), randomBytes(BODY_KIB * 1024), { mode: 0o644 });
  }
  startNginx(lab, dir, 2);
  const tz = lab.spawn(
    'fw',
    pinned([process.execPath, '--import', 'tsx', `${HERE}/http-peers.ts`, 'proxy', '50080']),
    { env: { TZORP_NATIVE_RELAY: String(NATIVE_RELAY) } },
  );
  await tz.waitFor(/READY/, 90_000);
  let compared: LabProcess | null = null;
  if (COMPARE) {
    compared = lab.spawn(
      'fw',
      pinned([process.execPath, '--import', 'tsx', `${HERE}/http-peers.ts`, 'proxy', '50140']),
      { env: { TZORP_NATIVE_RELAY: String(NATIVE_RELAY) }, cwd: COMPARE },
    );
    await compared.waitFor(/READY/, 90_000);
  }
  const tzNodeIo = lab.spawn(
    'fw',
    pinned([process.execPath, '--import', 'tsx', `${HERE}/http-peers.ts`, 'proxy', '50120']),
    { env: { TZORP_NATIVE_RELAY: String(NATIVE_RELAY), TZORP_NATIVE_IO: '0' } },
  );
  await tzNodeIo.waitFor(/READY/, 90_000);
  const floor = lab.spawn(
    'fw',
    pinned([process.execPath, '--import', 'tsx', `${HERE}/http-peers.ts`, 'floor', '50110']),
  );
  await floor.waitFor(/READY/, 90_000);
  const nfloor = lab.spawn(
    'fw',
    pinned([process.execPath, '--import', 'tsx', `${HERE}/http-peers.ts`, 'nfloor', '50130']),
  );
  await nfloor.waitFor(/READY/, 90_000);
  const hap = lab.spawn('fw', pinned(['haproxy', '-db', '-f', join(dir, 'haproxy.cfg')]));
  let squid: LabProcess | null = null;
  if (squidBin && !QUICK) {
    mkdirSync(join(dir, 'squid'), { recursive: true });
    squid = lab.spawn('fw', pinned([squidBin, '-N', '-f', join(dir, 'squid.conf')]));
  }
  const ready = async (host: string, who: () => string) => {
    for (let i = 0; i < 100; i++) {
      const r = await lab.exec('client', ['curl', '-s', '-m', '2', `http://${host}/`], { allowFail: true });
      if (r.stdout === 'ok\n') return true;
      await new Promise((r) => setTimeout(r, 200));
    }
    console.error(`no answer through ${host}: ${who()}`);
    return false;
  };
  const paths: { name: string; host: string; proc: LabProcess | null }[] = [
    { name: 'kernel forwarding', host: FORWARD, proc: null },
    { name: TZ_NAME, host: TZORP, proc: tz },
    {
      name: `haproxy (mode http, 1 thread${HAPROXY_SPLICE ? ', splice-auto' : ''})`,
      host: HAPROXY,
      proc: hap,
    },
    ...(QUICK
      ? []
      : [
          { name: FLOOR_NAME, host: FLOOR, proc: floor },
          { name: TZ_NODE_IO_NAME, host: TZORP_NODE_IO, proc: tzNodeIo },
        ]),
    { name: NFLOOR_NAME, host: NFLOOR, proc: nfloor },
    ...(compared ? [{ name: COMPARED_NAME, host: COMPARED, proc: compared }] : []),
  ];
  for (const p of paths) {
    if (!(await ready(p.host, () => `${p.proc?.stderr() ?? ''}`)))
      throw new Error(`${p.name} does not answer`);
    if (BODY_KIB > 0) {
      const r = await lab.exec('client', [
        'curl',
        '-s',
        '-o',
        '/dev/null',
        '-w',
        '%{http_code} %{size_download}',
        `http://${p.host}${PATH}`,
      ]);
      if (r.stdout !== `200 ${BODY_KIB * 1024}`) throw new Error(`${p.name}: ${PATH} gave ${r.stdout}`);
    }
  }
  if (squid && (await ready(SQUID, () => readFileSync(join(dir, 'squid-cache.log'), 'utf8').slice(-2000)))) {
    paths.push({ name: 'squid (tproxy, 1 worker)', host: SQUID, proc: squid });
  } else console.error('squid is not part of this run (not installed or not answering)');

  const wrk = async (host: string, close: boolean, seconds = SECONDS) => {
    const args = [
      'wrk',
      '-t1',
      '-c16',
      `-d${seconds}s`,
      ...(close ? ['-H', 'Connection: close'] : []),
      `http://${host}${PATH}`,
    ];
    const r = await lab.exec('client', args, { timeoutMs: (seconds + 30) * 1000 });
    const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(r.stdout)?.[1] ?? 0);
    const lat = /Latency\s+([\d.]+)(us|ms|s)/.exec(r.stdout);
    const ms = lat ? Number(lat[1]) * (lat[2] === 'us' ? 0.001 : lat[2] === 's' ? 1000 : 1) : Number.NaN;
    const non2xx = /Non-2xx or 3xx responses: (\d+)/.exec(r.stdout);
    if (non2xx) console.error(`${host}: ${non2xx[1]} non-2xx responses`);
    return { rps, ms };
  };
  const per = new Map<string, Result[]>();
  if (WARMUP > 0)
    for (const p of paths) {
      await wrk(p.host, false, WARMUP);
      await wrk(p.host, true, WARMUP);
    }
  for (let round = 0; round < ROUNDS; round++) {
    for (const p of inRoundOrder(paths, round)) {
      const pids = treePids(p.proc?.child.pid);
      const t0 = Date.now();
      const c0 = cpuTicks(pids);
      const ka = await wrk(p.host, false);
      const cpu = pids.length ? (cpuTicks(pids) - c0) / CLK_TCK / ((Date.now() - t0) / 1000) : null;
      const cl = await wrk(p.host, true);
      if (!per.has(p.name)) per.set(p.name, []);
      per.get(p.name)!.push({
        path: p.name,
        rpsKeepAlive: ka.rps,
        latencyKeepAliveMs: ka.ms,
        rpsClose: cl.rps,
        latencyCloseMs: cl.ms,
        cpuKeepAlive: cpu,
      });
    }
  }
  const median = (xs: number[]) => {
    const s = [...xs].sort((a, b) => a - b);
    return s[Math.floor(s.length / 2)]!;
  };
  const results: Result[] = [...per.values()].map((rs) => ({
    path: rs[0]!.path,
    rpsKeepAlive: median(rs.map((r) => r.rpsKeepAlive)),
    latencyKeepAliveMs: median(rs.map((r) => r.latencyKeepAliveMs)),
    rpsClose: median(rs.map((r) => r.rpsClose)),
    latencyCloseMs: median(rs.map((r) => r.latencyCloseMs)),
    cpuKeepAlive: rs[0]!.cpuKeepAlive === null ? null : median(rs.map((r) => r.cpuKeepAlive ?? 0)),
  }));
  const tzr = results.find((r) => r.path === TZ_NAME)!;
  const ratios = results
    .filter(
      (r) =>
        r.path !== TZ_NAME &&
        r.path !== 'kernel forwarding' &&
        r.path !== FLOOR_NAME &&
        r.path !== NFLOOR_NAME &&
        r.path !== COMPARED_NAME &&
        r.path !== TZ_NODE_IO_NAME,
    )
    .map((r) => ({
      vs: r.path,
      keepAlive: tzr.rpsKeepAlive / r.rpsKeepAlive,
      newConnection: tzr.rpsClose / r.rpsClose,
    }));
  if (JSON_OUT)
    console.log(
      JSON.stringify({ seconds: SECONDS, rounds: ROUNDS, bodyKiB: BODY_KIB, results, ratios }, null, 2),
    );
  else {
    console.log(
      `HTTP proxies, 1 CPU each, wrk -t1 -c16, ${SECONDS}s x ${ROUNDS} rounds (medians), ${BODY_KIB > 0 ? `bodies of ${BODY_KIB} KiB` : "nginx's `ok`"}`,
    );
    console.log(
      'path                              req/s keep-alive  latency ms  req/s new conn  latency ms  cpu (ka)',
    );
    for (const r of results) {
      console.log(
        `${r.path.padEnd(34)}${r.rpsKeepAlive.toFixed(0).padStart(16)}${r.latencyKeepAliveMs.toFixed(2).padStart(12)}${r.rpsClose.toFixed(0).padStart(16)}${r.latencyCloseMs.toFixed(2).padStart(12)}${r.cpuKeepAlive === null ? '           -' : r.cpuKeepAlive.toFixed(2).padStart(10)}`,
      );
    }
    if (BODY_KIB > 0)
      for (const r of results)
        console.log(
          `${r.path.padEnd(34)}MB/s keep-alive ${((r.rpsKeepAlive * BODY_KIB * 1024) / 1e6).toFixed(0)}, new conn ${((r.rpsClose * BODY_KIB * 1024) / 1e6).toFixed(0)}`,
        );
    for (const rs of per.values())
      console.log(
        `rounds of ${rs[0]!.path}: keep-alive ${rs.map((r) => r.rpsKeepAlive.toFixed(0)).join(' / ')}, new connection ${rs.map((r) => r.rpsClose.toFixed(0)).join(' / ')}`,
      );
    for (const q of ratios)
      console.log(
        `tzorp / ${q.vs}: keep-alive ${q.keepAlive.toFixed(2)}, new connection ${q.newConnection.toFixed(2)}`,
      );
    const fl = results.find((r) => r.path === FLOOR_NAME);
    const hp = results.find((r) => r.path.startsWith('haproxy'));
    const tn = results.find((r) => r.path === TZ_NODE_IO_NAME);
    if (tn && hp)
      console.log(
        `tzorp on Node sockets / haproxy (--no-native-io): keep-alive ${(tn.rpsKeepAlive / hp.rpsKeepAlive).toFixed(2)}, new connection ${(tn.rpsClose / hp.rpsClose).toFixed(2)}`,
      );
    if (fl && hp)
      console.log(
        `floor / haproxy (Node's sockets alone): keep-alive ${(fl.rpsKeepAlive / hp.rpsKeepAlive).toFixed(2)}, new connection ${(fl.rpsClose / hp.rpsClose).toFixed(2)}`,
      );
    const nf = results.find((r) => r.path === NFLOOR_NAME);
    if (nf && hp)
      console.log(
        `native floor / haproxy (tzorp's socket I/O alone): keep-alive ${(nf.rpsKeepAlive / hp.rpsKeepAlive).toFixed(2)}, new connection ${(nf.rpsClose / hp.rpsClose).toFixed(2)}`,
      );
    const cmp = results.find((r) => r.path === COMPARED_NAME);
    if (cmp) {
      const us = (r: Result) =>
        r.cpuKeepAlive === null ? Number.NaN : (r.cpuKeepAlive * 1e6) / r.rpsKeepAlive;
      console.log(
        `tzorp / ${COMPARE}: keep-alive ${(tzr.rpsKeepAlive / cmp.rpsKeepAlive).toFixed(2)}, new connection ${(tzr.rpsClose / cmp.rpsClose).toFixed(2)}; CPU µs per keep-alive request ${us(tzr).toFixed(1)} against ${us(cmp).toFixed(1)}`,
      );
    }
    if (nf)
      console.log(
        `tzorp / native floor: keep-alive ${(tzr.rpsKeepAlive / nf.rpsKeepAlive).toFixed(2)}, new connection ${(tzr.rpsClose / nf.rpsClose).toFixed(2)}`,
      );
  }
} finally {
  await lab.destroy();
  rmSync(dir, { recursive: true, force: true });
}
