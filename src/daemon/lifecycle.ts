// The daemon's lifecycle, as `tzorp status` reports it (field `state`):
//
//   starting ──▶ running ◀──▶ reloading
//      │            │             │
//      │            ▼             ▼
//      │         draining ◀───────┘
//      │            │
//      └──────────▶ stopped
//
// starting: the policy is loaded, workers and generation 1 are being built (the control socket
//   already answers `status`; everything else is refused with DAEMON_STARTING).
// running: serving. reloading: a reload is building and switching to the next generation; sessions
//   are served meanwhile. draining: stop was asked; listeners are closed, running sessions get the
//   drain timeout. stopped: the kernel ruleset is flushed, workers are gone (a failed start ends here
//   too, straight from starting).
import { TzorpError } from '../errors.ts';

export const DAEMON_STATES = ['starting', 'running', 'reloading', 'draining', 'stopped'] as const;
export type DaemonState = (typeof DAEMON_STATES)[number];

const NEXT: Record<DaemonState, readonly DaemonState[]> = {
  starting: ['running', 'stopped'],
  running: ['reloading', 'draining'],
  reloading: ['running', 'draining'],
  draining: ['stopped'],
  stopped: [],
};

export class Lifecycle {
  private current: DaemonState = 'starting';

  constructor(private readonly onChange: (from: DaemonState, to: DaemonState) => void = () => {}) {}

  get state(): DaemonState {
    return this.current;
  }

  /** Move to `next`; a move the diagram does not have is a bug (INTERNAL), and nothing changes. */
  to(next: DaemonState): void {
    if (next === this.current) return;
    if (!NEXT[this.current].includes(next)) {
      throw new TzorpError('INTERNAL', `daemon state ${this.current} cannot become ${next}`);
    }
    const from = this.current;
    this.current = next;
    this.onChange(from, next);
  }

  /** Control requests other than `status` need a daemon that serves: refused while starting or after
   * stop was asked, with the code that says why. */
  assertServing(what: string): void {
    if (this.current === 'starting') {
      throw new TzorpError('DAEMON_STARTING', `${what}: the daemon is still starting`);
    }
    if (this.current === 'draining' || this.current === 'stopped') {
      throw new TzorpError('DAEMON_STOPPING', `${what}: the daemon is ${this.current}`);
    }
  }
}
