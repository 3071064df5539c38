// What a worker's session lines cost to write: a plug session's three lines (Zorp's default verbosity:
// the start, the server connection, the summary) through a batched text ZorpLog, as a worker writes
// them, into a destination that takes every batch (a descriptor to /dev/null). Two ways in the same run:
// the line encoded into the batch's buffer in place (the workers' way, ZorpLineEncoder) and the line
// built as a string first (what a destination without a buffer gets). Time and sampled allocation per
// session, fastest of the rounds. A breakdown for work on the session path, not a comparison with a
// peer.
//
//   node --import tsx bench/micro/log.bench.ts [--sessions 200000] [--rounds 5]
import { openSync, writeSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { performance } from 'node:perf_hooks';
import { load } from '../code.ts';

const { ZorpLog } = await load<typeof import('../../src/daemon/log.ts')>('daemon/log');
const { LogLevels } = await load<typeof import('../../src/daemon/log-spec.ts')>('daemon/log-spec');

const arg = (name: string, dflt: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1]! : dflt;
};
const SESSIONS = Number(arg('sessions', '200000'));
const ROUNDS = Number(arg('rounds', '5'));

const fd = openSync('/dev/null', 'w');
const inPlace = {
  write: (l: string) => writeSync(fd, l),
  tryWrite: (d: Buffer) => writeSync(fd, d),
  writeAll: (d: Buffer) => {
    writeSync(fd, d);
  },
};
const asString = { write: (l: string) => writeSync(fd, l) };

function logFor(destination: typeof inPlace | typeof asString) {
  return new ZorpLog({ format: 'text', levels: new LogLevels(4), destination, batched: true });
}

/** One session's lines, with what a plug session gives them. */
function session(log: InstanceType<typeof ZorpLog>, n: number): void {
  const id = `svc/plug:${n}`;
  const client = `AF_INET(198.18.1.${n & 255}:${40000 + (n & 16383)})`;
  log.log('core.session', 4, id, 'Starting proxy session', {
    client_address: client,
    client_local: 'AF_INET(198.18.2.3:80)',
    client_zone: 'clients',
    rule_id: 1,
  });
  log.log('core.session', 4, id, 'Server connection established', {
    stream: 'server',
    server_address: 'AF_INET(198.18.2.3:80)',
    server_zone: 'servers',
    server_local: client,
  });
  log.log('core.summary', 4, id, 'Connection summary', {
    rule_id: 1,
    client_address: client,
    client_zone: 'clients',
    server_address: 'AF_INET(198.18.2.3:80)',
    server_zone: 'servers',
    duration_ms: n % 7,
    bytes_from_client: 78,
    bytes_to_client: 245,
    verdict: 'ACCEPTED',
    info: '',
  });
}

function round(log: InstanceType<typeof ZorpLog>, sessions: number): number {
  const t0 = performance.now();
  for (let i = 0; i < sessions; i++) session(log, i);
  log.flush();
  return ((performance.now() - t0) * 1000) / sessions;
}

/** Bytes allocated per session (V8's sampling heap profiler, collected objects included). */
async function allocated(log: InstanceType<typeof ZorpLog>, sessions: number): Promise<number> {
  const s = new Session();
  s.connect();
  await s.post('HeapProfiler.startSampling', {
    samplingInterval: 512,
    includeObjectsCollectedByMajorGC: true,
    includeObjectsCollectedByMinorGC: true,
  });
  for (let i = 0; i < sessions; i++) session(log, i);
  log.flush();
  const { profile } = await s.post('HeapProfiler.getSamplingProfile');
  await s.post('HeapProfiler.stopSampling');
  s.disconnect();
  let total = 0;
  const walk = (n: { selfSize: number; children: unknown[] }): void => {
    total += n.selfSize;
    for (const c of n.children) walk(c as typeof n);
  };
  walk(profile.head as never);
  return total / sessions;
}

const paths = [
  { name: 'in place (workers)', log: logFor(inPlace) },
  { name: 'string first', log: logFor(asString) },
];
const best = new Map<string, number>();
for (let r = 0; r < ROUNDS; r++)
  for (const p of paths) {
    const us = round(p.log, SESSIONS);
    best.set(p.name, Math.min(best.get(p.name) ?? Number.POSITIVE_INFINITY, us));
  }
console.log(`three session lines, ${SESSIONS} sessions x ${ROUNDS} rounds (fastest round)`);
console.log('| path | µs per session | bytes allocated per session |');
console.log('|---|---|---|');
for (const p of paths)
  console.log(
    `| ${p.name} | ${best.get(p.name)!.toFixed(2)} | ${(await allocated(p.log, 20000)).toFixed(0)} |`,
  );
