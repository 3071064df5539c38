// Two small pieces every protocol core and parser repeats: dispatching an event by the core's state,
// and a parser that stays failed once its peer broke the protocol.
import { ProtocolError } from '../../errors.ts';
import type { ProxyEvent } from './types.ts';

/** A state's own handler, a method of the core: true when it took the event, false to leave it to
 * the shared handler. */
export type StateHandler<O> = (this: O, ev: ProxyEvent) => boolean;

/**
 * One handler per state: the state's handler sees the event first; what it leaves goes to `shared`
 * (what every state does alike: start, abort, timers, ignored events). A state whose handler is null
 * (done) ignores every event. The handlers are the core's methods, called on `owner`: one table per
 * core class (a static), not closures made for every connection.
 */
export function dispatchByState<O, S extends string>(
  owner: O,
  state: S,
  handlers: Readonly<Record<S, StateHandler<O> | null>>,
  shared: (this: O, ev: ProxyEvent) => void,
  ev: ProxyEvent,
): void {
  const handler = handlers[state];
  if (handler === null) return;
  if (!handler.call(owner, ev)) shared.call(owner, ev);
}

/** A parser's failure is final: after its first ProtocolError every later read throws the same error
 * (a byte stream that broke the protocol cannot be resynchronised). */
export class StickyFailure {
  private failed: ProtocolError | null = null;

  /** Run `step` on `owner` (no closure per read on the hot path) unless the parser already failed. */
  run<O, T>(owner: O, step: (this: O) => T): T {
    if (this.failed) throw this.failed;
    try {
      return step.call(owner);
    } catch (e) {
      if (e instanceof ProtocolError) this.failed = e;
      throw e;
    }
  }
}
