// The playbook harness itself: exact sequences, placeholders, the diff, and the forgotten check().
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { ProxyCommand, ProxyCore, ProxyEvent } from '../../../src/proxy/core/index.ts';
import { any, diff, Playbook, slot, text } from './playbook.ts';

/** A core that answers each event with what `fn` says (and numbers its listeners). */
function echo(fn: (ev: ProxyEvent, n: number) => ProxyCommand[]): ProxyCore {
  let n = 0;
  return { handle: (ev) => fn(ev, ++n), describe: () => ({ proxy: 'echo', state: 'echo' }) };
}

const listenCore = () =>
  echo((ev, n): ProxyCommand[] => {
    if (ev.type === 'start')
      return [{ type: 'listen', listener: `l${n}`, host: '198.18.0.1', port: 0, transparent: false }];
    if (ev.type === 'listening')
      return [
        { type: 'send', stream: 'client', data: Buffer.from(`port ${ev.local.port} on ${ev.listener}`) },
      ];
    return [];
  });

const start = {
  type: 'start',
  client: { host: '198.18.1.1', port: 1, family: 4 },
  clientLocal: { host: '198.18.0.1', port: 2, family: 4 },
} as const;

describe('playbook', () => {
  it('checks exact sequences; a placeholder binds a value the core made and feeds it back', () => {
    const listener = slot<string>('listener');
    const p = new Playbook(listenCore());
    p.on(start)
      .out({ type: 'listen', listener, host: '198.18.0.1', port: any, transparent: false })
      .on({ type: 'listening', listener, local: { host: '198.18.0.1', port: 4000, family: 4 } })
      .out({ type: 'send', stream: 'client', data: 'port 4000 on l1' })
      .on({ type: 'end', stream: 'client' })
      .check();
    assert.equal(listener.value, 'l1');
    assert.equal(p.unchecked, 0);
  });

  it('fails with a line diff when a command differs, is missing or is extra', () => {
    const p = new Playbook(listenCore());
    p.on(start).out(
      { type: 'listen', listener: 'l9', host: '198.18.0.1', port: 0, transparent: false },
      { type: 'clearTimer', timer: 'idle' },
    );
    assert.throws(
      () => p.check(),
      (e: Error) => {
        assert.match(e.message, /scripted step 1 \(start\): the commands differ/);
        assert.match(e.message, /^ {2}- listen "l9" host="198\.18\.0\.1" port=0 transparent=false$/m);
        assert.match(e.message, /^ {2}\+ listen "l1" host="198\.18\.0\.1" port=0 transparent=false$/m);
        assert.match(e.message, /^ {2}- clearTimer "idle"$/m);
        return true;
      },
    );
  });

  it('a bound placeholder must be equal where it is used again', () => {
    const stream = slot<string>('stream');
    const p = new Playbook(echo(() => [{ type: 'close', stream: 'a' }]));
    p.on(start).out({ type: 'close', stream }).check();
    assert.throws(() => p.on(start).out({ type: 'close', stream: 'b' }).check(), /close "a"/);
    p.on(start).out({ type: 'close', stream }).check();
  });

  it('a placeholder used before anything bound it is a broken script', () => {
    const p = new Playbook(listenCore());
    p.on({ type: 'listening', listener: slot('never'), local: start.clientLocal });
    assert.throws(() => p.check(), /placeholder <never> used before a command bound it/);
  });

  it('text() matches send data by a pattern', () => {
    const p = new Playbook(echo(() => [{ type: 'send', stream: 'client', data: Buffer.from('220 hello') }]));
    p.on(start)
      .out({ type: 'send', stream: 'client', data: text(/^220 /) })
      .check();
    p.feed(start);
    assert.throws(() => p.expect({ type: 'send', stream: 'client', data: text(/^500 /) }), /commands differ/);
  });

  it('step by step: the last step and the whole session say what they span', () => {
    const p = new Playbook(
      echo((_ev, n) => [{ type: 'send', stream: 'client', data: Buffer.from(`#${n}`) }]),
      { now: 10, tick: 5 },
    );
    p.feed(start);
    const second = p.feed(start);
    assert.equal(second.event.now, 20);
    assert.equal(p.last.sent('client'), '#2');
    assert.equal(p.all.sent('client'), '#1#2');
    assert.deepEqual(second.types(), ['send:client']);
    p.expect({ type: 'send', stream: 'client', data: '#2' });
  });

  it('feed() while scripted steps wait is refused (the order would be unclear)', () => {
    const p = new Playbook(listenCore());
    p.on(start).out({ type: 'listen', listener: any, host: any, port: any, transparent: any });
    assert.throws(() => p.feed(start), /scripted steps wait for check/);
    assert.equal(p.unchecked, 1);
    p.check().feed({ type: 'end', stream: 'client' });
  });

  it('a scripted step never checked fails its test', () => {
    const fixture = fileURLToPath(new URL('./fixtures/forgotten-check.ts', import.meta.url));
    const r = spawnSync(process.execPath, ['--import', 'tsx', '--test', '--test-reporter=tap', fixture], {
      encoding: 'utf8',
      // Run as a test run of its own, not as a child reporting to this one.
      env: { ...process.env, NODE_TEST_CONTEXT: undefined },
    });
    assert.notEqual(r.status, 0, r.stdout);
    assert.match(r.stdout, /1 scripted step\(s\) never checked/);
  });

  it('diff: common lines kept, changes marked', () => {
    assert.equal(
      diff(['a', 'b', 'c'], ['a', 'x', 'c', 'd']),
      '  (- expected, + actual)\n    a\n  + x\n  - b\n    c\n  + d',
    );
  });
});
