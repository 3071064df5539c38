// Entry point of the lab's TCP probe: `node --import tsx src/lab/probe-main.ts HOST PORT [SRC]`.
import { probe } from './probe.ts';

const [host, port, src] = process.argv.slice(2);
if (!host || !port || !/^\d+$/.test(port)) {
  process.stderr.write('usage: probe-main.ts HOST PORT [SRC]\n');
  process.exit(2);
}
const r = await probe(host, Number(port), src);
process.stdout.write(`${JSON.stringify(r)}\n`);
