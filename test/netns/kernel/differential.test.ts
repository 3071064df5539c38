// The kernel against the engine: random policies, random first packets, and what the compiled ruleset
// decided (seen in the firewall namespace) must equal Engine.decide, every time. Each random policy is
// then edited at random a few times (TZORP_DIFF_EDITS), and each edit is applied incrementally (only
// the differences, src/kernel/compile/diff.ts): the kernel's decisions must again equal the engine's,
// and the table must list exactly as a fresh whole-table apply of the same policy does.
//
// How the kernel's decision is observed: every rule has its own service, so the service id that the
// ruleset writes into the conntrack mark names the rule. A separate observer table (priority just after
// tzorp's prerouting chain) records each probe's tag (IPv4 id / IPv6 flow label) with that mark. An
// unmatched probe is recorded with mark 0.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { Engine } from '../../../src/engine/index.ts';
import { applyPolicy, type TableModel } from '../../../src/kernel/index.ts';
import type { Policy } from '../../../src/policy/model.ts';
import { createLab, type Lab, netnsSkipReason, REPO_ROOT } from '../../harness/netns.ts';
import { listedTable } from '../../harness/nft-listing.ts';
import {
  addrText,
  type Probe,
  type RandomCase,
  randomEdit,
  randomIn,
  randomPolicy,
  randomProbes,
  rng,
} from '../../unit/kernel/random-policy.ts';

const skip = netnsSkipReason();
const POLICIES = Number(process.env.TZORP_DIFF_POLICIES ?? 40);
const PROBES = Number(process.env.TZORP_DIFF_PROBES ?? 80);
const SEED = Number(process.env.TZORP_DIFF_SEED ?? 20261126);
const EDITS = Number(process.env.TZORP_DIFF_EDITS ?? 3);

const OBSERVER = `
table inet probe {}
delete table inet probe
table inet probe {
  set seen4 { typeof ip id . ct mark; flags dynamic; size 65535; }
  set seen6 { typeof ip6 flowlabel . ct mark; flags dynamic; size 65535; }
  chain observe {
    type filter hook prerouting priority -149; policy accept;
    iifname { "eth0", "eth2" } ct state new meta nfproto ipv4 add @seen4 { ip id . ct mark }
    iifname { "eth0", "eth2" } ct state new meta nfproto ipv6 add @seen6 { ip6 flowlabel . ct mark }
  }
}
`;

let lab: Lab;
const macs: Record<string, string> = {};

before(async () => {
  if (skip) return;
  lab = await createLab();
  // a second client-side link, so the interface dimensions have two real values
  await lab.exec('client', [
    'ip',
    'link',
    'add',
    'eth2',
    'type',
    'veth',
    'peer',
    'name',
    'eth2',
    'netns',
    lab.ns.fw,
  ]);
  await lab.sh('client', 'ip link set eth2 up');
  await lab.sh(
    'fw',
    'ip link set eth2 up && ip route add default via 198.18.2.2 && ip -6 route add default via 2001:db8:2::2',
  );
  for (const i of ['eth0', 'eth2']) {
    const r = await lab.exec('fw', ['cat', `/sys/class/net/${i}/address`]);
    macs[i] = r.stdout.trim();
  }
  await lab.exec('fw', ['nft', '-f', '-'], { input: OBSERVER });
});

after(async () => {
  await lab?.destroy();
});

async function observed(family: 4 | 6): Promise<Map<number, number>> {
  const r = await lab.exec('fw', ['nft', '-j', 'list', 'set', 'inet', 'probe', `seen${family}`]);
  const j = JSON.parse(r.stdout) as { nftables: { set?: { elem?: { concat: [number, number] }[] } }[] };
  const m = new Map<number, number>();
  for (const x of j.nftables) for (const e of x.set?.elem ?? []) m.set(e.concat[0], e.concat[1]);
  return m;
}

/** The table in the firewall namespace, listed and normalised (test/harness/nft-listing.ts). */
function listed(model: TableModel, unlisted: { n: number }): Promise<string> {
  return listedTable((args) => lab.exec('fw', ['nft', '-j', ...args], { allowFail: true }), model, unlisted);
}

interface Tally {
  compared: number;
  matched: number;
  unmatched: number;
  mismatches: string[];
}

/** Sends the probes of `c` through the firewall and compares each recorded decision with the engine. */
async function compareWithEngine(
  label: string,
  seed: number,
  c: RandomCase,
  groups: { eth0: number; eth2: number },
  local: Record<string, Record<4 | 6, string[]>>,
  t: Tally,
): Promise<void> {
  const probes = randomProbes(seed, c, PROBES, [
    { name: 'eth0', group: groups.eth0, local: local.eth0! },
    { name: 'eth2', group: groups.eth2, local: local.eth2! },
  ]);
  await lab.sh(
    'fw',
    'conntrack -F 2>/dev/null; nft flush set inet probe seen4; nft flush set inet probe seen6',
  );
  const lines = probes.map((pr: Probe) =>
    JSON.stringify({
      iface: pr.iface,
      dmac: macs[pr.iface],
      family: pr.family,
      src: pr.conn.src,
      dst: pr.conn.dst,
      proto: pr.conn.proto,
      sport: pr.conn.srcPort ?? 0,
      dport: pr.conn.dstPort ?? 0,
      itype: pr.conn.icmpType ?? 0,
      icode: pr.conn.icmpCode ?? 0,
      tag: pr.tag,
    }),
  );
  await lab.exec('client', ['python3', join(REPO_ROOT, 'test/netns/kernel/probe.py')], {
    input: `${lines.join('\n')}\n`,
  });
  // wait until every probe is recorded (the packets are in flight in softirq; poll, no fixed sleep)
  let seen4 = new Map<number, number>();
  let seen6 = new Map<number, number>();
  for (let i = 0; i < 100; i++) {
    seen4 = await observed(4);
    seen6 = await observed(6);
    if (seen4.size + seen6.size >= probes.length) break;
    await new Promise((res) => setTimeout(res, 50));
  }
  const engine = new Engine(c.policy);
  for (const pr of probes) {
    const got = (pr.family === 4 ? seen4 : seen6).get(pr.tag);
    assert.notEqual(
      got,
      undefined,
      `probe ${pr.tag} (${JSON.stringify(pr.conn)}) was not seen in the firewall`,
    );
    const kernelSid = got! & 0xffff;
    const d = engine.decide(pr.conn);
    const engineSid = d.service?.id ?? 0;
    t.compared++;
    if (engineSid === 0) t.unmatched++;
    else t.matched++;
    if (kernelSid !== engineSid) {
      const kernelRule =
        c.policy.rules.find((x) => c.policy.services.get(x.service)?.id === kernelSid)?.id ?? null;
      t.mismatches.push(
        `${label}: ${JSON.stringify(pr.conn)}: kernel rule ${kernelRule}, engine rule ${d.rule?.id ?? null}`,
      );
    }
  }
}

test('differential: kernel decision equals Engine.decide, after full and incremental applies', {
  skip,
  timeout: 1_200_000,
}, async () => {
  const t: Tally = { compared: 0, matched: 0, unmatched: 0, mismatches: [] };
  const prefix = ['ip', 'netns', 'exec', lab.ns.fw];
  const modes = { incremental: 0, full: 0 };
  const methods = { elements: 0, declarations: 0 };
  let recreatedObjects = 0;
  const fallbacks: string[] = [];
  const tableDiffs: string[] = [];
  const unlisted = { n: 0 };
  let stagedApplies = 0;
  for (let p = 0; p < POLICIES; p++) {
    const seed = SEED + p;
    const r = rng(seed * 7 + 1);
    const groups = { eth0: Math.floor(r() * 3), eth2: [0, 1, 5][Math.floor(r() * 3)]! };
    const c = randomPolicy(seed, { ifaces: ['eth0', 'eth2'] });
    // firewall addresses on each client-side interface, from the zones' networks (dst_iface probes)
    const local: Record<string, Record<4 | 6, string[]>> = { eth0: { 4: [], 6: [] }, eth2: { 4: [], 6: [] } };
    const script = ['ip addr flush dev eth2', 'ip -6 addr flush dev eth2 scope global'];
    script.push('ip addr del 198.18.99.1/32 dev eth0 2>/dev/null || true');
    for (const n of c.nets.slice(0, 6)) {
      const ifc = r() < 0.5 ? 'eth0' : 'eth2';
      const a = addrText(n.family, randomIn(r, n));
      if (Object.values(local).some((l) => l[n.family].includes(a))) continue;
      local[ifc]![n.family].push(a);
    }
    // eth0 keeps the lab's own addresses; the extra ones are removed again below
    for (const [ifc, l] of Object.entries(local)) {
      for (const a of l[4]) script.push(`ip addr add ${a}/32 dev ${ifc}`);
      for (const a of l[6]) script.push(`ip -6 addr add ${a}/128 dev ${ifc} nodad`);
    }
    script.push(`ip link set eth0 group ${groups.eth0}`, `ip link set eth2 group ${groups.eth2}`);
    await lab.sh('fw', script.join('\n'));
    // half the policies split their zone maps into chunks of about three ranges (render.ts zoneChunks:
    // the layout of large policies, here at a size where edits move ranges between chunks)
    const zoneChunk = seed % 4 < 2 ? { zoneChunk: { above: 2, average: 3 } } : {};
    // a quarter of the policies go into a namespace without the table, in stages (apply/staged.ts):
    // the zone section while the rest compiles, then the tiers' maps, then the rest
    const staged = seed % 4 === 1 || seed % 4 === 2;
    if (staged) await lab.exec('fw', ['nft', 'delete', 'table', 'inet', 'tzorp'], { allowFail: true });
    const first = await applyPolicy(c.policy, {
      prefix,
      ...zoneChunk,
      ...(staged ? { stageZonesFrom: 0 } : {}),
    });
    if (staged) {
      stagedApplies++;
      assert.equal(first.staged, true, `seed ${seed}: staged first apply (${first.fallback ?? 'no reason'})`);
    }
    let installed: TableModel = first.model;
    await compareWithEngine(`seed ${seed}`, seed, c, groups, local, t);
    if (staged) {
      // the staged table lists as the whole table of the same policy does
      const afterStaged = await listed(first.model, unlisted);
      const whole = await applyPolicy(c.policy, { prefix, ...zoneChunk });
      assert.equal(whole.staged, undefined);
      const afterWhole = await listed(whole.model, { n: 0 });
      if (afterStaged !== afterWhole) tableDiffs.push(`seed ${seed}: the staged first apply lists otherwise`);
      installed = whole.model;
    }
    let cur = c;
    for (let e = 1; e <= EDITS; e++) {
      const label = `seed ${seed} edit ${e}`;
      cur = randomEdit(seed * 1000 + e, cur, ['eth0', 'eth2']);
      // even seeds: every interval set or map that loses an element is declared and filled again (the
      // path a large change takes), odd seeds: its elements are deleted one by one
      const recreate = seed % 2 === 0 ? { recreateAfterDeletes: 0 } : {};
      const inc = await applyPolicy(cur.policy, { prefix, previous: installed, ...recreate, ...zoneChunk });
      if (seed % 2 === 0) recreatedObjects += inc.changed?.objectsRemoved ?? 0;
      modes[inc.mode]++;
      if (inc.changed) methods[inc.changed.method]++;
      if (inc.fallback) fallbacks.push(`${label}: ${inc.fallback}`);
      installed = inc.model;
      await compareWithEngine(label, seed * 1000 + e, cur, groups, local, t);
      const afterIncremental = await listed(inc.model, unlisted);
      const full = await applyPolicy(cur.policy as Policy, { prefix, ...zoneChunk });
      const afterFull = await listed(full.model, { n: 0 });
      if (afterIncremental !== afterFull) {
        const a = afterIncremental.split('\n');
        const b = afterFull.split('\n');
        const i = a.findIndex((x, k) => x !== b[k]);
        tableDiffs.push(
          `${label}: first difference: incremental ${a[i]?.slice(0, 300)} / full ${b[i]?.slice(0, 300)}`,
        );
      }
    }
    // the extra firewall addresses go again before the next policy
    await lab.sh(
      'fw',
      [
        ...local.eth0![4].map((a) => `ip addr del ${a}/32 dev eth0`),
        ...local.eth0![6].map((a) => `ip -6 addr del ${a}/128 dev eth0`),
      ].join('\n') || 'true',
    );
  }
  console.log(
    `differential: ${t.compared} connections compared over ${POLICIES} random policies and ${POLICIES * EDITS} ` +
      `edits (${t.matched} matched a rule, ${t.unmatched} none), ${t.mismatches.length} mismatches; ` +
      `edits applied incrementally ${modes.incremental}, by a whole table ${modes.full}; ${stagedApplies} staged first applies; tables listed equal ` +
      `after every edit (${unlisted.n} objects nft 1.0.6 could not list, compared by presence); ${recreatedObjects} sets or maps re-created; ` +
      `element changes written as element commands ${methods.elements} times, as declarations ${methods.declarations} times`,
  );
  assert.deepEqual(t.mismatches.slice(0, 20), []);
  assert.deepEqual(tableDiffs.slice(0, 5), []);
  // every edit here is one the differences can express: a whole-table fallback would hide a diff bug
  assert.deepEqual(fallbacks, []);
  assert.equal(modes.incremental, POLICIES * EDITS);
  if (POLICIES > 1) assert.ok(recreatedObjects > 0, 'the re-creating path was taken');
  if (POLICIES > 2) assert.ok(stagedApplies > 0, 'the staged first apply was taken');
  if (POLICIES > 1)
    assert.ok(methods.elements > 0 && methods.declarations > 0, 'both ways of writing elements taken');
  assert.ok(t.matched > t.compared / 5, 'the random policies should match a fair share of probes');
});
