// Engine micro-benchmark (issue 2): a policy of 10,000 rules and 100,000 zone networks (IPv4 and IPv6
// mixed): time to build the engine (zone tries + rule index) and lookups per second on one core, side by
// side with the brute-force model of the property tests (scan every network and every rule) as the
// baseline. Run: node --import tsx bench/micro/engine.bench.ts [--rules N] [--subnets N]
import { Engine } from '../../src/engine/index.ts';
import { loadPolicyText } from '../../src/policy/index.ts';
import { modelDecide } from '../../test/unit/engine/model.ts';
import { generatePolicy, policyDocument } from './engine-policy.ts';

function arg(name: string, def: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : def;
}

const RULES = arg('rules', 10_000);
const SUBNETS = arg('subnets', 100_000);
const ZONES = arg('zones', 2_000);
const CONNS = 20_000;

const { policy, conns } = generatePolicy({ rules: RULES, subnets: SUBNETS, zones: ZONES, conns: CONNS });
console.log(
  `policy: ${policy.rules.length} rules, ${[...policy.zones.values()].reduce((n, z) => n + z.addresses.length, 0)} networks in ${policy.zones.size} zones; ${conns.length} distinct connections`,
);

// the machine's memory latency, for reading the numbers below: a lookup is bound by dependent
// memory reads into tables of several MB, so a loaded or small-cache machine shows up here first
{
  const a = new Int32Array(1 << 20).map((_, i) => Math.imul(i, 2654435761) >>> 12);
  const t0 = process.cpuUsage();
  let j = 0;
  for (let i = 0; i < 5_000_000; i++) j = a[(j + i) & 0xfffff]! & 0xfffff;
  const t1 = process.cpuUsage(t0);
  console.log(
    `machine: ${(((t1.user + t1.system) / 5_000_000) * 1000).toFixed(0)} ns per dependent random read in 4 MiB (${j & 1 ? 'odd' : 'even'})`,
  );
}

// load + index: best of 3 (the first includes JIT warm-up)
const loads: number[] = [];
let engine!: Engine;
for (let i = 0; i < 3; i++) {
  const t0 = process.cpuUsage();
  engine = new Engine(policy);
  const t1 = process.cpuUsage(t0);
  loads.push((t1.user + t1.system) / 1000);
}
console.log(
  `engine build (zone tries + rule index): first ${loads[0]!.toFixed(0)} ms, best ${Math.min(...loads).toFixed(0)} ms`,
);

// the same policy as policy-language text (JSON, which the loader accepts), loaded and validated by the
// policy module: the whole path from file contents to an engine (bench/micro/load.bench.ts splits it up)
const text = JSON.stringify(policyDocument(policy));
{
  const t0 = process.cpuUsage();
  const loaded = loadPolicyText(text, 'generated.json', undefined, { lint: false });
  const t1 = process.cpuUsage(t0);
  if (loaded.policy === null) {
    console.log(
      `loader refused the generated policy: ${loaded.errors
        .slice(0, 3)
        .map((e) => e.format())
        .join('; ')}`,
    );
  } else {
    const t2 = process.cpuUsage();
    const e2 = new Engine(loaded.policy);
    const t3 = process.cpuUsage(t2);
    const ms = (u: NodeJS.CpuUsage) => (u.user + u.system) / 1000;
    console.log(
      `from text (${(text.length / 1e6).toFixed(1)} MB JSON): load + validate (no lint: the daemon's path) ${ms(t1).toFixed(0)} ms, engine build ${ms(t3).toFixed(0)} ms, total ${(ms(t1) + ms(t3)).toFixed(0)} ms CPU (${e2.rules.length} rules)`,
    );
  }
}

// CPU time of this process (user + system), not wall time: the rate does not depend on what else the
// machine runs at the same moment (both are printed).
function cpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

// engine lookups: warm up, then time a fixed number of decisions
let hits = 0;
for (let i = 0; i < 200_000; i++) if (engine.decide(conns[i % CONNS]!).rule) hits++;
const N = arg('lookups', 2_000_000);
hits = 0;
let w0 = performance.now();
let c0 = cpuMs();
for (let i = 0; i < N; i++) if (engine.decide(conns[i % CONNS]!).rule) hits++;
const engineCpu = cpuMs() - c0;
const engineWall = performance.now() - w0;
const engineRate = (N / engineCpu) * 1000;
let cand = 0;
for (let i = 0; i < CONNS; i++) cand += engine.candidateCount(conns[i]!);
console.log(
  `engine: ${N} lookups, ${engineCpu.toFixed(0)} ms CPU (${engineWall.toFixed(0)} ms wall) = ${(engineRate / 1e6).toFixed(2)} M lookups/s per core; ${((hits / N) * 100).toFixed(0)}% matched a rule; ${(cand / CONNS).toFixed(1)} rules evaluated per lookup on average`,
);

// brute force: every network and every rule per lookup; few lookups, it is slow
const M = arg('model', 20);
let agree = 0;
w0 = performance.now();
c0 = cpuMs();
for (let i = 0; i < M; i++) {
  const c = conns[i]!;
  if (modelDecide(policy, c).ruleId === (engine.decide(c).rule?.id ?? null)) agree++;
}
const modelCpu = cpuMs() - c0;
const modelRate = (M / modelCpu) * 1000;
console.log(
  `brute-force model: ${M} lookups, ${modelCpu.toFixed(0)} ms CPU (${(performance.now() - w0).toFixed(0)} ms wall) = ${modelRate.toFixed(1)} lookups/s; agreed with the engine on ${agree}/${M}`,
);
console.log(`ratio engine / brute force: ${Math.round(engineRate / modelRate)}x`);
