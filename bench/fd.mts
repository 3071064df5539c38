import v8 from 'node:v8';
import { readFileSync } from 'node:fs';
import { Engine } from '../src/engine/index.ts';
import { loadPolicyText } from '../src/policy/load.ts';
const text = readFileSync('/tmp/scale-policy.json', 'utf8');
const p = loadPolicyText(text, 'x.json', undefined, { lint: false }).policy!;
const b1 = v8.serialize(p);
new Engine(v8.deserialize(b1));
const q = loadPolicyText(text.replace('44444', '44445'), 'x.json', undefined, { lint: false }).policy!;
const b2 = v8.serialize(q);
function prepare() {
  let t = performance.now();
  const x = v8.deserialize(b2);
  const td = performance.now() - t;
  t = performance.now();
  new Engine(x);
  console.log('deserialize', td.toFixed(0), 'engine', (performance.now() - t).toFixed(0));
}
prepare();
