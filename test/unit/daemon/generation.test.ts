import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  type CompiledRuleset,
  type Generation,
  Generations,
  planListenPorts,
} from '../../../src/daemon/generation.ts';
import { TzorpError } from '../../../src/errors.ts';
import type { Policy } from '../../../src/policy/model.ts';
import { policy, proxy, rule } from './fixtures.ts';

function compile(p: Policy, ports: Map<string, number>): CompiledRuleset {
  const listeners = new Map();
  for (const [name, port] of ports) {
    listeners.set(name, { v4: { host: '127.0.0.1', port }, v6: { host: '::1', port } });
  }
  return { text: `ruleset for ${p.source.sha256}`, listeners };
}

/** A policy "file" whose content the test changes; steps recorded in order. */
function harness() {
  const files: { current: Policy | TzorpError[] } = {
    current: policy([proxy('a', 1)], [rule(1, 'a')], 'v1'),
  };
  const events: string[] = [];
  let kernel = 'empty';
  let failApply = false;
  let failPrepare = false;
  let gate: Promise<void> | null = null;
  const gens = new Generations('p.yaml', {
    load: async () => {
      events.push('load');
      const c = files.current;
      return Array.isArray(c)
        ? { policy: null, errors: c, warnings: [] }
        : { policy: c, errors: [], warnings: [] };
    },
    check: () => [],
    compile,
    prepare: async (next: Generation) => {
      events.push(`prepare ${next.n}`);
      if (gate) await gate;
      if (failPrepare) throw new TzorpError('DAEMON_LISTEN', 'port busy');
    },
    apply: async (next: Generation) => {
      if (failApply) throw new TzorpError('KERNEL_NFT_CHECK', 'nft said no');
      kernel = next.compiled.text;
      events.push(`apply ${next.n}`);
    },
    commit: async (next: Generation, prev: Generation | null) => {
      events.push(`commit ${next.n} (was ${prev?.n ?? '-'})`);
    },
    abort: async (next: Generation) => {
      events.push(`abort ${next.n}`);
    },
  });
  return {
    gens,
    files,
    events,
    kernel: () => kernel,
    setFailApply: (v: boolean) => {
      failApply = v;
    },
    setFailPrepare: (v: boolean) => {
      failPrepare = v;
    },
    setGate: (g: Promise<void> | null) => {
      gate = g;
    },
  };
}

test('a good policy becomes the next generation: prepare, apply, commit in that order', async () => {
  const h = harness();
  const r1 = await h.gens.reload();
  assert.equal(r1.generation.n, 1);
  assert.deepEqual(r1.servicesAdded, ['a']);
  h.files.current = policy([proxy('a', 1), proxy('b', 2)], [rule(1, 'a'), rule(2, 'b')], 'v2');
  const r2 = await h.gens.reload();
  assert.equal(r2.generation.n, 2);
  assert.equal(r2.previous?.n, 1);
  assert.deepEqual(r2.servicesAdded, ['b']);
  assert.equal(h.kernel(), 'ruleset for v2');
  assert.deepEqual(h.events, [
    'load',
    'prepare 1',
    'apply 1',
    'commit 1 (was -)',
    'load',
    'prepare 2',
    'apply 2',
    'commit 2 (was 1)',
  ]);
});

test('a policy with errors is refused with file:line:col errors; generation, kernel stay', async () => {
  const h = harness();
  await h.gens.reload();
  h.files.current = [
    new TzorpError('POLICY_UNKNOWN_ZONE', 'unknown zone "nowhere"', {
      pos: { file: 'p.yaml', line: 7, col: 12 },
    }),
  ];
  await assert.rejects(h.gens.reload(), (e: unknown) => {
    assert.ok(e instanceof TzorpError);
    assert.equal(e.id, 'DAEMON_RELOAD_REFUSED');
    assert.deepEqual((e.details as { errors: string[] }).errors, [
      'p.yaml:7:12: TZ1031 unknown zone "nowhere"',
    ]);
    return true;
  });
  assert.equal(h.gens.current?.n, 1);
  assert.equal(h.kernel(), 'ruleset for v1');
  assert.ok(!h.events.includes('prepare 2'));
});

test('kernel refusal or a failed prepare aborts: the running generation stays, numbers are not burnt', async () => {
  const h = harness();
  await h.gens.reload();
  h.files.current = policy([proxy('a', 1)], [rule(1, 'a')], 'v2');
  h.setFailApply(true);
  await assert.rejects(
    h.gens.reload(),
    (e: unknown) => e instanceof TzorpError && e.id === 'DAEMON_RELOAD_REFUSED',
  );
  assert.equal(h.gens.current?.policy.source.sha256, 'v1');
  assert.ok(h.events.includes('abort 2'));
  h.setFailApply(false);
  h.setFailPrepare(true);
  await assert.rejects(h.gens.reload());
  h.setFailPrepare(false);
  const r = await h.gens.reload();
  assert.equal(r.generation.n, 2);
  assert.equal(h.kernel(), 'ruleset for v2');
});

test('reloads are serialized: a reload during a reload waits for it', async () => {
  const h = harness();
  await h.gens.reload();
  let open!: () => void;
  h.setGate(
    new Promise<void>((r) => {
      open = r;
    }),
  );
  h.events.length = 0;
  const a = h.gens.reload();
  const b = h.gens.reload();
  await new Promise((r) => setTimeout(r, 10));
  assert.deepEqual(h.events, ['load', 'prepare 2']); // b has not even loaded
  h.setGate(null);
  open();
  const [ra, rb] = await Promise.all([a, b]);
  assert.equal(ra.generation.n, 2);
  assert.equal(rb.generation.n, 3);
  assert.deepEqual(h.events, [
    'load',
    'prepare 2',
    'apply 2',
    'commit 2 (was 1)',
    'load',
    'prepare 3',
    'apply 3',
    'commit 3 (was 2)',
  ]);
});

test('a refused reload does not block the next one', async () => {
  const h = harness();
  await h.gens.reload();
  h.files.current = [
    new TzorpError('POLICY_SYNTAX', 'bad yaml', { pos: { file: 'p.yaml', line: 1, col: 1 } }),
  ];
  const bad = h.gens.reload();
  const good = bad.catch(() => {
    h.files.current = policy([proxy('a', 1)], [rule(1, 'a')], 'v3');
  });
  const next = h.gens.reload(); // queued behind the refused one
  await assert.rejects(bad);
  await good;
  assert.equal((await next).generation.policy.source.sha256, 'v3');
});

test('planListenPorts: staying services keep their port, new ones avoid taken ports', () => {
  const p1 = policy([proxy('b', 1), proxy('c', 2)], []);
  const ports1 = planListenPorts(p1, null);
  assert.deepEqual(
    [...ports1],
    [
      ['b', 50000],
      ['c', 50001],
    ],
  );
  const prev = compile(p1, ports1).listeners;
  // 'a' sorts first now: ids shift, but b and c keep their ports; a takes base+0 = 50000? taken -> 50002
  const p2 = policy([proxy('a', 1), proxy('b', 2), proxy('c', 3)], []);
  const ports2 = planListenPorts(p2, prev);
  assert.equal(ports2.get('b'), 50000);
  assert.equal(ports2.get('c'), 50001);
  assert.equal(ports2.get('a'), 50002);
  // an explicit listen_port wins, even over a kept one
  const p3 = policy([proxy('b', 1, { listenPort: 50001 }), proxy('c', 2)], []);
  const ports3 = planListenPorts(p3, prev);
  assert.equal(ports3.get('b'), 50001);
  assert.notEqual(ports3.get('c'), 50001);
  assert.equal(new Set(ports3.values()).size, 2);
});

/** Steps with `listeners` and `prepareSent`: the workers' part runs beside the compile. */
function overlapping(opts: { compileFails?: boolean; otherListeners?: boolean } = {}) {
  const events: string[] = [];
  let release = (): void => {};
  const gens = new Generations('p.yaml', {
    load: async () => ({ policy: policy([proxy('a', 1)], [rule(1, 'a')], 'v1'), errors: [], warnings: [] }),
    check: () => [],
    listeners: (p, ports) => {
      events.push('listeners');
      return compile(p, ports).listeners;
    },
    compile: (p, ports) => {
      events.push('compile');
      if (opts.compileFails) throw new TzorpError('KERNEL_BAD_OPTION', 'cannot compile');
      const c = compile(p, ports);
      if (opts.otherListeners) for (const l of c.listeners.values()) l.v4.port += 1;
      return c;
    },
    prepare: async (next: Generation) => {
      // the workers get the listeners before the ruleset text exists
      events.push(`prepare ${next.n} (text ${next.compiled.text === '' ? 'empty' : 'set'})`);
      await new Promise<void>((r) => (release = r));
      events.push(`prepared ${next.n}`);
    },
    prepareSent: async (next: Generation) => {
      events.push(`sent ${next.n}`);
    },
    apply: async (next: Generation) => {
      events.push(`apply ${next.n} (text ${next.compiled.text === '' ? 'empty' : 'set'})`);
    },
    commit: async (next: Generation) => {
      events.push(`commit ${next.n}`);
    },
    abort: async (next: Generation) => {
      events.push(`abort ${next.n}`);
    },
  });
  return { gens, events, release: () => release() };
}

test('with listeners known first, the workers prepare while the primary compiles; apply waits for both', async () => {
  const h = overlapping();
  const r = h.gens.reload();
  await new Promise((x) => setImmediate(x));
  h.release();
  await r;
  assert.deepEqual(h.events, [
    'listeners',
    'prepare 1 (text empty)',
    'sent 1',
    'compile',
    'prepared 1',
    'apply 1 (text set)',
    'commit 1',
  ]);
});

test('a compile that fails after the workers started preparing is refused, and the workers abort', async () => {
  for (const o of [{ compileFails: true }, { otherListeners: true }]) {
    const h = overlapping(o);
    const r = h.gens.reload();
    await new Promise((x) => setImmediate(x));
    h.release();
    await assert.rejects(r, (e: TzorpError) => e.id === 'DAEMON_RELOAD_REFUSED');
    assert.ok(h.events.includes('abort 1'), h.events.join(', '));
    assert.ok(!h.events.some((e) => e.startsWith('apply')), h.events.join(', '));
    assert.equal(h.gens.current, null);
  }
});
