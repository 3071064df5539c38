// tzorp command line. Each subcommand lives in src/cli/commands/<name>.ts, exports `register(program)`
// and is listed in registry.ts. Exit codes: 0 success, 1 the thing asked about is not valid / failed,
// 2 usage error.
import { Command, CommanderError } from 'commander';
import { COMMANDS } from './registry.ts';
import { VERSION } from './version.ts';

export type { Register } from './registry.ts';

const program = new Command('tzorp')
  .description('transparent application-level proxy firewall (Zorp/KZorp on nftables and TPROXY)')
  .version(VERSION)
  .showHelpAfterError()
  .exitOverride();

// Start-up time matters (every `tzorp status` pays it): when the first argument names a command, load
// only that one; `--version` needs none. Help and unknown words load them all so the listing stays
// complete.
const first = process.argv[2] ?? '';
const wanted = (name: string): boolean =>
  Object.hasOwn(COMMANDS, first) ? name === first : first !== '--version' && first !== '-V';
const loaders = Object.entries(COMMANDS)
  .filter(([name]) => wanted(name))
  .sort(([a], [b]) => a.localeCompare(b));
for (const mod of await Promise.all(loaders.map(([, load]) => load()))) mod.register(program);

try {
  await program.parseAsync(process.argv);
} catch (e) {
  if (e instanceof CommanderError) {
    // help and version exit 0; every other commander error is a usage error
    process.exit(e.exitCode === 0 ? 0 : 2);
  }
  throw e;
}
