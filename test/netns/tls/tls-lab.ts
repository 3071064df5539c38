// What the TLS namespace tests share: the lab's zones as a policy's first lines, tzorp's own CA made by
// the command an administrator runs, and `tzorp run` started in the lab's firewall namespace.
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { ADDR, type Lab, type LabProcess } from '../../harness/netns.ts';
import type { PemFiles } from './test-ca.ts';

export const TZ = [process.execPath, 'bin/tzorp'];

/** The lab's client and server networks, both families: the start of a test policy. */
export const LAB_ZONES = `zones:
  clients:
    addresses: [198.18.1.0/24, "2001:db8:1::/64"]
  servers:
    addresses: [198.18.2.0/24, "2001:db8:2::/64"]
`;

/** `tzorp tls ca create <dir>/<sub> --name <name>`: its ca.crt and ca.key. */
export function tzorpCa(dir: string, sub: string, name: string): PemFiles {
  execFileSync(process.execPath, ['bin/tzorp', 'tls', 'ca', 'create', join(dir, sub), '--name', name], {
    stdio: 'pipe',
  });
  return { cert: join(dir, sub, 'ca.crt'), key: join(dir, sub, 'ca.key') };
}

/** `tzorp run <policy> --control <control> --workers 1 [extra]` in the firewall namespace, once it says
 * it runs. */
export async function runTzorp(
  lab: Lab,
  policy: string,
  control: string,
  extra: string[] = [],
): Promise<LabProcess> {
  const daemon = lab.spawn('fw', [...TZ, 'run', policy, '--control', control, '--workers', '1', ...extra]);
  await daemon.waitFor(/tzorp running/, 120_000);
  return daemon;
}

/** curl in the client namespace for https://<name>:<port><path>, the name resolved to the server's
 * address of `family`, trusting only `cacert` (tzorp's CA: the handshake succeeds only with a
 * certificate tzorp made). Fails as curl does (code and stderr), never throws. */
export function curlTls(
  lab: Lab,
  cacert: string,
  name: string,
  family: 4 | 6,
  port: number,
  path: string,
  extra: string[] = [],
) {
  const host = family === 4 ? ADDR.server4 : `[${ADDR.server6}]`;
  return lab.exec(
    'client',
    [
      'curl',
      '-sS',
      '--max-time',
      '30',
      '--cacert',
      cacert,
      '--resolve',
      `${name}:${port}:${host}`,
      ...extra,
      `https://${name}:${port}${path}`,
    ],
    { allowFail: true, timeoutMs: 60_000 },
  );
}
