#!/usr/bin/env node
// Runs every test file under test/ with node:test (through tsx). Arguments narrow the set:
// `npm test -- test/unit/engine` runs the files below that path. Namespace tests need root; without it
// they skip themselves. CI reads node:test's closing summary.
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildIfStale } from './build.mjs';

const root = join(fileURLToPath(new URL('.', import.meta.url)), '..');
function walk(dir, out) {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) walk(p, out);
    else if (e.name.endsWith('.test.ts')) out.push(p);
  }
  return out;
}
const filters = process.argv.slice(2).map((a) => join(root, a));
let files = walk(join(root, 'test'), []).sort();
if (filters.length) files = files.filter((f) => filters.some((x) => f.startsWith(x)));
if (files.length === 0) {
  console.error('no test files matched');
  process.exit(1);
}
// The tests run bin/tzorp, which runs the compiled tree only when it is the compiled form of the current
// sources (otherwise the sources, through tsx): bring dist/ up to date first, so the tests exercise what
// a production install runs. test/unit/cli/build.test.ts checks the compiled path explicitly.
await buildIfStale(root);
// In CI nothing edits the sources during the run: every bin/tzorp the tests start must run dist/, so a
// build problem fails the run instead of passing through tsx unnoticed.
const env = process.env.CI ? { ...process.env, TZORP_REQUIRE_DIST: '1' } : process.env;
const concurrency = process.env.TZORP_TEST_CONCURRENCY ?? '2';
const r = spawnSync(
  process.execPath,
  [
    '--import',
    'tsx',
    '--test',
    `--test-concurrency=${concurrency}`,
    '--test-reporter=spec',
    ...files.map((f) => relative(root, f)),
  ],
  { stdio: 'inherit', cwd: root, env },
);
process.exit(r.status ?? 1);
