import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type DaemonState, Lifecycle } from '../../../src/daemon/lifecycle.ts';
import { TzorpError } from '../../../src/errors.ts';

test('the daemon goes starting → running ⇄ reloading → draining → stopped, and reports each change', () => {
  const seen: string[] = [];
  const l = new Lifecycle((from, to) => seen.push(`${from}>${to}`));
  assert.equal(l.state, 'starting');
  for (const s of ['running', 'reloading', 'running', 'reloading', 'draining', 'stopped'] as DaemonState[]) {
    l.to(s);
  }
  assert.equal(l.state, 'stopped');
  assert.deepEqual(seen, [
    'starting>running',
    'running>reloading',
    'reloading>running',
    'running>reloading',
    'reloading>draining',
    'draining>stopped',
  ]);
});

test('a failed start ends stopped; a move the diagram does not have is refused and changes nothing', () => {
  const failed = new Lifecycle();
  failed.to('stopped');
  assert.equal(failed.state, 'stopped');
  for (const [from, to] of [
    [[], 'reloading'],
    [[], 'draining'],
    [['running', 'draining'], 'running'],
    [['running', 'draining'], 'reloading'],
    [['running', 'draining', 'stopped'], 'running'],
    [['running'], 'stopped'],
  ] as [DaemonState[], DaemonState][]) {
    const l = new Lifecycle();
    for (const s of from) l.to(s);
    const before = l.state;
    assert.throws(
      () => l.to(to),
      (e) => e instanceof TzorpError && e.code === 'TZ9001',
    );
    assert.equal(l.state, before);
  }
});

test('requests that need a serving daemon are refused while starting (TZ3009) and after stop (TZ3008)', () => {
  const l = new Lifecycle();
  assert.throws(
    () => l.assertServing('reload'),
    (e) => e instanceof TzorpError && e.code === 'TZ3009' && /reload/.test(e.message),
  );
  l.to('running');
  l.assertServing('reload');
  l.to('reloading');
  l.assertServing('reload'); // reloads queue behind each other
  l.to('draining');
  assert.throws(
    () => l.assertServing('reload'),
    (e) => e instanceof TzorpError && e.code === 'TZ3008',
  );
});
