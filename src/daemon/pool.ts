// The worker processes. The primary owns the transparent listening sockets (made by the native addon)
// and hands each worker a copy of every listening socket (child_process handle passing: SCM_RIGHTS);
// every worker accepts on it itself, so the kernel spreads connections over the workers and no
// connection passes through the primary. A listener's socket lives as long as the primary keeps its
// copy: across reloads (same port, same socket, no gap) and across worker restarts.
//
// node:cluster is not used: a cluster worker cannot listen on a handle it was sent (cluster routes
// every listen through the primary's port/fd lookup), and it would hand socket ownership to cluster's
// reference counting.

import { type ChildProcess, fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { DEFAULTS } from '../defaults.ts';
import { isCompiled } from '../entry.ts';
import { idOfCode, TzorpError } from '../errors.ts';
import type { FromWorker, ToWorker } from './ipc.ts';

type Untagged<M> = M extends { rid: number } ? Omit<M, 'rid'> : M;

/** The worker's entry point: when compiled, worker-main.cjs (worker-main.ts and all it imports in one
 * CommonJS file: scripts/build.mjs WORKER_BUNDLE); from source worker-entry.mjs, which registers tsx and
 * then runs worker-main.ts (src/entry.ts). */
export const WORKER_ENTRY = fileURLToPath(
  new URL(isCompiled(import.meta.url) ? './worker-main.cjs' : './worker-entry.mjs', import.meta.url),
);

function worker(message: string): TzorpError {
  return new TzorpError('DAEMON_WORKER', message);
}

interface Pending {
  index: number;
  resolve(v: unknown): void;
  reject(e: Error): void;
}

/** A libuv TCP server handle the primary holds (see listeners.ts). */
export type ServerHandle = object;

export class WorkerPool {
  private readonly workers = new Map<number, ChildProcess>();
  /** Workers that run the current generation and take requests from broadcast and gather. A worker
   * that was just (re)started is alive but not serving until the primary has given it the current
   * generation: asking it for status or sessions before then would reach a worker with nothing to
   * answer from. */
  private readonly inService = new Set<number>();
  private readonly pending = new Map<number, Pending>();
  private rid = 0;

  constructor(
    private readonly onMessage: (index: number, msg: FromWorker) => void,
    private readonly onExit: (index: number, code: number | null, signal: string | null) => void,
    private readonly entry: string = WORKER_ENTRY,
  ) {}

  alive(): number[] {
    return [...this.workers.keys()].sort((a, b) => a - b);
  }

  /** The live workers that are in service (see markServing), in index order. */
  serving(): number[] {
    return [...this.inService].filter((i) => this.workers.has(i)).sort((a, b) => a - b);
  }

  /** Worker `index` runs the current generation: broadcast and gather include it from now on. */
  markServing(index: number): void {
    if (this.workers.has(index)) this.inService.add(index);
  }

  pid(index: number): number | undefined {
    return this.workers.get(index)?.pid;
  }

  /** Fork worker `index` and wait until it is ready for messages. */
  spawn(index: number): Promise<void> {
    const w = fork(this.entry, [], {
      // (not the primary's own flags, but its profiling and GC tracing ones: `node --cpu-prof bin/tzorp
      // run` profiles the workers too, `node --trace-gc bin/tzorp run` traces their collections, `node
      // --perf-basic-prof bin/tzorp run` names their JIT code for `perf`; a small young generation: see
      // DEFAULTS.workerSemiSpaceMb)
      execArgv: [
        ...process.execArgv.filter((a) => /^--((cpu|heap)-prof|trace-gc$|perf-basic-prof$)/.test(a)),
        `--max-semi-space-size=${DEFAULTS.workerSemiSpaceMb}`,
      ],
      serialization: 'advanced', // binary (a generation's serialized policy) and structured values cross as they are
      env: { ...process.env, TZORP_WORKER_INDEX: String(index) },
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    this.workers.set(index, w);
    return new Promise<void>((resolve, reject) => {
      let ready = false;
      const timer = setTimeout(() => {
        if (!ready) {
          w.kill('SIGKILL');
          reject(worker(`worker ${index} did not start within ${DEFAULTS.workerStartTimeoutMs} ms`));
        }
      }, DEFAULTS.workerStartTimeoutMs);
      w.on('message', (msg: FromWorker) => {
        if (!msg || typeof msg !== 'object' || !('t' in msg)) return;
        if (msg.t === 'ready') {
          if (!ready) {
            ready = true;
            clearTimeout(timer);
            resolve();
          }
          return;
        }
        if (msg.t === 'reply') {
          const p = this.pending.get(msg.rid);
          if (!p) return;
          this.pending.delete(msg.rid);
          if (msg.ok) p.resolve(msg.data);
          // the worker's error, with its catalogue code (a listener it could not open is DAEMON_LISTEN)
          else p.reject(new TzorpError(idOfCode(msg.error.code), msg.error.message));
          return;
        }
        this.onMessage(index, msg);
      });
      w.on('error', () => {}); // a send to a worker that is exiting; 'exit' follows
      w.on('exit', (code, signal) => {
        clearTimeout(timer);
        if (this.workers.get(index) === w) {
          this.workers.delete(index);
          this.inService.delete(index);
        }
        for (const [rid, p] of this.pending) {
          if (p.index !== index) continue;
          this.pending.delete(rid);
          p.reject(worker(`worker ${index} exited (${signal ?? code})`));
        }
        if (!ready) reject(worker(`worker ${index} exited before it was ready (${signal ?? code})`));
        this.onExit(index, code, signal);
      });
    });
  }

  send(index: number, msg: ToWorker, handle?: ServerHandle): void {
    const w = this.workers.get(index);
    if (!w?.connected) return;
    if (handle) w.send(msg, handle as Parameters<ChildProcess['send']>[1]);
    else w.send(msg);
  }

  /** `sent`: called once the message is written out to the worker (or could not be: exactly once). */
  request<T>(index: number, msg: Untagged<ToWorker>, sent?: () => void): Promise<T> {
    const w = this.workers.get(index);
    if (!w?.connected) {
      sent?.();
      return Promise.reject(worker(`worker ${index} is not running`));
    }
    const rid = ++this.rid;
    let once = sent;
    const done = (): void => {
      once?.();
      once = undefined;
    };
    const reply = new Promise<T>((resolve, reject) => {
      this.pending.set(rid, { index, resolve: resolve as (v: unknown) => void, reject });
      w.send({ ...msg, rid } as ToWorker, done);
    });
    // a worker that exits mid-write: its answer fails, and that ends the wait for the write too
    if (sent) reply.then(done, done);
    return reply;
  }

  /** The same request to every worker in service; rejects when any of them fails. */
  broadcast<T>(msg: Untagged<ToWorker>): Promise<T[]> {
    return Promise.all(this.serving().map((i) => this.request<T>(i, msg)));
  }

  /** As broadcast, but a worker that fails (exiting) is left out of the answer. */
  async gather<T>(msg: Untagged<ToWorker>): Promise<T[]> {
    const r = await Promise.allSettled(this.serving().map((i) => this.request<T>(i, msg)));
    return r.flatMap((x) => (x.status === 'fulfilled' ? [x.value] : []));
  }

  kill(index: number, signal: NodeJS.Signals = 'SIGKILL'): void {
    this.workers.get(index)?.kill(signal);
  }
}
