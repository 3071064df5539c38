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

/** Primary side: the slots taken, per worker and service. A worker that dies gives its slots back
 * (its sessions died with it). */
export class AdmissionLedger {
  private readonly taken = new Map<number, Map<string, number>>();

  /** Sessions of `service` admitted and not yet released, over all workers. */
  count(service: string): number {
    let n = 0;
    for (const m of this.taken.values()) n += m.get(service) ?? 0;
    return n;
  }

  /** Take a slot for worker `worker`; false when `max` (> 0) sessions of `service` already run. */
  admit(worker: number, service: string, max: number): boolean {
    if (max > 0 && this.count(service) >= max) return false;
    const m = this.taken.get(worker) ?? new Map<string, number>();
    m.set(service, (m.get(service) ?? 0) + 1);
    this.taken.set(worker, m);
    return true;
  }

  release(worker: number, service: string): void {
    const m = this.taken.get(worker);
    const n = m?.get(service) ?? 0;
    if (!m || n === 0) return;
    if (n === 1) m.delete(service);
    else m.set(service, n - 1);
  }

  /** Worker `worker` exited: its slots are free again. */
  forget(worker: number): void {
    this.taken.delete(worker);
  }
}
