// tzorp compile POLICY [--listen-port SERVICE=PORT ...] [--user-rules FILE] [-o FILE]: prints the nftables
// ruleset the policy compiles to (one `table inet tzorp` transaction, docs/kernel.md). Exit 0 ok, 1 when
// the policy is invalid or cannot be compiled (or nft refuses the --user-rules), 2 on usage errors.
import { readFile, writeFile } from 'node:fs/promises';
import { type Command, InvalidArgumentError } from 'commander';
import { TzorpError } from '../../errors.ts';
import { checkUserRules, compilePolicy, privateNetns } from '../../kernel/index.ts';
import { loadPolicyFile, type Policy } from '../../policy/index.ts';

/** Parses repeated `--listen-port SERVICE=PORT` options. */
export function collectListenPort(value: string, prev: Map<string, number> = new Map()): Map<string, number> {
  const m = /^([^=]+)=(\d{1,5})$/.exec(value);
  if (!m || Number(m[2]) < 1 || Number(m[2]) > 65535) {
    throw new InvalidArgumentError(
      `expected SERVICE=PORT with PORT in 1..65535, got ${JSON.stringify(value)}`,
    );
  }
  prev.set(m[1]!, Number(m[2]));
  return prev;
}

/** Loads a policy for a kernel command; prints every error and returns null when it is invalid. */
export async function loadForKernel(file: string): Promise<Policy | null> {
  const r = await loadPolicyFile(file, { lint: false });
  for (const w of r.warnings) process.stderr.write(`warning: ${w.format()}\n`);
  for (const e of r.errors) process.stderr.write(`${e.format()}\n`);
  return r.policy;
}

export async function readUserRules(file: string | undefined): Promise<string | undefined> {
  if (file === undefined) return undefined;
  try {
    return await readFile(file, 'utf8');
  } catch (e) {
    throw new TzorpError('KERNEL_BAD_OPTION', `cannot read --user-rules ${file}: ${(e as Error).message}`);
  }
}

export function register(program: Command): void {
  program
    .command('compile')
    .description('print the nftables ruleset a policy compiles to')
    .argument('<policy>', 'policy file (YAML or JSON)')
    .option('--listen-port <service=port>', "a proxy service's listener port (repeatable)", collectListenPort)
    .option('--user-rules <file>', 'your own nft chains/sets, placed inside table inet tzorp')
    .option('-o, --output <file>', 'write the ruleset to a file instead of stdout')
    .action(
      async (file: string, o: { listenPort?: Map<string, number>; userRules?: string; output?: string }) => {
        try {
          const policy = await loadForKernel(file);
          if (!policy) {
            process.exitCode = 1;
            return;
          }
          const userRules = await readUserRules(o.userRules);
          const { text, model } = compilePolicy(policy, {
            listenPorts: o.listenPort ?? new Map(),
            userRules,
          });
          // the user's rules are checked by nft (in a network namespace of its own: compile changes
          // nothing), so a file that is not nft syntax fails here, not at the first apply
          if (userRules !== undefined) await checkUserRules(model, privateNetns());
          if (o.output) await writeFile(o.output, text);
          else process.stdout.write(text);
        } catch (e) {
          if (!(e instanceof TzorpError)) throw e;
          process.stderr.write(`${e.format()}\n`);
          process.exitCode = 1;
        }
      },
    );
}
