// tzorp log [--spec SPEC] [--verbosity N] [--inc|--dec] [--control PATH]: show or change the running
// daemon's log levels (Zorp's `zorpctl log -S spec`, `-s N`, `-i`, `-d`). A spec is a comma list of
// category-glob:level; the last matching entry wins, other categories use the verbosity.
import type { Command } from 'commander';
import { addControlOption, ask, type LogResult, levelArg, logSpecArg } from '../../daemon/index.ts';

export function register(program: Command): void {
  addControlOption(
    program
      .command('log')
      .description("show or change the daemon's log levels at run time")
      .option(
        '--spec <spec>',
        "per-category levels, e.g. 'core.*:5,http.*:6' (replaces the current spec)",
        logSpecArg,
      )
      .option('--verbosity <n>', 'level of categories no spec entry matches (0..10)', levelArg)
      .option('--inc', 'verbosity + 1 (as SIGUSR1)')
      .option('--dec', 'verbosity - 1 (as SIGUSR2)')
      .option('--json', 'machine-readable output'),
  ).action(
    async (opts: {
      control: string;
      spec?: string;
      verbosity?: number;
      inc?: boolean;
      dec?: boolean;
      json?: boolean;
    }) => {
      if (opts.inc && opts.dec) {
        process.stderr.write('tzorp log: --inc and --dec exclude each other\n');
        process.exitCode = 2;
        return;
      }
      const req: { cmd: 'log'; spec?: string; verbosity?: number; delta?: number } = { cmd: 'log' };
      if (opts.spec !== undefined) req.spec = opts.spec;
      if (opts.verbosity !== undefined) req.verbosity = opts.verbosity;
      if (opts.inc) req.delta = 1;
      if (opts.dec) req.delta = -1;
      const r = await ask<LogResult>(opts.control, req);
      if (!r) return;
      process.stdout.write(
        opts.json ? `${JSON.stringify(r)}\n` : `verbosity ${r.verbosity}, spec '${r.spec}'\n`,
      );
    },
  );
}
