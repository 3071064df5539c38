// tzorp command line. Each subcommand lives in src/cli/commands/<name>.ts and exports
// `register(program)`; this file loads them all, so adding a command touches only its own file.
// Exit codes: 0 success, 1 the thing asked about is not valid / failed, 2 usage error.
import { readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Command, CommanderError } from 'commander';

export type Register = (program: Command) => void;

const program = new Command('tzorp')
  .description('transparent application-level proxy firewall (Zorp/KZorp on nftables and TPROXY)')
  .version('0.1.0')
  .showHelpAfterError()
  .exitOverride();

const dir = join(dirname(fileURLToPath(import.meta.url)), 'commands');
const files = readdirSync(dir)
  .filter((f) => f.endsWith('.ts') && !f.endsWith('.test.ts'))
  .sort();
// Start-up time matters (every `tzorp status` pays it): when the first argument names a command file,
// load only that one. Help, version and unknown words load them all so the listing stays complete.
const first = process.argv[2];
const only = first && !first.startsWith('-') && files.includes(`${first}.ts`) ? [`${first}.ts`] : files;
for (const f of only) {
  const mod = (await import(pathToFileURL(join(dir, f)).href)) as { register?: Register };
  mod.register?.(program);
}

try {
  await program.parseAsync(process.argv);
} catch (e) {
  if (e instanceof CommanderError) {
    // help and version exit 0; every other commander error is a usage error
    process.exit(e.exitCode === 0 ? 0 : 2);
  }
  throw e;
}
