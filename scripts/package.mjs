#!/usr/bin/env node
// `npm run package`: builds tzorp_<version>_amd64.deb with dpkg-deb from this checkout.
//
//   /usr/lib/tzorp/{bin/tzorp, dist/ (compiled, with the native addon), node_modules/ (production
//                   dependencies only: npm ci --omit=dev), examples/, package.json}
//   /usr/bin/tzorp -> ../lib/tzorp/bin/tzorp      (no src/ there: bin/tzorp runs dist/ straight away)
//   /usr/lib/systemd/system/tzorp.service         (contrib/tzorp.service)
//   /etc/tzorp/policy.yaml                        (examples/policy.yaml, a conffile)
//   /usr/share/doc/tzorp/                         (docs/*.md, README.md)
//   DEBIAN/{control, conffiles, postinst, prerm, postrm}   (packaging/debian/)
//
// Usage: node scripts/package.mjs [--out DIR]   (default: the checkout's root). Needs dpkg-deb and
// the native addon built (scripts/setup.mjs, which `npm run package` runs first). src/ is compiled afresh
// into the package (the checkout's dist/ is neither used nor touched), so a package never carries a stale
// tree.
import { spawnSync } from 'node:child_process';
import {
  chmodSync,
  copyFileSync,
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { compile } from './build.mjs';
import { ADDON_REL } from './dist-state.mjs';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const say = (m) => process.stderr.write(`[package] ${m}\n`);

function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', ...opts });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (exit ${r.status}):\n${r.stderr}`);
  return r.stdout;
}

function duKiB(dir) {
  let bytes = 0;
  const walk = (d) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile()) bytes += statSync(p).size;
    }
  };
  walk(dir);
  return Math.ceil(bytes / 1024);
}

export async function buildPackage(outDir) {
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));
  const version = pkg.version;
  if (!existsSync(join(ROOT, 'src', ADDON_REL))) {
    throw new Error('the native addon is not built: run `node scripts/setup.mjs` first');
  }
  const stage = mkdtempSync(join(tmpdir(), 'tzorp-deb-'));
  chmodSync(stage, 0o755); // the tree's root is /: never ship a 0700 one
  try {
    const lib = join(stage, 'usr/lib/tzorp');
    mkdirSync(lib, { recursive: true });
    say('compiling src/');
    await compile(ROOT, join(lib, 'dist'));
    mkdirSync(join(lib, 'bin'));
    copyFileSync(join(ROOT, 'bin/tzorp'), join(lib, 'bin/tzorp'));
    chmodSync(join(lib, 'bin/tzorp'), 0o755);
    cpSync(join(ROOT, 'examples'), join(lib, 'examples'), { recursive: true });
    copyFileSync(join(ROOT, 'package.json'), join(lib, 'package.json'));
    copyFileSync(join(ROOT, 'package-lock.json'), join(lib, 'package-lock.json'));
    say('installing the production dependencies (npm ci --omit=dev)');
    run('npm', ['ci', '--omit=dev', '--ignore-scripts', '--no-audit', '--no-fund', '--prefer-offline'], {
      cwd: lib,
    });
    rmSync(join(lib, 'package-lock.json'));

    mkdirSync(join(stage, 'usr/bin'), { recursive: true });
    symlinkSync('../lib/tzorp/bin/tzorp', join(stage, 'usr/bin/tzorp'));
    mkdirSync(join(stage, 'usr/lib/systemd/system'), { recursive: true });
    copyFileSync(join(ROOT, 'contrib/tzorp.service'), join(stage, 'usr/lib/systemd/system/tzorp.service'));
    mkdirSync(join(stage, 'etc/tzorp'), { recursive: true });
    copyFileSync(join(ROOT, 'examples/policy.yaml'), join(stage, 'etc/tzorp/policy.yaml'));
    const doc = join(stage, 'usr/share/doc/tzorp');
    cpSync(join(ROOT, 'docs'), doc, { recursive: true });
    copyFileSync(join(ROOT, 'README.md'), join(doc, 'README.md'));

    const debian = join(stage, 'DEBIAN');
    mkdirSync(debian);
    const control = readFileSync(join(ROOT, 'packaging/debian/control.in'), 'utf8')
      .replace('@VERSION@', version)
      .replace('@SIZE@', String(duKiB(join(stage, 'usr')) + duKiB(join(stage, 'etc'))));
    writeFileSync(join(debian, 'control'), control);
    writeFileSync(join(debian, 'conffiles'), '/etc/tzorp/policy.yaml\n');
    for (const s of ['postinst', 'prerm', 'postrm']) {
      copyFileSync(join(ROOT, 'packaging/debian', s), join(debian, s));
      chmodSync(join(debian, s), 0o755);
    }
    mkdirSync(outDir, { recursive: true });
    const deb = join(outDir, `tzorp_${version}_amd64.deb`);
    run('dpkg-deb', ['--root-owner-group', '-Zxz', '--build', stage, deb]);
    say(`built ${deb}`);
    return deb;
  } finally {
    rmSync(stage, { recursive: true, force: true });
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const i = process.argv.indexOf('--out');
  const out = resolve(i >= 0 ? process.argv[i + 1] : ROOT);
  buildPackage(out).then(
    (deb) => console.log(deb),
    (e) => {
      process.stderr.write(`[package] ${e.message}\n`);
      process.exit(1);
    },
  );
}
