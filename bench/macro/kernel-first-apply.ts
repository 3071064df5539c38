// One first apply of the 10,000-rule, 100,000-network policy into a new, empty namespace, in a process
// of its own (as `tzorp apply` makes it), for kernel.bench.ts's fresh-process comparison. Prints one
// JSON line: {"way", "s", "staged"}. `staged`: applyPolicy as `tzorp apply` runs it (the zone section
// loaded while the rest compiles, apply/staged.ts); `whole`: the compile first, then one transaction.
// Run as root: node --import tsx bench/macro/kernel-first-apply.ts staged|whole
import { execFileSync, spawnSync } from 'node:child_process';
import { applyPolicy } from '../../src/kernel/index.ts';
import { scalePolicy } from './kernel-policy.ts';

const way = process.argv[2] === 'whole' ? 'whole' : 'staged';
const policy = scalePolicy(10_000, 100_000);
const ns = `tzb${process.pid}first`;
execFileSync('ip', ['netns', 'add', ns]);
try {
  execFileSync('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
  const t = performance.now();
  const r = await applyPolicy(policy, {
    prefix: ['ip', 'netns', 'exec', ns],
    stageZonesFrom: way === 'staged' ? 0 : Number.POSITIVE_INFINITY,
  });
  const s = (performance.now() - t) / 1000;
  console.log(JSON.stringify({ way, s, staged: r.staged === true, fallback: r.fallback ?? null }));
} finally {
  spawnSync('ip', ['netns', 'del', ns]);
}
