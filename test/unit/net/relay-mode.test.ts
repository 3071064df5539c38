// Where the native relay runs (tzorp_relay.c relayMode, src/net/relay.ts setNativeRelayMode): by
// default on the event loop that runs the sessions (no thread of its own), with `thread` on an epoll
// thread of its own; either way the bytes go through, and the mode cannot change once a relay ran.
// Each case is a child process (relay-mode-child.ts): the mode is chosen once per process.
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import net from 'node:net';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { nativeRelayAvailable } from '../../../src/net/relay.ts';
import { echo, tcpServer } from './helpers.ts';

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

test('relay mode: the default runs relays on the session loop, no thread of their own', { skip }, () => {
  const r = child(null);
  assert.equal(r.mode, 'loop');
  assert.equal(r.reply, 'hello through the relay');
  assert.equal(r.after, r.before, 'no thread was started for the relay');
  assert.equal(r.refused, true, 'the mode is fixed once a relay ran');
});

test('relay mode: thread starts one epoll thread for the relays; the bytes go through the same', {
  skip,
}, () => {
  const r = child('thread');
  assert.equal(r.mode, 'thread');
  assert.equal(r.reply, 'hello through the relay');
  assert.equal(r.after, r.before + 1, 'one relay thread');
  assert.equal(r.refused, true, 'the mode is fixed once a relay ran');
});

// What the thread is for: a worker's JavaScript is sometimes busy for a while (a reload builds its new
// generation). A relayed session's bytes keep moving meanwhile when the relay has its thread; on the
// loop they wait until JavaScript is done. Told by order, not by time: the echo of a byte sent while
// the child is blocked comes back before (thread) or after (loop) the child says UNBLOCKED.
for (const [mode, during] of [
  ['thread', true],
  ['loop', false],
] as const)
  test(`relay mode ${mode}: bytes ${during ? 'keep moving' : 'wait'} while the worker's JavaScript is busy`, {
    skip,
    timeout: 60_000,
  }, async () => {
    const srv = await tcpServer(echo);
    const env = { ...process.env };
    delete env.TZORP_RELAY_MODE;
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', join(HERE, 'relay-stall-child.ts'), mode, String(srv.port)],
      {
        env,
        stdio: ['pipe', 'pipe', 'inherit'],
      },
    );
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
    });
    const waitOut = async (re: RegExp) => {
      while (!re.test(out)) await new Promise((r) => setTimeout(r, 10));
    };
    try {
      await waitOut(/PORT \d+/);
      const port = Number(/PORT (\d+)/.exec(out)![1]);
      const c = net.connect({ host: '127.0.0.1', port });
      let got = '';
      c.on('data', (d) => {
        got += d;
      });
      c.write('a');
      const received = () => got; // (read afresh each time)
      while (received() !== 'a') await new Promise((r) => setTimeout(r, 10));
      child.stdin.write('block\n');
      await waitOut(/BLOCK\n/);
      c.write('b');
      while (received() !== 'ab') await new Promise((r) => setTimeout(r, 10));
      assert.equal(out.includes('UNBLOCKED'), !during, out);
      c.destroy();
      child.stdin.write('exit\n');
      await new Promise((r) => child.on('exit', r));
    } finally {
      child.kill();
      await srv.close();
    }
  });

// The relay's own suites once more with the relay on a thread of its own (the default run has it on
// the session loop): every byte once, half-close, idle and connect timeouts, abort and kill, the
// handover stress.
test('relay mode thread: the native relay and native plug suites pass with the relay on its own thread', {
  skip,
  timeout: 600_000,
}, () => {
  const env: NodeJS.ProcessEnv = { ...process.env, TZORP_RELAY_MODE: 'thread' };
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
