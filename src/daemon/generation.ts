// Generations (zorp-semantics.md 7.4): the daemon runs one policy generation at a time. A reload
// builds the next one completely (load and check the policy, compile the ruleset, open new listeners,
// let every worker build its engine) before anything changes; only then is the kernel ruleset applied
// (one nft transaction) and the workers switch. A policy with errors, a ruleset nft refuses or a worker
// that cannot prepare refuses the reload: the running generation, its listeners and its kernel table
// stay as they are. Reloads are serialized: one waits for the one before it.
//
// Running sessions keep the generation they started on (workers hold its Policy/Engine objects);
// listeners of services that stay keep their port, hence the same listening socket, across reloads.
import { TzorpError } from '../errors.ts';
import type { Compiled, Listener } from '../kernel/index.ts';
import type { LoadResult, Policy } from '../policy/index.ts';

/** The part of the kernel compiler's output a generation keeps: the nft text and where each proxy
 * service's diverted connections arrive. */
export type CompiledRuleset = Pick<Compiled, 'text' | 'listeners'>;

export interface Generation {
  n: number;
  policy: Policy;
  compiled: CompiledRuleset;
  loadedAt: Date;
  warnings: string[];
}

/** A loaded policy file and how long loading it took. */
export interface Loading {
  loaded: LoadResult;
  ms: number;
}

/** The steps a generation change needs; the daemon wires them to the policy loader, kernel module and
 * worker pool, tests to fakes. */
export interface GenerationSteps {
  load(file: string): Promise<LoadResult>;
  /** Checks beyond the loader (proxy names and options); returns user errors. */
  check(policy: Policy): TzorpError[];
  compile(policy: Policy, listenPorts: Map<string, number>): CompiledRuleset;
  /** Where each proxy service's connections arrive: what compile() gives as `listeners`, without
   * compiling. When given, the workers prepare while the primary compiles: prepare starts first (with
   * a generation whose `compiled.text` is still empty) and the compile waits only until `prepareSent`. */
  listeners?(policy: Policy, listenPorts: Map<string, number>): CompiledRuleset['listeners'];
  /** Open listeners and let the workers build the generation; nothing is visible yet. */
  prepare(next: Generation, current: Generation | null): Promise<void>;
  /** Resolves once prepare() has handed `next` to every worker (written out, not yet answered). */
  prepareSent?(next: Generation): Promise<void>;
  /** Install the ruleset (atomic); throws when the kernel refused it. */
  apply(next: Generation): Promise<void>;
  /** Switch the workers to `next`, then close what only `previous` used. */
  commit(next: Generation, previous: Generation | null): Promise<void>;
  /** Undo `prepare` after a refusal. */
  abort(next: Generation, current: Generation | null): Promise<void>;
}

export interface ReloadOutcome {
  generation: Generation;
  previous: Generation | null;
  servicesAdded: string[];
  servicesRemoved: string[];
  /** How long each step took, ms (the reload's log line says where the time went). */
  ms: { load: number; compile: number; prepare: number; apply: number };
}

function sameListeners(a: CompiledRuleset['listeners'], b: CompiledRuleset['listeners']): boolean {
  if (a.size !== b.size) return false;
  for (const [name, x] of a) {
    const y = b.get(name);
    if (
      !y ||
      x.v4.host !== y.v4.host ||
      x.v4.port !== y.v4.port ||
      x.v6.host !== y.v6.host ||
      x.v6.port !== y.v6.port
    )
      return false;
  }
  return true;
}

/** Refused reload: the user's errors (file:line:col) or the environment's (nft, listeners). */
export function refused(errors: TzorpError[], warnings: TzorpError[] = []): TzorpError {
  const lines = errors.map((e) => e.format());
  return new TzorpError(
    'DAEMON_RELOAD_REFUSED',
    `the policy was refused (${errors.length} error${errors.length === 1 ? '' : 's'}); the running generation stays`,
    { details: { errors: lines, warnings: warnings.map((w) => w.format()) } },
  );
}

function proxyNames(p: Policy): string[] {
  return [...p.services.values()].filter((s) => s.type === 'proxy').map((s) => s.name);
}

/**
 * Listener ports for the next policy: an explicit `listen_port` wins; a proxy service that already
 * runs keeps its port (same socket, no gap); a new one gets listenPortBase + id - 1 unless that port is
 * taken, then the next free port from the base up.
 */
export function planListenPorts(policy: Policy, previous: Map<string, Listener> | null): Map<string, number> {
  const out = new Map<string, number>();
  const used = new Set<number>();
  const proxies = [...policy.services.values()].filter((s) => s.type === 'proxy').sort((a, b) => a.id - b.id);
  for (const s of proxies) {
    if (s.type === 'proxy' && s.listenPort !== null) {
      out.set(s.name, s.listenPort);
      used.add(s.listenPort);
    }
  }
  for (const s of proxies) {
    if (out.has(s.name)) continue;
    const kept = previous?.get(s.name)?.v4.port;
    if (kept !== undefined && !used.has(kept)) {
      out.set(s.name, kept);
      used.add(kept);
    }
  }
  for (const s of proxies) {
    if (out.has(s.name)) continue;
    let port = policy.settings.listenPortBase + s.id - 1;
    while (used.has(port) && port < 65535) port++;
    out.set(s.name, port);
    used.add(port);
  }
  return out;
}

export class Generations {
  private currentGen: Generation | null = null;
  private counter = 0;
  private chain: Promise<unknown> = Promise.resolve();

  constructor(
    readonly policyFile: string,
    private readonly steps: GenerationSteps,
  ) {}

  get current(): Generation | null {
    return this.currentGen;
  }

  /** Load and switch to the policy file's current content. Serialized; rejects with
   * DAEMON_RELOAD_REFUSED (details.errors) when refused, leaving the running generation in place. */
  /** `loading`: the policy file already being read (loadFile), e.g. while the first workers start. */
  reload(loading?: Promise<Loading>): Promise<ReloadOutcome> {
    return this.exclusive(() => this.reloadNow(loading));
  }

  /** Reads and loads the policy file, timed. */
  async loadFile(): Promise<Loading> {
    const t = performance.now();
    const loaded = await this.steps.load(this.policyFile);
    return { loaded, ms: performance.now() - t };
  }

  /** Runs `f` in the same serial order as reloads: no reload starts or ends while it runs (a
   * restarted worker is brought to the current generation this way, never to one a reload is
   * replacing at that moment). */
  exclusive<T>(f: () => Promise<T>): Promise<T> {
    const run = this.chain.then(f, f);
    this.chain = run.catch(() => {});
    return run;
  }

  /** Switch back to a policy a generation ran (reload --confirm not confirmed in time): a new
   * generation with that policy, through the same steps as a reload. */
  revertTo(policy: Policy): Promise<ReloadOutcome> {
    return this.exclusive(() => this.switchTo({ policy, errors: [], warnings: [] }));
  }

  private async reloadNow(loading?: Promise<Loading>): Promise<ReloadOutcome> {
    const { loaded, ms } = await (loading ?? this.loadFile());
    return this.switchTo(loaded, ms);
  }

  private async switchTo(
    loaded: Awaited<ReturnType<GenerationSteps['load']>>,
    loadMs = 0,
  ): Promise<ReloadOutcome> {
    const ms = { load: Math.round(loadMs), compile: 0, prepare: 0, apply: 0 };
    let t = performance.now();
    const lap = (): number => {
      const now = performance.now();
      const d = Math.round(now - t);
      t = now;
      return d;
    };
    if (!loaded.policy || loaded.errors.length > 0) throw refused(loaded.errors, loaded.warnings);
    const policy = loaded.policy;
    const checkErrors = this.steps.check(policy);
    if (checkErrors.length > 0) throw refused(checkErrors, loaded.warnings);
    const previous = this.currentGen;
    ms.load += lap(); // (with the check)
    const ports = planListenPorts(policy, previous?.compiled.listeners ?? null);
    const next: Generation = {
      n: this.counter + 1,
      policy,
      compiled: { text: '', listeners: new Map() },
      loadedAt: new Date(),
      warnings: loaded.warnings.map((w) => w.format()),
    };
    const fail = async (e: unknown, prepared: boolean): Promise<never> => {
      if (prepared) await this.steps.abort(next, previous).catch(() => {});
      throw e instanceof TzorpError ? refused([e], loaded.warnings) : e;
    };
    // The workers' part (the policy to each, an engine built there) runs beside the compile when the
    // listeners are known first; the compile starts once the policy is written out to every worker (a
    // pipe write left half done would wait for the compile otherwise).
    let preparing: Promise<void> | null = null;
    if (this.steps.listeners) {
      try {
        next.compiled = { text: '', listeners: this.steps.listeners(policy, ports) };
      } catch (e) {
        await fail(e, false);
      }
      preparing = this.steps.prepare(next, previous);
      preparing.catch(() => {}); // awaited below, after the compile
      await this.steps.prepareSent?.(next);
      ms.prepare += lap();
    }
    try {
      const compiled = this.steps.compile(policy, ports);
      if (preparing && !sameListeners(next.compiled.listeners, compiled.listeners))
        throw new TzorpError('INTERNAL', 'the compiled listeners differ from the ones the workers prepared');
      next.compiled = compiled;
    } catch (e) {
      if (preparing) await preparing.catch(() => {});
      await fail(e, preparing !== null);
    }
    ms.compile = lap();
    try {
      await (preparing ?? this.steps.prepare(next, previous));
    } catch (e) {
      await fail(e, true);
    }
    ms.prepare += lap();
    try {
      await this.steps.apply(next);
    } catch (e) {
      await fail(e, true);
    }
    ms.apply = lap();
    this.counter = next.n;
    this.currentGen = next;
    await this.steps.commit(next, previous);
    const before = new Set(previous ? proxyNames(previous.policy) : []);
    const after = new Set(proxyNames(policy));
    return {
      generation: next,
      previous,
      servicesAdded: [...after].filter((s) => !before.has(s)).sort(),
      servicesRemoved: [...before].filter((s) => !after.has(s)).sort(),
      ms,
    };
  }
}
