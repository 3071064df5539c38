// tzorp apply POLICY [--listen-port SERVICE=PORT ...] [--user-rules FILE] [--fix-sysctls] [--full]
//   [--confirm SECONDS] [--json]:
// compiles the policy and installs it in the current network namespace: policy routing for IPv4 and
// IPv6, then one transaction that changes table inet tzorp: only the differences to what the last
// `tzorp apply` here installed, or (first time, --full, or any doubt) a whole new table. On any failure
// the previous ruleset and routing stay. Reports the sysctls the ruleset depends on that are wrong.
// --confirm SECONDS: the previous ruleset comes back after SECONDS unless `tzorp confirm` follows.
import { type Command, InvalidArgumentError } from 'commander';
import { TzorpError } from '../../errors.ts';
import {
  applyPolicy,
  loadInstalled,
  nftCheck,
  readPending,
  saveInstalled,
  snapshotTable,
} from '../../kernel/index.ts';
import { collectListenPort, loadForKernel, readUserRules } from './compile.ts';
import { armRollback } from './confirm.ts';

function seconds(v: string): number {
  const n = Number(v);
  if (!/^\d{1,6}$/.test(v) || n < 1) throw new InvalidArgumentError('must be whole seconds, at least 1');
  return n;
}

export function register(program: Command): void {
  program
    .command('apply')
    .description('install the policy in this network namespace (nftables table, policy routing)')
    .argument('<policy>', 'policy file (YAML or JSON)')
    .option('--listen-port <service=port>', "a proxy service's listener port (repeatable)", collectListenPort)
    .option('--user-rules <file>', 'your own nft chains/sets, placed inside table inet tzorp')
    .option('--fix-sysctls', 'set the sysctls the ruleset depends on when they are wrong')
    .option('--full', 'replace the whole table instead of applying the differences to the installed one')
    .option(
      '--confirm <seconds>',
      'roll back to the previous ruleset after SECONDS unless `tzorp confirm` follows',
      seconds,
    )
    .option('--json', 'print the result as JSON')
    .action(
      async (
        file: string,
        o: {
          listenPort?: Map<string, number>;
          userRules?: string;
          fixSysctls?: boolean;
          full?: boolean;
          confirm?: number;
          json?: boolean;
        },
      ) => {
        try {
          const policy = await loadForKernel(file);
          if (!policy) {
            process.exitCode = 1;
            return;
          }
          const userRules = await readUserRules(o.userRules);
          if (o.confirm !== undefined && (await readPending()) !== null) {
            throw new TzorpError(
              'KERNEL_CONFIRM_PENDING',
              'an earlier `tzorp apply --confirm` waits for `tzorp confirm`: confirm it (or let it roll back) first',
            );
          }
          const before = o.confirm !== undefined ? await snapshotTable() : null;
          // a rollback that nft refuses would leave the new ruleset in place: refuse before changing
          if (before !== null) await nftCheck(`table inet tzorp {}\ndelete table inet tzorp\n${before}`);
          const r = await applyPolicy(policy, {
            listenPorts: o.listenPort ?? new Map(),
            userRules,
            fixSysctls: o.fixSysctls ?? false,
            previous: o.full ? null : await loadInstalled(),
          });
          // the table is in; failing to remember it only costs the next apply a full replace
          await saveInstalled(r.model).catch((e: Error) => {
            process.stderr.write(`warning: cannot record the installed table: ${e.message}\n`);
          });
          const rollbackId = o.confirm !== undefined ? await armRollback(before, o.confirm) : null;
          const listeners = Object.fromEntries([...r.listeners].map(([n, l]) => [n, l]));
          if (o.json) {
            process.stdout.write(
              `${JSON.stringify({ applied: true, table: 'inet tzorp', mode: r.mode, ...(r.staged ? { staged: true } : {}), ...(r.fallback ? { fallback: r.fallback } : {}), routingTable: policy.settings.routingTable, tiers: { ipv4: r.ir.families[4].tiers.length, ipv6: r.ir.families[6].tiers.length }, listeners, sysctls: r.sysctls, fixed: r.fixed.map((s) => s.name), wrong: r.wrong, confirm: rollbackId === null ? null : { seconds: o.confirm, id: rollbackId } }, null, 2)}\n`,
            );
          } else {
            process.stdout.write(
              `applied table inet tzorp (${r.mode === 'incremental' ? 'differences only' : r.staged ? 'whole table, staged' : 'whole table'}; ${policy.rules.length} rules; decision tiers IPv4 ${r.ir.families[4].tiers.length}, IPv6 ${r.ir.families[6].tiers.length}); policy routing table ${policy.settings.routingTable}\n`,
            );
            for (const [n, l] of r.listeners) {
              process.stdout.write(`  proxy ${n}: ${l.v4.host}:${l.v4.port} [${l.v6.host}]:${l.v6.port}\n`);
            }
            for (const s of r.fixed) process.stdout.write(`  set ${s.name}=${s.want} (${s.why})\n`);
            if (rollbackId !== null) {
              process.stdout.write(
                `run \`tzorp confirm\` within ${o.confirm} s, or the previous ruleset comes back\n`,
              );
            }
          }
          for (const s of r.wrong) {
            const e = new TzorpError(
              'KERNEL_SYSCTL',
              `${s.name} is ${s.actual ?? 'unreadable'}, ${s.level === 'advice' ? 'recommended' : 'needed'}: ${s.want} (${s.why}); --fix-sysctls sets it`,
            );
            process.stderr.write(`warning: ${e.format()}\n`);
          }
        } catch (e) {
          if (!(e instanceof TzorpError)) throw e;
          process.stderr.write(`${e.format()}\n`);
          process.exitCode = 1;
        }
      },
    );
}
