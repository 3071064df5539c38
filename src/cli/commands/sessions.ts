// tzorp sessions [--json] [--control PATH]: the sessions running now, in every worker and generation.
import Table from 'cli-table3';
import type { Command } from 'commander';
import {
  addControlOption,
  ask,
  formatAge,
  formatBytes,
  hostPort,
  type SessionInfo,
} from '../../daemon/index.ts';

export function formatSessions(list: SessionInfo[]): string {
  if (list.length === 0) return 'no sessions\n';
  const t = new Table({
    head: ['id', 'service', 'rule', 'client (zone)', 'server (zone)', 'bytes c>s', 'bytes s>c', 'age', 'gen'],
    style: { head: [], border: [] },
  });
  for (const s of list) {
    t.push([
      s.id,
      s.service,
      s.rule ?? '-',
      `${hostPort(s.client.address, s.client.port)} (${s.client.zone ?? '-'})`,
      s.server ? `${hostPort(s.server.address, s.server.port)} (${s.server.zone ?? '-'})` : '(connecting)',
      formatBytes(s.bytesFromClient),
      formatBytes(s.bytesToClient),
      formatAge(s.ageMs),
      s.generation,
    ]);
  }
  return `${t.toString()}\n`;
}

export function register(program: Command): void {
  addControlOption(
    program
      .command('sessions')
      .description('list the running sessions: addresses, zones, rule, bytes, age, generation')
      .option('--json', 'machine-readable output'),
  ).action(async (opts: { json?: boolean; control: string }) => {
    const list = await ask<SessionInfo[]>(opts.control, { cmd: 'sessions' });
    if (!list) return;
    process.stdout.write(opts.json ? `${JSON.stringify(list, null, 2)}\n` : formatSessions(list));
  });
}
