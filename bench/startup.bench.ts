// Start-up of the tzorp command (issue 11): wall-clock time from exec to exit of `tzorp --version`,
// `tzorp status` and `tzorp check examples/policy.yaml`, side by side for the ways tzorp can run:
//   installed  node dist/cli/main.js        what the Debian package's /usr/bin/tzorp runs
//   checkout   node bin/tzorp                the same compiled tree plus bin/tzorp's check that dist/
//                                            is current (TZORP_REQUIRE_DIST=1: never the sources)
//   tsx        node bin/tzorp, from source   TZORP_FROM_SOURCE=1: the sources through tsx (the old path)
// The three are interleaved round by round so a drifting machine load hits all alike; medians are
// reported, with the ratio to the tsx path. `status` asks --control PATH (a running daemon) when given,
// else a socket nobody listens on (the no-daemon answer, exit 1, which is what the command costs without
// the daemon's reply).
// Run: node --import tsx bench/startup.bench.ts [--runs 15] [--control PATH] [--json]
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const argv = process.argv.slice(2);
const opt = (name: string): string | undefined => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? argv[i + 1] : undefined;
};
const RUNS = Number(opt('runs') ?? 15);
const CONTROL = opt('control') ?? join(ROOT, `.bench-no-daemon-${process.pid}.sock`);
const JSON_OUT = argv.includes('--json');

// dist/ must be the compiled form of src/, or the "compiled" columns would measure something else.
const built = spawnSync(process.execPath, [join(ROOT, 'scripts/build.mjs'), '--if-stale'], {
  stdio: 'inherit',
});
if (built.status !== 0) process.exit(1);

const COMMANDS: Record<string, string[]> = {
  '--version': ['--version'],
  status: ['status', '--control', CONTROL],
  'check examples/policy.yaml': ['check', join(ROOT, 'examples/policy.yaml')],
};
const PATHS: Record<string, { entry: string; env: Record<string, string> }> = {
  installed: { entry: join(ROOT, 'dist/cli/main.js'), env: {} },
  checkout: { entry: join(ROOT, 'bin/tzorp'), env: { TZORP_REQUIRE_DIST: '1' } },
  tsx: { entry: join(ROOT, 'bin/tzorp'), env: { TZORP_FROM_SOURCE: '1' } },
};

function once(entry: string, args: string[], env: Record<string, string>): number {
  const t0 = process.hrtime.bigint();
  const r = spawnSync(process.execPath, [entry, ...args], {
    cwd: ROOT,
    env: { ...process.env, TZORP_REQUIRE_DIST: '', TZORP_FROM_SOURCE: '', ...env },
    encoding: 'utf8',
  });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  // status without a daemon exits 1 with TZ3001; anything else unexpected means a broken measurement
  const expected = args[0] === 'status' && !opt('control') ? 1 : 0;
  if (r.status !== expected) {
    throw new Error(`${entry} ${args.join(' ')}: exit ${r.status}, expected ${expected}\n${r.stderr}`);
  }
  return ms;
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] as number;
};

const samples: Record<string, Record<string, number[]>> = {};
for (const c of Object.keys(COMMANDS))
  samples[c] = Object.fromEntries(Object.keys(PATHS).map((p) => [p, []]));
for (let round = 0; round < RUNS; round++) {
  for (const [c, args] of Object.entries(COMMANDS)) {
    for (const [p, { entry, env }] of Object.entries(PATHS)) samples[c]![p]!.push(once(entry, args, env));
  }
}

const result = Object.entries(samples).map(([command, byPath]) => {
  const med = Object.fromEntries(Object.entries(byPath).map(([p, xs]) => [p, median(xs)]));
  return {
    command,
    medianMs: med,
    ratioToTsx: { installed: med.installed! / med.tsx!, checkout: med.checkout! / med.tsx! },
  };
});
if (JSON_OUT) {
  console.log(JSON.stringify({ runs: RUNS, node: process.version, result }, null, 2));
} else {
  console.log(`tzorp start-up, median of ${RUNS} runs each, ms (node ${process.version})\n`);
  console.log(
    '| command | installed (dist/) | checkout (bin/tzorp, dist/) | tsx (sources) | installed / tsx | checkout / tsx |',
  );
  console.log('|---|---|---|---|---|---|');
  for (const r of result) {
    const m = r.medianMs;
    console.log(
      `| \`tzorp ${r.command}\` | ${m.installed!.toFixed(0)} | ${m.checkout!.toFixed(0)} | ${m.tsx!.toFixed(0)} | ${r.ratioToTsx.installed.toFixed(2)} | ${r.ratioToTsx.checkout.toFixed(2)} |`,
    );
  }
}
