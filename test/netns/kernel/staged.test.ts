// The staged first apply (src/kernel/apply/staged.ts) in a namespace of its own: a namespace without
// the table gets the zone section while the rest compiles, then the tiers' maps, then the rest; the
// result lists as the whole-table apply of the same policy does. When a stage fails the staged tables
// and routing are taken back and the whole table goes in instead; when the user rules are refused
// nothing stays behind. The decisions themselves are compared with the engine in differential.test.ts.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { applyPolicy, flushTzorp } from '../../../src/kernel/index.ts';
import { netnsSkipReason, REPO_ROOT, testNetns } from '../../harness/netns.ts';
import { listedTable } from '../../harness/nft-listing.ts';
import { randomPolicy } from '../../unit/kernel/random-policy.ts';

const skip = netnsSkipReason();
const { ns, prefix } = testNetns('tzstage', skip);
// chunks of about three ranges: the zone section has chunk maps, their chains and the maps of jumps
const zoneChunk = { above: 2, average: 3 };

function nft(args: string[]): { code: number; stdout: string } {
  const r = spawnSync('ip', ['netns', 'exec', ns, 'nft', ...args], { encoding: 'utf8', maxBuffer: 1 << 28 });
  return { code: r.status ?? 1, stdout: r.stdout };
}
const listed = (model: Parameters<typeof listedTable>[1]): Promise<string> =>
  listedTable(async (args) => nft(['-j', ...args]), model);

function routing(): string {
  return ['-4', '-6']
    .map((f) => execFileSync('ip', ['-n', ns, f, 'rule', 'show'], { encoding: 'utf8' }))
    .join('');
}

function empty(): void {
  nft(['delete', 'table', 'inet', 'tzorp']);
  for (const f of ['-4', '-6']) {
    for (;;) {
      const r = spawnSync('ip', ['-n', ns, f, 'rule', 'del', 'protocol', '122']);
      if (r.status !== 0) break;
    }
  }
}

test('staged first apply: lists as the whole table does, and the next apply diffs against it', {
  skip,
}, async () => {
  for (const seed of [11, 12, 13]) {
    empty();
    const { policy } = randomPolicy(seed, { ifaces: ['eth0'] });
    const staged = await applyPolicy(policy, { prefix, zoneChunk, stageZonesFrom: 0 });
    assert.equal(staged.staged, true, `seed ${seed}: ${staged.fallback ?? ''}`);
    assert.equal(staged.mode, 'full');
    assert.equal(staged.fallback, undefined);
    assert.ok(
      staged.model.objects.some((o) => o.name.startsWith('zones_src_v4')),
      'the zone section has maps of jumps (chunks)',
    );
    const afterStaged = await listed(staged.model);
    assert.match(routing(), /lookup 100/);
    // the same policy again: the table exists, so the whole table replaces it (not staged)
    const whole = await applyPolicy(policy, { prefix, zoneChunk, stageZonesFrom: 0 });
    assert.equal(whole.staged, undefined);
    assert.equal(whole.fallback, undefined, 'a table that exists is no failed staging');
    assert.equal(await listed(whole.model), afterStaged, `seed ${seed}: staged and whole tables differ`);
    // an apply of the differences to the staged table's model finds the table it expects
    empty();
    const again = await applyPolicy(policy, { prefix, zoneChunk, stageZonesFrom: 0 });
    assert.equal(again.staged, true);
    const inc = await applyPolicy(randomPolicy(seed + 100, { ifaces: ['eth0'] }).policy, {
      prefix,
      zoneChunk,
      previous: again.model,
    });
    assert.equal(inc.mode, 'incremental', inc.fallback);
  }
  // no writable temporary directory for the zone section's file: one transaction does without
  empty();
  const tmp = process.env.TMPDIR;
  process.env.TMPDIR = '/nonexistent/tzorp-staged-test';
  try {
    const noTmp = await applyPolicy(randomPolicy(15, { ifaces: ['eth0'] }).policy, {
      prefix,
      zoneChunk,
      stageZonesFrom: 0,
    });
    assert.equal(noTmp.staged, undefined);
    assert.equal(noTmp.mode, 'full');
    assert.equal(noTmp.fallback, undefined);
  } finally {
    if (tmp === undefined) delete process.env.TMPDIR;
    else process.env.TMPDIR = tmp;
  }
  // small zones are not staged by default (DEFAULTS.kernelStagedZoneNetworks)
  empty();
  const small = await applyPolicy(randomPolicy(14, { ifaces: ['eth0'] }).policy, { prefix });
  assert.equal(small.staged, undefined);
});

test('staged first apply: a refused last stage leaves the whole table; refused user rules or a failed compile leave nothing', {
  skip,
}, async () => {
  const { policy } = randomPolicy(21, { ifaces: ['eth0'] });
  // nft refuses the last stage (the rest of the table: a file with the header and no `delete table`)
  const refuseRest = [
    'sh',
    '-c',
    `if [ "$1 $2 $3" = "nft -f -" ]; then
       t=$(mktemp); cat > "$t"
       if head -n 1 "$t" | grep -q '^#' && ! grep -q '^delete table inet tzorp' "$t"; then
         rm -f "$t"; echo "injected: refused" >&2; exit 1
       fi
       ip netns exec ${ns} "$@" < "$t"; c=$?; rm -f "$t"; exit $c
     fi
     exec ip netns exec ${ns} "$@"`,
    'sh',
  ];
  empty();
  const before = routing();
  const r = await applyPolicy(policy, { prefix: refuseRest, zoneChunk, stageZonesFrom: 0 });
  assert.equal(r.staged, undefined);
  assert.equal(r.mode, 'full');
  assert.match(r.fallback ?? '', /staged first apply given up: nft refused the rest of the table: injected/);
  const whole = await applyPolicy(policy, { prefix, zoneChunk });
  assert.equal(await listed(r.model), await listed(whole.model));
  // the routing the staged apply added was taken back and added again once
  const rules = routing();
  assert.equal(rules.match(/lookup 100/g)?.length, 2, rules);
  assert.notEqual(rules, before);

  // user rules that name a set the table does not have: refused before the last stage, and the
  // staged zone section and the routing go again
  empty();
  const clean = { routing: routing(), tables: nft(['list', 'tables']).stdout };
  await assert.rejects(
    applyPolicy(policy, {
      prefix,
      zoneChunk,
      stageZonesFrom: 0,
      userRules: 'chain user_in {\n\tip saddr @no_such_set accept\n}\n',
    }),
    (e: Error & { id?: string }) => e.id === 'KERNEL_NFT_CHECK',
  );
  assert.equal(nft(['list', 'tables']).stdout, clean.tables, 'no table left behind');
  assert.equal(routing(), clean.routing, 'no routing left behind');

  // a compile that fails after the zone section was sent to nft (settings the build refuses): the
  // zone section goes again
  const bad = structuredClone(policy);
  (bad.settings as { tproxyMark: number }).tproxyMark = 0x00000001;
  await assert.rejects(
    applyPolicy(bad, { prefix, zoneChunk, stageZonesFrom: 0 }),
    (e: Error & { id?: string }) => e.id === 'KERNEL_BAD_OPTION',
  );
  assert.equal(nft(['list', 'tables']).stdout, clean.tables, 'no table left behind');
  assert.equal(routing(), clean.routing, 'no routing left behind');
  await flushTzorp({ prefix, open: true });
});

test('tzorp apply stages a first apply of zones with 20,000 networks (the default) and says so', {
  skip,
}, async () => {
  // 100 zones of 200 host addresses each (198.18.0.0/15), a forward and a deny service
  const zones: Record<string, { addresses: string[] }> = {};
  for (let z = 0; z < 100; z++) {
    const addresses: string[] = [];
    for (let h = 0; h < 200; h++)
      addresses.push(`198.${18 + (z >> 6)}.${(z & 63) * 4 + (h >> 6)}.${(h & 63) * 4 + 1}`);
    zones[`z${z}`] = { addresses };
  }
  const policy = {
    zones: { ...zones, internet: { addresses: ['0.0.0.0/0', '::/0'] } },
    services: { fwd: { type: 'forward' }, deny: { type: 'deny' } },
    rules: [
      { id: 1, service: 'fwd', proto: 'tcp', src_zone: 'z1', dst_zone: 'z2', dst_port: 22 },
      { id: 2, service: 'deny', src_zone: 'internet' },
    ],
  };
  const dir = mkdtempSync(join(tmpdir(), 'tzorp-staged-'));
  try {
    const file = join(dir, 'policy.json');
    writeFileSync(file, JSON.stringify(policy));
    empty();
    const run = (): { status: number | null; stdout: string; stderr: string } =>
      spawnSync(
        'ip',
        [
          'netns',
          'exec',
          ns,
          process.execPath,
          join(REPO_ROOT, 'bin/tzorp'),
          'apply',
          file,
          '--json',
          '--full',
        ],
        {
          encoding: 'utf8',
        },
      );
    const first = run();
    assert.equal(first.status, 0, first.stderr);
    const j = JSON.parse(first.stdout) as { mode: string; staged?: boolean; fallback?: string };
    assert.equal(j.mode, 'full');
    assert.equal(j.staged, true, first.stdout);
    assert.equal(j.fallback, undefined);
    // the table exists now: the next whole apply replaces it in one transaction
    const again = JSON.parse(run().stdout) as { mode: string; staged?: boolean };
    assert.equal(again.staged, undefined);
  } finally {
    // the table, the routing and the model `tzorp apply` kept in /run/tzorp go
    spawnSync('ip', ['netns', 'exec', ns, process.execPath, join(REPO_ROOT, 'bin/tzorp'), 'flush', '--open']);
    rmSync(dir, { recursive: true, force: true });
  }
});
