#!/usr/bin/env node
// `npm run bench -- NAME [flags...]`: runs one benchmark of bench/ (NAME is a file's base name without
// `.bench.ts`, e.g. `relay`, `http`, `kernel`, `engine`, `startup`), after checking that the machine is
// quiet: a benchmark recorded at load 17 says nothing, so a one-minute load average above 0.5 refuses
// the run unless `--force` is given (then the load is printed beside the result, for the record).
// `npm run bench` with no name lists the benchmarks.
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { basename, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(fileURLToPath(new URL('.', import.meta.url)), '..');
const QUIET_LOAD = 0.5;

function walk(dir, out) {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) walk(p, out);
    else if (e.name.endsWith('.bench.ts')) out.push(p);
  }
  return out;
}

const benches = new Map(walk(join(root, 'bench'), []).map((p) => [basename(p, '.bench.ts'), p]));
const [name, ...rest] = process.argv.slice(2);
if (!name || name === '--list') {
  console.log("benchmarks (npm run bench -- NAME [flags]; see bench/README.md for each one's flags):");
  for (const [n, p] of [...benches].sort()) console.log(`  ${n.padEnd(14)} ${relative(root, p)}`);
  process.exit(name ? 0 : 2);
}
const file = benches.get(name);
if (!file) {
  console.error(`bench: no benchmark named "${name}" (known: ${[...benches.keys()].sort().join(', ')})`);
  process.exit(2);
}
const force = rest.includes('--force');
const args = rest.filter((a) => a !== '--force');
const load1 = Number(readFileSync('/proc/loadavg', 'utf8').split(' ')[0]);
if (load1 > QUIET_LOAD && !force) {
  console.error(
    `bench: load average ${load1} > ${QUIET_LOAD}: the machine is not quiet, numbers would say nothing. ` +
      'Stop what runs, wait, or pass --force to run anyway (not for recording).',
  );
  process.exit(3);
}
// The benches run the daemon from dist/ (bin/tzorp): a dist/ older than src/ would silently run the
// sources through tsx instead (more memory, a slower start), so it is brought up to date first and the
// daemon is held to it (TZORP_REQUIRE_DIST=1).
const built = spawnSync(process.execPath, [join(root, 'scripts/build.mjs'), '--if-stale'], {
  stdio: 'inherit',
  cwd: root,
});
if (built.status !== 0) process.exit(built.status ?? 1);
console.log(`bench: ${relative(root, file)} ${args.join(' ')} (load average before: ${load1})`);
const r = spawnSync(process.execPath, ['--import', 'tsx', file, ...args], {
  stdio: 'inherit',
  cwd: root,
  env: { ...process.env, TZORP_REQUIRE_DIST: '1' },
});
process.exit(r.status ?? 1);
