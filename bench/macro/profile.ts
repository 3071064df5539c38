// Where a new plug connection and an HTTP request spend their time: runs the relay and the HTTP proxy
// of the benches (relay-peers.ts, http-peers.ts) in the lab's firewall namespace, drives them with wrk
// (2 s warm-up, then the profiled run: profile-hook.ts runs the V8 profiler over that window only, so
// start-up stays out), and prints the self time of the hottest functions grouped by where they live
// (tzorp's files by module, Node's net/stream internals, garbage collection, native code; time in
// system calls, the kernel's TCP work included, counts for the JS or native function that made them).
// A breakdown, not a measurement: shares of the samples, so it holds on a loaded machine too. Root.
//
//   node --import tsx bench/macro/profile.ts [--seconds 5] [--top 25] [--native-relay 0|1]
//
// bench/README.md ("Where the time goes") has a recorded breakdown.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLab, netnsSkipReason } from '../../test/harness/netns.ts';
import { tproxyRuleset, tproxyTo } from '../../test/harness/tproxy-ruleset.ts';
import { nginxConfig, shortConnections } from './bench-kit.ts';

const arg = (name: string, dflt: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const SECONDS = arg('seconds', 5);
const TOP = arg('top', 25);
const NATIVE = arg('native-relay', 1);
const MARK = '0x80000000';
const HERE = 'bench/macro';

const skip = netnsSkipReason();
if (skip) {
  console.error(`profile skipped: ${skip}`);
  process.exit(0);
}

const PLUG = '198.18.2.3';
const HTTP = '198.18.2.4';

interface ProfNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
  children?: number[];
}

/** Where a function lives, for the grouping. */
function place(url: string, fn: string): string {
  if (!url) {
    if (fn === '(garbage collector)') return 'gc';
    if (fn === '(program)' || fn === '(idle)' || fn === '(root)') return fn;
    return 'native (V8 builtins, libuv, syscalls)';
  }
  const m = /\/src\/([a-z]+\/(?:[a-z]+\/)?)/.exec(url);
  if (m && !url.includes('node_modules')) return `tzorp src/${m[1]}`;
  if (url.startsWith('node:internal/streams') || url.includes('node:stream')) return 'node streams';
  if (url.startsWith('node:net') || url.includes('stream_base') || url.includes('node:internal/net'))
    return 'node net';
  if (url.includes('timers')) return 'node timers';
  if (url.startsWith('node:')) return `node other (${url.replace(/^node:(internal\/)?/, '')})`;
  if (url.includes('node_modules')) return 'npm packages';
  return url;
}

function summarise(file: string, title: string): string {
  const p = JSON.parse(readFileSync(file, 'utf8')) as { nodes: ProfNode[] };
  const self = new Map<string, number>();
  const groups = new Map<string, number>();
  let total = 0;
  for (const n of p.nodes) {
    const h = n.hitCount ?? 0;
    if (h === 0) continue;
    const { functionName, url, lineNumber } = n.callFrame;
    if (functionName === '(idle)') continue;
    total += h;
    // (tsx-compiled files report line 0: the name and the file say enough)
    const short = url ? url.replace(/^.*\/(src|node_modules)\//, '$1/') : '';
    void lineNumber;
    const key = `${functionName || '(anonymous)'} ${short}`.trim();
    self.set(key, (self.get(key) ?? 0) + h);
    const g = place(url, functionName);
    groups.set(g, (groups.get(g) ?? 0) + h);
  }
  const pct = (x: number) => `${((100 * x) / total).toFixed(1)} %`;
  const lines = [
    `### ${title}`,
    '',
    `${total} samples (idle excluded)`,
    '',
    '| where | self time |',
    '|---|---|',
  ];
  for (const [g, h] of [...groups].sort((a, b) => b[1] - a[1])) lines.push(`| ${g} | ${pct(h)} |`);
  lines.push('', '| function | self time |', '|---|---|');
  for (const [k, h] of [...self].sort((a, b) => b[1] - a[1]).slice(0, TOP))
    lines.push(`| \`${k}\` | ${pct(h)} |`);
  return lines.join('\n');
}

const dir = mkdtempSync(join(tmpdir(), 'tzorp-profile-'));
const lab = await createLab({ serverAddrs: [PLUG, HTTP] });
try {
  await lab.exec('fw', ['nft', '-f', '-'], {
    input: tproxyRuleset({
      table: 'tzorp_profile',
      divert: [
        tproxyTo(`ip daddr ${PLUG} tcp dport 80`, 4, 50080),
        tproxyTo(`ip daddr ${HTTP} tcp dport 80`, 4, 50081),
      ],
      input: ['ct state established,related accept'],
    }),
  });
  await lab.sh(
    'fw',
    `ip rule add fwmark ${MARK}/${MARK} lookup 100 && ip route add local 0.0.0.0/0 dev lo table 100`,
  );
  await shortConnections(lab);
  writeFileSync(join(dir, 'nginx.conf'), nginxConfig(dir, 1));
  lab.spawn('server', ['nginx', '-c', join(dir, 'nginx.conf'), '-p', dir, '-g', 'daemon off;']);
  const env = { TZORP_NATIVE_RELAY: String(NATIVE) };
  const runs = [
    {
      title: `plug, new connection per request (wrk -c16, Connection: close), native relay ${NATIVE ? 'on' : 'off'}`,
      host: PLUG,
      argv: [`${HERE}/relay-peers.ts`, 'relay', '50080'],
      wrk: ['-H', 'Connection: close'],
    },
    {
      title: 'HTTP proxy, keep-alive (wrk -c16)',
      host: HTTP,
      argv: [`${HERE}/http-peers.ts`, 'proxy', '50081'],
      wrk: [] as string[],
    },
    {
      title: 'HTTP proxy, new connection per request (wrk -c16, Connection: close)',
      host: HTTP,
      argv: [`${HERE}/http-peers.ts`, 'proxy', '50081'],
      wrk: ['-H', 'Connection: close'],
    },
  ];
  const out: string[] = [];
  for (const [i, r] of runs.entries()) {
    const file = join(dir, `prof${i}.cpuprofile`);
    const proc = lab.spawn('fw', [process.execPath, '--import', 'tsx', ...r.argv], {
      env: { ...env, TZORP_PROFILE_OUT: file },
    });
    await proc.waitFor(/READY/, 90_000);
    const wrk = (secs: number) =>
      lab.exec('client', ['wrk', '-t1', '-c16', `-d${secs}s`, ...r.wrk, `http://${r.host}/`], {
        timeoutMs: (secs + 30) * 1000,
      });
    await wrk(2); // warm-up (JIT), not profiled
    proc.kill('SIGUSR2');
    const w = await wrk(SECONDS);
    const rps = /Requests\/sec:\s+([\d.]+)/.exec(w.stdout)?.[1] ?? '?';
    proc.kill('SIGINT');
    await proc.exited();
    out.push(summarise(file, `${r.title} — ${rps} req/s on a loaded machine`));
  }
  console.log(out.join('\n\n'));
} finally {
  await lab.destroy();
  rmSync(dir, { recursive: true, force: true });
}
