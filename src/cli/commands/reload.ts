// tzorp reload [--control PATH]: load the policy file again and switch to it as the next generation
// (same as SIGHUP). A policy with errors is refused, its errors are printed with file:line:col, the
// running generation stays, and the exit code is 1.
import type { Command } from 'commander';
import { addControlOption, ask, type ReloadResult } from '../../daemon/index.ts';

export function register(program: Command): void {
  addControlOption(
    program
      .command('reload')
      .description('reload the policy (new generation); a policy with errors is refused, the old one stays')
      .option('--json', 'machine-readable output'),
  ).action(async (opts: { control: string; json?: boolean }) => {
    // A reload applies a kernel ruleset: allow for large policies.
    const r = await ask<ReloadResult>(opts.control, { cmd: 'reload' }, { timeoutMs: 300_000 });
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
  });
}
