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

  /** The count of `key` that `worker` holds. */
  of(worker: number, key: string): number {
    return this.byWorker.get(worker)?.get(key) ?? 0;
  }

  add(worker: number, key: string, n = 1): void {
    const m = this.byWorker.get(worker) ?? new Map<string, number>();
    m.set(key, (m.get(key) ?? 0) + n);
    this.byWorker.set(worker, m);
  }

  /** `n` less of `key` for `worker` (never below none: a release nobody granted changes nothing). */
  remove(worker: number, key: string, n = 1): void {
    const m = this.byWorker.get(worker);
    const have = m?.get(key) ?? 0;
    if (!m || have === 0) return;
    if (have <= n) m.delete(key);
    else m.set(key, have - n);
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

/** Primary side: the max_sessions slots taken, per worker and service. A slot is a running session
 * admitted one by one (services with per-client limits), or a slot leased to a worker (LocalSlots),
 * running or kept free there for its next session. */
export class AdmissionLedger {
  private readonly taken = new WorkerCounts();

  /** Slots of `service` taken and not yet given back, over all workers. */
  count(service: string): number {
    return this.taken.total(service);
  }

  /** Slots of `service` that worker `worker` holds. */
  held(worker: number, service: string): number {
    return this.taken.of(worker, service);
  }

  /** Take a slot for worker `worker`; false when `max` (> 0) slots of `service` are taken. */
  admit(worker: number, service: string, max: number): boolean {
    return this.lease(worker, service, max, 1) === 1;
  }

  /** Lease up to `want` slots to worker `worker`, as many as `max` leaves free: how many it got. */
  lease(worker: number, service: string, max: number, want: number): number {
    const n = max > 0 ? Math.min(want, max - this.count(service)) : want;
    if (n <= 0) return 0;
    this.taken.add(worker, service, n);
    return n;
  }

  release(worker: number, service: string, n = 1): void {
    this.taken.remove(worker, service, n);
  }

  /** Worker `worker` exited: its slots are free again. */
  forget(worker: number): void {
    this.taken.forget(worker);
  }
}

/**
 * Worker side of max_sessions for a service without per-client limits: slots leased from the primary
 * in small batches, taken and given back here without asking it each time (issue 14: no round trip to
 * the primary per session). Exact all the same: the primary counts every leased slot as taken, so the
 * slots of all workers never exceed max_sessions, and when it has none left it takes back the free
 * ones (`drop`) from the other workers before it refuses. Slots are kept per service with the
 * max_sessions they were leased under; a reload that changes it makes them stale: they go back.
 */
export class LocalSlots {
  private readonly free = new Map<string, { max: number; n: number }>();

  /** Most free slots a worker keeps of one service; more go back to the primary. */
  static readonly KEEP = 16;

  /** Take a free slot of `service` leased under `max`: false when there is none. */
  take(service: string, max: number): boolean {
    const e = this.free.get(service);
    if (!e || e.max !== max || e.n === 0) return false;
    e.n--;
    return true;
  }

  /** Slots newly leased under `max` (stale ones of another max must have been dropped first). */
  add(service: string, max: number, n: number): void {
    const e = this.free.get(service);
    if (e && e.max === max) e.n += n;
    else this.free.set(service, { max, n });
  }

  /** A session admitted under `max` ended: its slot is free here again. Returns how many slots to give
   * back to the primary (beyond KEEP, or the slot itself when it was leased under another max). */
  give(service: string, max: number): number {
    const e = this.free.get(service);
    if (e && e.max !== max) return 1;
    if (!e) {
      this.free.set(service, { max, n: 1 });
      return 0;
    }
    e.n++;
    if (e.n <= LocalSlots.KEEP) return 0;
    const back = e.n - LocalSlots.KEEP;
    e.n = LocalSlots.KEEP;
    return back;
  }

  /** All free slots of `service` go back (the primary takes them back, or they are stale). */
  drop(service: string): number {
    const n = this.free.get(service)?.n ?? 0;
    this.free.delete(service);
    return n;
  }

  /** Free slots of `service` leased under another max than `max`: dropped, their number returned. */
  dropStale(service: string, max: number): number {
    const e = this.free.get(service);
    return e && e.max !== max ? this.drop(service) : 0;
  }
}
