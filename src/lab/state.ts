// What `tzorp lab up` started, written to <stateDir>/state.json so that `status`, `exec` and `down`
// (separate processes, possibly much later) find exactly the lab's namespaces and processes.
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { TzorpError } from '../errors.ts';
import { LAB_NAME_RE, type NodeRole } from './topology.ts';

/** Where labs keep their state; /run is a tmpfs, so a reboot (which also removes the namespaces)
 * forgets them too. TZORP_LAB_DIR moves it (tests, non-standard systems). */
export function labBaseDir(): string {
  return process.env.TZORP_LAB_DIR ?? '/run/tzorp-lab';
}

export function labStateDir(name: string): string {
  return join(labBaseDir(), name);
}

export interface LabProcessRecord {
  /** What it is: 'servers', 'vsftpd', 'tzorp'. */
  name: string;
  node: NodeRole;
  pid: number;
  /** Field 22 of /proc/<pid>/stat when started: a later pid with another start time is not ours. */
  startTime: string;
  argv: string[];
  /** Its stdout and stderr. */
  log: string;
}

export type FirewallMode = 'run' | 'apply' | 'none';

export interface LabState {
  version: 1;
  name: string;
  createdAt: string;
  stateDir: string;
  /** The policy the firewall uses (absolute path, as given), or null when none was loaded. */
  policy: { file: string; sha256: string } | null;
  namespaces: Record<NodeRole, string>;
  processes: LabProcessRecord[];
  /** How tzorp runs in the firewall: the daemon (`tzorp run`), a one-off ruleset (`tzorp apply`), or
   * not at all (topology only), with a line saying why. */
  firewall: { mode: FirewallMode; detail: string; controlSocket: string | null };
  /** Files the servers write: what they saw (one JSON object a line) and vsftpd's protocol log. */
  logs: { servers: string; vsftpd: string; tzorp: string | null };
}

export function checkLabName(name: string): string | null {
  return LAB_NAME_RE.test(name)
    ? null
    : `lab name '${name}' must be 1-20 characters: lower-case letters, digits, '-' or '_', starting with a letter or digit`;
}

export function readLabState(name: string): LabState | null {
  let text: string;
  try {
    text = readFileSync(join(labStateDir(name), 'state.json'), 'utf8');
  } catch {
    return null;
  }
  const damaged = () =>
    new TzorpError('LAB_STATE', `${labStateDir(name)}/state.json is not a lab state file`);
  let s: LabState;
  try {
    s = JSON.parse(text) as LabState;
  } catch {
    throw damaged();
  }
  if (s?.version !== 1 || s.name !== name) throw damaged();
  return s;
}

/** Written atomically (rename), so a reader never sees half a file. */
export function writeLabState(state: LabState): void {
  mkdirSync(state.stateDir, { recursive: true });
  const file = join(state.stateDir, 'state.json');
  writeFileSync(`${file}.tmp`, `${JSON.stringify(state, null, 2)}\n`);
  renameSync(`${file}.tmp`, file);
}
