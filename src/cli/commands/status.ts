// tzorp status [--json] [--control PATH]: the running daemon's policy, generation and per-service
// session counters and rates (Zorp's `zorpctl status -v` and SZIG service.* nodes).
import Table from 'cli-table3';
import type { Command } from 'commander';
import { addControlOption, ask, formatAge, type StatusResult } from '../../daemon/index.ts';

export function formatStatus(s: StatusResult, now = Date.now()): string {
  const lines = [
    `tzorp ${s.state}, pid ${s.pid}, started at ${s.startedAt} (${formatAge(now - Date.parse(s.startedAt))} ago)`,
    `state: ${s.state}`,
    `policy: ${s.policy.file} sha256=${s.policy.sha256 ?? '-'}`,
    s.generation > 0
      ? `generation: ${s.generation} (loaded at ${s.policy.loadedAt})`
      : 'generation: none yet (starting)',
    `workers: ${s.workersAlive} of ${s.workers} alive; kernel ruleset: ${s.kernel ? 'applied' : 'not managed (--no-kernel)'}`,
    `log: verbosity ${s.log.verbosity}, spec '${s.log.spec}', format ${s.log.format}`,
  ];
  for (const g of s.oldGenerations)
    lines.push(`generation ${g.generation}: ${g.sessions} sessions still running`);
  const t = new Table({
    head: [
      'service',
      'proxy',
      'running',
      'total',
      'refused',
      'rate/s 1m 5m 15m',
      'last started',
      'listeners',
    ],
    style: { head: [], border: [] },
  });
  for (const v of s.services) {
    t.push([
      v.name,
      v.proxy,
      v.sessionsRunning,
      v.sessionsTotal,
      v.sessionsRefused,
      `${v.rate.m1.toFixed(2)} ${v.rate.m5.toFixed(2)} ${v.rate.m15.toFixed(2)}`,
      v.lastStarted ?? '-',
      v.listeners.join(' '),
    ]);
  }
  return `${lines.join('\n')}\n${s.services.length > 0 ? t.toString() : '(no proxy services)'}\n`;
}

export function register(program: Command): void {
  addControlOption(
    program
      .command('status')
      .description('show the running daemon: policy, generation, per-service sessions and rates')
      .option('--json', 'machine-readable output'),
  ).action(async (opts: { json?: boolean; control: string }) => {
    const s = await ask<StatusResult>(opts.control, { cmd: 'status' });
    if (!s) return;
    process.stdout.write(opts.json ? `${JSON.stringify(s, null, 2)}\n` : formatStatus(s));
  });
}
