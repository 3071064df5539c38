// A small coverage-guided fuzzer on V8's own block coverage (node:inspector, Profiler precise
// coverage), because @jazzer.js/core's native part needs glibc 2.38 (this machine has an older one)
// and npm may not run install scripts to build it. The loop: mutate an input of the corpus, run the
// target, keep the input when it reached a block of src/ code no input reached before.
//
// Coverage is read once per batch of inputs (reading it costs milliseconds); only a batch that reached
// something new is run again input by input to find which ones did. A hang (no progress for
// hangSeconds) is caught by a watchdog thread, which saves the input that was running; memory is
// checked after every batch.
import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import type { FuzzTarget } from './targets.ts';

export interface FuzzOptions {
  target: string;
  minutes: number;
  /** Stop after this many inputs (whichever comes first). */
  runs?: number;
  corpusDir: string;
  crashDir: string;
  maxLen?: number;
  batch?: number;
  hangSeconds?: number;
  maxRssMb?: number;
  seed?: number;
  log?: (line: string) => void;
}

export interface FuzzStats {
  execs: number;
  seconds: number;
  corpus: number;
  newInputs: number;
  blocksCovered: number;
  blocksKnown: number;
  functionsCovered: number;
  crashes: number;
  maxRssMb: number;
}

interface Range {
  startOffset: number;
  endOffset: number;
  count: number;
}
interface FnCov {
  functionName: string;
  ranges: Range[];
}
interface ScriptCov {
  url: string;
  functions: FnCov[];
}

/** Blocks of src/ code reached so far. A block is a function's nested range; V8 lists a nested range
 * only while its count differs from its parent's, so a block once seen is covered in a later reading
 * when the innermost listed range holding it has a count above zero. */
class Coverage {
  /** function key -> its blocks ("start end") ever listed. */
  private readonly blocks = new Map<string, Set<string>>();
  private readonly covered = new Set<string>();
  private readonly fns = new Set<string>();

  constructor(private readonly filter: (url: string) => boolean) {}

  get blocksCovered(): number {
    return this.covered.size;
  }
  get blocksKnown(): number {
    let n = 0;
    for (const b of this.blocks.values()) n += b.size;
    return n;
  }
  get functionsCovered(): number {
    return this.fns.size;
  }

  /** Fold one reading in; returns how many blocks or functions were reached for the first time. */
  add(result: ScriptCov[], dryRun = false): number {
    let fresh = 0;
    for (const s of result) {
      if (!this.filter(s.url)) continue;
      for (const f of s.functions) {
        const top = f.ranges[0];
        if (!top) continue;
        const fkey = `${s.url}#${top.startOffset}`;
        let known = this.blocks.get(fkey);
        if (!known) {
          known = new Set();
          if (!dryRun) this.blocks.set(fkey, known);
        }
        for (const r of f.ranges.slice(1)) if (!dryRun) known.add(`${r.startOffset} ${r.endOffset}`);
        if (top.count === 0) continue;
        if (!this.fns.has(fkey)) {
          fresh++;
          if (!dryRun) this.fns.add(fkey);
        }
        for (const b of known) {
          const key = `${fkey} ${b}`;
          if (this.covered.has(key)) continue;
          const [a, e] = b.split(' ').map(Number) as [number, number];
          // innermost listed range holding [a, e)
          let count = top.count;
          let width = Number.POSITIVE_INFINITY;
          for (const r of f.ranges) {
            if (r.startOffset <= a && r.endOffset >= e && r.endOffset - r.startOffset < width) {
              width = r.endOffset - r.startOffset;
              count = r.count;
            }
          }
          if (count > 0) {
            fresh++;
            if (!dryRun) this.covered.add(key);
          }
        }
      }
    }
    return fresh;
  }
}

/** xorshift32: reproducible runs with --seed. */
class Rng {
  constructor(private s: number) {
    if (this.s === 0) this.s = 0x9e3779b9;
  }
  next(): number {
    let x = this.s;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.s = x >>> 0;
    return this.s;
  }
  below(n: number): number {
    return n <= 1 ? 0 : this.next() % n;
  }
}

const INTERESTING = [
  0, 1, 0x7f, 0x80, 0xff, 0x0a, 0x0d, 0x20, 0x09, 0x00, 0x3a, 0x3b, 0x2f, 0x25, 0x30, 0x39,
];

function mutate(
  input: Uint8Array,
  corpus: Uint8Array[],
  dict: Uint8Array[],
  rng: Rng,
  maxLen: number,
): Uint8Array {
  let b = Buffer.from(input);
  const rounds = 1 + rng.below(4);
  for (let k = 0; k < rounds; k++) {
    const pos = rng.below(b.length + 1);
    switch (rng.below(9)) {
      case 0:
        if (b.length) b[rng.below(b.length)]! ^= 1 << rng.below(8);
        break;
      case 1:
        if (b.length) b[rng.below(b.length)] = INTERESTING[rng.below(INTERESTING.length)]!;
        break;
      case 2:
        if (b.length) b[rng.below(b.length)] = rng.below(256);
        break;
      case 3: {
        // delete a range
        const n = 1 + rng.below(Math.min(16, Math.max(1, b.length - pos)));
        b = Buffer.concat([b.subarray(0, pos), b.subarray(pos + n)]);
        break;
      }
      case 4:
      case 5: {
        const t = dict[rng.below(dict.length)];
        if (t) b = Buffer.concat([b.subarray(0, pos), t, b.subarray(pos)]);
        break;
      }
      case 6: {
        // duplicate a range
        if (!b.length) break;
        const a = rng.below(b.length);
        const n = 1 + rng.below(Math.min(64, b.length - a));
        b = Buffer.concat([b.subarray(0, pos), b.subarray(a, a + n), b.subarray(pos)]);
        break;
      }
      case 7: {
        // splice with another corpus input
        const o = corpus[rng.below(corpus.length)];
        if (!o?.length) break;
        const a = rng.below(o.length);
        b = Buffer.concat([b.subarray(0, pos), o.subarray(a, a + 1 + rng.below(o.length - a))]);
        break;
      }
      default: {
        // insert random bytes
        const n = 1 + rng.below(8);
        const r = Buffer.alloc(n);
        for (let i = 0; i < n; i++) r[i] = rng.below(256);
        b = Buffer.concat([b.subarray(0, pos), r, b.subarray(pos)]);
      }
    }
  }
  return b.length > maxLen ? b.subarray(0, maxLen) : b;
}

const sha1 = (b: Uint8Array) => createHash('sha1').update(b).digest('hex');

/** Every file of a corpus directory (missing directory: none). */
export function readCorpus(dir: string): { name: string; data: Uint8Array }[] {
  let names: string[] = [];
  try {
    names = readdirSync(dir).sort();
  } catch {
    return [];
  }
  return names.map((name) => ({ name, data: readFileSync(join(dir, name)) }));
}

const WATCHDOG = `
const { workerData } = require('node:worker_threads');
const fs = require('node:fs');
const beat = new Int32Array(workerData.beat);
const cur = new Uint8Array(workerData.input);
let last = -1, still = 0;
setInterval(() => {
  const n = Atomics.load(beat, 0);
  if (n !== last) { last = n; still = 0; return; }
  if (Atomics.load(beat, 2) === 1) return; // paused (coverage reading, corpus writes)
  if (++still < workerData.hangSeconds) return;
  const len = Atomics.load(beat, 1);
  const data = Buffer.from(cur.subarray(0, len));
  const file = workerData.crashDir + '/' + workerData.target + '-hang-' + require('node:crypto').createHash('sha1').update(data).digest('hex');
  fs.mkdirSync(workerData.crashDir, { recursive: true });
  fs.writeFileSync(file, data);
  process._rawDebug('HANG: no progress for ' + still + ' s; input saved to ' + file);
  process.kill(process.pid, 'SIGKILL');
}, 1000);
`;

export function fuzz(target: FuzzTarget, o: FuzzOptions): FuzzStats {
  const log = o.log ?? ((l: string) => process.stderr.write(`${l}\n`));
  const maxLen = o.maxLen ?? target.maxLen ?? 4096;
  const rng = new Rng(o.seed ?? Date.now() >>> 0);
  const session = new Session();
  session.connect();
  const post = <T>(method: string, params: object = {}): T => {
    let out: T | undefined;
    let err: Error | null = null;
    session.post(method, params, (e, r) => {
      err = e;
      out = r as T;
    });
    if (err) throw err;
    return out as T;
  };
  const take = () => post<{ result: ScriptCov[] }>('Profiler.takePreciseCoverage').result;
  post('Profiler.enable');
  post('Profiler.startPreciseCoverage', { callCount: true, detailed: true });
  const cov = new Coverage((u) => u.includes('/src/') && !u.includes('node_modules'));

  // watchdog: [execs, input length, paused]
  const beatBuf = new SharedArrayBuffer(12);
  const beat = new Int32Array(beatBuf);
  const inputBuf = new SharedArrayBuffer(maxLen + 65536);
  const cur = new Uint8Array(inputBuf);
  const watchdog = new Worker(WATCHDOG, {
    eval: true,
    workerData: {
      beat: beatBuf,
      input: inputBuf,
      hangSeconds: o.hangSeconds ?? 10,
      crashDir: o.crashDir,
      target: o.target,
    },
  });
  watchdog.unref();

  const crashes = new Set<string>();
  let execs = 0;
  let maxRss = 0;
  const exec = (data: Uint8Array): void => {
    cur.set(data.subarray(0, cur.length));
    Atomics.store(beat, 1, Math.min(data.length, cur.length));
    Atomics.add(beat, 0, 1);
    execs++;
    try {
      target.run(data);
    } catch (e) {
      const err = e as Error;
      const sig = `${err?.name}: ${err?.message}\n${(err?.stack ?? '').split('\n').slice(1, 4).join('\n')}`;
      if (crashes.has(sig)) return;
      crashes.add(sig);
      mkdirSync(o.crashDir, { recursive: true });
      const file = join(o.crashDir, `${o.target}-crash-${sha1(data)}`);
      writeFileSync(file, data);
      log(`CRASH ${file}\n${sig}`);
    }
  };
  const paused = <T>(f: () => T): T => {
    Atomics.store(beat, 2, 1);
    try {
      return f();
    } finally {
      Atomics.store(beat, 2, 0);
    }
  };

  mkdirSync(o.corpusDir, { recursive: true });
  const corpus: Uint8Array[] = [];
  const keep = (data: Uint8Array, write: boolean) => {
    corpus.push(data);
    if (write)
      paused(() => {
        mkdirSync(o.corpusDir, { recursive: true });
        writeFileSync(join(o.corpusDir, sha1(data)), data);
      });
  };
  const dict = target.dict.map((t) => Buffer.from(t, 'latin1'));
  // Seeds and the kept corpus first: each one that reaches something new is kept.
  take();
  let newInputs = 0;
  const kept = readCorpus(o.corpusDir);
  for (const { data } of kept) {
    exec(data);
    if (paused(() => cov.add(take())) > 0 || corpus.length === 0) keep(data, false);
  }
  for (const data of target.seeds()) {
    exec(data);
    if (paused(() => cov.add(take())) > 0) {
      keep(data, true);
      newInputs++;
    }
  }
  if (corpus.length === 0) keep(Buffer.alloc(0), false);

  const start = Date.now();
  const deadline = start + o.minutes * 60_000;
  let lastReport = start;
  const limitMb = o.maxRssMb ?? 2048;
  let batchSize = o.batch ?? 100;
  while (Date.now() < deadline && (o.runs === undefined || execs < o.runs)) {
    const t0 = Date.now();
    const batch: Uint8Array[] = [];
    for (let i = 0; i < batchSize; i++) {
      const parent = corpus[rng.below(corpus.length)]!;
      const m = mutate(parent, corpus, dict, rng, maxLen);
      batch.push(m);
      exec(m);
    }
    const result = paused(take);
    // Something in this batch reached a new block: find which inputs did by halving the batch (a
    // coverage reading costs as much as thousands of inputs).
    const attribute = (inputs: Uint8Array[], ran: boolean): void => {
      if (!ran) for (const m of inputs) exec(m);
      const r = ran ? result : paused(take);
      if (cov.add(r, true) === 0) return;
      if (inputs.length === 1) {
        cov.add(r);
        keep(inputs[0]!, true);
        newInputs++;
        return;
      }
      const half = inputs.length >> 1;
      attribute(inputs.slice(0, half), false);
      attribute(inputs.slice(half), false);
    };
    attribute(batch, true);
    // Batches of about half a second: long enough that reading coverage is cheap, short enough for
    // the deadline and the memory check (unless --batch fixed the size).
    if (o.batch === undefined)
      batchSize = Math.max(10, Math.min(5000, Math.round((batchSize * 500) / Math.max(1, Date.now() - t0))));
    const rss = process.memoryUsage().rss / 2 ** 20;
    maxRss = Math.max(maxRss, rss);
    if (rss > limitMb) {
      mkdirSync(o.crashDir, { recursive: true });
      for (const m of batch) writeFileSync(join(o.crashDir, `${o.target}-oom-${sha1(m)}`), m);
      log(`OUT OF MEMORY: rss ${rss.toFixed(0)} MB > ${limitMb} MB; the last batch is in ${o.crashDir}`);
      crashes.add('oom');
      break;
    }
    if (Date.now() - lastReport > 10_000) {
      lastReport = Date.now();
      const s = (lastReport - start) / 1000;
      log(
        `#${execs} ${(execs / s).toFixed(0)}/s corpus ${corpus.length} blocks ${cov.blocksCovered}/${cov.blocksKnown} fns ${cov.functionsCovered} crashes ${crashes.size} rss ${rss.toFixed(0)}MB`,
      );
    }
  }
  void watchdog.terminate();
  post('Profiler.stopPreciseCoverage');
  session.disconnect();
  return {
    execs,
    seconds: (Date.now() - start) / 1000,
    corpus: corpus.length,
    newInputs,
    blocksCovered: cov.blocksCovered,
    blocksKnown: cov.blocksKnown,
    functionsCovered: cov.functionsCovered,
    crashes: crashes.size,
    maxRssMb: Math.round(maxRss),
  };
}
