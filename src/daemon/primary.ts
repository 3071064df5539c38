// The daemon's primary process: owns the policy generations, the kernel ruleset, the listening
// sockets, the control socket and the workers. It never accepts a proxied connection itself.
//
// Lifecycle (lifecycle.ts): starting → running ⇄ reloading → draining → stopped.
// Start: open the control socket (status answers "starting"), start the workers, build generation 1
// (listeners, workers' engines, kernel ruleset). Reload (control or SIGHUP): generation.ts. Stop
// (control or SIGTERM): stop accepting, drain with a timeout, flush what tzorp installed, exit. Log
// levels: control, SIGUSR1 (+1), SIGUSR2 (-1).
import v8 from 'node:v8';
import { DEFAULTS } from '../defaults.ts';
import { TzorpError } from '../errors.ts';
import type { SysctlCheck } from '../kernel/index.ts';
import type { LoadResult, Policy, Zone } from '../policy/index.ts';
import { AdmissionLedger } from './admission.ts';
import { raiseDescriptorLimit, sessionCapacity } from './capacity.ts';
import { ClientLimits, type LimitName } from './client-limits.ts';
import type { EffectiveConfig } from './config.ts';
import type {
  ConfirmResult,
  ControlRequest,
  LogResult,
  ReloadResult,
  ServiceStatus,
  SessionInfo,
  StatusResult,
  StopResult,
} from './control-protocol.ts';
import { ControlServer, controlSocketInUse } from './control-server.ts';
import { type CompiledRuleset, type Generation, Generations } from './generation.ts';
import {
  type FromWorker,
  type LogSettings,
  listenerKey,
  type WorkerGenerationWire,
  type WorkerStatus,
} from './ipc.ts';
import { KernelLog } from './kernel-log.ts';
import { type DaemonState, Lifecycle } from './lifecycle.ts';
import { ListenerTable } from './listeners.ts';
import type { ZorpLog } from './log.ts';
import { type MemoryShed, shedFields } from './memory.ts';
import { PrimaryMetrics } from './metrics.ts';
import { WorkerPool } from './pool.ts';
import { IdBlockAllocator } from './session-ids.ts';
import { mergeCounters } from './stats.ts';

/** The other modules the daemon drives (deps.ts realDeps; fakes in tests). */
export interface DaemonDeps {
  load(file: string): Promise<LoadResult>;
  check(policy: Policy): TzorpError[];
  compile(policy: Policy, listenPorts: Map<string, number>): CompiledRuleset;
  /** The listeners compile() would give, without compiling (lets the workers prepare beside it). */
  listeners?(policy: Policy, listenPorts: Map<string, number>): CompiledRuleset['listeners'];
  /** Install ruleset + policy routing + sysctls (daemon's namespace): the sysctls still wrong, and how
   * the table went in (`staged`: a first apply whose zone section loaded while compile() ran). */
  apply(
    policy: Policy,
    listenPorts: Map<string, number>,
  ): Promise<{ wrong: SysctlCheck[]; kernel: 'differences' | 'whole' | 'staged'; fallback?: string }>;
  flush(): Promise<void>;
  /** Take back what a compile began in the kernel for an apply that will not come (a staged first
   * apply's zone section, when the start failed after the compile). */
  discardStaged?(): Promise<void>;
  listenFd(host: string, port: number, family: 4 | 6): number;
  closeFd(fd: number): void;
  /** TCP_QUICKACK 0 (`on`) or 1 on a listening socket (absent: listeners keep the kernel's default). */
  deferAcks?(fd: number, on: boolean): void;
  /** The NFLOG socket of the kernel's log rules (forward/deny services with logging), or absent. */
  kernelLogFd?(): number;
  /** Give the memory of a policy load back to the system (memory.ts), after the start and after each
   * reload; null when it could not (no addon). */
  shedMemory?(): MemoryShed | null;
}

export interface DaemonOptions {
  policyFile: string;
  controlPath: string;
  workers: number;
  log: LogSettings;
  /** Manage the kernel ruleset (false: --no-kernel, listeners only). */
  kernel: boolean;
  /** false: --no-native-relay, sessions copy in JavaScript only (default true). */
  nativeRelay?: boolean;
  /** false: --no-native-io, HTTP sessions run on net.Socket (default true). */
  nativeIo?: boolean;
  /** --relay-thread / --relay-loop: where each worker's native relay runs (unset: the addon's default,
   * the loop, or TZORP_RELAY_MODE). */
  relayMode?: 'loop' | 'thread';
  metrics: { host: string; port: number } | null;
  stopTimeoutMs: number;
  /** The effective configuration (config.ts): what `status` reports, and the tunables the daemon uses. */
  config: EffectiveConfig;
}

function listenPortsOf(g: Generation): Map<string, number> {
  return new Map([...g.compiled.listeners].map(([name, l]) => [name, l.v4.port]));
}

export class Daemon {
  readonly startedAt = new Date();
  private readonly generations: Generations;
  private readonly pool: WorkerPool;
  private readonly listeners: ListenerTable;
  private readonly ids = new IdBlockAllocator();
  private readonly admission = new AdmissionLedger();
  /** max_sessions_per_client and new_sessions_per_client, over all workers (client-limits.ts). */
  private readonly clientLimits = new ClientLimits();
  /** Sessions running per worker, as each last reported ('load'): what a dying worker takes along. */
  private readonly load = new Map<number, number>();
  private readonly lifecycle: Lifecycle;
  private readonly metrics: PrimaryMetrics;
  private control: ControlServer | null = null;
  /** Listener keys each worker has been sent. */
  private readonly sent = new Map<number, Set<string>>();
  private stopping: Promise<StopResult> | null = null;
  /** Reloads in flight (they are serialized): the state is `reloading` while any is. */
  private reloads = 0;
  private kernelLog: KernelLog | null = null;
  /** reload --confirm waiting for `confirm`: the last confirmed policy and the timer that reverts to
   * it. A later reload --confirm keeps the same policy to revert to; a plain reload confirms. */
  private pendingConfirm: { policy: Policy; generation: number; timer: NodeJS.Timeout } | null = null;
  private exitResolve!: (code: number) => void;
  /** Resolves with the exit code when the daemon has stopped. */
  readonly exited = new Promise<number>((r) => {
    this.exitResolve = r;
  });

  constructor(
    private readonly opts: DaemonOptions,
    private readonly deps: DaemonDeps,
    private readonly log: ZorpLog,
  ) {
    this.lifecycle = new Lifecycle((from, to) =>
      this.log.write('core.info', 4, null, 'Daemon state changed', { from, to }),
    );
    this.listeners = new ListenerTable(deps.listenFd, deps.closeFd, deps.deferAcks?.bind(deps) ?? null);
    this.metrics = new PrimaryMetrics(() => this.pool.gather({ t: 'metrics' }));
    this.pool = new WorkerPool(
      (i, m) => this.onWorkerMessage(i, m),
      (i, code, sig) => this.onWorkerExit(i, code, sig),
    );
    this.generations = new Generations(opts.policyFile, {
      load: (f) => deps.load(f),
      check: (p) => deps.check(p),
      compile: (p, ports) => deps.compile(p, ports),
      ...(deps.listeners
        ? { listeners: (p: Policy, ports: Map<string, number>) => deps.listeners!(p, ports) }
        : {}),
      prepare: (next) => this.prepare(next),
      prepareSent: (next) => this.prepareSent.get(next) ?? Promise.resolve(),
      apply: (next) => this.apply(next),
      commit: (next, prev) => this.commit(next, prev),
      abort: (next) => this.abort(next),
    });
  }

  // ---- lifecycle ---------------------------------------------------------------------------------

  get state(): DaemonState {
    return this.lifecycle.state;
  }

  async start(): Promise<void> {
    // Before anything is changed: a second daemon must not replace the first one's kernel table.
    if (await controlSocketInUse(this.opts.controlPath)) {
      throw new TzorpError('DAEMON_ALREADY_RUNNING', `a daemon already answers on ${this.opts.controlPath}`, {
        details: { path: this.opts.controlPath },
      });
    }
    this.log.write('core.info', 3, null, 'tzorp starting', {
      policy: this.opts.policyFile,
      workers: this.opts.workers,
      kernel: this.opts.kernel,
    });
    // Before the workers are forked (they inherit it): as many descriptors as the hard limit allows.
    const nofile = raiseDescriptorLimit();
    const perWorker = nofile ? sessionCapacity(nofile.soft) : Infinity;
    this.log.write('core.info', 3, null, 'Descriptor limit', {
      nofile: nofile ? String(nofile.soft) : 'unknown (no native addon)',
      session_capacity_per_worker: String(perWorker),
      session_capacity: String(perWorker * this.opts.workers),
    });
    // The control socket first: `tzorp status` can tell a daemon that is starting from none at all.
    const control = new ControlServer(this.opts.controlPath, (req) => this.handle(req));
    await control.listen();
    this.control = control;
    const startedAt = performance.now();
    const workers = Promise.all(
      Array.from({ length: this.opts.workers }, async (_, i) => {
        await this.startWorker(i);
        this.pool.markServing(i); // the first generation reaches every worker through gather
      }),
    );
    // The policy is read and loaded while the workers start (other processes); a policy that does not
    // load is reported by the first generation, after the workers answered (or failed to start).
    const loading = this.generations.loadFile();
    loading.catch(() => {}); // (its error is the reload's below; not an unhandled rejection meanwhile)
    await workers;
    const workersMs = Math.round(performance.now() - startedAt);
    const first = await this.generations.reload(loading);
    this.metrics.generation.set(first.generation.n);
    if (this.opts.kernel && this.deps.kernelLogFd) this.startKernelLog(this.deps.kernelLogFd);
    this.metrics.workers.set(this.pool.serving().length);
    if (this.opts.metrics) {
      const a = await this.metrics.listen(this.opts.metrics.host, this.opts.metrics.port);
      this.log.write('core.info', 3, null, 'Metrics listener ready', { address: `${a.host}:${a.port}` });
    }
    this.installSignals();
    // The start's garbage goes before the daemon says it runs: its memory from then on is what it
    // keeps (a reload's goes after the reload has answered, below).
    this.shedMemoryNow();
    this.lifecycle.to('running');
    this.log.write('core.info', 3, null, 'tzorp running', {
      pid: process.pid,
      generation: first.generation.n,
      sha256: first.generation.policy.source.sha256,
      control: this.opts.controlPath,
      workers: this.pool.alive().length,
      listeners: this.listeners.keys().join(' '),
      // where the start went, as `Policy reloaded` tells it for a reload, plus the workers' start (the
      // policy loads meanwhile: workers_start_ms and load_ms overlap)
      workers_start_ms: workersMs,
      load_ms: first.ms.load,
      compile_ms: first.ms.compile,
      prepare_ms: first.ms.prepare,
      apply_ms: first.ms.apply,
      ...this.kernelFields(first.generation),
    });
  }

  /** The parse, check and compile of a policy leave a grown heap behind (a big policy's, hundreds of
   * MiB): give it back (deps.shedMemory: one full collection, milliseconds to tens of them). */
  private shedMemoryNow(): void {
    const s = this.deps.shedMemory?.();
    if (s) this.log.write('core.info', 4, null, 'Memory given back', shedFields(s));
  }

  /** The same once a reload has answered. */
  private shedMemorySoon(): void {
    if (this.deps.shedMemory) setImmediate(() => this.shedMemoryNow());
  }

  /** Forwarded and denied connections of services with logging, as the kernel logged them. */
  private startKernelLog(open: () => number): void {
    let fd: number;
    try {
      fd = open();
    } catch (e) {
      this.log.write(
        'core.error',
        1,
        null,
        'The kernel log cannot be read: forwarded and denied sessions are not logged',
        {
          error: (e as Error).message,
        },
      );
      return;
    }
    this.kernelLog = new KernelLog(
      fd,
      () => this.generations.current?.policy ?? null,
      (e) => {
        this.metrics.kernelLogged.inc({ verdict: e.fields.verdict as string });
        this.log.write('core.session', 3, null, e.message, e.fields);
      },
    );
    this.kernelLog.onError = (e) => {
      const lost = (e as NodeJS.ErrnoException).code === 'ENOBUFS';
      this.log.write(
        'core.error',
        lost ? 2 : 1,
        null,
        lost
          ? 'Kernel log entries were lost: connections came faster than they were read'
          : 'The kernel log cannot be read any more: forwarded and denied sessions are not logged',
        { error: e.message },
      );
    };
    this.kernelLog.start();
  }

  /** After a failed start: end the workers and close the listeners (the kernel was not changed, or
   * keeps the previous tzorp table if one was there). */
  async abandon(): Promise<void> {
    this.stopping = Promise.resolve({ drained: true, sessionsLeft: 0, flushed: false });
    if (this.state === 'starting') this.lifecycle.to('stopped');
    for (const i of this.pool.alive()) this.pool.kill(i, 'SIGKILL');
    this.listeners.closeAll();
    await this.control?.close();
    await this.metrics.close();
    if (this.opts.kernel) await this.deps.discardStaged?.().catch(() => {});
  }

  private installSignals(): void {
    process.on('SIGHUP', () => {
      void this.reload().catch(() => {}); // reload() logs the outcome
    });
    process.on('SIGTERM', () => void this.stop(this.opts.stopTimeoutMs));
    process.on('SIGINT', () => void this.stop(this.opts.stopTimeoutMs));
    process.on('SIGUSR1', () => void this.setLog({ delta: +1 }));
    process.on('SIGUSR2', () => void this.setLog({ delta: -1 }));
  }

  private async startWorker(index: number): Promise<void> {
    this.sent.set(index, new Set());
    await this.pool.spawn(index);
    await this.pool.request(index, {
      t: 'init',
      index,
      log: this.logSettings(),
      tproxyMarkFallback: 0,
      nativeRelay: this.opts.nativeRelay ?? true,
      nativeIo: this.opts.nativeIo ?? true,
      ...(this.opts.relayMode ? { relayMode: this.opts.relayMode } : {}),
    });
  }

  private logSettings(): LogSettings {
    return { format: this.opts.log.format, verbosity: this.log.levels.verbosity, spec: this.log.levels.spec };
  }

  private onWorkerExit(index: number, code: number | null, signal: string | null): void {
    this.sent.delete(index);
    this.admission.forget(index); // its sessions died with it
    this.clientLimits.dropWorker(index);
    // Its sessions died with it: their connections are gone (clients see a reset), nothing moves them.
    const lost = this.load.get(index) ?? 0;
    this.load.delete(index);
    this.metrics.workers.set(this.pool.serving().length);
    if (this.stopping) return;
    this.log.write('core.error', 1, null, 'Worker exited unexpectedly; starting it again', {
      worker: index,
      code,
      signal,
      sessions_lost: lost,
    });
    this.metrics.workerRestarts.inc();
    setTimeout(() => {
      if (this.stopping) return;
      void this.restartWorker(index).catch((e) =>
        this.log.write('core.error', 1, null, 'Worker restart failed', {
          worker: index,
          error: (e as Error).message,
        }),
      );
    }, this.opts.config.workerRestartDelayMs);
  }

  /** A restarted worker joins only once it runs the current generation: until then status, sessions,
   * reload and stop leave it out (a request to a worker with no generation has nothing to answer), and
   * no reload may switch generations while it is being brought up to date. */
  private async restartWorker(index: number): Promise<void> {
    await this.startWorker(index);
    await this.generations.exclusive(async () => {
      const g = this.generations.current;
      if (g) {
        await this.pool.request(index, { t: 'prepare', gen: this.workerSpec(g, index) });
        await this.pool.request(index, { t: 'commit', n: g.n });
      }
      this.pool.markServing(index);
    });
    this.metrics.workers.set(this.pool.serving().length);
    this.log.write('core.info', 3, null, 'Worker started again', {
      worker: index,
      pid: this.pool.pid(index) ?? null,
      generation: this.generations.current?.n ?? null,
    });
  }

  private onWorkerMessage(index: number, msg: FromWorker): void {
    switch (msg.t) {
      case 'wantIds':
        this.pool.send(index, { t: 'ids', block: this.ids.allocate(msg.service) });
        return;
      case 'admit': {
        // max_sessions is checked first without taking a slot, then the per-client limits take
        // theirs, then the max_sessions slot is taken: a refusal leaves nothing taken.
        let refused: LimitName | null =
          msg.max > 0 && this.admission.count(msg.service) >= msg.max ? 'max_sessions' : null;
        if (!refused && msg.client)
          refused = this.clientLimits.acquire(index, msg.service, msg.client.address, msg.client, Date.now());
        if (!refused) this.admission.admit(index, msg.service, msg.max);
        this.pool.send(
          index,
          refused
            ? { t: 'admitted', rid: msg.rid, ok: false, refused }
            : { t: 'admitted', rid: msg.rid, ok: true },
        );
        return;
      }
      case 'lease':
        void this.lease(index, msg);
        return;
      case 'release':
        this.admission.release(index, msg.service, msg.n ?? 1);
        if (msg.client) this.clientLimits.release(index, msg.service, msg.client);
        return;
      case 'load':
        this.load.set(index, msg.sessions);
        return;
      default:
        return;
    }
  }

  /** max_sessions slots leased to a worker (admission.ts LocalSlots): a few, so that the other workers
   * find some too; with none left, the free slots other workers hold are taken back first, and only
   * then is the session refused. */
  private async lease(index: number, msg: Extract<FromWorker, { t: 'lease' }>): Promise<void> {
    if (msg.back > 0) this.admission.release(index, msg.service, msg.back);
    const want = Math.max(
      1,
      Math.min(LEASE_MAX, Math.floor(msg.max / (4 * Math.max(1, this.pool.serving().length)))),
    );
    let n = this.admission.lease(index, msg.service, msg.max, want);
    if (n === 0) {
      await Promise.all(
        this.pool
          .serving()
          .filter((i) => i !== index && this.admission.held(i, msg.service) > 0)
          .map(async (i) => {
            let timer: NodeJS.Timeout | undefined;
            try {
              const r = await Promise.race([
                this.pool.request<{ n: number }>(i, { t: 'reclaim', service: msg.service }),
                new Promise<never>((_, reject) => {
                  timer = setTimeout(
                    () =>
                      reject(
                        new TzorpError(
                          'DAEMON_WORKER',
                          `worker ${i} did not give back its free slots in time`,
                        ),
                      ),
                    DEFAULTS.reclaimTimeoutMs,
                  );
                }),
              ]);
              this.admission.release(i, msg.service, r.n);
            } catch {
              // a worker that does not answer keeps its slots (counted as taken: fail closed)
            } finally {
              clearTimeout(timer);
            }
          }),
      );
      n = this.admission.lease(index, msg.service, msg.max, want);
    }
    this.pool.send(
      index,
      n > 0
        ? { t: 'admitted', rid: msg.rid, ok: true, slots: n }
        : { t: 'admitted', rid: msg.rid, ok: false, refused: 'max_sessions' },
    );
  }

  // ---- generations -------------------------------------------------------------------------------

  /** Each generation's policy, serialized once for all workers (ipc.ts WorkerGenerationWire). */
  private readonly policyBytes = new WeakMap<Generation, { whole?: Uint8Array; withoutZones?: Uint8Array }>();
  /** Per worker (by index, for the process with that pid): the zones it was last sent, whole or kept. */
  private readonly zonesHeld = new Map<number, { pid: number | undefined; zones: Policy['zones'] }>();

  /** Listener keys of a generation's proxy services, and the spec a worker builds it from. */
  private workerSpec(g: Generation, index: number): WorkerGenerationWire {
    const services: WorkerGenerationWire['services'] = {};
    const listeners = [];
    for (const [name, l] of g.compiled.listeners) {
      const v4 = listenerKey(4, l.v4.host, l.v4.port);
      const v6 = listenerKey(6, l.v6.host, l.v6.port);
      services[name] = { v4, v6 };
      for (const k of [v4, v6]) {
        const o = this.listeners.get(k);
        if (!o) continue;
        listeners.push(o.spec);
        // the socket itself travels with its own message, once per worker
        const sent = this.sent.get(index);
        if (sent && !sent.has(k)) {
          this.pool.send(index, { t: 'listener', spec: o.spec }, o.handle);
          sent.add(k);
        }
      }
    }
    // A worker that holds zones equal to this policy's (the last it was sent whole) gets the policy
    // without them: a reload of a large policy mostly keeps its 100,000 networks, and writing, reading
    // and rebuilding them in every worker was most of the workers' part of a reload.
    const pid = this.pool.pid(index);
    const held = this.zonesHeld.get(index);
    const kept = held !== undefined && held.pid === pid && sameZones(held.zones, g.policy.zones);
    this.zonesHeld.set(index, { pid, zones: g.policy.zones });
    const bytes = this.policyBytes.get(g) ?? {};
    this.policyBytes.set(g, bytes);
    if (kept) {
      bytes.withoutZones ??= v8.serialize({ ...g.policy, zones: new Map() });
      return { n: g.n, policy: bytes.withoutZones, zonesKept: true, services, listeners };
    }
    bytes.whole ??= v8.serialize(g.policy);
    return { n: g.n, policy: bytes.whole, services, listeners };
  }

  /** Per generation being prepared: written out to every worker (Generations compiles after that). */
  private readonly prepareSent = new WeakMap<Generation, Promise<void>>();
  /** How each generation's table went into the kernel (the start's and reloads' log lines say). */
  private readonly kernelApplied = new WeakMap<Generation, { kernel: string; fallback?: string }>();

  private async prepare(next: Generation): Promise<void> {
    for (const l of next.compiled.listeners.values()) {
      this.listeners.ensure(4, l.v4.host, l.v4.port);
      this.listeners.ensure(6, l.v6.host, l.v6.port);
    }
    const sent: Promise<void>[] = [];
    const replies = this.pool.serving().map((i) => {
      let done = (): void => {};
      sent.push(new Promise<void>((r) => (done = r)));
      return this.pool.request(i, { t: 'prepare', gen: this.workerSpec(next, i) }, done);
    });
    this.prepareSent.set(
      next,
      Promise.all(sent).then(() => {}),
    );
    await Promise.all(replies);
  }

  /** `kernel` (differences, whole, staged) and, when a staged or incremental apply fell back, why. */
  private kernelFields(g: Generation): Record<string, string> {
    const k = this.kernelApplied.get(g);
    if (!k) return {};
    return { kernel: k.kernel, ...(k.fallback ? { kernel_fallback: k.fallback } : {}) };
  }

  private async apply(next: Generation): Promise<void> {
    if (!this.opts.kernel) return;
    const { wrong, kernel, fallback } = await this.deps.apply(next.policy, listenPortsOf(next));
    this.kernelApplied.set(next, { kernel, ...(fallback ? { fallback } : {}) });
    for (const s of wrong) {
      this.log.write('core.error', s.level === 'required' ? 1 : 3, null, 'Sysctl has the wrong value', {
        name: s.name,
        want: s.want,
        actual: s.actual,
        why: s.why,
      });
    }
  }

  private keysOf(g: Generation | null): Set<string> {
    const keys = new Set<string>();
    if (!g) return keys;
    for (const l of g.compiled.listeners.values()) {
      keys.add(listenerKey(4, l.v4.host, l.v4.port));
      keys.add(listenerKey(6, l.v6.host, l.v6.port));
    }
    return keys;
  }

  private async commit(next: Generation, previous: Generation | null): Promise<void> {
    await this.pool.gather({ t: 'commit', n: next.n });
    this.ackListeners(next);
    this.closeListenersExcept(this.keysOf(next));
    void previous;
  }

  /** A listener of HTTP services only delays its ACKs: an HTTP client sends its request and waits, so
   * the ACK can ride on the reply (docs/http.md). Set for the generation that runs (at its commit: an
   * aborted reload leaves the running one's). */
  private ackListeners(g: Generation): void {
    const httpOnly = new Map<string, boolean>();
    for (const [name, l] of g.compiled.listeners) {
      const s = g.policy.services.get(name);
      const http = s?.type === 'proxy' && s.proxy === 'http';
      for (const key of [listenerKey(4, l.v4.host, l.v4.port), listenerKey(6, l.v6.host, l.v6.port)])
        httpOnly.set(key, http && (httpOnly.get(key) ?? true));
    }
    for (const [key, on] of httpOnly) {
      try {
        this.listeners.deferAcks(key, on);
      } catch (e) {
        this.log.write('core.error', 3, null, 'Cannot set how a listener acknowledges', {
          listener: key,
          error: (e as Error).message,
        });
      }
    }
  }

  private async abort(next: Generation): Promise<void> {
    await this.pool.gather({ t: 'abort', n: next.n });
    this.closeListenersExcept(this.keysOf(this.generations.current));
  }

  private closeListenersExcept(keep: Set<string>): void {
    for (const k of this.listeners.keys()) {
      if (keep.has(k)) continue;
      this.listeners.close(k);
      for (const s of this.sent.values()) s.delete(k);
    }
  }

  async reload(confirmSeconds?: number): Promise<ReloadResult> {
    this.lifecycle.assertServing('reload');
    const before = this.generations.current;
    this.log.write('core.policy', 3, null, 'Reloading policy', { file: this.opts.policyFile });
    this.reloads++;
    this.lifecycle.to('reloading');
    try {
      const r = await this.generations.reload();
      this.metrics.reloads.inc({ result: 'ok' });
      this.metrics.generation.set(r.generation.n);
      this.log.write('core.policy', 3, null, 'Policy reloaded', {
        generation: r.generation.n,
        sha256: r.generation.policy.source.sha256,
        services_added: r.servicesAdded.join(' '),
        services_removed: r.servicesRemoved.join(' '),
        load_ms: r.ms.load,
        compile_ms: r.ms.compile,
        prepare_ms: r.ms.prepare,
        apply_ms: r.ms.apply,
        ...this.kernelFields(r.generation),
      });
      if (confirmSeconds !== undefined) this.armConfirm(before, confirmSeconds, r.generation.n);
      else this.disarmConfirm();
      return {
        generation: r.generation.n,
        previousGeneration: r.previous?.n ?? 0,
        sha256: r.generation.policy.source.sha256,
        warnings: r.generation.warnings,
        servicesAdded: r.servicesAdded,
        servicesRemoved: r.servicesRemoved,
        ...(confirmSeconds !== undefined ? { confirmSeconds } : {}),
      };
    } catch (e) {
      this.metrics.reloads.inc({ result: 'refused' });
      const d = (e as TzorpError).details as { errors?: string[] } | undefined;
      this.log.write('core.policy', 1, null, 'Error reloading policy, reverting to old', {
        generation: this.generations.current?.n ?? null,
        error: (e as Error).message,
        errors: d?.errors?.join(' | '),
      });
      throw e;
    } finally {
      // a stop asked meanwhile has moved on to draining: the reload does not take that back
      if (--this.reloads === 0 && this.lifecycle.state === 'reloading') this.lifecycle.to('running');
      if (this.reloads === 0) this.shedMemorySoon();
    }
  }

  /** After a reload --confirm: revert to the last confirmed policy unless `confirm` comes in time. */
  private armConfirm(before: Generation | null, seconds: number, generation: number): void {
    const policy = this.pendingConfirm?.policy ?? before?.policy;
    if (this.pendingConfirm) clearTimeout(this.pendingConfirm.timer);
    this.pendingConfirm = null;
    if (!policy) return;
    const timer = setTimeout(() => void this.revertUnconfirmed(), seconds * 1000);
    timer.unref();
    this.pendingConfirm = { policy, generation, timer };
    this.log.write('core.policy', 3, null, 'Reload waits for confirmation', {
      generation,
      seconds,
    });
  }

  private disarmConfirm(): void {
    if (this.pendingConfirm) clearTimeout(this.pendingConfirm.timer);
    this.pendingConfirm = null;
  }

  private async revertUnconfirmed(): Promise<void> {
    const p = this.pendingConfirm;
    this.pendingConfirm = null;
    if (!p || this.state === 'draining' || this.state === 'stopped') return;
    this.log.write(
      'core.policy',
      1,
      null,
      'Reload not confirmed in time, reverting to the confirmed policy',
      {
        generation: p.generation,
        sha256: p.policy.source.sha256,
      },
    );
    try {
      const r = await this.generations.revertTo(p.policy);
      this.metrics.generation.set(r.generation.n);
      this.log.write('core.policy', 3, null, 'Policy reverted', {
        generation: r.generation.n,
        sha256: r.generation.policy.source.sha256,
      });
    } catch (e) {
      this.log.write('core.policy', 1, null, 'Error reverting the unconfirmed reload', {
        error: (e as Error).message,
      });
    }
  }

  private confirm(): ConfirmResult {
    const p = this.pendingConfirm;
    if (!p) throw new TzorpError('DAEMON_NOTHING_TO_CONFIRM', 'no reload --confirm waits for a confirmation');
    this.disarmConfirm();
    this.log.write('core.policy', 3, null, 'Reload confirmed', { generation: p.generation });
    return { generation: p.generation };
  }

  // ---- control -----------------------------------------------------------------------------------

  private async handle(req: ControlRequest): Promise<unknown> {
    switch (req.cmd) {
      case 'status':
        return this.status();
      case 'sessions':
        // sessions of a draining daemon are still worth listing
        if (this.state === 'starting') this.lifecycle.assertServing('sessions');
        return this.sessions();
      case 'reload':
        return this.reload(req.confirmSeconds);
      case 'confirm':
        this.lifecycle.assertServing('confirm');
        return this.confirm();
      case 'stop':
        // stop is idempotent: asking again while draining gets the same answer
        if (this.state === 'starting') this.lifecycle.assertServing('stop');
        return this.stop(req.timeoutMs ?? this.opts.stopTimeoutMs);
      case 'log':
        // a stuck drain is worth a closer look: log levels change while draining too
        if (this.state === 'starting') this.lifecycle.assertServing('log');
        return this.setLog(req);
    }
  }

  async status(): Promise<StatusResult> {
    const g = this.generations.current;
    if (!g) return this.startingStatus();
    const parts = await this.pool.gather<WorkerStatus>({ t: 'status' });
    const counters = mergeCounters(parts.map((p) => p.counters));
    const old = new Map<number, number>();
    for (const p of parts) {
      for (const [n, c] of Object.entries(p.generations)) {
        if (Number(n) !== g.n) old.set(Number(n), (old.get(Number(n)) ?? 0) + c);
      }
    }
    const services: ServiceStatus[] = [];
    for (const s of [...g.policy.services.values()].sort((a, b) => a.name.localeCompare(b.name))) {
      if (s.type !== 'proxy') continue;
      const c = counters[s.name];
      const l = g.compiled.listeners.get(s.name);
      services.push({
        name: s.name,
        proxy: s.proxy,
        sessionsRunning: c?.running ?? 0,
        sessionsTotal: c?.total ?? 0,
        sessionsRefused: c?.refused ?? 0,
        sessionsRefusedBy: c?.refusedBy ?? {},
        rate: c?.rate ?? { m1: 0, m5: 0, m15: 0 },
        lastStarted: c?.lastStartedMs != null ? new Date(c.lastStartedMs).toISOString() : null,
        listeners: l ? [listenerKey(4, l.v4.host, l.v4.port), listenerKey(6, l.v6.host, l.v6.port)] : [],
      });
    }
    return {
      ...this.processStatus(),
      policy: {
        file: g.policy.source.file,
        sha256: g.policy.source.sha256,
        loadedAt: g.loadedAt.toISOString(),
      },
      generation: g.n,
      oldGenerations: [...old]
        .filter(([, c]) => c > 0)
        .map(([generation, sessions]) => ({ generation, sessions })),
      services,
      workerResources: parts.flatMap((p) => (p.resources ? [p.resources] : [])),
    };
  }

  /** Before generation 1 exists: what the daemon knows without asking the workers (they may not be
   * initialised yet). */
  private startingStatus(): StatusResult {
    return {
      ...this.processStatus(),
      policy: { file: this.opts.policyFile, sha256: null, loadedAt: null },
      generation: 0,
      oldGenerations: [],
      services: [],
    };
  }

  /** The part of the status that is the primary's own, whatever the generation. */
  private processStatus() {
    return {
      state: this.state,
      pid: process.pid,
      startedAt: this.startedAt.toISOString(),
      workers: this.opts.workers,
      workersAlive: this.pool.serving().length,
      workerPids: this.pool.serving().flatMap((i) => this.pool.pid(i) ?? []),
      controlSocket: this.opts.controlPath,
      kernel: this.opts.kernel,
      log: { verbosity: this.log.levels.verbosity, spec: this.log.levels.spec, format: this.opts.log.format },
      config: this.opts.config,
    };
  }

  async sessions(): Promise<SessionInfo[]> {
    const parts = await this.pool.gather<SessionInfo[]>({ t: 'sessions' });
    return parts.flat().sort((a, b) => a.startedAt.localeCompare(b.startedAt) || a.id.localeCompare(b.id));
  }

  async setLog(req: { spec?: string; verbosity?: number; delta?: number }): Promise<LogResult> {
    if (req.spec !== undefined) this.log.levels.setSpec(req.spec); // throws LOG_SPEC before any change
    if (req.verbosity !== undefined) this.log.levels.setVerbosity(req.verbosity);
    if (req.delta !== undefined) this.log.levels.adjustVerbosity(req.delta);
    const r = { verbosity: this.log.levels.verbosity, spec: this.log.levels.spec };
    await this.pool.gather({ t: 'log', ...r });
    this.log.write('core.info', 3, null, 'Log levels changed', { verbosity: r.verbosity, spec: r.spec });
    return r;
  }

  /** Stop accepting, drain (at most timeoutMs), flush the kernel, exit. Idempotent. */
  stop(timeoutMs: number): Promise<StopResult> {
    if (this.stopping) return this.stopping;
    this.lifecycle.to('draining');
    this.stopping = this.stopNow(timeoutMs);
    return this.stopping;
  }

  private async stopNow(timeoutMs: number): Promise<StopResult> {
    this.log.write('core.info', 3, null, 'Stopping: draining sessions', { timeout_ms: timeoutMs });
    const replies = await this.pool.gather<{ left: number }>({ t: 'stop', timeoutMs });
    const left = replies.reduce((s, r) => s + r.left, 0);
    this.listeners.closeAll();
    this.kernelLog?.close();
    let flushed = false;
    if (this.opts.kernel) {
      try {
        await this.deps.flush();
        flushed = true;
      } catch (e) {
        this.log.write('core.error', 1, null, 'Removing the kernel ruleset failed', {
          error: (e as Error).message,
        });
      }
    }
    for (const i of this.pool.alive()) this.pool.kill(i, 'SIGTERM');
    await this.metrics.close();
    this.lifecycle.to('stopped');
    this.log.write('core.info', 3, null, 'tzorp stopped', { sessions_aborted: left, flushed });
    const result = { drained: left === 0, sessionsLeft: left, flushed };
    // Answer the control request first, then close the socket and exit.
    setTimeout(() => {
      void this.control?.close().finally(() => this.exitResolve(0));
    }, 50);
    return result;
  }
}

/** Most max_sessions slots leased to a worker at once. */
const LEASE_MAX = 64;

/** Zones equal in everything a worker uses (names, order, hierarchy, positions, descriptions and
 * networks). The networks are compared by value; a reload that kept them usually has the very same
 * Cidr objects (the loader reuses a zone's parse), which makes each comparison one identity check. */
export function sameZones(a: Policy['zones'], b: Policy['zones']): boolean {
  if (a === b) return true;
  if (a.size !== b.size) return false;
  const bi = b.values();
  for (const x of a.values()) {
    const y = bi.next().value as Zone;
    if (
      x.name !== y.name ||
      x.parent !== y.parent ||
      x.depth !== y.depth ||
      x.description !== y.description ||
      x.pos.file !== y.pos.file ||
      x.pos.line !== y.pos.line ||
      x.pos.col !== y.pos.col ||
      x.children.length !== y.children.length ||
      x.addresses.length !== y.addresses.length
    )
      return false;
    for (let i = 0; i < x.children.length; i++) if (x.children[i] !== y.children[i]) return false;
    for (let i = 0; i < x.addresses.length; i++) {
      const c = x.addresses[i]!;
      const d = y.addresses[i]!;
      if (
        c !== d &&
        (c.family !== d.family || c.addr !== d.addr || c.prefix !== d.prefix || c.text !== d.text)
      )
        return false;
    }
  }
  return true;
}
