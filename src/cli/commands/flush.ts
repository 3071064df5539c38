// tzorp flush [--json]: removes exactly what `tzorp apply` installed in this network namespace: table
// inet tzorp, and the ip rules and routes tagged with tzorp's routing protocol (122). Nothing else.
import type { Command } from 'commander';
import { TzorpError } from '../../errors.ts';
import { flushTzorp } from '../../kernel/index.ts';

export function register(program: Command): void {
  program
    .command('flush')
    .description('remove the tzorp nftables table and policy routing from this network namespace')
    .option('--json', 'print the result as JSON')
    .action(async (o: { json?: boolean }) => {
      try {
        const r = await flushTzorp();
        if (o.json) process.stdout.write(`${JSON.stringify(r)}\n`);
        else
          process.stdout.write(
            `${r.table ? 'deleted table inet tzorp' : 'no table inet tzorp'}; removed ${r.routing} policy routing entries\n`,
          );
      } catch (e) {
        if (!(e instanceof TzorpError)) throw e;
        process.stderr.write(`${e.format()}\n`);
        process.exitCode = 1;
      }
    });
}
