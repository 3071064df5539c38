// Policy loading (issue 15, "faster front end"): where the time from policy text to a resolved policy
// goes for the engine benchmark's policy (10,000 rules, 100,000 zone networks), written as JSON and as
// YAML: the reader (JSON reader, YAML reader), resolve + validate, the lint (`tzorp check` only: the
// daemon's start and reload load with `lint: false`), and `loadPolicyText` end to end both ways.
// CPU time of this process, best of --runs, and the first run. The first resolve of the process has
// nothing to reuse; later ones of the same zones take the last parse of each zone, as a reload does
// (src/policy/resolve.ts): "first" is a start, "best" a reload of unchanged zones. Run: node --import tsx bench/micro/load.bench.ts
// [--rules N] [--subnets N] [--zones N] [--runs N]
import { stringify } from 'yaml';
import { Diagnostics } from '../../src/policy/diagnostics.ts';
import { readJson } from '../../src/policy/json-reader.ts';
import { lintPolicy } from '../../src/policy/lint.ts';
import { loadPolicyText } from '../../src/policy/load.ts';
import { forgetZoneNetworks, Resolver } from '../../src/policy/resolve.ts';
import { Lines, type PNode } from '../../src/policy/syntax.ts';
import { readYaml } from '../../src/policy/yaml-reader.ts';
import { generatePolicy, policyDocument } from './engine-policy.ts';

function arg(name: string, def: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : def;
}
const RULES = arg('rules', 10_000);
const SUBNETS = arg('subnets', 100_000);
const ZONES = arg('zones', 2_000);
const RUNS = arg('runs', 3);

function cpu<T>(f: () => T): { ms: number; value: T } {
  const t0 = process.cpuUsage();
  const value = f();
  const t1 = process.cpuUsage(t0);
  return { ms: (t1.user + t1.system) / 1000, value };
}
/** Best of RUNS (the first includes JIT warm-up) and the first. */
function best<T>(f: () => T): { best: number; first: number; value: T } {
  forgetZoneNetworks(); // the first run: a start, nothing kept from an earlier load
  const r = Array.from({ length: RUNS }, () => cpu(f));
  return { best: Math.min(...r.map((x) => x.ms)), first: r[0]!.ms, value: r[0]!.value };
}

const { policy } = generatePolicy({ rules: RULES, subnets: SUBNETS, zones: ZONES, conns: 1 });
const doc = policyDocument(policy);
const json = JSON.stringify(doc);
// block style, flow sequences for lists of scalars: what a program writing YAML for people produces
const yaml = stringify(doc, { flowCollectionPadding: false, lineWidth: 0, collectionStyle: 'block' });
console.log(
  `policy: ${policy.rules.length} rules, ${SUBNETS} networks in ${ZONES} zones; JSON ${(json.length / 1e6).toFixed(1)} MB, YAML ${(yaml.length / 1e6).toFixed(1)} MB; CPU ms, best of ${RUNS} (first)`,
);

const rows: [string, { best: number; first: number }][] = [];
const j = best(() => readJson(json));
rows.push(['JSON reader (text → syntax tree)', j]);
const y = best(() => readYaml(yaml));
rows.push(['YAML reader (text → syntax tree)', y]);
if (!j.value.ok || !y.value.ok) throw new Error('a reader refused the generated policy');
const root: PNode = j.value.root;
const lines = new Lines(json);
let resolver!: Resolver;
const res = best(() => {
  const d = new Diagnostics('generated.json', lines);
  resolver = new Resolver(d);
  return resolver.resolve(root, { file: 'generated.json', sha256: '0' });
});
rows.push(['resolve + validate (syntax tree → Policy)', res]);
if (res.value === null) throw new Error('the resolver refused the generated policy');
const resolved = res.value;
rows.push([
  'lint (tzorp check only)',
  best(() => lintPolicy(resolved, new Diagnostics('generated.json', lines), resolver.usedZones)),
]);
for (const [name, text, lint] of [
  ['JSON', json, false],
  ['YAML', yaml, false],
  ['JSON', json, true],
] as const) {
  const r = best(() => loadPolicyText(text, `generated.${name.toLowerCase()}`, undefined, { lint }));
  if (r.value.policy === null) throw new Error(`${name}: ${r.value.errors[0]?.format()}`);
  rows.push([`loadPolicyText, ${name}${lint ? ', with lint' : ' (the daemon: no lint)'}`, r]);
}
console.log('\n| step | CPU ms best (a reload) | first (a start) |\n|---|---|---|');
for (const [n, r] of rows) console.log(`| ${n} | ${r.best.toFixed(0)} | ${r.first.toFixed(0)} |`);
