// TLS inspection benchmark (issue 13): tzorp's HTTP proxy with `tls.mode: inspect` against HAProxy
// terminating TLS and re-encrypting to the server with `verify required`, side by side in one run, in
// network namespaces (client -- fw -- server), both intercepting with TPROXY and each pinned to the
// same single CPU (taskset -c 1), so rates are per core for both. Needs root.
//
//   node --import tsx bench/macro/tls.bench.ts [--seconds 5] [--rounds 3] [--warmup 3] [--json]
//
// nginx in the server namespace answers `ok` over TLS with a certificate from a test CA (made here with
// openssl); both proxies verify it against that CA. tzorp shows clients certificates it makes for the
// requested name from its own CA (cached after the first); HAProxy a fixed certificate from that CA,
// its usual setup. Server address .3 is diverted to tzorp, .4 to HAProxy, .5 to a floor (tls-peers.ts
// floor: tzorp's TLS layer on node:tls terminating and originating the same two sessions with nothing
// between them, the ceiling of inspection on node:tls, for reading the ratios); wrk (which does not verify)
// measures HTTPS requests per second with keep-alive (16 connections) and with a new TCP connection and
// a new TLS session per request (`Connection: close`: both handshakes, client side and server side,
// every time).
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createCa, issueLeaf, loadCa } from '../../src/proxy/tls/certs.ts';
import { createLab, type LabProcess, netnsSkipReason } from '../../test/harness/netns.ts';
import { tproxyRuleset, tproxyTo } from '../../test/harness/tproxy-ruleset.ts';
import {
  CLK_TCK,
  cpuTicks,
  HAPROXY_HTTP_DEFAULTS,
  inRoundOrder,
  pinned,
  startNginx,
  tproxyLab,
  treePids,
} from './bench-kit.ts';
import { ensurePackages } from './peers-install.ts';

ensurePackages(['haproxy', 'nginx', 'wrk', 'openssl']);

const arg = (name: string, dflt: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const SECONDS = arg('seconds', 5);
const ROUNDS = arg('rounds', 3);
/** Seconds of each mode on each path before the measured rounds, not measured: tzorp's JIT reaches
 * its steady state (a proxy runs for months), HAProxy's C has none to reach. */
const WARMUP = arg('warmup', 3);
const JSON_OUT = process.argv.includes('--json');
/** --profile FILE: a V8 CPU profile of tzorp over one new-session run (after the measured rounds). */
const PROFILE = process.argv.includes('--profile')
  ? process.argv[process.argv.indexOf('--profile') + 1]!
  : null;
const MARK = '0x80000000';
const TZORP = '198.18.2.3';
const HAPROXY = '198.18.2.4';
/** tls-peers.ts floor: tzorp's TLS layer on node:tls with nothing between the two sessions. */
const FLOOR = '198.18.2.5';
const NAME = 'www.example.org';

const skip = netnsSkipReason();
if (skip) {
  console.error(`tls bench skipped: ${skip}`);
  process.exit(0);
}

const dir = mkdtempSync(join(tmpdir(), 'tzorp-tlsbench-'));
const ossl = (args: string[]) => execFileSync('openssl', args, { stdio: 'pipe' });
// the server's CA and certificate
const sCa = join(dir, 'server-ca.crt');
const sCaKey = join(dir, 'server-ca.key');
const sKey = join(dir, 'server.key');
const sCsr = join(dir, 'server.csr');
const sCert = join(dir, 'server.crt');
ossl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', sCaKey]);
ossl(['req', '-x509', '-new', '-key', sCaKey, '-subj', '/CN=bench server CA', '-days', '2', '-out', sCa]);
ossl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', sKey]);
ossl(['req', '-new', '-key', sKey, '-subj', `/CN=${NAME}`, '-out', sCsr]);
writeFileSync(join(dir, 'ext'), `subjectAltName=DNS:${NAME},IP:${TZORP},IP:${HAPROXY},IP:198.18.2.2\n`);
ossl(
  ['x509', '-req', '-in', sCsr, '-CA', sCa, '-CAkey', sCaKey, '-CAcreateserial', '-days', '2'].concat([
    '-extfile',
    join(dir, 'ext'),
    '-out',
    sCert,
  ]),
);
// the proxies' CA (tzorp's format) and HAProxy's fixed certificate from it
const pCa = await createCa({ name: 'bench inspection CA' });
writeFileSync(join(dir, 'ca.crt'), pCa.certPem);
writeFileSync(join(dir, 'ca.key'), pCa.keyPem, { mode: 0o600 });
const hapLeaf = await issueLeaf(await loadCa(pCa), [NAME, TZORP, HAPROXY]);
writeFileSync(join(dir, 'haproxy.pem'), `${hapLeaf.certPem.trim()}\n${hapLeaf.keyPem.trim()}\n`);

const ruleset = tproxyRuleset({
  table: 'tzorp_tlsbench',
  divert: [
    tproxyTo(`ip daddr ${TZORP} tcp dport 443`, 4, 50443),
    tproxyTo(`ip daddr ${HAPROXY} tcp dport 443`, 4, 50444),
    tproxyTo(`ip daddr ${FLOOR} tcp dport 443`, 4, 50445),
  ],
  input: ['ct state established,related accept'],
  forward: [],
});

const haproxyCfg = `global
  nbthread 1
  maxconn 8000
  ssl-default-bind-options ssl-min-ver TLSv1.2
${HAPROXY_HTTP_DEFAULTS}listen https
  bind 127.0.0.1:50444 transparent ssl crt ${join(dir, 'haproxy.pem')} alpn http/1.1
  server orig 0.0.0.0 ssl verify required ca-file ${sCa} sni str(${NAME}) alpn http/1.1
`;

interface Result {
  path: string;
  rpsKeepAlive: number;
  rpsNewSession: number;
  cpuKeepAlive: number;
  cpuNewSession: number;
}

const lab = await createLab({ serverAddrs: [TZORP, HAPROXY, FLOOR] });
try {
  await tproxyLab(lab, ruleset, MARK);
  writeFileSync(join(dir, 'haproxy.cfg'), haproxyCfg);
  startNginx(lab, dir, 2, { cert: sCert, key: sKey });
  /** A tls-peers.ts process (inspect or floor) on `port`, pinned, once it says READY. */
  const peer = async (mode: 'inspect' | 'floor', port: number, env?: Record<string, string>) => {
    const argv = [process.execPath, '--import', 'tsx', 'bench/macro/tls-peers.ts', mode, String(port)];
    const p = lab.spawn(
      'fw',
      pinned([...argv, join(dir, 'ca.crt'), join(dir, 'ca.key'), sCa]),
      env ? { env } : {},
    );
    await p.waitFor(/READY/, 90_000);
    return p;
  };
  const tz = await peer('inspect', 50443, PROFILE ? { TZORP_PROFILE_OUT: PROFILE } : undefined);
  const floor = await peer('floor', 50445);
  const hap = lab.spawn('fw', pinned(['haproxy', '-db', '-f', join(dir, 'haproxy.cfg')]));
  const ready = async (host: string, who: () => string) => {
    for (let i = 0; i < 100; i++) {
      const r = await lab.exec(
        'client',
        [
          'curl',
          '-s',
          '-m',
          '2',
          '--cacert',
          join(dir, 'ca.crt'),
          '--resolve',
          `${NAME}:443:${host}`,
          `https://${NAME}/`,
        ],
        { allowFail: true },
      );
      if (r.stdout === 'ok\n') return;
      await new Promise((r) => setTimeout(r, 200));
    }
    throw new Error(`no answer through ${host}: ${who()}`);
  };
  const paths: { name: string; host: string; proc: LabProcess }[] = [
    { name: 'tzorp http, tls inspect', host: TZORP, proc: tz },
    { name: 'haproxy (ssl, verify required)', host: HAPROXY, proc: hap },
    { name: 'node:tls floor (no HTTP)', host: FLOOR, proc: floor },
  ];
  for (const p of paths) await ready(p.host, () => p.proc.stderr());

  const wrk = async (host: string, close: boolean, seconds = SECONDS) => {
    const args = [
      'wrk',
      '-t1',
      '-c16',
      `-d${seconds}s`,
      '-H',
      `Host: ${NAME}`,
      ...(close ? ['-H', 'Connection: close'] : []),
      `https://${host}/`,
    ];
    const r = await lab.exec('client', args, { timeoutMs: (seconds + 30) * 1000 });
    const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(r.stdout)?.[1] ?? 0);
    const bad = /Non-2xx or 3xx responses: (\d+)|Socket errors: (.*)/.exec(r.stdout);
    if (bad) console.error(`${host}${close ? ' (new sessions)' : ''}: ${bad[0]}`);
    return rps;
  };
  const measure = async (p: (typeof paths)[number], close: boolean) => {
    const pids = treePids(p.proc.child.pid);
    const t0 = Date.now();
    const c0 = cpuTicks(pids);
    const rps = await wrk(p.host, close);
    return { rps, cpu: (cpuTicks(pids) - c0) / CLK_TCK / ((Date.now() - t0) / 1000) };
  };
  const per = new Map<string, Result[]>();
  if (WARMUP > 0)
    for (const p of paths) {
      await wrk(p.host, false, WARMUP);
      await wrk(p.host, true, WARMUP);
    }
  for (let round = 0; round < ROUNDS; round++) {
    for (const p of inRoundOrder(paths, round)) {
      const ka = await measure(p, false);
      const ns = await measure(p, true);
      if (!per.has(p.name)) per.set(p.name, []);
      per.get(p.name)!.push({
        path: p.name,
        rpsKeepAlive: ka.rps,
        rpsNewSession: ns.rps,
        cpuKeepAlive: ka.cpu,
        cpuNewSession: ns.cpu,
      });
    }
  }
  if (PROFILE) {
    // the peer's node process is the last of its tree (sh -> taskset -> node)
    const node = treePids(tz.child.pid).at(-1)!;
    process.kill(node, 'SIGUSR2');
    await wrk(TZORP, true);
    process.kill(node, 'SIGINT');
    await tz.exited();
    console.error(`CPU profile of one new-session run: ${PROFILE}`);
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const results: Result[] = [...per.values()].map((rs) => ({
    path: rs[0]!.path,
    rpsKeepAlive: median(rs.map((r) => r.rpsKeepAlive)),
    rpsNewSession: median(rs.map((r) => r.rpsNewSession)),
    cpuKeepAlive: median(rs.map((r) => r.cpuKeepAlive)),
    cpuNewSession: median(rs.map((r) => r.cpuNewSession)),
  }));
  const [t, h, f] = results as [Result, Result, Result];
  const ratio = { keepAlive: t.rpsKeepAlive / h.rpsKeepAlive, newSession: t.rpsNewSession / h.rpsNewSession };
  const floorRatio = {
    keepAlive: f.rpsKeepAlive / h.rpsKeepAlive,
    newSession: f.rpsNewSession / h.rpsNewSession,
  };
  if (JSON_OUT)
    console.log(JSON.stringify({ seconds: SECONDS, rounds: ROUNDS, results, ratio, floorRatio }, null, 2));
  else {
    console.log(
      `HTTPS through TLS-inspecting proxies, 1 CPU each, wrk -t1 -c16, ${SECONDS}s x ${ROUNDS} rounds (medians)`,
    );
    console.log('path                              req/s keep-alive  cpu   new TLS sessions/s  cpu');
    for (const r of results)
      console.log(
        `${r.path.padEnd(34)}${r.rpsKeepAlive.toFixed(0).padStart(16)}${r.cpuKeepAlive.toFixed(2).padStart(6)}${r.rpsNewSession.toFixed(0).padStart(21)}${r.cpuNewSession.toFixed(2).padStart(5)}`,
      );
    console.log(
      `tzorp / haproxy: keep-alive ${ratio.keepAlive.toFixed(2)}, new TLS sessions ${ratio.newSession.toFixed(2)}`,
    );
    console.log(
      `node:tls floor / haproxy (the ceiling of inspect on node:tls): keep-alive ${floorRatio.keepAlive.toFixed(2)}, new TLS sessions ${floorRatio.newSession.toFixed(2)}`,
    );
    console.log(
      `tzorp / node:tls floor: keep-alive ${(t.rpsKeepAlive / f.rpsKeepAlive).toFixed(2)}, new TLS sessions ${(t.rpsNewSession / f.rpsNewSession).toFixed(2)}`,
    );
    for (const rs of per.values())
      console.log(
        `rounds of ${rs[0]!.path}: keep-alive ${rs.map((r) => r.rpsKeepAlive.toFixed(0)).join(' / ')}, new sessions ${rs.map((r) => r.rpsNewSession.toFixed(0)).join(' / ')}`,
      );
  }
} finally {
  await lab.destroy();
  rmSync(dir, { recursive: true, force: true });
}
