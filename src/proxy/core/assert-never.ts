// Exhaustive switches: a new event or command type must be handled everywhere it is switched on. The
// type check finds the switch that forgot it; at run time (a value from outside the types) it is a bug
// of ours, which ends one session (TZ9001) and never reaches a peer.
import { TzorpError } from '../../errors.ts';

export function assertNever(x: never, what = 'value'): never {
  const type =
    typeof x === 'object' && x !== null && 'type' in x ? String((x as { type: unknown }).type) : String(x);
  throw new TzorpError('INTERNAL', `unhandled ${what} '${type}'`);
}
