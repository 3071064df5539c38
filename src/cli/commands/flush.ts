// tzorp flush [--open] [--json]: takes back what `tzorp apply`/`tzorp run` installed in this network
// namespace. By default table inet tzorp becomes the closed table (nothing forwarded, nothing decided;
// the firewall keeps loopback, its established connections, essential ICMP and the policy's
// management entries), so a stopped or crashed tzorp never leaves a plain router; --open deletes the
// table instead. Either way the ip rules and routes tagged with tzorp's routing protocol (122) go and
// the sysctls tzorp changed get their values from before it changed them. Other tables: untouched.
import type { Command } from 'commander';
import { TzorpError } from '../../errors.ts';
import { flushTzorp } from '../../kernel/index.ts';

export function register(program: Command): void {
  program
    .command('flush')
    .description(
      'take back the tzorp ruleset: leave the closed table (management kept), remove policy routing, restore sysctls',
    )
    .option('--open', 'delete table inet tzorp instead of leaving the closed one')
    .option('--json', 'print the result as JSON')
    .action(async (o: { open?: boolean; json?: boolean }) => {
      try {
        const r = await flushTzorp({ open: o.open ?? false });
        if (o.json) process.stdout.write(`${JSON.stringify(r)}\n`);
        else {
          const what = !r.table
            ? 'no table inet tzorp'
            : r.closed
              ? `closed table inet tzorp: nothing is forwarded${r.closedWithoutManagement ? ', and no management entry was known: only established connections reach the firewall' : '; management entries kept'} (tzorp flush --open removes it)`
              : 'deleted table inet tzorp';
          const sys = r.restored.map((x) => `${x.name}=${x.value}`).join(', ');
          process.stdout.write(
            `${what}; removed ${r.routing} policy routing entries${sys ? `; restored ${sys}` : ''}\n`,
          );
          if (r.closedWithoutManagement) {
            process.stderr.write(
              'warning: the live table had no management chain: the closed table keeps no management entry\n',
            );
          }
        }
      } catch (e) {
        if (!(e instanceof TzorpError)) throw e;
        process.stderr.write(`${e.format()}\n`);
        process.exitCode = 1;
      }
    });
}
