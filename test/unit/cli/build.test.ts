// The compiled tree (scripts/build.mjs -> dist/) and the rule that keeps it honest: bin/tzorp runs dist/
// only when dist/ is the compiled form of the current src/. Each case works on a scratch copy of the
// checkout (src, bin, scripts, examples, package.json; node_modules linked), so it builds, edits and
// rebuilds without touching this checkout's dist/.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import {
  cpSync,
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { COMMANDS } from '../../../src/cli/registry.ts';
import { VERSION } from '../../../src/cli/version.ts';

const ROOT = fileURLToPath(new URL('../../..', import.meta.url));

describe('command registry', () => {
  test('every module under src/cli/commands is registered, under its file name', () => {
    const files = readdirSync(join(ROOT, 'src/cli/commands'))
      .filter((f) => f.endsWith('.ts'))
      .map((f) => f.slice(0, -3))
      .sort();
    assert.deepEqual(Object.keys(COMMANDS).sort(), files);
  });

  test("tzorp --version is package.json's version", () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };
    assert.equal(VERSION, pkg.version);
  });
});

describe('compiled tree', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tzorp-build-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  for (const p of ['src', 'bin', 'scripts', 'examples', 'package.json']) {
    cpSync(join(ROOT, p), join(dir, p), { recursive: true });
  }
  symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'));

  const tzorp = (args: string[], env: Record<string, string> = {}) => {
    const r = spawnSync(process.execPath, [join(dir, 'bin/tzorp'), ...args], {
      encoding: 'utf8',
      cwd: dir,
      env: { ...process.env, TZORP_FROM_SOURCE: '', TZORP_REQUIRE_DIST: '', ...env },
    });
    return { code: r.status, out: r.stdout, err: r.stderr };
  };
  const build = () => {
    const r = spawnSync(process.execPath, [join(dir, 'scripts/build.mjs')], { encoding: 'utf8', cwd: dir });
    assert.equal(r.status, 0, r.stderr);
  };
  const setVersion = (v: string) => {
    const f = join(dir, 'src/cli/version.ts');
    writeFileSync(f, readFileSync(f, 'utf8').replace(/VERSION = '[^']*'/, `VERSION = '${v}'`));
  };
  const COMPILED_ONLY = { TZORP_REQUIRE_DIST: '1' };

  test('without dist/, bin/tzorp runs the sources; TZORP_REQUIRE_DIST=1 refuses', () => {
    assert.equal(existsSync(join(dir, 'dist')), false);
    assert.equal(tzorp(['--version']).out.trim(), VERSION);
    const r = tzorp(['--version'], COMPILED_ONLY);
    assert.equal(r.code, 1);
    assert.match(r.err, /dist\/ is not built/);
  });

  test('the build writes one .js per .ts, the addon and a stamp; bin/tzorp runs it with no loader', () => {
    build();
    for (const f of [
      'cli/main.js',
      'cli/commands/check.js',
      'daemon/worker-main.js',
      'daemon/worker-main.cjs',
      'lab/servers-main.js',
    ]) {
      assert.ok(existsSync(join(dir, 'dist', f)), f);
    }
    const main = readFileSync(join(dir, 'dist/cli/main.js'), 'utf8');
    // node:tls is loaded by the TLS layer's first use (net/driver.ts tlsLayer), not by a process
    // start: nothing the daemon's entries import statically imports it (a static import of a module
    // that re-exports the handshakes would, with the bundles' shared chunks)
    const chunk = (prefix: string) =>
      `chunks/${readdirSync(join(dir, 'dist/chunks')).find((f) => f.startsWith(`${prefix}-`))}`;
    // (the primary: `tzorp run`'s chunk and the daemon's dependencies, which it imports when it runs)
    for (const entry of [chunk('run'), chunk('deps')]) {
      const seen = new Set<string>();
      const builtins = new Set<string>();
      const walk = (file: string): void => {
        if (seen.has(file)) return;
        seen.add(file);
        const text = readFileSync(file, 'utf8');
        for (const m of text.matchAll(/^(?:import|export)\b[^;]*?(?:from\s*)?"([^"]+)";?$/gms)) {
          const spec = m[1]!;
          if (spec.startsWith('node:')) builtins.add(spec);
          else if (spec.startsWith('.')) walk(join(dirname(file), spec));
        }
      };
      walk(join(dir, 'dist', entry));
      assert.ok(seen.size > 3 && builtins.size > 0, `${entry}: the walk finds the static imports`);
      assert.ok(!builtins.has('node:tls'), `${entry} imports node:tls at start`);
    }
    // The worker is one CommonJS file (the TLS layer in it too, evaluated on first use). Loaded as the
    // primary's fork loads it (here with a stand-in for the primary's channel: it only says 'ready'),
    // it runs without Node's ES module loader, and without node:tls, node:crypto and node:dns/promises,
    // which it loads when a service first needs them. (From a script file: `node -e` loads crypto.)
    const probe = join(dir, 'worker-probe.cjs');
    writeFileSync(
      probe,
      `process.send = () => true;
       require(${JSON.stringify(join(dir, 'dist/daemon/worker-main.cjs'))});
       console.log(JSON.stringify(process.moduleLoadList)); process.exit(0);`,
    );
    const worker = spawnSync(process.execPath, [probe], { encoding: 'utf8' });
    assert.equal(worker.status, 0, worker.stderr);
    const loaded = JSON.parse(worker.stdout) as string[];
    assert.ok(loaded.includes('NativeModule net'), 'the worker bundle ran');
    for (const m of ['tls', 'crypto', 'dns/promises', 'internal/modules/esm/module_job'])
      assert.ok(!loaded.includes(`NativeModule ${m}`), `daemon/worker-main.cjs loads ${m} at start`);
    assert.doesNotMatch(main, /from "\.[^"]*\.ts"/, 'relative imports point at .js files');
    assert.doesNotMatch(main, /tsx|readdirSync/, 'no loader, no directory listing');
    if (existsSync(join(ROOT, 'src/native/build/Release/tzorp_native.node'))) {
      assert.ok(existsSync(join(dir, 'dist/native/build/Release/tzorp_native.node')));
    }
    const v = tzorp(['--version'], COMPILED_ONLY);
    assert.deepEqual([v.code, v.out.trim()], [0, VERSION]);
    const c = tzorp(['check', 'examples/policy.yaml'], COMPILED_ONLY);
    assert.equal(c.code, 0, c.err);
    const bad = join(dir, 'bad.yaml');
    writeFileSync(bad, 'zones: {}\nservices: {}\nrules:\n  - { id: 1, service: nope }\n');
    const b = tzorp(['check', bad], COMPILED_ONLY);
    assert.equal(b.code, 1);
    assert.match(b.out + b.err, /bad\.yaml:4:\d+: TZ\d{4}/);
    const h = tzorp(['--help'], COMPILED_ONLY);
    for (const name of Object.keys(COMMANDS)) assert.match(h.out, new RegExp(`^  ${name}\\b`, 'm'));
  });

  test('an edited source makes dist/ stale: the new code runs (from source), never the old dist/', () => {
    setVersion('9.9.9-edited');
    assert.equal(tzorp(['--version']).out.trim(), '9.9.9-edited');
    const r = tzorp(['--version'], COMPILED_ONLY);
    assert.equal(r.code, 1);
    assert.match(r.err, /dist\/ is older than src\/.*npm run build/);
    build();
    assert.equal(tzorp(['--version'], COMPILED_ONLY).out.trim(), '9.9.9-edited');
  });

  test('an added or removed source file, or a rebuilt addon, makes dist/ stale too', () => {
    const extra = join(dir, 'src/extra-file.ts');
    writeFileSync(extra, 'export const x = 1;\n');
    assert.equal(tzorp(['--version'], COMPILED_ONLY).code, 1);
    build();
    assert.equal(tzorp(['--version'], COMPILED_ONLY).code, 0);
    rmSync(extra);
    assert.equal(tzorp(['--version'], COMPILED_ONLY).code, 1);
    build();
    const addon = join(dir, 'src/native/build/Release/tzorp_native.node');
    if (existsSync(addon)) {
      writeFileSync(addon, readFileSync(addon));
      assert.equal(tzorp(['--version'], COMPILED_ONLY).code, 1);
    }
  });
});
