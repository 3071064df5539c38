#!/usr/bin/env node
// One idempotent set-up step used by `npm test`, `npm run demo` and `npm run build` on a fresh machine:
// system packages (apt-get, as root), npm dependencies, the native addon, the compiled tree (dist/,
// scripts/build.mjs) when it is missing or older than src/. Plain Node: no dependencies.
// `--build` (npm run build) also type-checks and always compiles.
import { spawnSync } from 'node:child_process';
import {
  existsSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  statSync,
  symlinkSync,
  unlinkSync,
} from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const args = new Set(process.argv.slice(2));
const quiet = args.has('--quiet');
const say = (m) => {
  if (!quiet) process.stderr.write(`[setup] ${m}\n`);
};

function run(cmd, argv, opts = {}) {
  const r = spawnSync(cmd, argv, { stdio: quiet ? 'pipe' : 'inherit', cwd: root, ...opts });
  if (r.status !== 0) {
    if (quiet && r.stderr) process.stderr.write(r.stderr);
    throw new Error(`${cmd} ${argv.join(' ')} failed with exit ${r.status}`);
  }
}

function have(pkg) {
  // biome-ignore lint/suspicious/noTemplateCurlyInString: dpkg-query's own format syntax
  const r = spawnSync('dpkg-query', ['-W', '-f=${Status}', pkg], { encoding: 'utf8' });
  return r.status === 0 && r.stdout.includes('install ok installed');
}

function systemPackages() {
  const wanted = readFileSync(join(root, 'scripts/system-packages.txt'), 'utf8')
    .split('\n')
    .map((l) => l.replace(/#.*/, '').trim())
    .filter(Boolean);
  const missing = wanted.filter((p) => !have(p));
  if (missing.length === 0) return;
  if (process.getuid?.() !== 0) {
    say(`missing system packages (run as root to install): ${missing.join(' ')}`);
    return;
  }
  say(`installing system packages: ${missing.join(' ')}`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  run('apt-get', ['update', '-qq'], { env });
  run('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...missing], { env });
  // vsftpd and friends start a system service on install; the tests start their own, in namespaces.
  for (const svc of ['vsftpd']) spawnSync('systemctl', ['stop', svc], { stdio: 'ignore' });
}

function npmDeps() {
  const lock = join(root, 'package-lock.json');
  const marker = join(root, 'node_modules/.package-lock.json');
  if (existsSync(marker) && statSync(marker).mtimeMs >= statSync(lock).mtimeMs) return;
  say('installing npm dependencies (npm ci)');
  run('npm', ['ci', '--no-audit', '--no-fund']);
}

function newest(dir) {
  let t = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) {
      if (e.name !== 'build') t = Math.max(t, newest(p));
    } else t = Math.max(t, statSync(p).mtimeMs);
  }
  return t;
}

function nativeAddon() {
  const dir = join(root, 'src/native');
  if (!existsSync(join(dir, 'binding.gyp'))) return;
  const out = join(dir, 'build/Release/tzorp_native.node');
  if (existsSync(out) && statSync(out).mtimeMs >= newest(dir)) return;
  say('building the native addon (node-gyp)');
  run(join(root, 'node_modules/.bin/node-gyp'), ['rebuild', '--nodedir=/usr', '--silent'], { cwd: dir });
}

// `tzorp` on PATH (as root): a symlink /usr/local/bin/tzorp -> this checkout's bin/tzorp, re-pointed
// when another checkout ran set-up last. A file there that is not a symlink is never replaced.
function linkCommand() {
  if (process.getuid?.() !== 0) return;
  if (process.env.TZORP_NO_LINK) return; // a second checkout (a git worktree) leaves the link alone
  const link = '/usr/local/bin/tzorp';
  const target = join(root, 'bin/tzorp');
  let current = null;
  try {
    current = readlinkSync(link);
  } catch (e) {
    if (e.code === 'EINVAL') return; // a regular file: someone else's
  }
  if (current === target) return;
  if (current !== null) unlinkSync(link);
  symlinkSync(target, link);
  say(`linked ${link} -> ${target}`);
}

try {
  systemPackages();
  npmDeps();
  nativeAddon();
  linkCommand();
  // Right after the addon (dist/ carries a copy of it, so it is stale until this runs). A separate
  // process, because build.mjs imports esbuild, which npmDeps() may only just have installed.
  run(process.execPath, [join(root, 'scripts/build.mjs'), ...(args.has('--build') ? [] : ['--if-stale'])]);
  if (args.has('--build')) {
    say('type-checking (tsc)');
    run(join(root, 'node_modules/.bin/tsc'), ['-p', '.', '--noEmit']);
  }
} catch (e) {
  process.stderr.write(`[setup] ${e.message}\n`);
  process.exit(1);
}
