// Giving the memory of a policy load back to the system (issue 14: daemon start-up RSS). Parsing,
// checking and compiling a policy, and a worker's preparation of a generation, leave a heap grown for
// that work: V8 keeps it (and glibc its free arenas) until memory runs short. The primary sheds it after
// the start and after each reload, a worker after a generation's commit when it has no sessions (a full
// collection's pause must not stall relaying). native/index.ts shedMemory does the work; this measures
// it for the log line (`Memory given back`, core.info level 4).
import { shedMemory as shedNative } from '../native/index.ts';

export interface MemoryShed {
  /** V8's heap (process.memoryUsage().heapTotal) and the resident set, bytes, before and after. */
  heapBefore: number;
  heapAfter: number;
  rssBefore: number;
  rssAfter: number;
  ms: number;
}

/** Shed now; null when the addon is not built (nothing done). */
export function shedMemory(): MemoryShed | null {
  const before = process.memoryUsage();
  const t0 = performance.now();
  if (!shedNative()) return null;
  const ms = performance.now() - t0;
  const after = process.memoryUsage();
  return {
    heapBefore: before.heapTotal,
    heapAfter: after.heapTotal,
    rssBefore: before.rss,
    rssAfter: after.rss,
    ms,
  };
}

/** The log line's fields, KiB and milliseconds. */
export function shedFields(s: MemoryShed): Record<string, number> {
  const kib = (b: number) => Math.round(b / 1024);
  return {
    heap_before_kib: kib(s.heapBefore),
    heap_after_kib: kib(s.heapAfter),
    rss_before_kib: kib(s.rssBefore),
    rss_after_kib: kib(s.rssAfter),
    ms: Math.round(s.ms * 10) / 10,
  };
}
