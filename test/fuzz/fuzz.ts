// npm run fuzz -- TARGET --minutes N [--runs N] [--seed N] [--batch N]
// Coverage-guided fuzzing of one target (targets.ts) with engine.ts; new inputs go to
// test/fuzz/corpus/TARGET/ (replayed by `npm test`), crashes and hangs to test/fuzz/crashes/.
// `npm run fuzz -- list` lists the targets. Exit status 1 when anything crashed or hung.
import { fileURLToPath } from 'node:url';
import { fuzz } from './engine.ts';
import { TARGETS } from './targets.ts';

const args = process.argv.slice(2);
const name = args[0];
const opt = (k: string): number | undefined => {
  const i = args.indexOf(`--${k}`);
  return i < 0 ? undefined : Number(args[i + 1]);
};
if (!name || name === 'list' || !TARGETS[name]) {
  if (name && name !== 'list') process.stderr.write(`unknown target '${name}'\n`);
  process.stdout.write(
    `usage: npm run fuzz -- TARGET --minutes N [--runs N] [--seed N]\ntargets:\n${Object.entries(TARGETS)
      .map(([k, t]) => `  ${k.padEnd(22)} ${t.what}`)
      .join('\n')}\n`,
  );
  process.exit(name && name !== 'list' ? 2 : 0);
}
const here = (p: string) => fileURLToPath(new URL(p, import.meta.url));
const stats = fuzz(TARGETS[name]!, {
  target: name,
  minutes: opt('minutes') ?? 1,
  ...(opt('runs') !== undefined ? { runs: opt('runs')! } : {}),
  ...(opt('seed') !== undefined ? { seed: opt('seed')! } : {}),
  ...(opt('batch') !== undefined ? { batch: opt('batch')! } : {}),
  corpusDir: here(`./corpus/${name}`),
  crashDir: here('./crashes'),
});
process.stdout.write(`${JSON.stringify({ target: name, ...stats })}\n`);
process.exit(stats.crashes > 0 ? 1 : 0);
