// The core kit's outbox: where a sans-IO core collects the commands of one event (types.ts), plus the
// few ways every core writes them (a log line, a protocol violation, the end of the session). Each core
// used to write these itself; one copy keeps their shapes identical across proxies.
import type { LogLevel, ProxyCommand, StreamId, TimerId, Verdict } from './types.ts';

/** What the last commands of a session do, in this order: clear timers, close streams, account, done. */
export interface EndOptions {
  clearTimers?: readonly TimerId[];
  close?: readonly StreamId[];
  account?: Record<string, number | string>;
}

export class Outbox {
  private cmds: ProxyCommand[] = [];
  /** `done` was emitted: the session is over and the core answers nothing more. */
  ended = false;

  /**
   * @param proxy the proxy's name: violations are logged as `<proxy>.violation`.
   * @param logFields added to the fields of every log line (session id and service, when a proxy's log
   *   lines carry them itself).
   */
  constructor(
    readonly proxy: string,
    private readonly logFields?: Readonly<Record<string, unknown>>,
  ) {}

  emit(c: ProxyCommand): void {
    this.cmds.push(c);
  }

  /** Queue bytes for a stream; an empty chunk is not a command. */
  send(stream: StreamId, data: Uint8Array): void {
    if (data.length > 0) this.cmds.push({ type: 'send', stream, data });
  }

  /** A log line. `fields` is completed in place with the outbox's log fields (callers pass a fresh
   * object: no copy on the per-request path). */
  log(category: string, level: LogLevel, msg: string, fields?: Record<string, unknown>): void {
    if (this.logFields) fields = Object.assign(fields ?? {}, this.logFields);
    this.cmds.push(
      fields === undefined
        ? { type: 'log', category, level, msg }
        : { type: 'log', category, level, msg, fields },
    );
  }

  /** A peer broke the protocol or the policy refused something it asked: `<proxy>.violation`, warn. */
  violation(msg: string, fields?: Record<string, unknown>): void {
    this.log(`${this.proxy}.violation`, 'warn', msg, fields);
  }

  /** The session is over: the closing commands, then `done`. A second end is ignored. */
  end(verdict: Verdict, info?: string, opts: EndOptions = {}): void {
    if (this.ended) return;
    this.ended = true;
    for (const timer of opts.clearTimers ?? []) this.cmds.push({ type: 'clearTimer', timer });
    for (const stream of opts.close ?? []) this.cmds.push({ type: 'close', stream });
    if (opts.account) this.cmds.push({ type: 'account', fields: opts.account });
    this.cmds.push(info === undefined ? { type: 'done', verdict } : { type: 'done', verdict, info });
  }

  /** The commands collected since the last take, in order; the outbox starts empty again. */
  take(): ProxyCommand[] {
    const c = this.cmds;
    this.cmds = [];
    return c;
  }
}
