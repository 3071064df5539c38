// max_sessions (Zorp): how many sessions of a proxy service may run at once, counted over the whole
// daemon. A connection is admitted or refused in exactly one place, WorkerRuntime.accept, before a
// session (id, core, driver) exists for it; the driver only carries out that answer (a refused
// connection ends DENIED_BY_LIMIT with its summary) and never counts on its own.
//
// The count lives in the primary (AdmissionLedger, one per daemon) because several workers accept on
// the same listener; a worker reaches it through its Admission.
import type { ProxyService } from '../policy/model.ts';
import type { LimitName } from './client-limits.ts';

/** A worker's way to take and give back max_sessions and per-client slots (client-limits.ts). */
export interface Admission {
  /** Take a slot of `service` for a connection from `client` (only asked for services with a limit:
   * needsAdmission). true, or the limit that refused (false: max_sessions). */
  admit(service: ProxyService, client: string): Promise<boolean | LimitName>;
  /** Give back a slot `admit` granted, when its session has ended. */
  release(service: ProxyService, client: string): void;
}

/** Counts per worker and key, summed over the workers on demand. A worker that dies takes its counts
 * with it (its sessions died with it). */
export class WorkerCounts {
  private readonly byWorker = new Map<number, Map<string, number>>();

  /** The count of `key` over all workers. */
  total(key: string): number {
    let n = 0;
    for (const m of this.byWorker.values()) n += m.get(key) ?? 0;
    return n;
  }

  add(worker: number, key: string): void {
    const m = this.byWorker.get(worker) ?? new Map<string, number>();
    m.set(key, (m.get(key) ?? 0) + 1);
    this.byWorker.set(worker, m);
  }

  /** One less of `key` for `worker`; nothing when it holds none (a release nobody granted). */
  remove(worker: number, key: string): void {
    const m = this.byWorker.get(worker);
    const n = m?.get(key) ?? 0;
    if (!m || n === 0) return;
    if (n === 1) m.delete(key);
    else m.set(key, n - 1);
  }

  forget(worker: number): void {
    this.byWorker.delete(worker);
  }

  /** Keys held, over all workers (a leak shows here). */
  get entries(): number {
    let n = 0;
    for (const m of this.byWorker.values()) n += m.size;
    return n;
  }
}

/** Primary side: the max_sessions slots taken, per worker and service. */
export class AdmissionLedger {
  private readonly taken = new WorkerCounts();

  /** Sessions of `service` admitted and not yet released, over all workers. */
  count(service: string): number {
    return this.taken.total(service);
  }

  /** Take a slot for worker `worker`; false when `max` (> 0) sessions of `service` already run. */
  admit(worker: number, service: string, max: number): boolean {
    if (max > 0 && this.count(service) >= max) return false;
    this.taken.add(worker, service);
    return true;
  }

  release(worker: number, service: string): void {
    this.taken.remove(worker, service);
  }

  /** Worker `worker` exited: its slots are free again. */
  forget(worker: number): void {
    this.taken.forget(worker);
  }
}
