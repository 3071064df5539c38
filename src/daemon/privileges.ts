// `tzorp run --user NAME`: the daemon starts as root (ruleset, policy routing, sysctls, listeners,
// control socket), then the primary and every worker run as NAME with only the capabilities the
// running firewall needs:
//   CAP_NET_ADMIN         nft and ip on reload and stop, SO_MARK, IP_TRANSPARENT, net.* sysctls
//   CAP_NET_RAW           IP_TRANSPARENT (either capability allows it)
//   CAP_NET_BIND_SERVICE  listeners of new services and forged ports below 1024
// Workers are started before the primary drops (they exist before generation 1 is built) and drop
// themselves as their first act, told whom to become by TZORP_RUN_AS; a worker restarted later is
// started by the dropped primary and inherits the same state (the call is idempotent).
import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync } from 'node:fs';
import { TzorpError } from '../errors.ts';
import { type DroppedPrivileges, dropPrivileges } from '../native/index.ts';

/** Capability numbers (linux/capability.h) the daemon keeps. */
export const KEPT_CAPABILITIES = { CAP_NET_BIND_SERVICE: 10, CAP_NET_ADMIN: 12, CAP_NET_RAW: 13 } as const;

/** The kept set as /proc/<pid>/status prints CapEff: 0000000000003400. */
export const KEPT_CAPABILITY_MASK = Object.values(KEPT_CAPABILITIES)
  .reduce((m, c) => m | (1n << BigInt(c)), 0n)
  .toString(16)
  .padStart(16, '0');

/** The environment variable that tells a worker whom to become: `uid:gid:group,group,...`. */
export const RUN_AS_ENV = 'TZORP_RUN_AS';

export interface RunAs {
  user: string;
  uid: number;
  gid: number;
  /** Supplementary groups (the user's, as `id -G` lists them). */
  groups: number[];
}

/** Looks the user up (NSS, through getent and id); DAEMON_USER when it does not exist or is root. */
export function resolveRunAs(user: string): RunAs {
  let entry: string;
  let groups: string;
  try {
    entry = execFileSync('getent', ['passwd', user], { encoding: 'utf8' }).trim();
    groups = execFileSync('id', ['-G', user], { encoding: 'utf8' }).trim();
  } catch {
    throw new TzorpError('DAEMON_USER', `no user '${user}' on this system (--user)`, { details: { user } });
  }
  const f = entry.split(':');
  const uid = Number(f[2]);
  const gid = Number(f[3]);
  if (!Number.isInteger(uid) || !Number.isInteger(gid)) {
    throw new TzorpError('DAEMON_USER', `cannot read user '${user}' from getent: ${entry}`, {
      details: { user },
    });
  }
  if (uid === 0) {
    throw new TzorpError(
      'DAEMON_USER',
      `--user ${user} is root: name the unprivileged user the daemon drops to`,
      {
        details: { user },
      },
    );
  }
  return { user, uid, gid, groups: groups.split(/\s+/).filter(Boolean).map(Number) };
}

export function runAsToEnv(r: RunAs): string {
  return `${r.uid}:${r.gid}:${r.groups.join(',')}`;
}

function runAsFromEnv(v: string): RunAs {
  const [uid, gid, groups] = v.split(':');
  return {
    user: `uid ${uid}`,
    uid: Number(uid),
    gid: Number(gid),
    groups: (groups ?? '').split(',').filter(Boolean).map(Number),
  };
}

/** Become `r` keeping KEPT_CAPABILITIES; checks what the kernel reports afterwards. */
export function dropTo(r: RunAs): DroppedPrivileges {
  let got: DroppedPrivileges;
  try {
    got = dropPrivileges(r.uid, r.gid, r.groups, Object.values(KEPT_CAPABILITIES));
  } catch (e) {
    throw new TzorpError('DAEMON_USER', `cannot drop privileges to ${r.user}: ${(e as Error).message}`, {
      cause: e,
      details: { user: r.user },
    });
  }
  if (got.uid !== r.uid || got.gid !== r.gid || got.effective !== KEPT_CAPABILITY_MASK) {
    throw new TzorpError(
      'DAEMON_USER',
      `after dropping privileges the process runs as uid ${got.uid} gid ${got.gid} with capabilities ${got.effective}, not ${r.uid}/${r.gid}/${KEPT_CAPABILITY_MASK}`,
      { details: { user: r.user } },
    );
  }
  return got;
}

/** In a worker: drop as the primary asked (TZORP_RUN_AS), before doing anything else. */
export function dropWorkerPrivileges(): void {
  const v = process.env[RUN_AS_ENV];
  if (v) dropTo(runAsFromEnv(v));
}

/** The control socket for `tzorp status` and friends: owner root, group `gid`, mode 0660. */
export function shareControlSocket(path: string, gid: number): void {
  chownSync(path, 0, gid);
  chmodSync(path, 0o660);
}
