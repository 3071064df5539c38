#!/usr/bin/env node
// Compiles src/**/*.ts to dist/**/*.js with esbuild, one output file per source file (the layout of
// src/ is kept, so paths relative to import.meta.url -- examples/, the addon, sibling entry scripts --
// are the same in both trees), and copies the native addon into dist/; the daemon's two entry points
// are then written again as bundles (BUNDLED_ENTRIES below). esbuild only strips types (as
// tsx does when the tests run from source, so both trees behave alike); type checking is tsc's job
// (`npm run typecheck`, and `npm run build` runs it too).
//
//   node scripts/build.mjs              build dist/ now
//   node scripts/build.mjs --if-stale   build only when dist/ is missing or older than src/
//
// The new tree is written beside dist/ and swapped in by rename, so a process starting meanwhile sees
// the old tree or the new one, never half of one. The stamp (scripts/dist-state.mjs) records what
// src/ looked like when the build started: an edit during the build leaves dist/ stale, never fresh.
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ADDON_REL, distState, STAMP, sourceFingerprint } from './dist-state.mjs';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');

function sources(dir, out = []) {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) {
      if (e.name !== 'build') sources(p, out);
    } else if (e.name.endsWith('.ts') && !e.name.endsWith('.d.ts')) out.push(p);
  }
  return out;
}

// Relative imports keep their place in the tree and only change extension: `./x.ts` -> `./x.js`.
// Packages stay imports of node_modules (the production install provides them).
const relativeTsToJs = {
  name: 'relative-ts-to-js',
  setup(b) {
    b.onResolve({ filter: /^\.\.?\// }, (a) => {
      if (a.kind === 'entry-point') return undefined;
      return { path: a.path.replace(/\.ts$/, '.js'), external: true };
    });
  },
};

// The daemon's processes start from these, written a second time as bundles: bin/tzorp runs
// cli/main.js, an ES module bundle over its one-file form (with the modules it imports statically, and
// as chunks in dist/chunks/ dynamically); the primary forks daemon/worker-main.cjs, one CommonJS file
// (WORKER_BUNDLE). Node resolves and loads an ES module file by file, and the hundred-odd files of a
// daemon process made that work hot enough for V8's optimizing compiler at every start: its code and the
// loader's per-module data cost each worker about 6.5 MB of memory (bench/README.md, "Start-up memory of
// the daemon"). The other files of dist/ stay one per source file (the lab's entry scripts, benches and
// tests that import dist/ modules).
const BUNDLED_ENTRIES = ['cli/main.ts'];
// A worker does not load Node's ES module loader at all (about 1.6 MB of node's own code and data per
// worker; the same bench): CommonJS cannot split, so its dynamic imports (the TLS layer) are in this one
// file too, evaluated (and their built-in modules, node:tls, required) only when first imported.
export const WORKER_BUNDLE = 'daemon/worker-main.cjs';

// Bundled code keeps each source file's own import.meta.url: the URL of that file's one-file form in
// dist/ (where the paths relative to it -- the addon, sibling entry scripts, examples/ -- hold). Every
// bundle output is one directory below dist/ (the entries above, and chunks/), so one relative URL fits
// wherever esbuild puts a module's code.
// (In the CommonJS bundle, import.meta.url is the bundle's own file URL: `import.meta` exists in ES
// modules only.)
const metaUrlOfOwnFile = (src) => ({
  name: 'meta-url-of-own-file',
  setup(b) {
    b.onLoad({ filter: /\.ts$/ }, (a) => {
      const text = readFileSync(a.path, 'utf8');
      const own = `../${relative(src, a.path).replace(/\.ts$/, '.js')}`;
      return {
        contents: text.replaceAll('import.meta.url', `new URL(${JSON.stringify(own)}, import.meta.url).href`),
        loader: 'ts',
      };
    });
  },
});

/** Compiles src/ of checkout `root` into `out` (a directory that must not exist yet), with the addon. */
export async function compile(root, out) {
  const { build } = await import('esbuild');
  const src = join(root, 'src');
  // (every output: packages stay imports of node_modules)
  const shared = {
    absWorkingDir: root,
    bundle: true,
    packages: 'external',
    platform: 'node',
    target: 'node20',
    logLevel: 'warning',
  };
  await build({
    ...shared,
    entryPoints: sources(src),
    outdir: out,
    outbase: src,
    format: 'esm',
    plugins: [relativeTsToJs],
  });
  await build({
    ...shared,
    entryPoints: BUNDLED_ENTRIES.map((e) => join(src, e)),
    outdir: out,
    outbase: src,
    splitting: true,
    chunkNames: 'chunks/[name]-[hash]',
    format: 'esm',
    plugins: [metaUrlOfOwnFile(src)],
  });
  await build({
    ...shared,
    entryPoints: [join(src, 'daemon/worker-main.ts')],
    outfile: join(out, WORKER_BUNDLE),
    format: 'cjs',
    define: { 'import.meta.url': '__tzorp_bundle_url' },
    banner: { js: 'const __tzorp_bundle_url = require("node:url").pathToFileURL(__filename).href;' },
    plugins: [metaUrlOfOwnFile(src)],
  });
  const addon = join(src, ADDON_REL);
  if (existsSync(addon)) {
    mkdirSync(dirname(join(out, ADDON_REL)), { recursive: true });
    copyFileSync(addon, join(out, ADDON_REL));
  }
}

/** Builds dist/ in checkout `root`; returns the build time in ms. */
export async function buildDist(root = ROOT) {
  const t0 = performance.now();
  const fingerprint = sourceFingerprint(root);
  const tmp = join(root, `dist.tmp-${process.pid}`);
  rmSync(tmp, { recursive: true, force: true });
  try {
    await compile(root, tmp);
    writeFileSync(
      join(tmp, STAMP),
      `${JSON.stringify({ fingerprint, node: process.version, builtAt: new Date().toISOString() })}\n`,
    );
    const dist = join(root, 'dist');
    const old = join(root, `dist.old-${process.pid}`);
    try {
      renameSync(dist, old);
    } catch (e) {
      if (e.code !== 'ENOENT') throw e;
    }
    try {
      renameSync(tmp, dist);
    } catch (e) {
      // Another build (a second test run in this checkout) swapped its tree in first: keep that one.
      if (e.code !== 'ENOTEMPTY' && e.code !== 'EEXIST') throw e;
    }
    rmSync(old, { recursive: true, force: true });
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  return performance.now() - t0;
}

/** Builds dist/ unless it is fresh; returns whether it built. */
export async function buildIfStale(root = ROOT) {
  if (distState(root) === 'fresh') return false;
  await buildDist(root);
  return true;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const ifStale = process.argv.includes('--if-stale');
  if (ifStale && distState(ROOT) === 'fresh') process.exit(0);
  const ms = await buildDist(ROOT);
  process.stderr.write(`[build] dist/ compiled from src/ in ${Math.round(ms)} ms\n`);
}
