import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { ControlError, controlRequest } from '../../../src/daemon/control-client.ts';
import { type ControlRequest, LineDecoder, parseRequest } from '../../../src/daemon/control-protocol.ts';
import { ControlServer } from '../../../src/daemon/control-server.ts';
import { TzorpError } from '../../../src/errors.ts';

const dir = mkdtempSync(join(tmpdir(), 'tzorp-control-'));
after(() => rmSync(dir, { recursive: true, force: true }));

test('parseRequest validates commands and fields', () => {
  assert.deepEqual(parseRequest('{"id":3,"cmd":"status"}'), { id: 3, cmd: 'status' });
  assert.deepEqual(parseRequest('{"cmd":"stop","timeoutMs":5}'), { id: 0, cmd: 'stop', timeoutMs: 5 });
  assert.deepEqual(parseRequest('{"cmd":"reload"}'), { id: 0, cmd: 'reload' });
  assert.deepEqual(parseRequest('{"cmd":"reload","confirmSeconds":30}'), {
    id: 0,
    cmd: 'reload',
    confirmSeconds: 30,
  });
  assert.deepEqual(parseRequest('{"id":2,"cmd":"confirm"}'), { id: 2, cmd: 'confirm' });
  assert.deepEqual(parseRequest('{"id":1,"cmd":"log","spec":"core.*:4","delta":-1}'), {
    id: 1,
    cmd: 'log',
    spec: 'core.*:4',
    delta: -1,
  });
  for (const bad of [
    'nope',
    '[]',
    '{"cmd":"fly"}',
    '{"cmd":"status","extra":1}',
    '{"cmd":"stop","timeoutMs":-1}',
    '{"cmd":"reload","confirmSeconds":0}',
    '{"cmd":"reload","confirmSeconds":1.5}',
    '{"cmd":"reload","confirmSeconds":"30"}',
    '{"cmd":"confirm","generation":1}',
    '{"cmd":"log","verbosity":1.5}',
    '{"id":"x","cmd":"status"}',
  ]) {
    assert.throws(
      () => parseRequest(bad),
      (e: unknown) => e instanceof TzorpError && e.id === 'DAEMON_CONTROL_REQUEST',
      bad,
    );
  }
});

test('LineDecoder splits lines across chunks and bounds the buffer', () => {
  const d = new LineDecoder(8);
  assert.deepEqual(d.push('ab'), []);
  assert.deepEqual(d.push('c\r\nde\n\nf'), ['abc', 'de']);
  assert.deepEqual(d.push('\n'), ['f']);
  assert.throws(
    () => d.push('123456789'),
    (e: unknown) => e instanceof TzorpError && e.id === 'DAEMON_CONTROL_REQUEST',
  );
});

test('control server answers through the client; socket is 0600; errors carry code and policy errors', async () => {
  const path = join(dir, 'a.sock');
  const seen: ControlRequest[] = [];
  const server = new ControlServer(path, async (req) => {
    seen.push(req);
    if (req.cmd === 'reload') {
      throw new TzorpError('DAEMON_RELOAD_REFUSED', 'the new policy has 1 error', {
        details: { errors: ['p.yaml:3:5: TZ1031 unknown zone "x"'] },
      });
    }
    return { hello: req.cmd };
  });
  await server.listen();
  try {
    assert.equal(statSync(path).mode & 0o777, 0o600);
    assert.deepEqual(await controlRequest(path, { cmd: 'status' }), { hello: 'status' });
    await assert.rejects(controlRequest(path, { cmd: 'reload' }), (e: unknown) => {
      assert.ok(e instanceof ControlError);
      assert.equal(e.body.code, 'TZ3002');
      assert.deepEqual(e.body.errors, ['p.yaml:3:5: TZ1031 unknown zone "x"']);
      return true;
    });
    // a second daemon on the same socket is refused
    const twin = new ControlServer(path, async () => null);
    await assert.rejects(
      twin.listen(),
      (e: unknown) => e instanceof TzorpError && e.id === 'DAEMON_ALREADY_RUNNING',
    );
    // several requests on one connection are answered in order; a bad line gets an error answer
    const lines = await new Promise<string[]>((resolve, reject) => {
      const c = net.connect(path);
      let buf = '';
      c.on('data', (d) => {
        buf += d;
        if (buf.split('\n').length > 3) {
          c.destroy();
          resolve(buf.trim().split('\n'));
        }
      });
      c.on('error', reject);
      c.write('{"id":7,"cmd":"sessions"}\nbogus\n{"id":8,"cmd":"status"}\n');
    });
    const answers = lines.map((l) => JSON.parse(l));
    assert.deepEqual(answers[0], { id: 7, ok: true, result: { hello: 'sessions' } });
    assert.equal(answers[1].ok, false);
    assert.equal(answers[1].error.code, 'TZ3004');
    assert.deepEqual(answers[2], { id: 8, ok: true, result: { hello: 'status' } });
  } finally {
    await server.close();
  }
  assert.deepEqual(
    seen.map((r) => r.cmd),
    ['status', 'reload', 'sessions', 'status'],
  );
});

test('no daemon: DAEMON_NOT_RUNNING (TZ3001) naming the socket path', async () => {
  const path = join(dir, 'nobody.sock');
  await assert.rejects(controlRequest(path, { cmd: 'status' }), (e: unknown) => {
    assert.ok(e instanceof TzorpError);
    assert.equal(e.code, 'TZ3001');
    assert.ok(e.message.includes(path));
    return true;
  });
});

test('a stale socket file (daemon killed) is replaced', async () => {
  const path = join(dir, 'stale.sock');
  // leave a socket file nobody listens on
  const s = net.createServer().listen(path);
  await new Promise((r) => s.once('listening', r));
  // close the fd without unlinking the path
  (s as unknown as { _handle: { close(): void } })._handle.close();
  const server = new ControlServer(path, async () => 'fresh');
  await server.listen();
  try {
    assert.equal(await controlRequest(path, { cmd: 'status' }), 'fresh');
  } finally {
    await server.close();
  }
});
