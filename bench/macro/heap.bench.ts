// Per-connection heap of a worker (issue 14's cost breakdown): `tzorp run --workers 1` holding N idle
// plug connections (each echoed one byte end to end, so both legs exist and the native relay has them),
// a V8 heap snapshot of the worker before and after (node --heapsnapshot-signal), and the growth per
// held connection by object kind and constructor. `--retainers NAME` also prints the retaining path
// of a few NAME objects of the second snapshot (how a leak was found: a destroyed socket held by a
// closure). Needs root; the snapshots are written in the current directory and deleted.
//
//   node --import tsx bench/macro/heap.bench.ts [--conns 3000] [--retainers Socket]
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ADDR, createLab, netnsSkipReason } from '../../test/harness/netns.ts';
import { openIdle, plugPolicy, startEcho, treePids, ulimitMax } from './bench-kit.ts';

const argAt = (name: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : undefined;
};
const N = Number(argAt('conns') ?? 3000);
const RETAIN = argAt('retainers');
const PORT = 7000;
const skip = netnsSkipReason();
if (skip) {
  console.error(`heap bench skipped: ${skip}`);
  process.exit(0);
}

function summarize(file: string) {
  const snap = JSON.parse(readFileSync(file, 'utf8'));
  const f = snap.snapshot.meta.node_fields as string[];
  const types = snap.snapshot.meta.node_types[0] as string[];
  const nf = f.length,
    nodes = snap.nodes as number[],
    strings = snap.strings as string[];
  const ti = f.indexOf('type'),
    ni = f.indexOf('name'),
    si = f.indexOf('self_size');
  const by = new Map<string, { n: number; size: number }>();
  for (let i = 0; i < nodes.length; i += nf) {
    const key = `${types[nodes[i + ti]!]}:${strings[nodes[i + ni]!]!.slice(0, 60)}`;
    const e = by.get(key) ?? { n: 0, size: 0 };
    e.n++;
    e.size += nodes[i + si]!;
    by.set(key, e);
  }
  return by;
}
function retainers(file: string, name: string) {
  const snap = JSON.parse(readFileSync(file, 'utf8'));
  const f = snap.snapshot.meta.node_fields as string[];
  const ef = snap.snapshot.meta.edge_fields as string[];
  const etypes = snap.snapshot.meta.edge_types[0] as string[];
  const nf = f.length,
    enf = ef.length,
    nodes = snap.nodes as number[],
    edges = snap.edges as number[],
    strings = snap.strings as string[];
  const ni = f.indexOf('name'),
    eci = f.indexOf('edge_count'),
    ti = f.indexOf('type');
  const ntypes = snap.snapshot.meta.node_types[0] as string[];
  const eti = ef.indexOf('type'),
    eni = ef.indexOf('name_or_index'),
    eto = ef.indexOf('to_node');
  const rev = new Map<number, [number, string][]>();
  let e = 0;
  for (let i = 0; i < nodes.length; i += nf) {
    for (let k = 0; k < nodes[i + eci]!; k++, e += enf) {
      const to = edges[e + eto]!;
      const t = etypes[edges[e + eti]!]!;
      if (t === 'weak') continue;
      const label = t === 'element' || t === 'hidden' ? `[${edges[e + eni]}]` : strings[edges[e + eni]!]!;
      const l = rev.get(to);
      if (l) l.push([i, label]);
      else rev.set(to, [[i, label]]);
    }
  }
  const label = (i: number) => `${ntypes[nodes[i + ti]!]}:${strings[nodes[i + ni]!]!.slice(0, 40)}`;
  let count = 0;
  // NAME is a constructor's name (objects), or KIND:NAME as the growth table prints it (closure:, ...)
  const [kind, want] = name.includes(':')
    ? [name.slice(0, name.indexOf(':')), name.slice(name.indexOf(':') + 1)]
    : ['object', name];
  for (let i = nodes.length - nf; i >= 0 && count < 6; i -= nf) {
    if (strings[nodes[i + ni]!] !== want || ntypes[nodes[i + ti]!] !== kind) continue;
    count++;
    let cur = i;
    const seen = new Set<number>();
    const path: string[] = [label(cur)];
    for (let d = 0; d < 12; d++) {
      const r = (rev.get(cur) ?? []).find(([p]) => !seen.has(p));
      if (!r) break;
      seen.add(r[0]);
      cur = r[0];
      path.push(`.${r[1]} <- ${label(cur)}`);
    }
    console.log(path.join('\n   '));
  }
}
const dir = mkdtempSync(join(tmpdir(), 'heapdiff-'));
const lab = await createLab();
try {
  await startEcho(lab, PORT);
  writeFileSync(join(dir, 'p.yaml'), plugPolicy(PORT));
  const proc = lab.spawn(
    'fw',
    ulimitMax([
      'env',
      `NODE_OPTIONS=--heapsnapshot-signal=SIGUSR2`,
      process.execPath,
      'bin/tzorp',
      'run',
      join(dir, 'p.yaml'),
      '--control',
      join(dir, 'c.sock'),
      '--workers',
      '1',
    ]),
  );
  await proc.waitFor(/tzorp running/, 120_000);
  await new Promise((r) => setTimeout(r, 3000));
  const worker = treePids(proc.child.pid).find((p) =>
    readFileSync(`/proc/${p}/cmdline`, 'utf8').includes('worker-main'),
  )!;
  console.log('worker', worker);
  const snap = async () => {
    const before = new Set(readdirSync('.').filter((f) => f.endsWith('.heapsnapshot')));
    process.kill(worker, 'SIGUSR2');
    for (;;) {
      await new Promise((r) => setTimeout(r, 500));
      const nf = readdirSync('.').filter((f) => f.endsWith('.heapsnapshot') && !before.has(f));
      if (nf.length && Date.now() - statSync(nf[0]!).mtimeMs > 1500) return nf[0]!;
    }
  };
  const a = await snap();
  const { idle, held } = await openIdle(lab, ADDR.server4, PORT, N, 600_000);
  await new Promise((r) => setTimeout(r, 2000));
  const b = await snap();
  if (RETAIN) retainers(b, RETAIN);
  const A = summarize(a),
    B = summarize(b);
  const rows = [...B]
    .map(([k, v]) => ({ k, dn: v.n - (A.get(k)?.n ?? 0), ds: v.size - (A.get(k)?.size ?? 0) }))
    .sort((x, y) => y.ds - x.ds);
  let total = 0;
  for (const r of rows) total += r.ds;
  console.log(`held ${held}; heap growth ${(total / held).toFixed(0)} B per connection`);
  for (const r of rows.slice(0, 40))
    console.log(
      `${(r.ds / held).toFixed(0).padStart(6)} B/conn  ${(r.dn / held).toFixed(2).padStart(6)} /conn  ${r.k}`,
    );
  const st = readFileSync(`/proc/${worker}/status`, 'utf8');
  console.log(/VmRSS.*/.exec(st)?.[0]);
  rmSync(a, { force: true });
  rmSync(b, { force: true });
  idle.kill('SIGKILL');
} finally {
  await lab.destroy();
  rmSync(dir, { recursive: true, force: true });
}
