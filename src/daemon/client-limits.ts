// Per-client admission (issue 16): `max_sessions_per_client` (concurrent sessions of one service from
// one source address) and `new_sessions_per_client` (a token bucket per service and source address),
// decided by the primary for every worker at once, before a session's core runs and so before any
// server connection. Pure: the caller passes the time.
import { DEFAULTS } from '../defaults.ts';
import { WorkerCounts } from './admission.ts';

export type LimitName = 'max_sessions' | 'max_sessions_per_client' | 'new_sessions_per_client';

export interface PerClientLimits {
  maxSessionsPerClient: number;
  newSessionsPerClient: { rate: number; perSeconds: number } | null;
}

/** What a worker sends with an admission request for per-client limits. */
export interface ClientAdmission extends PerClientLimits {
  address: string;
}

/** Does a service need the primary's answer before a session starts? */
export function needsAdmission(s: {
  maxSessions: number;
  maxSessionsPerClient?: number | undefined;
  newSessionsPerClient?: { rate: number; perSeconds: number } | null | undefined;
}): boolean {
  return s.maxSessions > 0 || (s.maxSessionsPerClient ?? 0) > 0 || !!s.newSessionsPerClient;
}

/** The per-client limits of a service for one client address, or undefined when it has none. */
export function perClientOf(
  service: {
    maxSessionsPerClient?: number | undefined;
    newSessionsPerClient?: { rate: number; perSeconds: number } | null | undefined;
  },
  address: string,
): ClientAdmission | undefined {
  const max = service.maxSessionsPerClient ?? 0;
  const rate = service.newSessionsPerClient ?? null;
  if (max === 0 && rate === null) return undefined;
  return { address, maxSessionsPerClient: max, newSessionsPerClient: rate };
}

interface Bucket {
  tokens: number;
  atMs: number;
}

export class ClientLimits {
  /** "service client" -> sessions admitted and not yet released, per worker. */
  private readonly running = new WorkerCounts();
  /** "service client" -> its token bucket; Map order is least recently used first. */
  private readonly buckets = new Map<string, Bucket>();

  constructor(private readonly maxBuckets: number = DEFAULTS.clientRateTableEntries) {}

  /** Take a per-client slot for a session of `worker`, or say which limit refuses it. */
  acquire(
    worker: number,
    service: string,
    client: string,
    limits: PerClientLimits,
    nowMs: number,
  ): LimitName | null {
    const key = `${service} ${client}`;
    if (limits.maxSessionsPerClient > 0 && this.running.total(key) >= limits.maxSessionsPerClient)
      return 'max_sessions_per_client';
    const r = limits.newSessionsPerClient;
    if (r) {
      const b = this.buckets.get(key) ?? { tokens: r.rate, atMs: nowMs };
      // Refill at rate per perSeconds, never above the bucket's size (the burst is `rate`).
      b.tokens = Math.min(r.rate, b.tokens + ((nowMs - b.atMs) * r.rate) / (r.perSeconds * 1000));
      b.atMs = nowMs;
      this.buckets.delete(key);
      this.buckets.set(key, b);
      while (this.buckets.size > this.maxBuckets) this.buckets.delete(this.buckets.keys().next().value!);
      if (b.tokens < 1) return 'new_sessions_per_client';
      b.tokens -= 1;
    }
    if (limits.maxSessionsPerClient > 0) this.running.add(worker, key);
    return null;
  }

  release(worker: number, service: string, client: string): void {
    this.running.remove(worker, `${service} ${client}`);
  }

  /** A worker died: its sessions are gone, and so are their slots. */
  dropWorker(worker: number): void {
    this.running.forget(worker);
  }

  /** Entries held (for the control socket's leak counts). */
  get size(): { clients: number; buckets: number } {
    return { clients: this.running.entries, buckets: this.buckets.size };
  }
}
