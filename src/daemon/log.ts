// The daemon's log: Zorp's information (class, level, session id, "message; key='value', ...") written
// either as structured JSON (pino) or as Zorp's readable line:
//   2026-11-26T18:52:11.123Z tzorp[4242]: core.session(3): (svc/web:7): Starting proxy instance; client_address='AF_INET(198.18.1.2:40000)', client_zone='clients'
// Which messages are written is decided per category by LogLevels (log-spec.ts), before any
// formatting, so a disabled debug message costs one map lookup.
import { writeSync } from 'node:fs';
import { createRequire } from 'node:module';
import type pino from 'pino';
import { DEFAULTS } from '../defaults.ts';
import { isoTime } from '../net/time.ts';
import type { LogLevel } from '../proxy/core/types.ts';
import { type LogLevels, MAX_LOG_LEVEL } from './log-spec.ts';

export type LogFormat = 'json' | 'text';

export type LogFields = Record<string, unknown>;

/** Where finished lines go (stderr, or a test's array). */
export interface LogDestination {
  write(line: string): unknown;
  /** Write what the destination takes now, without waiting: the bytes written (0 when it is full).
   * Throws on an error. LineBatch uses it (with writeAll) where a destination has both. */
  tryWrite?(data: Buffer): number;
  /** Write every byte, waiting a little for a full destination; throws when it does not take them. */
  writeAll?(data: Buffer): void;
}

/** pino is loaded only for `--log-format json`: about 9 MB of memory in each process otherwise. */
const requireCjs = createRequire(import.meta.url);

/** A file descriptor written synchronously, every byte (nothing lost on exit or crash). A pipe that
 * is full (EAGAIN, a non-blocking stderr) is waited for a little; an error (a full disk, a closed
 * pipe) is thrown to ZorpLog.write, which counts the line as lost. tryWrite never waits (LineBatch). */
export function fdDestination(fd: number): LogDestination {
  const pause = new Int32Array(new SharedArrayBuffer(4));
  const writeAll = (data: Buffer): void => {
    let buf = data;
    for (let again = 0; buf.length > 0; ) {
      try {
        buf = buf.subarray(writeSync(fd, buf));
        again = 0;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EAGAIN' || ++again > 1000) throw e;
        Atomics.wait(pause, 0, 0, 1);
      }
    }
  };
  return {
    tryWrite(data: Buffer): number {
      try {
        return writeSync(fd, data);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'EAGAIN') return 0;
        throw e;
      }
    },
    writeAll,
    write(line: string): void {
      writeAll(Buffer.from(line));
    },
  };
}

/**
 * Lines gathered for `flushMs` (DEFAULTS.logFlushMs: from the first line of a batch) and written
 * together, or at once past `maxBytes`, and on exit: under a load of many short sessions a write() per
 * line was a sixth of a worker's time, and one per turn of the event loop (a few sessions each) still
 * a twelfth (bench/README.md, "The relay on the session loop"). `flushMs` 0: at the end of the turn
 * (setImmediate). What a kill -9 takes with it is the last `flushMs` of lines.
 *
 * A destination that is full (a pipe whose reader is behind: EAGAIN) is not waited for while the
 * event loop has sessions to serve: the bytes it did not take wait here, in order, and are tried again
 * after DEFAULTS.logRetryMs (one try, not one per turn). Only past `maxPending` bytes, and on exit, does
 * a flush wait for the destination (fdDestination's write: a little, then it gives up). A write that
 * fails loses what was waiting: `onLost` counts its lines.
 */
export class LineBatch implements LogDestination {
  private lines: string[] = [];
  /** The batch's size: bytes in `buf`, or the length of `lines`. */
  private bytes = 0;
  /** The batch, encoded, for a destination with tryWrite and writeAll (else `lines`). */
  private readonly buf: Buffer | null;
  /** Lines in `buf`. */
  private count = 0;
  private scheduled = false;
  /** Bytes the destination did not take yet, oldest first, each with the number of lines it ends. */
  private waiting: { data: Buffer; lines: number }[] = [];
  private waitingBytes = 0;
  private retry: NodeJS.Timeout | null = null;
  private readonly flushNow = (): void => {
    this.scheduled = false;
    this.flush();
  };
  private readonly retryNow = (): void => {
    this.retry = null;
    this.drain(false);
  };

  constructor(
    private readonly out: LogDestination,
    private readonly onLost: (lines: number, error: unknown) => void,
    private readonly maxBytes = 65536,
    private readonly maxPending = DEFAULTS.logPendingBytes,
    private readonly flushMs: number = DEFAULTS.logFlushMs,
  ) {
    this.buf = out.tryWrite && out.writeAll ? Buffer.allocUnsafeSlow(2 * maxBytes) : null;
    process.on('exit', () => this.flush(true));
  }

  write(line: string): void {
    if (this.buf === null) {
      // (a destination without tryWrite/writeAll: a test's array; the lines are joined at the flush)
      this.lines.push(line);
      this.bytes += line.length;
    } else {
      // Encoded at once into the batch's buffer: the line's string dies young instead of surviving a
      // scavenge or two in an array until the flush (the young generation is small: 2 MB).
      if (line.length * 3 > this.buf.length - this.bytes) {
        if (this.bytes > 0) this.flush();
        if (line.length * 3 > this.buf.length) {
          this.queue(Buffer.from(line), 1); // (a line longer than a batch goes on its own)
          this.flush();
          return;
        }
      }
      this.bytes += this.buf.write(line, this.bytes);
      this.count++;
    }
    this.added();
  }

  /** A line is in the batch: write the batch when it is big enough, else see that it is written soon. */
  private added(): void {
    if (this.bytes >= this.maxBytes) this.flush();
    else if (!this.scheduled) {
      this.scheduled = true;
      if (this.flushMs > 0) setTimeout(this.flushNow, this.flushMs);
      else setImmediate(this.flushNow);
    }
  }

  /**
   * Encode a line straight into the batch's buffer, without making its string: `encode(buf, at)`
   * writes it at `at` and returns where it ends, or -1 when it did not fit. False when this batch has
   * no buffer, or the line does not fit even an empty one: then the caller writes the line's string.
   */
  writeInPlace(encode: LineEncoder): boolean {
    const buf = this.buf;
    if (buf === null) return false;
    let end = encode.encode(buf, this.bytes);
    if (end < 0) {
      if (this.bytes === 0) return false;
      this.flush();
      end = encode.encode(buf, 0);
      if (end < 0) return false;
    }
    this.bytes = end;
    this.count++;
    this.added();
    return true;
  }

  /** Bytes written to the batch that the destination has not taken yet. */
  get pendingBytes(): number {
    return this.waitingBytes + this.bytes;
  }

  private queue(data: Buffer, lines: number): void {
    this.waiting.push({ data, lines });
    this.waitingBytes += data.length;
  }

  /** Write the batch; `wait`: also wait for a full destination (on exit). */
  flush(wait = false): void {
    if (this.buf !== null && this.bytes > 0) {
      // (copied: the buffer takes the next lines while these may still wait for the destination)
      this.queue(Buffer.from(this.buf.subarray(0, this.bytes)), this.count);
      this.count = 0;
      this.bytes = 0;
    } else if (this.lines.length > 0) {
      const lines = this.lines;
      this.lines = [];
      this.bytes = 0;
      try {
        this.out.write(lines.length === 1 ? lines[0]! : lines.join(''));
      } catch (e) {
        this.onLost(lines.length, e);
      }
      return;
    }
    // A retry is due: the destination was full a moment ago; the retry writes this batch too.
    if (this.retry !== null && !wait && this.waitingBytes <= this.maxPending) return;
    this.drain(wait || this.waitingBytes > this.maxPending);
  }

  private drain(wait: boolean): void {
    if (wait && this.retry !== null) {
      clearTimeout(this.retry);
      this.retry = null;
    }
    while (this.waiting.length > 0) {
      const head = this.waiting[0]!;
      let n: number;
      try {
        if (wait) {
          this.out.writeAll!(head.data);
          n = head.data.length;
        } else n = this.out.tryWrite!(head.data);
      } catch (e) {
        const lost = this.waiting.reduce((sum, w) => sum + w.lines, 0);
        this.waiting = [];
        this.waitingBytes = 0;
        this.onLost(lost, e);
        return;
      }
      this.waitingBytes -= n;
      if (n === head.data.length) {
        this.waiting.shift();
        continue;
      }
      head.data = head.data.subarray(n);
      // full: the event loop goes on; the rest is tried again shortly
      this.retry ??= setTimeout(this.retryNow, DEFAULTS.logRetryMs);
      this.retry.unref();
      return;
    }
  }
}

/** Zorp levels for the proxy cores' coarse levels (core/types.ts LogLevel). Zorp logs errors at 1..3,
 * accounting/summary at 4, requests at 5..6, debugging at 6..9. */
export const CORE_LEVEL: Record<LogLevel, number> = { error: 1, warn: 3, info: 4, debug: 6, trace: 8 };

/** pino's severity for a Zorp level (so JSON consumers can filter by the usual names too). */
function pinoLevel(level: number): 'error' | 'warn' | 'info' | 'debug' | 'trace' {
  if (level <= 1) return 'error';
  if (level <= 2) return 'warn';
  if (level <= 4) return 'info';
  if (level <= 6) return 'debug';
  return 'trace';
}

const NEEDS_ESCAPE = /[\\'\x00-\x1f\x7f]/;

/** A value as Zorp writes it inside quotes: one line, quotes and backslashes escaped. */
function quote(v: unknown): string {
  let s: string;
  if (v === null || v === undefined) return '(NULL)';
  if (typeof v === 'string') s = v;
  else if (typeof v === 'number' || typeof v === 'bigint' || typeof v === 'boolean')
    return String(v); // (nothing to escape)
  else if (v instanceof Date) s = v.toISOString();
  else s = JSON.stringify(v) ?? String(v);
  if (!NEEDS_ESCAPE.test(s)) return s;
  return s.replace(/[\\'\x00-\x1f\x7f]/g, (c) =>
    c === '\\' ? '\\\\' : c === "'" ? "\\'" : `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`,
  );
}

/** Zorp's text form of one message (without timestamp and process prefix). */
export function formatZorpLine(
  category: string,
  level: number,
  sessionId: string | null,
  msg: string,
  fields?: LogFields,
): string {
  let line = `${category}(${level}): (${sessionId ?? 'nosession'}): ${msg}`;
  if (fields) {
    let sep = '; ';
    for (const k in fields) {
      const v = fields[k];
      if (v === undefined) continue;
      line += `${sep}${k}='${quote(v)}'`;
      sep = ', ';
    }
  }
  return line;
}

/** What LineBatch.writeInPlace encodes a line with. */
export interface LineEncoder {
  encode(buf: Buffer, at: number): number;
}

/**
 * Zorp's text line (`stamp prefixclass(level): (session): message; key='value'...` and a newline, as
 * formatZorpLine makes it) written into a buffer without building the line's string. The string of a
 * line (a rope of a few dozen pieces, flattened again to be encoded) was a fifth of the bytes a plug
 * session allocated in a worker (bench/README.md). ASCII is copied a character at a time; the rest
 * goes through Buffer's UTF-8 encoder, so the bytes are those of the string's own encoding. One
 * instance per log: set() the line's parts, then LineBatch.writeInPlace.
 */
export class ZorpLineEncoder implements LineEncoder {
  private stamp = '';
  private prefix = '';
  private category = '';
  private level = 0;
  private sessionId: string | null = null;
  private msg = '';
  private fields: LogFields | undefined = undefined;

  set(
    stamp: string,
    prefix: string,
    category: string,
    level: number,
    sessionId: string | null,
    msg: string,
    fields: LogFields | undefined,
  ): this {
    this.stamp = stamp;
    this.prefix = prefix;
    this.category = category;
    this.level = level;
    this.sessionId = sessionId;
    this.msg = msg;
    this.fields = fields;
    return this;
  }

  /** Forget the last line's values (so that they do not live on in the encoder). */
  clear(): void {
    this.fields = undefined;
    this.sessionId = null;
    this.msg = '';
  }

  encode(buf: Buffer, at: number): number {
    // (each put returns -1 when the buffer is too short, and passes a -1 it is given on)
    let p = putText(buf, at, this.stamp);
    p = putByte(buf, p, 0x20);
    p = putText(buf, p, this.prefix);
    p = putText(buf, p, this.category);
    p = putByte(buf, p, 0x28); // (
    p = putUint(buf, p, this.level);
    p = putText(buf, p, '): (');
    p = putText(buf, p, this.sessionId ?? 'nosession');
    p = putText(buf, p, '): ');
    p = putText(buf, p, this.msg);
    const fields = this.fields;
    if (fields) {
      let first = true;
      for (const k in fields) {
        const v = fields[k];
        if (v === undefined) continue;
        p = putText(buf, p, first ? '; ' : ', ');
        first = false;
        p = putText(buf, p, k);
        p = putText(buf, p, "='");
        if (typeof v === 'string') p = putQuoted(buf, p, v);
        else if (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0) p = putUint(buf, p, v);
        else if (p >= 0) p = putText(buf, p, quote(v));
        p = putByte(buf, p, 0x27); // '
        if (p < 0) return -1;
      }
    }
    return putByte(buf, p, 0x0a);
  }
}

function putByte(buf: Buffer, p: number, b: number): number {
  if (p < 0 || p >= buf.length) return -1;
  buf[p] = b;
  return p + 1;
}

/** `s` as UTF-8 at `p`: where it ends, or -1 when the buffer may be too short. */
function putText(buf: Buffer, p: number, s: string): number {
  const n = s.length;
  if (p < 0 || p + n > buf.length) return -1;
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0x80) {
      // (the rest through the encoder: a surrogate pair is never split, its first half is at i)
      if (p + (n - i) * 3 > buf.length) return -1;
      return p + buf.write(i === 0 ? s : s.slice(i), p, buf.length - p, 'utf8');
    }
    buf[p++] = c;
  }
  return p;
}

/** 1 for the ASCII characters quote() escapes (controls, DEL, ' and backslash). */
const ESCAPED = new Uint8Array(128);
for (let c = 0; c < 0x20; c++) ESCAPED[c] = 1;
ESCAPED[0x27] = 1;
ESCAPED[0x5c] = 1;
ESCAPED[0x7f] = 1;

/** A string value inside Zorp's quotes, escaped as quote() escapes it. */
function putQuoted(buf: Buffer, p: number, s: string): number {
  const n = s.length;
  if (p < 0 || p + n > buf.length) return -1;
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0x80 || ESCAPED[c] === 1) {
      // anything to escape or to encode: the rest as quote() has it
      return putText(buf, p, quote(i === 0 ? s : s.slice(i)));
    }
    buf[p++] = c;
  }
  return p;
}

/** A non-negative integer's decimal digits. */
function putUint(buf: Buffer, p: number, v: number): number {
  if (p < 0) return -1;
  let digits = 1;
  for (let x = v; x >= 10; x = Math.floor(x / 10)) digits++;
  if (p + digits > buf.length) return -1;
  let x = v;
  for (let i = p + digits - 1; i >= p; i--) {
    buf[i] = 0x30 + (x % 10);
    x = Math.floor(x / 10);
  }
  return p + digits;
}

export interface ZorpLogOptions {
  format: LogFormat;
  levels: LogLevels;
  /** Default: stderr, written synchronously (nothing lost on exit). */
  destination?: LogDestination;
  /** Write the lines of each event-loop turn together (LineBatch: the workers, whose sessions log
   * several lines each) instead of one write per line. */
  batched?: boolean;
  /** Process name in text lines (Zorp: the instance name). */
  name?: string;
  /** Extra fields on every JSON record (e.g. worker index). */
  base?: LogFields;
  now?: () => Date;
}

export class ZorpLog {
  readonly levels: LogLevels;
  private readonly format: LogFormat;
  private readonly dest: LogDestination;
  /** The batch (opts.batched): text lines are encoded into it in place. */
  private readonly batch: LineBatch | null;
  private readonly encoder = new ZorpLineEncoder();
  private readonly json: pino.Logger | null;
  private readonly prefix: string;
  private readonly now: () => Date;
  private readonly nowMs: () => number;
  /** The last timestamp written and its millisecond (lines of one turn mostly share it). */
  private stampMs = Number.NaN;
  private stampText = '';

  constructor(opts: ZorpLogOptions) {
    this.levels = opts.levels;
    this.format = opts.format;
    const dest = opts.destination ?? fdDestination(2);
    this.batch = opts.batched ? new LineBatch(dest, (lines, e) => this.noteLost(lines, e)) : null;
    this.dest = this.batch ?? dest;
    this.now = opts.now ?? (() => new Date());
    const now = opts.now;
    this.nowMs = now ? () => now().getTime() : Date.now;
    this.prefix = `${opts.name ?? 'tzorp'}[${process.pid}]: `;
    this.json =
      opts.format === 'json'
        ? (requireCjs('pino') as typeof pino)(
            {
              level: 'trace', // filtering is ours (per category), pino writes what we hand it
              base: { pid: process.pid, ...(opts.base ?? {}) },
              timestamp: () => `,"time":"${this.now().toISOString()}"`,
              formatters: { level: (label) => ({ level: label }) },
            },
            this.dest as pino.DestinationStream,
          )
        : null;
  }

  enabled(category: string, level: number): boolean {
    return this.levels.enabled(category, level);
  }

  /** Write what the batch holds now, waiting for a full destination (as on exit). */
  flush(): void {
    this.batch?.flush(true);
  }

  /** ISO 8601 time of a line: the text made once per millisecond. */
  private stamp(): string {
    const ms = this.nowMs();
    if (ms !== this.stampMs) {
      this.stampMs = ms;
      this.stampText = isoTime(ms);
    }
    return this.stampText;
  }

  /** Write one message when its category allows `level`. `fields` become key='value' pairs / JSON keys. */
  log(category: string, level: number, sessionId: string | null, msg: string, fields?: LogFields): void {
    if (!this.levels.enabled(category, level)) return;
    this.write(category, level, sessionId, msg, fields);
  }

  /** Lines that could not be written (a full disk, a closed pipe) since the last one that could. */
  private lost = 0;
  private lostError = '';
  /** Lines lost in all, for status. */
  lostTotal = 0;

  /** Write regardless of the levels (startup banners and fatal errors an operator must see). A line
   * that cannot be written is counted, never thrown at the caller: a full disk for logs must not end
   * sessions or the daemon. The next line that can be written is followed by a note of how many were
   * lost. */
  write(category: string, level: number, sessionId: string | null, msg: string, fields?: LogFields): void {
    try {
      this.writeLine(category, level, sessionId, msg, fields);
    } catch (e) {
      this.noteLost(1, e);
      return;
    }
    if (this.lost === 0) return;
    const lines = this.lost;
    this.lost = 0;
    try {
      this.writeLine('core.error', 1, null, 'Log lines were lost; the log destination failed', {
        lines,
        error: this.lostError,
      });
    } catch {
      this.lost = lines + 1;
      this.lostTotal++;
    }
  }

  private noteLost(lines: number, e: unknown): void {
    this.lost += lines;
    this.lostTotal += lines;
    this.lostError = (e as NodeJS.ErrnoException).code ?? (e as Error).message;
  }

  private writeLine(
    category: string,
    level: number,
    sessionId: string | null,
    msg: string,
    fields?: LogFields,
  ): void {
    const lvl = Math.min(Math.max(0, level), MAX_LOG_LEVEL);
    if (this.json) {
      this.json[pinoLevel(lvl)](
        { class: category, zlevel: lvl, session_id: sessionId ?? 'nosession', ...(fields ?? {}) },
        msg,
      );
    } else {
      const stamp = this.stamp();
      if (this.batch !== null) {
        const e = this.encoder.set(stamp, this.prefix, category, lvl, sessionId, msg, fields);
        const done = this.batch.writeInPlace(e);
        e.clear();
        if (done) return;
      }
      this.dest.write(`${stamp} ${this.prefix}${formatZorpLine(category, lvl, sessionId, msg, fields)}\n`);
    }
  }

  /** A logger bound to one session id (what a session and its core's log commands use). */
  session(sessionId: string): SessionLog {
    return {
      sessionId,
      log: (category, level, msg, fields) => this.log(category, level, sessionId, msg, fields),
      enabled: (category, level) => this.levels.enabled(category, level),
    };
  }
}

export interface SessionLog {
  sessionId: string;
  log(category: string, level: number, msg: string, fields?: LogFields): void;
  enabled(category: string, level: number): boolean;
}
