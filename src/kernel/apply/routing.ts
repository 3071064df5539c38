// Policy routing for diverted packets (linux-tproxy.md, "Exact configuration"), per family:
//   ip rule  pref 9000 iif lo fwmark M/M lookup main     (tzorp's own marked sockets route normally)
//   ip rule  pref 9001 fwmark M/M lookup <table>          (diverted packets are delivered locally)
//   ip route local default dev lo table <table>
// Every rule and route carries rtnetlink protocol 122 ("tzorp"), so `flush` and re-apply find exactly
// what tzorp installed and nothing else. Installation is idempotent: what exists is kept, what is
// missing is added, tzorp's leftovers that no longer fit (another table id or mark) are removed.
import { DEFAULTS } from '../../defaults.ts';
import { run, toolFailure } from './exec.ts';

export interface RoutingSpec {
  mark: number;
  table: number;
}

interface IpRule {
  priority?: number;
  fwmark?: string;
  fwmask?: string;
  iif?: string;
  table?: string;
  protocol?: string;
}

const PROTO = String(DEFAULTS.routingProtocol);

function hexMark(n: number): string {
  return `0x${(n >>> 0).toString(16)}`;
}

function desiredRules(spec: RoutingSpec): { pref: number; args: string[]; match: (r: IpRule) => boolean }[] {
  const m = hexMark(spec.mark);
  const fw = (r: IpRule): boolean => Number(r.fwmark) === spec.mark && Number(r.fwmask) === spec.mark;
  return [
    {
      pref: DEFAULTS.routingRulePrefLocal,
      args: ['iif', 'lo', 'fwmark', `${m}/${m}`, 'lookup', 'main'],
      match: (r) =>
        r.priority === DEFAULTS.routingRulePrefLocal && fw(r) && r.iif === 'lo' && r.table === 'main',
    },
    {
      pref: DEFAULTS.routingRulePrefTproxy,
      args: ['fwmark', `${m}/${m}`, 'lookup', String(spec.table)],
      match: (r) =>
        r.priority === DEFAULTS.routingRulePrefTproxy &&
        fw(r) &&
        r.iif === undefined &&
        r.table === String(spec.table),
    },
  ];
}

async function ip(family: 4 | 6, args: string[], prefix: string[]): Promise<string> {
  const r = await run('ip', [`-${family}`, ...args], undefined, prefix);
  if (r.code !== 0) {
    throw toolFailure(
      'KERNEL_ROUTING',
      `ip -${family} ${args.join(' ')}: ${r.stderr.trim() || `exit ${r.code}`}`,
      r,
    );
  }
  return r.stdout;
}

async function tzorpRules(family: 4 | 6, prefix: string[]): Promise<IpRule[]> {
  const out = await ip(family, ['-j', 'rule', 'show'], prefix);
  return (JSON.parse(out || '[]') as IpRule[]).filter((r) => r.protocol === PROTO);
}

async function tzorpRouteTables(family: 4 | 6, prefix: string[]): Promise<number[]> {
  const out = await ip(family, ['-j', 'route', 'show', 'table', 'all', 'proto', PROTO], prefix);
  const routes = JSON.parse(out || '[]') as { table?: string; type?: string; dst?: string }[];
  return [
    ...new Set(routes.filter((r) => r.type === 'local' && r.dst === 'default').map((r) => Number(r.table))),
  ];
}

/** A record of what `ensureRouting` changed, so a later failure can put it back. */
export interface RoutingUndo {
  added: { family: 4 | 6; kind: 'rule' | 'route'; args: string[] }[];
  removed: { family: 4 | 6; kind: 'rule' | 'route'; args: string[] }[];
}

function ruleArgs(r: IpRule): string[] {
  const a = ['pref', String(r.priority)];
  if (r.iif) a.push('iif', r.iif);
  a.push('fwmark', `${r.fwmark}/${r.fwmask}`, 'lookup', String(r.table), 'protocol', PROTO);
  return a;
}

export async function ensureRouting(spec: RoutingSpec, prefix: string[] = []): Promise<RoutingUndo> {
  const undo: RoutingUndo = { added: [], removed: [] };
  try {
    // the four reads at once (each is a process)
    const [rules4, rules6, tables4, tables6] = await Promise.all([
      tzorpRules(4, prefix),
      tzorpRules(6, prefix),
      tzorpRouteTables(4, prefix),
      tzorpRouteTables(6, prefix),
    ]);
    // what to add, and what of an earlier setting to remove (after the additions: the old rules serve
    // until the new ones are in); each group at once, one `ip` per change
    type Change = { family: 4 | 6; kind: 'rule' | 'route'; args: string[] };
    const adds: Change[] = [];
    const dels: Change[] = [];
    for (const family of [4, 6] as const) {
      const have = family === 4 ? rules4 : rules6;
      const want = desiredRules(spec);
      for (const w of want) {
        if (have.some(w.match)) continue;
        adds.push({ family, kind: 'rule', args: ['pref', String(w.pref), ...w.args, 'protocol', PROTO] });
      }
      const tables = family === 4 ? tables4 : tables6;
      const routeArgs = (t: number): string[] => [
        'local',
        'default',
        'dev',
        'lo',
        'table',
        String(t),
        'proto',
        PROTO,
      ];
      if (!tables.includes(spec.table)) adds.push({ family, kind: 'route', args: routeArgs(spec.table) });
      for (const r of have)
        if (!want.some((w) => w.match(r))) dels.push({ family, kind: 'rule', args: ruleArgs(r) });
      for (const t of tables) if (t !== spec.table) dels.push({ family, kind: 'route', args: routeArgs(t) });
    }
    for (const [changes, verb, done] of [
      [adds, 'add', undo.added],
      [dels, 'del', undo.removed],
    ] as const) {
      const results = await Promise.allSettled(
        changes.map(async (c) => {
          await ip(c.family, [c.kind, verb, ...c.args], prefix);
          done.push(c);
        }),
      );
      const failed = results.find((r) => r.status === 'rejected');
      if (failed) throw failed.reason;
    }
  } catch (e) {
    await undoRouting(undo, prefix);
    throw e;
  }
  return undo;
}

/** Puts back what `ensureRouting` changed (best effort: every step is tried). */
export async function undoRouting(undo: RoutingUndo, prefix: string[] = []): Promise<void> {
  for (const a of [...undo.added].reverse()) {
    await run('ip', [`-${a.family}`, a.kind, 'del', ...a.args], undefined, prefix);
  }
  for (const r of [...undo.removed].reverse()) {
    await run('ip', [`-${r.family}`, r.kind, 'add', ...r.args], undefined, prefix);
  }
}

/** Removes every ip rule and route that carries tzorp's protocol tag. Returns how many. */
export async function removeRouting(prefix: string[] = []): Promise<number> {
  let n = 0;
  for (const family of [4, 6] as const) {
    for (const r of await tzorpRules(family, prefix)) {
      await ip(family, ['rule', 'del', ...ruleArgs(r)], prefix);
      n++;
    }
    for (const t of await tzorpRouteTables(family, prefix)) {
      await ip(
        family,
        ['route', 'del', 'local', 'default', 'dev', 'lo', 'table', String(t), 'proto', PROTO],
        prefix,
      );
      n++;
    }
  }
  return n;
}
