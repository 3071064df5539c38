// tzorp stop [--timeout MS] [--control PATH]: stop accepting, let running sessions finish (at most
// --timeout ms, then they are aborted), remove what tzorp installed in the kernel, exit (same as SIGTERM).
import type { Command } from 'commander';
import { InvalidArgumentError } from 'commander';
import { addControlOption, ask, type StopResult } from '../../daemon/index.ts';
import { DEFAULTS } from '../../defaults.ts';

function ms(v: string): number {
  const n = Number(v);
  if (!/^\d+$/.test(v) || !Number.isSafeInteger(n))
    throw new InvalidArgumentError('must be milliseconds (an integer >= 0)');
  return n;
}

export function register(program: Command): void {
  addControlOption(
    program
      .command('stop')
      .description('drain running sessions (with a timeout), remove the kernel ruleset, and stop the daemon')
      .option(
        '--timeout <ms>',
        'how long running sessions may take to finish',
        ms,
        DEFAULTS.stopDrainTimeoutMs,
      )
      .option('--json', 'machine-readable output'),
  ).action(async (opts: { control: string; timeout: number; json?: boolean }) => {
    const r = await ask<StopResult>(
      opts.control,
      { cmd: 'stop', timeoutMs: opts.timeout },
      { timeoutMs: opts.timeout + DEFAULTS.controlStopReplyGraceMs },
    );
    if (!r) return;
    if (opts.json) {
      process.stdout.write(`${JSON.stringify(r, null, 2)}\n`);
      return;
    }
    process.stdout.write(
      `stopped: ${r.drained ? 'all sessions finished' : `${r.sessionsLeft} sessions aborted after the timeout`}` +
        `${r.flushed ? '; kernel ruleset and routing removed' : ''}\n`,
    );
  });
}
