// The playbook harness: scripted event/command sequences for every sans-IO core (src/proxy/core/).
//
// Two ways to drive a core, on the same object:
//
// - Scripted (exact): `p.on(event).out(cmd, cmd).on(event).out().check()`. Every step lists the exact
//   commands its event must produce, in order (a step without `out` must produce none). Nothing runs
//   until `check()`: a playbook whose scripted steps were never checked fails the test (afterEach below),
//   so a forgotten `check()` cannot pass silently. A mismatch fails with a line-per-command diff.
//
// - Step by step: `p.feed(event)` runs one event at once and returns its Step (the commands of that one
//   event); `p.all` is every command of the session so far. Both answer the same questions (`sent`,
//   `of`, `types`), so "what was sent" always says over which span: `p.last.sent('client')` is the last
//   event's, `p.all.sent('client')` the whole session's. `p.expect(...)` checks the last step exactly.
//
// Placeholders stand for values the core makes later (a listener id, a stream id, a port): `slot('x')`
// matches any value the first time and binds it; later uses must equal it, and events in a script may
// carry the slot too (it is replaced by its value when the event runs). `any` matches anything once,
// `text(re)` matches send data or a string by a regular expression.
import { AssertionError } from 'node:assert/strict';
import { afterEach } from 'node:test';
import type { ProxyCommand, ProxyCore, ProxyEvent } from '../../../src/proxy/core/index.ts';

// ---------------------------------------------------------------------------------------------
// placeholders and matchers

export class Slot<T = unknown> {
  private bound = false;
  private v: T | undefined;

  constructor(readonly name: string) {}

  get isBound(): boolean {
    return this.bound;
  }

  /** The bound value; a script that uses it before the core produced it is a broken script. */
  get value(): T {
    if (!this.bound) throw new Error(`placeholder <${this.name}> used before a command bound it`);
    return this.v as T;
  }

  bind(v: T): void {
    this.bound = true;
    this.v = v;
  }
}

export function slot<T = unknown>(name: string): Slot<T> {
  return new Slot<T>(name);
}

class Matcher {
  constructor(
    readonly label: string,
    readonly test: (v: unknown) => boolean,
  ) {}
}

/** Any value at all (the command must still be there). */
export const any = new Matcher('<any>', () => true);

/** A string, or bytes read as latin1 text, matching `re`. */
export function text(re: RegExp): Matcher {
  return new Matcher(`<text ${re}>`, (v) => re.test(typeof v === 'string' ? v : latin1(v as Uint8Array)));
}

/** What a script may write where a command has a value: the value, a slot, a matcher; `data` may be a
 * string (compared with the bytes as latin1). */
export type Expected = { [k: string]: unknown; type: ProxyCommand['type'] };
type EventIn = { [k: string]: unknown; type: ProxyEvent['type']; now?: number };

// ---------------------------------------------------------------------------------------------
// steps and views

const dec = (b: Uint8Array) => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('latin1');
function latin1(b: Uint8Array): string {
  return dec(b);
}

/** Commands of some span of the session, with the questions tests ask of them. */
export class Commands {
  constructor(protected readonly list: readonly ProxyCommand[]) {}

  get commands(): readonly ProxyCommand[] {
    this.seen();
    return this.list;
  }

  /** How many commands (not a look at them: it checks nothing). */
  get length(): number {
    return this.list.length;
  }

  /** Text sent to `stream` in this span (latin1). */
  sent(stream: string): string {
    return this.of('send')
      .filter((c) => c.stream === stream)
      .map((c) => latin1(c.data))
      .join('');
  }

  of<T extends ProxyCommand['type']>(type: T): Extract<ProxyCommand, { type: T }>[] {
    return this.commands.filter((c): c is Extract<ProxyCommand, { type: T }> => c.type === type);
  }

  /** `type` or `type:stream` per command: the shape of a sequence. */
  types(): string[] {
    return this.commands.map((c) => ('stream' in c ? `${c.type}:${c.stream}` : c.type));
  }

  /** Called when a test looks at these commands. */
  protected seen(): void {}
}

/** One event and the commands it produced. */
export class Step extends Commands {
  checked = false;

  constructor(
    readonly index: number,
    readonly event: ProxyEvent,
    list: ProxyCommand[],
  ) {
    super(list);
  }

  protected override seen(): void {
    this.checked = true;
  }
}

// ---------------------------------------------------------------------------------------------
// the playbook

interface Scripted {
  event: EventIn;
  out: Expected[];
}

/** Playbooks of the running test: each is checked for unchecked scripted steps after it. */
const live = new Set<Playbook>();

afterEach(() => {
  const open = [...live];
  live.clear();
  const lost = open.filter((p) => p.unchecked > 0);
  if (lost.length > 0) {
    throw new AssertionError({
      message: lost
        .map((p) => `playbook: ${p.unchecked} scripted step(s) never checked (call check())`)
        .join('\n'),
    });
  }
});

export interface PlaybookOptions {
  /** `now` of the first event (ms). */
  now?: number;
  /** Added to `now` before each event (ms): 0 keeps the clock still unless the test moves it. */
  tick?: number;
}

export class Playbook {
  now: number;
  private readonly tick: number;
  private readonly steps: Step[] = [];
  private readonly log: ProxyCommand[] = [];
  private script: Scripted[] = [];

  constructor(
    readonly core: ProxyCore,
    opts: PlaybookOptions = {},
  ) {
    this.now = opts.now ?? 0;
    this.tick = opts.tick ?? 0;
    live.add(this);
  }

  /** Scripted steps not run and compared yet. */
  get unchecked(): number {
    return this.script.length;
  }

  // --- scripted --------------------------------------------------------------------------------

  /** Script an event (runs at check()). Fields may hold slots. */
  on(event: EventIn): this {
    this.script.push({ event, out: [] });
    return this;
  }

  /** The exact commands the last scripted event must produce, in order. */
  out(...expected: Expected[]): this {
    const last = this.script.at(-1);
    if (!last) throw new Error('out() before any on()');
    last.out.push(...expected);
    return this;
  }

  /** Run the scripted steps in order, comparing each step's commands exactly. */
  check(): this {
    const script = this.script;
    this.script = [];
    for (const [i, s] of script.entries()) {
      const step = this.run(resolve(s.event) as EventIn);
      step.checked = true;
      this.compare(step, s.out, `scripted step ${i + 1} (${s.event.type})`);
    }
    return this;
  }

  // --- step by step ----------------------------------------------------------------------------

  /** Run one event now; its commands are the returned step. */
  feed(event: EventIn): Step {
    if (this.script.length > 0) throw new Error('feed() while scripted steps wait for check()');
    return this.run(event);
  }

  /** The last event's step. */
  get last(): Step {
    const s = this.steps.at(-1);
    if (!s) throw new Error('no event yet');
    return s;
  }

  /** Every command of the session so far (looking at them checks every step so far). */
  get all(): Commands {
    for (const s of this.steps) s.checked = true;
    return new Commands(this.log);
  }

  /** The commands from the `from`-th command of the session on (`from` = an earlier `all.length`). */
  since(from: number): Commands {
    for (const s of this.steps) s.checked = true;
    return new Commands(this.log.slice(from));
  }

  /** The last step's commands are exactly these. */
  expect(...expected: Expected[]): void {
    const step = this.last;
    step.checked = true;
    this.compare(step, expected, `step ${step.index + 1} (${step.event.type})`);
  }

  /** Steps whose commands no query or expectation looked at (for tests that want every step seen). */
  uncheckedSteps(): Step[] {
    return this.steps.filter((s) => !s.checked && s.length > 0);
  }

  // --- internals -------------------------------------------------------------------------------

  private run(event: EventIn): Step {
    if (event.now === undefined) {
      this.now += this.tick;
      event = { ...event, now: this.now };
    } else this.now = event.now;
    const cmds = this.core.handle(event as ProxyEvent);
    this.log.push(...cmds);
    const step = new Step(this.steps.length, event as ProxyEvent, cmds);
    this.steps.push(step);
    return step;
  }

  private compare(step: Step, expected: Expected[], what: string): void {
    const actual = step.commands;
    const ok =
      actual.length === expected.length && expected.every((e, i) => matches(e, actual[i], new Map()));
    if (ok) {
      // Bind the slots only once the whole step matched (a failed match leaves them as they were).
      for (const [i, e] of expected.entries()) matches(e, actual[i], null);
      return;
    }
    throw new AssertionError({
      message: `${what}: the commands differ\n${diff(
        // An expected command that matches its actual one positionally is shown as that one, so the
        // diff marks only what really differs.
        expected.map((e, i) =>
          i < actual.length && matches(e, actual[i], new Map()) ? show(actual[i]!) : showExpected(e),
        ),
        actual.map(show),
      )}`,
    });
  }
}

// ---------------------------------------------------------------------------------------------
// matching

/** Does `actual` match `expected`? With `pending` a map, slots are bound tentatively in it; with null
 * they are bound for real. */
function matches(expected: unknown, actual: unknown, pending: Map<Slot, unknown> | null): boolean {
  if (expected instanceof Slot) {
    if (expected.isBound) return same(expected.value, actual);
    if (pending === null) {
      expected.bind(actual);
      return true;
    }
    if (pending.has(expected)) return same(pending.get(expected), actual);
    pending.set(expected, actual);
    return true;
  }
  if (expected instanceof Matcher) return expected.test(actual);
  if (typeof expected === 'string' && actual instanceof Uint8Array) return expected === latin1(actual);
  if (expected instanceof Uint8Array) return actual instanceof Uint8Array && same(expected, actual);
  if (Array.isArray(expected)) {
    return (
      Array.isArray(actual) &&
      actual.length === expected.length &&
      expected.every((e, i) => matches(e, actual[i], pending))
    );
  }
  if (expected !== null && typeof expected === 'object') {
    if (actual === null || typeof actual !== 'object') return false;
    const ek = Object.keys(expected).filter((k) => (expected as Record<string, unknown>)[k] !== undefined);
    const ak = Object.keys(actual).filter((k) => (actual as Record<string, unknown>)[k] !== undefined);
    if (ek.length !== ak.length) return false;
    return ek.every(
      (k) =>
        k in actual &&
        matches((expected as Record<string, unknown>)[k], (actual as Record<string, unknown>)[k], pending),
    );
  }
  return Object.is(expected, actual);
}

function same(a: unknown, b: unknown): boolean {
  if (a instanceof Uint8Array && b instanceof Uint8Array)
    return Buffer.compare(Buffer.from(a), Buffer.from(b)) === 0;
  return matches(a, b, new Map());
}

/** Slots in a scripted event become their values. */
function resolve(v: unknown): unknown {
  if (v instanceof Slot) return v.value;
  if (v instanceof Uint8Array || v === null || typeof v !== 'object') return v;
  if (Array.isArray(v)) return v.map(resolve);
  return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, resolve(x)]));
}

// ---------------------------------------------------------------------------------------------
// the readable diff: one line per command

function show(c: ProxyCommand): string {
  return showCommand(c as unknown as Record<string, unknown>);
}

function showExpected(e: Expected): string {
  return showCommand(e);
}

function showCommand(c: Record<string, unknown>): string {
  const { type, ...rest } = c;
  const parts: string[] = [String(type)];
  for (const key of ['stream', 'listener', 'timer'] as const) {
    if (key in rest) {
      parts.push(showValue(rest[key]));
      delete rest[key];
    }
  }
  for (const [k, v] of Object.entries(rest)) if (v !== undefined) parts.push(`${k}=${showValue(v)}`);
  return parts.join(' ');
}

function showValue(v: unknown): string {
  if (v instanceof Slot) return v.isBound ? showValue(v.value) : `<${v.name}>`;
  if (v instanceof Matcher) return v.label;
  if (v instanceof Uint8Array) return JSON.stringify(latin1(v).slice(0, 200));
  if (typeof v === 'string') return JSON.stringify(v);
  if (Array.isArray(v)) return `[${v.map(showValue).join(', ')}]`;
  if (v !== null && typeof v === 'object')
    return `{${Object.entries(v)
      .filter(([, x]) => x !== undefined)
      .map(([k, x]) => `${k}: ${showValue(x)}`)
      .join(', ')}}`;
  return String(v);
}

/** A line diff (longest common subsequence): '  ' both, '- ' expected only, '+ ' actual only. */
export function diff(expected: string[], actual: string[]): string {
  const n = expected.length;
  const m = actual.length;
  const lcs: number[][] = Array.from({ length: n + 1 }, () => new Array<number>(m + 1).fill(0));
  for (let i = n - 1; i >= 0; i--)
    for (let j = m - 1; j >= 0; j--)
      lcs[i]![j] =
        expected[i] === actual[j] ? lcs[i + 1]![j + 1]! + 1 : Math.max(lcs[i + 1]![j]!, lcs[i]![j + 1]!);
  const out: string[] = [];
  let i = 0;
  let j = 0;
  while (i < n || j < m) {
    if (i < n && j < m && expected[i] === actual[j]) {
      out.push(`    ${expected[i++]}`);
      j++;
    } else if (j < m && (i === n || lcs[i]![j + 1]! >= lcs[i + 1]![j]!)) out.push(`  + ${actual[j++]}`);
    else out.push(`  - ${expected[i++]}`);
  }
  return `  (- expected, + actual)\n${out.join('\n')}`;
}
