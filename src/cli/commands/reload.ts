// tzorp reload [--control PATH]: load the policy file again and switch to it as the next generation
// (same as SIGHUP). A policy with errors is refused, its errors are printed with file:line:col, the
// running generation stays, and the exit code is 1. `--confirm SECONDS`: the daemon switches back to
// the last confirmed policy unless `tzorp confirm` follows in time (as apply --confirm does for the
// ruleset alone): a reload that cuts the administrator off undoes itself.
import { type Command, InvalidArgumentError } from 'commander';
import { addControlOption, ask, type ReloadResult } from '../../daemon/index.ts';

function confirmSeconds(v: string): number {
  const n = Number(v);
  if (!/^\d+$/.test(v) || n < 1 || n > 86_400) throw new InvalidArgumentError('SECONDS from 1 to 86400');
  return n;
}

export function register(program: Command): void {
  addControlOption(
    program
      .command('reload')
      .description('reload the policy (new generation); a policy with errors is refused, the old one stays')
      .option('--json', 'machine-readable output')
      .option(
        '--confirm <seconds>',
        'revert to the last confirmed policy unless `tzorp confirm` follows within SECONDS',
        confirmSeconds,
      ),
  ).action(async (opts: { control: string; json?: boolean; confirm?: number }) => {
    // A reload applies a kernel ruleset: allow for large policies.
    const req =
      opts.confirm === undefined
        ? { cmd: 'reload' as const }
        : { cmd: 'reload' as const, confirmSeconds: opts.confirm };
    const r = await ask<ReloadResult>(opts.control, req, { timeoutMs: 300_000 });
    if (!r) return;
    if (opts.json) {
      process.stdout.write(`${JSON.stringify(r, null, 2)}\n`);
      return;
    }
    for (const w of r.warnings) process.stderr.write(`${w}\n`);
    const changes = [
      r.servicesAdded.length > 0 ? `added ${r.servicesAdded.join(', ')}` : '',
      r.servicesRemoved.length > 0 ? `removed ${r.servicesRemoved.join(', ')}` : '',
    ].filter(Boolean);
    process.stdout.write(
      `reloaded: generation ${r.generation} (was ${r.previousGeneration}), sha256=${r.sha256}` +
        `${changes.length > 0 ? `; ${changes.join('; ')}` : ''}\n`,
    );
    if (r.confirmSeconds !== undefined) {
      process.stdout.write(
        `run \`tzorp confirm\` within ${r.confirmSeconds} s to keep it; otherwise the last confirmed policy comes back\n`,
      );
    }
  });
}
