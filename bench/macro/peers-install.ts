// The benchmarks' peers (HAProxy, nginx, wrk, ...) are Debian packages that the tests do not need, so
// scripts/system-packages.txt does not list them; each benchmark installs the ones it drives here, with
// apt-get as the tests' setup does, so that anyone can rerun it on a fresh machine.
import { spawnSync } from 'node:child_process';

export function ensurePackages(pkgs: string[]): void {
  const missing = pkgs.filter((p) => {
    // biome-ignore lint/suspicious/noTemplateCurlyInString: dpkg-query's own format syntax
    const r = spawnSync('dpkg-query', ['-W', '-f=${Status}', p], { encoding: 'utf8' });
    return !(r.status === 0 && r.stdout.includes('install ok installed'));
  });
  if (missing.length === 0) return;
  if (process.getuid?.() !== 0)
    throw new Error(`the benchmark needs ${missing.join(' ')}: install them as root`);
  console.error(`[bench] installing ${missing.join(' ')}`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  for (const argv of [
    ['update', '-qq'],
    ['install', '-y', '-qq', '--no-install-recommends', ...missing],
  ]) {
    const r = spawnSync('apt-get', argv, { stdio: 'inherit', env });
    if (r.status !== 0) throw new Error(`apt-get ${argv.join(' ')} failed`);
  }
  // nginx and haproxy start system services on install; the benchmarks start their own in namespaces
  for (const svc of ['nginx', 'haproxy']) spawnSync('systemctl', ['stop', svc], { stdio: 'ignore' });
}
