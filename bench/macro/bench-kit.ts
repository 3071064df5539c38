// Pieces the macro benchmarks share: the CPU time of a process tree (from /proc) and nginx as the
// server peer (answers `ok`, plain or TLS).
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Lab, LabProcess } from '../../test/harness/netns.ts';

export const CLK_TCK = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;

/** utime + stime of the processes, in clock ticks (gone processes count 0). */
export function cpuTicks(pids: number[]): number {
  let t = 0;
  for (const pid of pids) {
    try {
      const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
      t += Number(f[11]) + Number(f[12]); // utime, stime (fields 14 and 15)
    } catch {}
  }
  return t;
}

/** utime and stime in clock ticks of every thread of the processes, by "process comm / thread comm"
 * (threads of the same name summed; gone threads count 0): where a run's CPU went. */
export function threadTicks(pids: number[]): Map<string, { user: number; sys: number }> {
  const out = new Map<string, { user: number; sys: number }>();
  for (const pid of pids) {
    let tids: string[];
    let pcomm: string;
    try {
      tids = readdirSync(`/proc/${pid}/task`);
      pcomm = readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
    } catch {
      continue;
    }
    for (const tid of tids) {
      try {
        const st = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
        const comm = st.slice(st.indexOf('(') + 1, st.lastIndexOf(')'));
        const f = st.slice(st.lastIndexOf(') ') + 2).split(' ');
        const key = `${pcomm}[${pid === pids[0] ? 'root' : pid}] / ${comm}`;
        const t = out.get(key) ?? { user: 0, sys: 0 };
        t.user += Number(f[11]);
        t.sys += Number(f[12]);
        out.set(key, t);
      } catch {}
    }
  }
  return out;
}

/** Every process of a tree (Squid forks a worker; proxies run under `sh`/`taskset`). */
export function treePids(root: number | undefined): number[] {
  if (!root) return [];
  const out = [root];
  for (let i = 0; i < out.length; i++) {
    try {
      const kids = readFileSync(`/proc/${out[i]}/task/${out[i]}/children`, 'utf8').trim();
      if (kids) out.push(...kids.split(' ').map(Number));
    } catch {}
  }
  return out;
}

/** nginx answering `ok` on port 80, or on 443 with TLS when a certificate is given; its files in `dir`. */
export function nginxConfig(dir: string, workers: number, tls?: { cert: string; key: string }): string {
  const listen = tls
    ? `listen 443 ssl backlog=4096;\n    ssl_certificate ${tls.cert};\n    ssl_certificate_key ${tls.key};`
    : 'listen 80 backlog=4096;';
  return `worker_processes ${workers};
pid ${dir}/nginx.pid;
error_log ${dir}/nginx-error.log;
events { worker_connections 8192; }
http {
  access_log off;
  keepalive_requests 1000000;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  server {
    ${listen}
    location / { return 200 'ok\\n'; }
    location = /blob.bin { root ${dir}/www; }
  }
}
`;
}

/** The firewall namespace of a TPROXY benchmark: the ruleset, policy routing of marked packets to
 * local delivery, and the short-connection settings (shortConnections). */
export async function tproxyLab(lab: Lab, ruleset: string, mark: string): Promise<void> {
  await lab.exec('fw', ['nft', '-f', '-'], { input: ruleset });
  await lab.sh(
    'fw',
    `ip rule add fwmark ${mark}/${mark} lookup 100 && ip route add local 0.0.0.0/0 dev lo table 100`,
  );
  await shortConnections(lab);
}

/** Load settings for tens of thousands of short connections a second, in the lab's own namespaces:
 * client and firewall reuse TIME_WAIT ports and have a wide port range (linux-tproxy.md pitfall 10),
 * and the firewall's conntrack forgets a closed connection after 1 s instead of 120 s. Without that,
 * a run of `Connection: close` rounds (several hundred thousand connections in two minutes, each
 * proxied one two entries) fills the namespace's conntrack table (nf_conntrack_max, 262,144 here):
 * the kernel then drops new SYNs ("nf_conntrack: table full, dropping packet"), and the paths measured
 * later in a run collapse (bench/README.md, 2026-12-06). A firewall at such rates needs the same
 * tuning (docs/operations.md). */
export async function shortConnections(lab: Lab): Promise<void> {
  for (const role of ['client', 'fw'] as const)
    await lab.sh(
      role,
      'sysctl -qw net.ipv4.tcp_tw_reuse=1 && sysctl -qw net.ipv4.ip_local_port_range="1024 65535"',
    );
  await lab.sh('fw', 'sysctl -qw net.netfilter.nf_conntrack_tcp_timeout_time_wait=1');
}

/** argv run with as many descriptors as the hard limit allows. */
export const ulimitMax = (argv: string[]): string[] => [
  'sh',
  '-c',
  'ulimit -n "$(ulimit -Hn)"; exec "$@"',
  'sh',
  ...argv,
];

/** argv pinned to CPU 1 (every proxy of a comparison gets the same single core), with ulimitMax. */
export const pinned = (argv: string[]): string[] => ulimitMax(['taskset', '-c', '1', ...argv]);

/** nginx (nginxConfig) in the lab's server namespace, its files in `dir`. */
export function startNginx(
  lab: Lab,
  dir: string,
  workers: number,
  tls?: { cert: string; key: string },
): LabProcess {
  writeFileSync(join(dir, 'nginx.conf'), nginxConfig(dir, workers, tls));
  return lab.spawn('server', ['nginx', '-c', join(dir, 'nginx.conf'), '-p', dir, '-g', 'daemon off;']);
}

/** relay-peers.ts's echo server on `port` in the server namespace, ready. */
export async function startEcho(lab: Lab, port: number): Promise<LabProcess> {
  const echo = lab.spawn(
    'server',
    ulimitMax([process.execPath, '--import', 'tsx', 'bench/macro/relay-peers.ts', 'echo', String(port)]),
  );
  await echo.waitFor(/READY/, 90_000);
  return echo;
}

/** `n` idle connections from the client namespace to host:port (relay-peers.ts idle: each echoes one
 * byte end to end first, so both legs of a relay exist), open; how many were held. Kill the process to
 * close them. */
export async function openIdle(
  lab: Lab,
  host: string,
  port: number,
  n: number,
  timeoutMs: number,
): Promise<{ idle: LabProcess; held: number }> {
  const idle = lab.spawn(
    'client',
    ulimitMax([
      process.execPath,
      '--import',
      'tsx',
      'bench/macro/relay-peers.ts',
      'idle',
      host,
      String(port),
      String(n),
    ]),
  );
  const [line] = await idle.waitFor(/OPEN \d+/, timeoutMs);
  return { idle, held: Number(line!.split(' ')[1]) };
}

/** HAProxy as a transparent TCP relay to the original destination (`server 0.0.0.0`), one thread,
 * listening on 127.0.0.1:50090 (where the benches' TPROXY rules divert). */
export function haproxyTransparentTcp(maxconn: number, timeoutS: number): string {
  return `global
  nbthread 1
  maxconn ${maxconn}
defaults
  mode tcp
  timeout connect 5s
  timeout client ${timeoutS}s
  timeout server ${timeoutS}s
listen relay
  bind 127.0.0.1:50090 transparent
  server orig 0.0.0.0
`;
}

/** The `defaults` section of the HAProxy peers in `mode http` (this file's and tls.bench.ts's): keep-alive
 * on both sides, the usual timeouts. */
export const HAPROXY_HTTP_DEFAULTS = `defaults
  mode http
  option http-keep-alive
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  timeout http-keep-alive 60s
`;

/** HAProxy in `mode http` with keep-alive on both sides, intercepting with TPROXY on 127.0.0.1:`port`
 * and connecting to the original destination (server 0.0.0.0), one thread. `splice`: `option
 * splice-auto` (kernel splicing of bodies), with `maxpipes 1000`: HAProxy's default, maxconn/4, would
 * ask for more descriptors than the 20,000 a process may have here. */
export function haproxyTransparentHttp(port: number, splice = false): string {
  return `global
  nbthread 1
  maxconn 8000
${splice ? '  maxpipes 1000\n' : ''}${HAPROXY_HTTP_DEFAULTS}${splice ? '  option splice-auto\n' : ''}listen http
  bind 127.0.0.1:${port} transparent
  server orig 0.0.0.0
`;
}

/** argv of the daemon under test: `tzorp run POLICY` with its control socket in `dir` and N workers,
 * from this checkout's compiled tree (bin/tzorp). */
export const tzorpRunArgv = (
  policyFile: string,
  dir: string,
  workers: number,
  extra: string[] = [],
): string[] => [
  process.execPath,
  'bin/tzorp',
  'run',
  policyFile,
  '--control',
  join(dir, 'control.sock'),
  '--workers',
  String(workers),
  ...extra,
];

/** A policy with one plug service for 198.18.1.0/24 to 198.18.2.0/24 on `port` (the idle benches). */
export const plugPolicy = (port: number): string => `zones:
  clients: { addresses: [198.18.1.0/24] }
  servers: { addresses: [198.18.2.0/24] }
services:
  plug: { type: proxy, proxy: plug }
rules:
  - { id: 1, service: plug, proto: tcp, src_zone: clients, dst_zone: servers, dst_port: ${port} }
`;

/** The paths of a bench in the order of one round: each round starts one path later than the one
 * before, so that no path always runs right after the same one (a run of `Connection: close` rounds
 * leaves a hundred thousand connections' TIME_WAIT and conntrack state behind it, and a fixed order
 * would give the path after it that place in every round). Results are kept by path, so the order of
 * the report does not change. */
export function inRoundOrder<T>(paths: readonly T[], round: number): T[] {
  const k = paths.length === 0 ? 0 : round % paths.length;
  return [...paths.slice(k), ...paths.slice(0, k)];
}
