// Kernel benchmark (issue 3): (1) compile and apply time and kernel memory of a policy with 10,000 rules
// and 100,000 zone networks; (2) new-connection rate and throughput of a forward service through the
// firewall namespace with no ruleset, with tzorp's ruleset of 10 / 1,000 / 10,000 rules, and with the
// same policy as a naive linear iptables (iptables-nft) ruleset, side by side in one run.
// (3) the apply path (compile + one transaction of differences) at that scale: first apply and reloads.
// (4) the first apply in a fresh process each, staged against one transaction, interleaved.
// Run as root: node --import tsx bench/macro/kernel.bench.ts [--skip-scale] [--skip-rate] [--skip-reload] [--skip-daemon] [--skip-first] [--first-runs N] [--seconds N]
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildIR, forgetLastCompile, renderRuleset } from '../../src/kernel/compile/index.ts';
import { applyPolicy, compilePolicy } from '../../src/kernel/index.ts';
import { ADDR, createLab, type Lab } from '../../test/harness/netns.ts';
import { policyDocument } from '../micro/engine-policy.ts';
import { shortConnections } from './bench-kit.ts';
import { linearIptables, ratePolicy, scalePolicy } from './kernel-policy.ts';
import { ensurePackages } from './peers-install.ts';

ensurePackages(['nginx', 'wrk', 'iperf3']);

const args = process.argv.slice(2);
const seconds = Number(args[args.indexOf('--seconds') + 1] || 4) || 4;

function meminfo(): Record<string, number> {
  const out: Record<string, number> = {};
  for (const l of readFileSync('/proc/meminfo', 'utf8').split('\n')) {
    const m = /^(\w+):\s+(\d+) kB/.exec(l);
    if (m) out[m[1]!] = Number(m[2]);
  }
  return out;
}

/** Wall, user and system seconds of a command (bash's `time`, which includes children). */
function timed(cmd: string): { real: number; user: number; sys: number; ok: boolean; err: string } {
  const r = spawnSync('bash', ['-c', `TIMEFORMAT='%R %U %S'; time ( ${cmd} 2>/tmp/tzorp-bench-err )`], {
    encoding: 'utf8',
  });
  const t = r.stderr.trim().split('\n').pop()!.split(' ').map(Number);
  let err = '';
  try {
    err = readFileSync('/tmp/tzorp-bench-err', 'utf8');
  } catch {}
  return { real: t[0]!, user: t[1]!, sys: t[2]!, ok: r.status === 0, err };
}

function scale(): void {
  console.log('## Compile and apply: 10,000 rules, 100,000 zone networks\n');
  let t = performance.now();
  const policy = scalePolicy(10_000, 100_000);
  const gen = performance.now() - t;
  t = performance.now();
  const { ir } = buildIR(policy);
  const tIr = performance.now() - t;
  t = performance.now();
  const text = renderRuleset(ir);
  const tRender = performance.now() - t;
  const dir = mkdtempSync(join(tmpdir(), 'tzorp-bench-'));
  const file = join(dir, 'scale.nft');
  writeFileSync(file, text);
  const ns = `tzb${process.pid}scale`;
  execFileSync('ip', ['netns', 'add', ns]);
  try {
    execFileSync('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
    const check = timed(`ip netns exec ${ns} nft -c -f ${file}`);
    const m0 = meminfo();
    const apply = timed(`ip netns exec ${ns} nft -f ${file}`);
    const m1 = meminfo();
    const reapply = timed(`ip netns exec ${ns} nft -f ${file}`);
    const del = timed(`ip netns exec ${ns} nft delete table inet tzorp`);
    const m2 = meminfo();
    const elements = (text.match(/^\t[^\t#].*[,:]/gm) ?? []).length;
    const tiers = `${ir.families[4].tiers.length} IPv4 / ${ir.families[6].tiers.length} IPv6`;
    console.log('| step | wall s | user s | sys s |');
    console.log('|---|---|---|---|');
    console.log(`| generate policy (bench only) | ${(gen / 1000).toFixed(2)} | | |`);
    console.log(`| compile: policy → IR | ${(tIr / 1000).toFixed(2)} | | |`);
    console.log(
      `| compile: IR → nft text (${(text.length / 1e6).toFixed(1)} MB) | ${(tRender / 1000).toFixed(2)} | | |`,
    );
    for (const [n, x] of [
      ['nft -c (check)', check],
      ['nft -f (apply, empty namespace)', apply],
      ['nft -f (re-apply: replace the table)', reapply],
      ['nft delete table', del],
    ] as const) {
      console.log(
        `| ${n}${x.ok ? '' : ' FAILED'} | ${x.real.toFixed(2)} | ${x.user.toFixed(2)} | ${x.sys.toFixed(2)} |`,
      );
      if (!x.ok) console.log(x.err.slice(0, 500));
    }
    console.log(
      `\nDecision tiers: ${tiers}; set/map elements: about ${elements}. Kernel memory of the table (host-wide ` +
        `/proc/meminfo deltas, other load adds noise): Slab +${((m1.Slab! - m0.Slab!) / 1024).toFixed(0)} MB, ` +
        `MemAvailable -${((m0.MemAvailable! - m1.MemAvailable!) / 1024).toFixed(0)} MB; after delete Slab ` +
        `${((m2.Slab! - m0.Slab!) / 1024).toFixed(0)} MB vs. before apply.\n`,
    );
  } finally {
    spawnSync('ip', ['netns', 'del', ns]);
  }
}

/** The daemon's apply path (applyPolicy: compile, then one nft transaction of the differences to the
 * installed table) at scale: a first apply, then reloads with one rule changed, one network moved, with 1 % of the zone
 * networks moved to other zones, and with a change of shape (a rule with a new score: a new tier). */
async function reloads(): Promise<void> {
  console.log('## The apply path: first apply and reloads, 10,000 rules, 100,000 zone networks\n');
  const ns = `tzb${process.pid}reload`;
  execFileSync('ip', ['netns', 'add', ns]);
  const prefix = ['ip', 'netns', 'exec', ns];
  try {
    execFileSync('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
    const base = scalePolicy(10_000, 100_000);
    console.log('| step | compile s | apply s | mode | changed elements |');
    console.log('|---|---|---|---|---|');
    // the first apply as `tzorp apply` makes it: compiled and applied by applyPolicy, which loads the
    // zone section while the rest compiles (apply/staged.ts); the compile is inside the one time
    const m0 = meminfo();
    let t0 = performance.now();
    const first = await applyPolicy(base, { prefix });
    const tFirst = (performance.now() - t0) / 1000;
    const slab = (meminfo().Slab! - m0.Slab!) / 1024;
    console.log(
      `| first apply (empty namespace), compile and apply together | | ${tFirst.toFixed(2)} (both) | ${first.mode}${first.staged ? ', staged' : ''}${first.fallback ? ` (${first.fallback})` : ''} | |`,
    );
    // the same into another empty namespace in one transaction after the whole compile (what the first
    // apply was before the staging), from nothing again
    const other = `${ns}b`;
    execFileSync('ip', ['netns', 'add', other]);
    try {
      execFileSync('ip', ['-n', other, 'link', 'set', 'lo', 'up']);
      forgetLastCompile();
      t0 = performance.now();
      const compiled = compilePolicy(base);
      const tc = (performance.now() - t0) / 1000;
      t0 = performance.now();
      const r = await applyPolicy(base, { prefix: ['ip', 'netns', 'exec', other], compiled });
      const ta = (performance.now() - t0) / 1000;
      console.log(
        `| first apply (empty namespace), compile then one transaction | ${tc.toFixed(2)} | ${ta.toFixed(2)} | ${r.mode} | |`,
      );
    } finally {
      spawnSync('ip', ['netns', 'del', other]);
    }
    // the reloads' policies only now: the first applies run in a process that holds one policy, as
    // `tzorp apply` does (a larger heap makes every tool the apply starts slower to fork)
    const oneRule = structuredClone(base);
    oneRule.rules[4999]!.dstPort = [{ lo: 44444, hi: 44444 }];
    const oneNet = structuredClone(oneRule);
    {
      const zs = [...oneNet.zones.values()].filter((z) => z.name !== 'internet' && z.addresses.length > 1);
      zs[500]!.addresses.push(zs[100]!.addresses.pop()!);
    }
    const onePercent = structuredClone(oneNet);
    const zones = [...onePercent.zones.values()].filter((z) => z.name !== 'internet');
    let moved = 0;
    for (let i = 0; moved < 1000 && i < zones.length; i++) {
      const from = zones[i]!;
      const to = zones[(i + 997) % zones.length]!;
      while (moved < 1000 && from.addresses.length > 1) {
        to.addresses.push(from.addresses.pop()!);
        moved++;
      }
    }
    const shape = structuredClone(onePercent);
    const last = shape.rules[shape.rules.length - 1]!;
    shape.rules.push({ ...structuredClone(last), id: last.id + 1, srcPort: [{ lo: 1024, hi: 65535 }] });
    let previous: Awaited<ReturnType<typeof applyPolicy>>['model'] | null = first.model;
    for (const [name, policy] of [
      ['reload, nothing changed', base],
      ['reload, one rule changed', oneRule],
      ['reload, one network moved to another zone', oneNet],
      [`reload, 1 % of the networks (${moved}) moved to other zones`, onePercent],
      ['reload, a new score shape (one rule with src_port: a new tier)', shape],
    ] as const) {
      let t = performance.now();
      const compiled = compilePolicy(policy);
      const tc = (performance.now() - t) / 1000;
      t = performance.now();
      const r = await applyPolicy(policy, { prefix, previous, compiled });
      const ta = (performance.now() - t) / 1000;
      previous = r.model;
      const c = r.changed;
      const changed = c
        ? `+${c.elementsAdded} / -${c.elementsRemoved} elements, ${c.chainsReplaced} chains, +${c.objectsAdded} / -${c.objectsRemoved} sets or maps`
        : '';
      console.log(
        `| ${name} | ${tc.toFixed(2)} | ${ta.toFixed(2)} | ${r.mode}${r.fallback ? ` (${r.fallback})` : ''} | ${changed} |`,
      );
    }
    console.log(
      `\nKernel memory of the table after the first apply: Slab +${slab.toFixed(0)} MB (host-wide /proc/meminfo delta).\n`,
    );
  } finally {
    spawnSync('ip', ['netns', 'del', ns]);
  }
}

/** `tzorp reload` end to end, as an administrator waits for it: the daemon (`tzorp run --workers 2`)
 * runs the 10,000-rule policy as a JSON file, one rule's port changes in the file, and the command is
 * timed until it answers (load and validate the text, compile, the workers' new generation, the
 * kernel's transaction). */
async function daemonReload(): Promise<void> {
  console.log('## tzorp reload end to end, 10,000 rules, 100,000 zone networks (JSON file)\n');
  const ns = `tzb${process.pid}daemon`;
  const dir = mkdtempSync(join(tmpdir(), 'tzorp-kbench-daemon-'));
  const file = join(dir, 'policy.json');
  const control = join(dir, 'control.sock');
  execFileSync('ip', ['netns', 'add', ns]);
  let daemon: ReturnType<typeof spawn> | null = null;
  try {
    execFileSync('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
    const doc = policyDocument(scalePolicy(10_000, 100_000)) as { rules: { dst_port?: unknown }[] };
    writeFileSync(file, JSON.stringify(doc));
    let out = '';
    daemon = spawn('ip', [
      'netns',
      'exec',
      ns,
      process.execPath,
      'bin/tzorp',
      'run',
      file,
      '--workers',
      '2',
      '--control',
      control,
    ]);
    daemon.stderr?.on('data', (b: Buffer) => {
      out += b.toString();
    });
    const t0 = performance.now();
    while (!out.includes('tzorp running')) {
      if (performance.now() - t0 > 300_000) throw new Error(`the daemon did not start:\n${out.slice(-2000)}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    const startS = (performance.now() - t0) / 1000;
    await new Promise((r) => setTimeout(r, 100));
    const running = out.split('\n').find((l) => l.includes('tzorp running')) ?? '';
    const parts = ['workers_start', 'load', 'compile', 'prepare', 'apply'].map(
      (k) => new RegExp(`${k}_ms='?(\\d+)`).exec(running)?.[1] ?? '?',
    );
    console.log(
      `start (policy file to running daemon): ${startS.toFixed(2)} s; ` +
        `workers start / load (meanwhile) / compile / workers / kernel ms: ${parts.join(' / ')}\n`,
    );
    console.log("| reload | wall s | load / compile / workers / kernel ms (the daemon's log line) |");
    console.log('|---|---|---|');
    for (const [name, port] of [
      ['one rule changed', 44444],
      ['the same rule changed again', 44445],
      ['nothing changed', 44445],
    ] as const) {
      doc.rules[4999]!.dst_port = [port];
      writeFileSync(file, JSON.stringify(doc));
      const t = performance.now();
      execFileSync(process.execPath, ['bin/tzorp', 'reload', '--control', control]);
      const wall = (performance.now() - t) / 1000;
      await new Promise((r) => setTimeout(r, 100));
      const line =
        out
          .split('\n')
          .filter((l) => l.includes('Policy reloaded'))
          .pop() ?? '';
      const ms = ['load', 'compile', 'prepare', 'apply'].map(
        (k) => new RegExp(`${k}_ms='?(\\d+)`).exec(line)?.[1] ?? '?',
      );
      console.log(`| ${name} | ${wall.toFixed(2)} | ${ms.join(' / ')} |`);
    }
    console.log('');
  } finally {
    if (daemon) {
      spawnSync(process.execPath, ['bin/tzorp', 'stop', '--control', control]);
      daemon.kill('SIGKILL');
    }
    spawnSync('ip', ['netns', 'del', ns]);
    rmSync(dir, { recursive: true, force: true });
  }
}

async function rate(): Promise<void> {
  console.log(`## New connections/s and throughput of a forward service (${seconds} s per run)\n`);
  const lab: Lab = await createLab();
  try {
    const dir = mkdtempSync(join(tmpdir(), 'tzorp-nginx-'));
    writeFileSync(
      join(dir, 'nginx.conf'),
      `worker_processes 1; error_log ${dir}/error.log; pid ${dir}/nginx.pid;
events { worker_connections 4096; }
http { access_log off; server { listen 8080 reuseport backlog=4096; location / { return 200 "ok\\n"; } } }
`,
    );
    const nginx = lab.spawn('server', [
      'nginx',
      '-p',
      dir,
      '-c',
      join(dir, 'nginx.conf'),
      '-g',
      'daemon off;',
    ]);
    const iperf = lab.spawn('server', ['iperf3', '-s']);
    await shortConnections(lab);
    await lab.sh('server', 'sysctl -qw net.ipv4.tcp_tw_reuse=1');
    // wait for nginx
    for (let i = 0; i < 50; i++) {
      const r = await lab.exec('client', ['curl', '-s', '-m', '1', `http://${ADDR.server4}:8080/`], {
        allowFail: true,
      });
      if (r.stdout.includes('ok')) break;
      await new Promise((res) => setTimeout(res, 100));
    }
    const fwPrefix = ['ip', 'netns', 'exec', lab.ns.fw];
    const policies = new Map([10, 1000, 10_000].map((n) => [n, ratePolicy(n, 8080)]));
    const configs: { name: string; setup: () => Promise<void> }[] = [
      { name: 'no ruleset', setup: async () => {} },
      ...[10, 1000, 10_000].map((n) => ({
        name: `tzorp, ${n} rules`,
        setup: async () => {
          await applyPolicy(policies.get(n)!, { prefix: fwPrefix });
        },
      })),
      ...[10, 1000, 10_000].map((n) => ({
        name: `linear iptables-nft, ${n} rules`,
        setup: async () => {
          await lab.exec('fw', ['iptables-restore'], { input: linearIptables(n, 8080) });
        },
      })),
    ];
    const results = new Map<string, number[]>();
    const reset = async (): Promise<void> => {
      await lab.sh(
        'fw',
        'nft flush ruleset; ip rule del pref 9000 2>/dev/null; ip rule del pref 9001 2>/dev/null; true',
      );
      await lab.sh('fw', 'conntrack -F 2>/dev/null; true');
    };
    const wrk = async (): Promise<number> => {
      const r = await lab.exec(
        'client',
        ['wrk', '-t1', '-c16', `-d${seconds}s`, '-H', 'Connection: close', `http://${ADDR.server4}:8080/`],
        { timeoutMs: (seconds + 30) * 1000 },
      );
      const m = /Requests\/sec:\s+([\d.]+)/.exec(r.stdout);
      return m ? Number(m[1]) : 0;
    };
    for (let round = 0; round < 2; round++) {
      for (const c of configs) {
        await reset();
        await c.setup();
        // a first connection proves the path is open (and loads conntrack/NAT modules)
        const probe = await lab.exec('client', ['curl', '-s', '-m', '3', `http://${ADDR.server4}:8080/`], {
          allowFail: true,
        });
        if (!probe.stdout.includes('ok')) throw new Error(`${c.name}: the forward path is closed`);
        const rps = await wrk();
        results.set(c.name, [...(results.get(c.name) ?? []), rps]);
      }
    }
    const base = Math.max(...results.get('no ruleset')!);
    console.log('| ruleset | conn/s run 1 | conn/s run 2 | best vs. no ruleset |');
    console.log('|---|---|---|---|');
    for (const [name, v] of results) {
      console.log(
        `| ${name} | ${v.map((x) => x.toFixed(0)).join(' | ')} | ${((Math.max(...v) / base) * 100).toFixed(0)} % |`,
      );
    }
    console.log('\n| ruleset | iperf3 1 stream, Gbit/s |');
    console.log('|---|---|');
    for (const c of [configs[0]!, configs[3]!, configs[6]!]) {
      await reset();
      await c.setup();
      const r = await lab.exec('client', ['iperf3', '-c', ADDR.server4, '-t', String(seconds), '-J'], {
        timeoutMs: (seconds + 30) * 1000,
      });
      const j = JSON.parse(r.stdout) as { end: { sum_received: { bits_per_second: number } } };
      console.log(`| ${c.name} | ${(j.end.sum_received.bits_per_second / 1e9).toFixed(2)} |`);
    }
    nginx.kill('SIGKILL');
    iperf.kill('SIGKILL');
  } finally {
    await lab.destroy();
  }
}

/** The first apply as `tzorp apply` makes it, each in a process of its own (kernel-first-apply.ts):
 * staged (apply/staged.ts) and in one transaction after the whole compile, interleaved run by run. */
function firstApplies(): void {
  const runs = Number(args[args.indexOf('--first-runs') + 1] || 5) || 5;
  console.log(
    `## First apply in a fresh process, 10,000 rules, 100,000 zone networks (${runs} runs each, interleaved)\n`,
  );
  const times: Record<'staged' | 'whole', number[]> = { staged: [], whole: [] };
  for (let i = 0; i < runs; i++) {
    for (const way of ['staged', 'whole'] as const) {
      const r = spawnSync(
        process.execPath,
        ['--import', 'tsx', join(import.meta.dirname, 'kernel-first-apply.ts'), way],
        { encoding: 'utf8' },
      );
      const line = r.stdout.trim().split('\n').pop() ?? '';
      const j = JSON.parse(line) as { s: number; staged: boolean; fallback: string | null };
      if (way === 'staged' && !j.staged)
        throw new Error(`the staged first apply was not staged: ${j.fallback}`);
      times[way].push(j.s);
    }
  }
  const med = (a: number[]): number => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)]!;
  console.log('| first apply (compile included) | median s | runs s |');
  console.log('|---|---|---|');
  for (const way of ['staged', 'whole'] as const) {
    const name =
      way === 'staged'
        ? 'staged (zone section loaded while the rest compiles)'
        : 'compile, then one transaction';
    console.log(
      `| ${name} | ${med(times[way]).toFixed(2)} | ${times[way].map((t) => t.toFixed(2)).join(' / ')} |`,
    );
  }
  console.log('');
}

if (process.getuid?.() !== 0) {
  console.error('kernel.bench.ts needs root (network namespaces)');
  process.exit(2);
}
console.log(
  `# tzorp kernel benchmark (${new Date().toISOString()}, load average ${readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')})\n`,
);
if (!args.includes('--skip-rate')) await rate();
if (!args.includes('--skip-scale')) scale();
if (!args.includes('--skip-first')) firstApplies();
if (!args.includes('--skip-reload')) await reloads();
if (!args.includes('--skip-daemon')) await daemonReload();
process.exit(0);
