// Chainers (zorp-semantics.md 5.2, zorp:pylib/Zorp/Chainer.py): in which order the router's targets
// are tried. One `ChainerRuntime` per service (and generation) keeps the state: the round-robin
// counter and the failed-targets cache.
//   connect      - the first target only (ConnectChainer).
//   failover     - primary first; targets that failed are skipped for timeoutStateMs; when all are
//                  down the cache is cleared and one more full round is tried (StateBasedChainer:
//                  "All destinations are down for two full iterations").
//   round_robin  - as failover, but each session starts one target further (RoundRobinChainer).
import { type ErrorId, TzorpError } from '../errors.ts';
import type { Chainer } from '../policy/model.ts';
import type { Addr } from '../proxy/core/types.ts';
import { formatAddr } from './addr.ts';

/** Thrown by an attempt to stop the chain at once (e.g. limit_target_zones_to): no further target. */
export class ChainStop extends TzorpError {
  constructor(message: string, id: ErrorId = 'CONNECT_FAILED') {
    super(id, message);
  }
}

export interface Attempt {
  target: Addr;
  error: string;
}

/** Every target failed. `attempts` lists them in order. */
export class ChainFailed extends TzorpError {
  constructor(readonly attempts: Attempt[]) {
    super(
      'CONNECT_FAILED',
      attempts.length === 0
        ? 'no target to connect to'
        : attempts.map((a) => `${formatAddr(a.target)}: ${a.error}`).join('; '),
    );
  }
}

export class ChainerRuntime {
  private rr = 0;
  /** Failed target (host) -> when it may be tried again (ms, the session clock). */
  private readonly down = new Map<string, number>();

  constructor(
    readonly config: Chainer,
    private readonly now: () => number = Date.now,
  ) {}

  /** Per-attempt connect timeout (Zorp timeout_connect). */
  get timeoutConnectMs(): number {
    return this.config.timeoutConnectMs;
  }

  /** Targets currently remembered as down (for status output and tests). */
  downTargets(): string[] {
    const t = this.now();
    return [...this.down].filter(([, until]) => until > t).map(([h]) => h);
  }

  /**
   * Try `attempt` on the targets in this chainer's order until one succeeds. Rejects with ChainFailed
   * when all failed, or with the ChainStop an attempt threw.
   */
  run<T>(targets: Addr[], attempt: (t: Addr) => Promise<T>): Promise<{ value: T; target: Addr }> {
    if (this.config.type !== 'connect' || targets.length === 0) return this.runChain(targets, attempt);
    // The one target of a connect chainer (most services): one promise step instead of an async
    // function around the attempt's (a session's connect is on every session's path).
    const target = targets[0]!;
    return rejectingCall(attempt, target).then(
      (value) => ({ value, target }),
      (e: unknown) => {
        if (e instanceof ChainStop) throw e;
        throw new ChainFailed([{ target, error: errText(e) }]);
      },
    );
  }

  private async runChain<T>(
    targets: Addr[],
    attempt: (t: Addr) => Promise<T>,
  ): Promise<{ value: T; target: Addr }> {
    const attempts: Attempt[] = [];
    const config = this.config;
    if (targets.length === 0 || config.type === 'connect') throw new ChainFailed(attempts); // (run has the one target of connect)
    const start = config.type === 'round_robin' ? this.rr++ % targets.length : 0;
    if (this.rr >= Number.MAX_SAFE_INTEGER) this.rr = 0;
    const order = targets.map((_, i) => targets[(start + i) % targets.length]!);
    for (let round = 0; round < 2; round++) {
      for (const target of order) {
        const until = this.down.get(target.host);
        if (until !== undefined) {
          if (until > this.now()) continue;
          this.down.delete(target.host);
        }
        try {
          const value = await attempt(target);
          this.down.delete(target.host);
          return { value, target };
        } catch (e) {
          if (e instanceof ChainStop) throw e;
          attempts.push({ target, error: errText(e) });
          this.down.set(target.host, this.now() + config.timeoutStateMs);
        }
      }
      // Every target is down (failed now or remembered): forget and go round once more.
      for (const t of order) this.down.delete(t.host);
    }
    throw new ChainFailed(attempts);
  }
}

/** `f(arg)`, a synchronous throw turned into its rejection, as an async function would (without one,
 * nor a closure: this runs on every session's connect). */
export function rejectingCall<A, T>(f: (arg: A) => Promise<T>, arg: A): Promise<T> {
  try {
    return f(arg);
  } catch (e) {
    return Promise.reject(e);
  }
}

function errText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
