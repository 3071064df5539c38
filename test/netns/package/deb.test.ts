// The Debian package end to end: `node scripts/package.mjs` builds it, `dpkg -i` installs it, the
// installed copy (/usr/bin/tzorp -> /usr/lib/tzorp, compiled, production dependencies only) answers
// --version, checks its /etc/tzorp/policy.yaml, runs a lab whose firewall is the installed daemon
// proxying real traffic, and runs the unit's command line (--user tzorp) with a reload and a stop;
// `dpkg --purge` then leaves nothing: no file, no user or group, no unit, no
// process, no namespace. Other tests keep running their checkout's bin/tzorp meanwhile (they call it
// by path, never through PATH); this one calls /usr/bin/tzorp by path too.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { VERSION } from '../../../src/cli/version.ts';
import { netnsSkipReason, REPO_ROOT } from '../../harness/netns.ts';

function sh(cmd: string, args: string[], opts: { input?: string } = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 180_000, input: opts.input ?? '' });
  return { code: r.status ?? -1, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
}
const exists = (db: 'passwd' | 'group', name: string) => sh('getent', [db, name]).code === 0;
// biome-ignore lint/suspicious/noTemplateCurlyInString: dpkg-query's own format syntax
const STATUS = '-f=${Status}';
const installed = () => sh('dpkg-query', ['-W', STATUS, 'tzorp']).stdout.includes('installed');

function skipReason(): string | false {
  const netns = netnsSkipReason();
  if (netns) return netns;
  if (sh('dpkg-deb', ['--version']).code !== 0) return 'dpkg-deb is not installed';
  // Someone's real installation (or its user) is not this test's to purge.
  if (installed()) return 'a tzorp package is installed on this machine already';
  if (exists('passwd', 'tzorp') || exists('group', 'tzorp')) return 'a tzorp user or group exists already';
  if (!sh('dpkg-query', ['-W', STATUS, 'nodejs']).stdout.includes('install ok installed')) {
    return "node is not Debian's nodejs package here: the package's Depends: nodejs (>= 20) cannot be met";
  }
  return false;
}

/** dpkg takes one lock per machine; another session's apt-get may hold it for a while. */
function dpkg(args: string[]) {
  for (let i = 0; ; i++) {
    const r = sh('dpkg', args);
    if (r.code === 0 || i >= 60 || !/lock/i.test(r.stderr)) return r;
    spawnSync('sleep', ['2']);
  }
}

const skip = skipReason();
const LAB = `pk${process.pid}`;
const NETNS = `tzorp-pkg-${process.pid}`;
const TZORP = '/usr/bin/tzorp';
const FILES = [
  '/usr/bin/tzorp',
  '/usr/lib/tzorp',
  '/usr/lib/systemd/system/tzorp.service',
  '/etc/tzorp',
  '/usr/share/doc/tzorp',
];

describe('the Debian package', { skip }, () => {
  const out = mkdtempSync(join(tmpdir(), 'tzorp-deb-test-'));
  let deb = '';
  after(() => {
    // also when a test failed half-way: the lab (through the checkout when the installed copy is
    // gone), the package, and the user its postinst made
    if (existsSync(TZORP)) sh(TZORP, ['lab', 'down', '--name', LAB]);
    sh(process.execPath, [join(REPO_ROOT, 'bin/tzorp'), 'lab', 'down', '--name', LAB]);
    sh('ip', ['netns', 'del', NETNS]);
    if (installed() || sh('dpkg-query', ['-W', 'tzorp']).code === 0) dpkg(['--purge', 'tzorp']);
    if (exists('passwd', 'tzorp')) sh('userdel', ['tzorp']);
    if (exists('group', 'tzorp')) sh('groupdel', ['tzorp']);
    rmSync(out, { recursive: true, force: true });
  });

  it('npm run package builds tzorp_<version>_amd64.deb with the compiled tree and what it depends on', () => {
    const r = sh(process.execPath, [join(REPO_ROOT, 'scripts/package.mjs'), '--out', out]);
    assert.equal(r.code, 0, r.stderr);
    deb = join(out, `tzorp_${VERSION}_amd64.deb`);
    assert.equal(r.stdout.trim(), deb);
    const field = (f: string) => sh('dpkg-deb', ['-f', deb, f]).stdout.trim();
    assert.equal(field('Package'), 'tzorp');
    assert.equal(field('Version'), VERSION);
    assert.equal(field('Architecture'), 'amd64');
    assert.match(field('Depends'), /(^|, )nodejs \(>= 20\)(,|$)/);
    assert.match(field('Depends'), /(^|, )nftables(,|$)/);
    assert.match(field('Depends'), /(^|, )iproute2(,|$)/);
    const files = sh('dpkg-deb', ['-c', deb]).stdout;
    for (const f of [
      './usr/bin/tzorp -> ../lib/tzorp/bin/tzorp',
      './usr/lib/tzorp/dist/cli/main.js',
      './usr/lib/tzorp/dist/daemon/worker-main.cjs',
      './usr/lib/tzorp/dist/native/build/Release/tzorp_native.node',
      './usr/lib/tzorp/node_modules/commander/package.json',
      './usr/lib/systemd/system/tzorp.service',
      './etc/tzorp/policy.yaml',
    ]) {
      assert.ok(files.includes(f), `${f} in the package`);
    }
    // production only: no sources, no loader, no compiler
    assert.doesNotMatch(files, /\/usr\/lib\/tzorp\/src\/|node_modules\/(tsx|typescript|esbuild|@biomejs)\//);
    const ctl = mkdtempSync(join(out, 'control-'));
    assert.equal(sh('dpkg-deb', ['-e', deb, ctl]).code, 0);
    assert.equal(readFileSync(join(ctl, 'conffiles'), 'utf8'), '/etc/tzorp/policy.yaml\n');
  });

  it('dpkg -i installs it: the tzorp system user, and the installed command runs the compiled tree', () => {
    const r = dpkg(['-i', deb]);
    assert.equal(r.code, 0, r.stderr);
    const pw = sh('getent', ['passwd', 'tzorp']).stdout.trim().split(':');
    assert.ok(Number(pw[2]) < 1000, `a system uid: ${pw.join(':')}`);
    assert.equal(pw[6], '/usr/sbin/nologin');
    const v = sh(TZORP, ['--version']);
    assert.deepEqual([v.code, v.stdout.trim()], [0, VERSION]);
    const c = sh(TZORP, ['check', '/etc/tzorp/policy.yaml']);
    assert.equal(c.code, 0, c.stderr);
    assert.match(c.stdout + c.stderr, /policy\.yaml/);
    const unit = readFileSync('/usr/lib/systemd/system/tzorp.service', 'utf8');
    assert.match(unit, /^ExecStart=\/usr\/bin\/tzorp run .* --user tzorp$/m);
    // systemd's own check of the unit (no running systemd needed), now that its user and paths exist
    if (sh('systemd-analyze', ['--version']).code === 0) {
      const verify = sh('systemd-analyze', ['verify', '/usr/lib/systemd/system/tzorp.service']);
      assert.equal(verify.code, 0, verify.stderr);
      assert.equal(verify.stderr.trim(), '');
    }
  });

  it('the lab runs with the installed tzorp as its firewall and proxies real traffic', async () => {
    const up = sh(TZORP, ['lab', 'up', '--name', LAB, '--policy', '/etc/tzorp/policy.yaml']);
    assert.equal(up.code, 0, up.stderr);
    const st = sh(TZORP, ['lab', 'status', '--name', LAB, '--json']);
    assert.equal(st.code, 0, st.stderr);
    const status = JSON.parse(st.stdout) as {
      up: boolean;
      problems: string[];
      firewall: { mode: string };
      processes: { name: string; pid: number; alive: boolean }[];
    };
    assert.equal(status.up, true);
    assert.deepEqual(status.problems, []);
    assert.equal(status.firewall.mode, 'run');
    const daemon = status.processes.find((p) => p.name === 'tzorp');
    assert.ok(daemon?.alive);
    // the daemon is the installed one, compiled
    const cmdline = readFileSync(`/proc/${daemon.pid}/cmdline`, 'utf8').split('\0');
    assert.equal(cmdline[1], '/usr/lib/tzorp/bin/tzorp');
    // the client's HTTP goes through the installed daemon's HTTP proxy to the lab's server
    const http = sh(TZORP, [
      'lab',
      'exec',
      'client',
      '--name',
      LAB,
      '--',
      'curl',
      '-sS',
      '--max-time',
      '15',
      'http://198.18.20.10/pkg',
    ]);
    assert.equal(http.code, 0, http.stderr);
    assert.equal((JSON.parse(http.stdout) as { url?: string }).url, '/pkg');
    // (the summary is written once the worker has seen both sides close, which may be a moment after
    // curl has its answer and exits: the log is read again until it is there or 15 s have passed)
    const summary = /core\.summary\(4\): \(svc\/[^)]+\): Connection summary;.*verdict='ACCEPTED'/;
    const logFile = join('/run/tzorp-lab', LAB, 'tzorp.log');
    let log = readFileSync(logFile, 'utf8');
    for (let i = 0; i < 150 && !summary.test(log); i++) {
      await new Promise((r) => setTimeout(r, 100));
      log = readFileSync(logFile, 'utf8');
    }
    assert.match(log, summary);
    const down = sh(TZORP, ['lab', 'down', '--name', LAB]);
    assert.equal(down.code, 0, down.stderr);
  });

  it("the unit's daemon: /usr/bin/tzorp run /etc/tzorp/policy.yaml --user tzorp drops to the package's user, reloads, stops", async () => {
    // what the unit's ExecStart runs, in a namespace of its own: the example policy, the tzorp user the
    // postinst made, and a reload that reads /etc/tzorp/policy.yaml as that user (root:tzorp 0640)
    assert.equal(sh('ip', ['netns', 'add', NETNS]).code, 0);
    sh('ip', ['-n', NETNS, 'link', 'set', 'lo', 'up']);
    const control = join(out, 'unit', 'control.sock');
    const daemon = spawn(
      'ip',
      [
        'netns',
        'exec',
        NETNS,
        TZORP,
        'run',
        '/etc/tzorp/policy.yaml',
        '--control',
        control,
        '--workers',
        '1',
        '--user',
        'tzorp',
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let log = '';
    daemon.stderr.on('data', (d) => {
      log += d;
    });
    const exited = new Promise<number | null>((r) => daemon.once('exit', (c) => r(c)));
    try {
      for (let i = 0; i < 600 && !/Running as an unprivileged user/.test(log); i++) {
        if (daemon.exitCode !== null) break;
        await new Promise((r) => setTimeout(r, 100));
      }
      assert.match(log, /Running as an unprivileged user/);
      const uid = sh('id', ['-u', 'tzorp']).stdout.trim();
      const status = readFileSync(`/proc/${daemon.pid}/status`, 'utf8');
      assert.match(status, new RegExp(`^Uid:\\s+${uid}\\s+${uid}\\s+${uid}\\s+${uid}$`, 'm'));
      assert.match(status, /^CapEff:\s+0000000000003400$/m);
      const reload = sh('ip', ['netns', 'exec', NETNS, TZORP, 'reload', '--control', control, '--json']);
      assert.equal(reload.code, 0, reload.stderr + reload.stdout);
      assert.equal((JSON.parse(reload.stdout) as { generation: number }).generation, 2);
      const stop = sh('ip', ['netns', 'exec', NETNS, TZORP, 'stop', '--control', control]);
      assert.equal(stop.code, 0, stop.stderr);
      assert.equal(await exited, 0, log);
      // stop leaves the closed table (docs/operations.md): no decision, no diversion, nothing forwarded
      const table = sh('ip', ['netns', 'exec', NETNS, 'nft', 'list', 'table', 'inet', 'tzorp']);
      assert.equal(table.code, 0, 'tzorp stop leaves the closed table');
      assert.doesNotMatch(table.stdout, /chain prerouting/);
      assert.match(table.stdout, /tzorp is stopped: nothing is forwarded/);
    } finally {
      if (daemon.exitCode === null) daemon.kill('SIGKILL');
      sh('ip', ['netns', 'del', NETNS]);
    }
  });

  it('dpkg --purge leaves nothing: files, conffile, user, group, unit, processes, namespaces', () => {
    const r = dpkg(['--purge', 'tzorp']);
    assert.equal(r.code, 0, r.stderr);
    assert.notEqual(sh('dpkg-query', ['-W', 'tzorp']).code, 0, 'dpkg forgot the package');
    for (const f of FILES) assert.equal(existsSync(f), false, `${f} is gone`);
    assert.equal(exists('passwd', 'tzorp'), false, 'user tzorp is gone');
    assert.equal(exists('group', 'tzorp'), false, 'group tzorp is gone');
    const fromPackage = readdirSync('/proc')
      .filter((p) => /^\d+$/.test(p))
      .filter((p) => {
        try {
          return readFileSync(`/proc/${p}/cmdline`, 'utf8').includes('/usr/lib/tzorp/');
        } catch {
          return false;
        }
      });
    assert.deepEqual(fromPackage, [], 'no process runs the installed copy');
    const ns = existsSync('/run/netns')
      ? readdirSync('/run/netns').filter((n) => n.startsWith(`tzl-${LAB}-`))
      : [];
    assert.deepEqual(ns, []);
  });
});
