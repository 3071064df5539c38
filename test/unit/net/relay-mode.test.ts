// Where the native relay runs (tzorp_relay.c relayMode, src/net/relay.ts setNativeRelayMode): by
// default on an epoll thread of its own, with `loop` on the event loop that runs the sessions (no
// thread of its own); either way the bytes go through, and the mode cannot change once a relay ran.
// Each case is a child process (relay-mode-child.ts): the mode is chosen once per process.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { nativeRelayAvailable } from '../../../src/net/relay.ts';

const skip = nativeRelayAvailable() ? false : 'the native addon is not built';
const HERE = dirname(fileURLToPath(import.meta.url));

function child(mode: string | null): {
  mode: string;
  before: number;
  after: number;
  reply: string;
  refused: boolean;
} {
  const env = { ...process.env };
  delete env.TZORP_RELAY_MODE;
  const out = execFileSync(
    process.execPath,
    ['--import', 'tsx', join(HERE, 'relay-mode-child.ts'), ...(mode ? [mode] : [])],
    { env, encoding: 'utf8', timeout: 60_000 },
  );
  return JSON.parse(out.trim().split('\n').at(-1)!);
}

test('relay mode: the default starts one epoll thread for the relays', { skip }, () => {
  const r = child(null);
  assert.equal(r.mode, 'thread');
  assert.equal(r.reply, 'hello through the relay');
  assert.equal(r.after, r.before + 1, 'one relay thread');
  assert.equal(r.refused, true, 'the mode is fixed once a relay ran');
});

test('relay mode: loop runs relays on the session loop, no thread of their own; the bytes go through the same', {
  skip,
}, () => {
  const r = child('loop');
  assert.equal(r.mode, 'loop');
  assert.equal(r.reply, 'hello through the relay');
  assert.equal(r.after, r.before, 'no thread was started for the relay');
  assert.equal(r.refused, true, 'the mode is fixed once a relay ran');
});

// The relay's own suites once more with the relay on the session loop (the default run has it on its
// own thread): every byte once, half-close, idle and connect timeouts, abort and kill, the handover stress.
test('relay mode loop: the native relay and native plug suites pass with the relay on the session loop', {
  skip,
  timeout: 600_000,
}, () => {
  const env: NodeJS.ProcessEnv = { ...process.env, TZORP_RELAY_MODE: 'loop' };
  delete env.NODE_TEST_CONTEXT; // (a runner of its own, not a child reporting to this one)
  const files = ['native-relay.test.ts', 'native-plug.test.ts', 'stress.test.ts', 'http-body-relay.test.ts'];
  const r = spawnSync(
    process.execPath,
    ['--import', 'tsx', '--test', '--test-reporter=tap', ...files.map((f) => join(HERE, f))],
    { env, encoding: 'utf8', timeout: 580_000 },
  );
  assert.equal(r.status, 0, `${r.stdout}\n${r.stderr}`.slice(-4000));
  assert.match(r.stdout, /^# pass [1-9]\d*$/m, 'the suites ran');
  assert.match(r.stdout, /^# fail 0$/m);
});
