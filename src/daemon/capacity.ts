// How many sessions the descriptor limit allows (issue 14). The daemon raises its soft RLIMIT_NOFILE
// to the hard limit at start (the workers it forks inherit it) and logs the session capacity that
// implies; each worker refuses new sessions beyond its share instead of running into EMFILE halfway
// through a session start (accept, upstream socket, the native relay's dup).
import { DEFAULTS } from '../defaults.ts';
import { raiseNofile } from '../native/index.ts';

export interface DescriptorLimit {
  /** The soft limit now in force; Infinity when unlimited. */
  soft: number;
  hard: number;
}

/** Raise the soft RLIMIT_NOFILE to the hard limit; null when the native addon is not built. */
export function raiseDescriptorLimit(): DescriptorLimit | null {
  try {
    const r = raiseNofile();
    return { soft: r.soft < 0 ? Infinity : r.soft, hard: r.hard < 0 ? Infinity : r.hard };
  } catch {
    return null;
  }
}

/** Sessions one process can hold under `soft` descriptors: what the reserve leaves, two per session. */
export function sessionCapacity(soft: number): number {
  if (!Number.isFinite(soft)) return Infinity;
  return Math.max(0, Math.floor((soft - DEFAULTS.fdReserveCount) / DEFAULTS.fdsPerSessionCount));
}
