// Per-service session statistics as Zorp's SZIG shows them (zorp-semantics.md 7.2): sessions running
// and total, and the session start rate averaged over 1, 5 and 15 minutes the way the kernel's load
// average is (exponentially damped, sampled every DEFAULTS.rateTickMs). Time comes from the caller: pure.

const WINDOWS_MS = { m1: 60_000, m5: 300_000, m15: 900_000 } as const;

export interface Rates {
  m1: number;
  m5: number;
  m15: number;
}

export interface ServiceCounters {
  running: number;
  total: number;
  refused: number;
  /** Refusals by the limit that refused (max_sessions, max_sessions_per_client, new_sessions_per_client). */
  refusedBy?: Record<string, number>;
  lastStartedMs: number | null;
  rate: Rates;
}

/** Session start rate (per second) as three exponentially weighted moving averages. */
export class RateMeter {
  private pending = 0;
  private lastTickMs: number;
  readonly rate: Rates = { m1: 0, m5: 0, m15: 0 };

  constructor(nowMs: number) {
    this.lastTickMs = nowMs;
  }

  mark(): void {
    this.pending++;
  }

  /** Fold the events since the last tick into the averages; call every DEFAULTS.rateTickMs or so. */
  tick(nowMs: number): void {
    const dt = nowMs - this.lastTickMs;
    if (dt <= 0) return;
    const instant = (this.pending * 1000) / dt;
    for (const k of ['m1', 'm5', 'm15'] as const) {
      const decay = Math.exp(-dt / WINDOWS_MS[k]);
      this.rate[k] = this.rate[k] * decay + instant * (1 - decay);
    }
    this.pending = 0;
    this.lastTickMs = nowMs;
  }
}

export class ServiceStats {
  private readonly counters = new Map<string, ServiceCounters & { meter: RateMeter }>();

  constructor(private readonly now: () => number = Date.now) {}

  private get(service: string) {
    let c = this.counters.get(service);
    if (!c) {
      const meter = new RateMeter(this.now());
      c = { running: 0, total: 0, refused: 0, lastStartedMs: null, rate: meter.rate, meter };
      this.counters.set(service, c);
    }
    return c;
  }

  started(service: string): void {
    const c = this.get(service);
    c.running++;
    c.total++;
    c.lastStartedMs = this.now();
    c.meter.mark();
  }

  ended(service: string): void {
    const c = this.get(service);
    if (c.running > 0) c.running--;
  }

  refused(service: string, limit = 'max_sessions'): void {
    const c = this.get(service);
    c.refused++;
    c.refusedBy ??= {};
    c.refusedBy[limit] = (c.refusedBy[limit] ?? 0) + 1;
  }

  tick(): void {
    const t = this.now();
    for (const c of this.counters.values()) c.meter.tick(t);
  }

  snapshot(): Record<string, ServiceCounters> {
    const out: Record<string, ServiceCounters> = {};
    for (const [name, c] of this.counters) {
      out[name] = {
        running: c.running,
        total: c.total,
        refused: c.refused,
        ...(c.refusedBy ? { refusedBy: { ...c.refusedBy } } : {}),
        lastStartedMs: c.lastStartedMs,
        rate: { ...c.rate },
      };
    }
    return out;
  }
}

/** Sum the snapshots of several workers (rates are linear, so the sum is the daemon's rate). */
export function mergeCounters(parts: Record<string, ServiceCounters>[]): Record<string, ServiceCounters> {
  const out: Record<string, ServiceCounters> = {};
  for (const p of parts) {
    for (const [name, c] of Object.entries(p)) {
      let o = out[name];
      if (!o) {
        o = { running: 0, total: 0, refused: 0, lastStartedMs: null, rate: { m1: 0, m5: 0, m15: 0 } };
        out[name] = o;
      }
      o.running += c.running;
      o.total += c.total;
      o.refused += c.refused;
      for (const [k, v] of Object.entries(c.refusedBy ?? {})) {
        o.refusedBy ??= {};
        o.refusedBy[k] = (o.refusedBy[k] ?? 0) + v;
      }
      if (c.lastStartedMs !== null && (o.lastStartedMs === null || c.lastStartedMs > o.lastStartedMs)) {
        o.lastStartedMs = c.lastStartedMs;
      }
      o.rate.m1 += c.rate.m1;
      o.rate.m5 += c.rate.m5;
      o.rate.m15 += c.rate.m15;
    }
  }
  return out;
}
