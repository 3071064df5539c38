// Public surface of the daemon module (design.md: a folder's index.ts is what others import). The CLI
// uses it two ways: the control commands (status, sessions, reload, stop, log) talk to a running
// daemon over its control socket with the helpers and result shapes below; `tzorp run` and `tzorp
// check` load the daemon proper with loadDaemon().
//
// Why the daemon proper is loaded on demand: it pulls in the policy loader, kernel compiler, every
// proxy and the native addon, which costs about half a second of start-up that every `tzorp status`
// would pay. The import is static in type (no lookup, no mirror types): `Daemon` here is the class
// itself.

export type { Admission, AdmissionLedger } from './admission.ts';
export { type EffectiveConfig, effectiveConfig, type RunSettings, type Tunables } from './config.ts';
export {
  addControlOption,
  ask,
  formatAge,
  formatBytes,
  hostPort,
  levelArg,
  logSpecArg,
} from './control-cli.ts';
export { ControlError, controlRequest, type RequestOptions } from './control-client.ts';
// the control protocol's request and result shapes
export type * from './control-protocol.ts';
export { DAEMON_STATES, type DaemonState } from './lifecycle.ts';
export type { LogFormat, ZorpLog } from './log.ts';
export { LogLevels } from './log-spec.ts';
export type { Daemon, DaemonDeps, DaemonOptions } from './primary.ts';
export type { RunAs } from './privileges.ts';

/** The daemon proper: the primary process, its real collaborators (policy loader, kernel, proxies,
 * native listening sockets) and the Zorp-format log. */
export async function loadDaemon() {
  const [primary, deps, log, privileges] = await Promise.all([
    import('./primary.ts'),
    import('./deps.ts'),
    import('./log.ts'),
    import('./privileges.ts'),
  ]);
  return {
    Daemon: primary.Daemon,
    realDeps: deps.realDeps,
    loadPolicy: deps.loadPolicy,
    checkProxies: deps.checkProxies,
    ZorpLog: log.ZorpLog,
    /** tzorp run --user */
    privileges,
  };
}

/** What `tzorp check` needs of the daemon: the proxy-option checks `tzorp run` makes, without the primary,
 * its logging and metrics (pino, prom-client: a hundred more modules to load for every check). */
export async function loadChecks() {
  const deps = await import('./deps.ts');
  return { checkProxies: deps.checkProxies };
}
