import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { after, test } from 'node:test';
import {
  fdDestination,
  formatZorpLine,
  LineBatch,
  type LogFields,
  ZorpLineEncoder,
  ZorpLog,
} from '../../../src/daemon/log.ts';
import { LogLevels } from '../../../src/daemon/log-spec.ts';
import { DEFAULTS } from '../../../src/defaults.ts';
import { handleFd } from '../../../src/native/index.ts';

function sink() {
  const lines: string[] = [];
  return { lines, write: (s: string) => lines.push(s) };
}
const now = () => new Date('2026-01-02T03:04:05.678Z');

test("formatZorpLine: class(level): (session): message; key='value'", () => {
  assert.equal(
    formatZorpLine('core.session', 3, 'svc/web:7', 'Starting proxy instance', {
      client_address: 'AF_INET(198.18.1.2:40000)',
      client_zone: 'clients',
      skipped: undefined,
      server_zone: null,
    }),
    "core.session(3): (svc/web:7): Starting proxy instance; client_address='AF_INET(198.18.1.2:40000)', client_zone='clients', server_zone='(NULL)'",
  );
  assert.equal(formatZorpLine('core.error', 1, null, 'x'), 'core.error(1): (nosession): x');
  // quotes and newlines cannot break the line apart
  assert.equal(
    formatZorpLine('a.b', 1, null, 'm', { v: "it's\nx\\" }),
    "a.b(1): (nosession): m; v='it\\'s\\x0ax\\\\'",
  );
});

test('text log writes enabled messages only, with timestamp and process prefix', () => {
  const s = sink();
  const log = new ZorpLog({
    format: 'text',
    levels: new LogLevels(3, 'core.summary:4'),
    destination: s,
    now,
  });
  log.log('core.session', 3, 'svc/a:1', 'Starting proxy instance', { client_zone: 'z' });
  log.log('core.session', 4, 'svc/a:1', 'hidden');
  log.log('core.summary', 4, 'svc/a:1', 'Connection summary', { verdict: 'ACCEPTED' });
  assert.equal(s.lines.length, 2);
  assert.equal(
    s.lines[0],
    `2026-01-02T03:04:05.678Z tzorp[${process.pid}]: core.session(3): (svc/a:1): Starting proxy instance; client_zone='z'\n`,
  );
  assert.match(s.lines[1]!, /core\.summary\(4\): \(svc\/a:1\): Connection summary; verdict='ACCEPTED'\n$/);
  log.levels.setSpec('core.*:2');
  log.log('core.session', 3, null, 'now hidden');
  assert.equal(s.lines.length, 2);
});

test('json log carries class, Zorp level, session id and the fields', () => {
  const s = sink();
  const log = new ZorpLog({
    format: 'json',
    levels: new LogLevels(5),
    destination: s,
    now,
    base: { worker: 2 },
  });
  log
    .session('svc/p:9')
    .log('core.summary', 4, 'Connection summary', { verdict: 'DENIED_BY_LIMIT', rule_id: 3 });
  log.log('core.debug', 6, null, 'hidden');
  assert.equal(s.lines.length, 1);
  const rec = JSON.parse(s.lines[0]!);
  assert.equal(rec.class, 'core.summary');
  assert.equal(rec.zlevel, 4);
  assert.equal(rec.level, 'info');
  assert.equal(rec.session_id, 'svc/p:9');
  assert.equal(rec.msg, 'Connection summary');
  assert.equal(rec.verdict, 'DENIED_BY_LIMIT');
  assert.equal(rec.rule_id, 3);
  assert.equal(rec.worker, 2);
  assert.equal(rec.time, '2026-01-02T03:04:05.678Z');
});

/** Past the batch's flush timer (a later, longer timer fires after it). */
const flushed = () => new Promise((r) => setTimeout(r, DEFAULTS.logFlushMs + 5));

test('batched: the lines of a batch are written together, DEFAULTS.logFlushMs after the first; a failed batch is counted', async () => {
  const writes: string[] = [];
  let fail = false;
  const log = new ZorpLog({
    format: 'text',
    levels: new LogLevels(3),
    destination: {
      write: (l: string) => {
        if (fail) throw Object.assign(new Error('ENOSPC'), { code: 'ENOSPC' });
        writes.push(l);
      },
    },
    batched: true,
    now,
  });
  log.log('core.session', 3, 'svc/a:1', 'one');
  log.log('core.session', 3, 'svc/a:2', 'two');
  assert.equal(writes.length, 0, 'nothing written within the turn');
  await new Promise((r) => setImmediate(r));
  assert.equal(writes.length, 0, 'nor at its end');
  await flushed();
  assert.equal(writes.length, 1, 'one write for the batch');
  assert.match(writes[0]!, /\(svc\/a:1\): one\n.*\(svc\/a:2\): two\n$/);
  fail = true;
  log.log('core.session', 3, 'svc/a:3', 'lost 1');
  log.log('core.session', 3, 'svc/a:4', 'lost 2');
  await flushed();
  assert.equal(log.lostTotal, 2);
  fail = false;
  log.log('core.session', 3, 'svc/a:5', 'back');
  await flushed();
  assert.equal(writes.length, 2);
  assert.match(writes[1]!, /back\n.*Log lines were lost.*lines='2'/s);
});

test('batched: a batch past 64 KiB is written at once', () => {
  const writes: string[] = [];
  const log = new ZorpLog({
    format: 'text',
    levels: new LogLevels(3),
    destination: { write: (l: string) => writes.push(l) },
    batched: true,
    now,
  });
  for (let i = 0; i < 1000 && writes.length === 0; i++)
    log.log('core.session', 3, 'svc/a:1', 'x'.repeat(200));
  assert.equal(writes.length, 1);
  assert.ok(writes[0]!.length >= 65536);
});

/** A real pipe to a reader that sleeps first (`sleep S; cat`): our end is non-blocking, as a daemon's
 * stderr is when another process's libuv opened it. */
function sleepyReader(seconds: number) {
  const child = spawn('sh', ['-c', `sleep ${seconds}; cat`], { stdio: ['pipe', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.setEncoding('latin1');
  child.stdout.on('data', (d: string) => {
    out += d;
  });
  const fd = handleFd(child.stdin);
  assert.ok(fd >= 0);
  return {
    fd,
    output: async () => {
      await new Promise((r) => child.on('close', r));
      return out;
    },
    end: () => child.stdin.end(),
  };
}

test('batched: a full pipe is not waited for while the event loop runs; every line arrives, in order', async () => {
  const reader = sleepyReader(1);
  const lost: number[] = [];
  const batch = new LineBatch(fdDestination(reader.fd), (n) => lost.push(n));
  const line = (i: number) => `line ${String(i).padStart(6, '0')} ${'x'.repeat(80)}\n`;
  for (let i = 0; i < 4000; i++) batch.write(line(i)); // 380 KB: far more than a pipe holds
  batch.flush();
  // The reader sleeps: the flush returned with bytes still to write (it did not wait for them).
  assert.ok(batch.pendingBytes > 100_000, `pending ${batch.pendingBytes}`);
  let turns = 0;
  while (batch.pendingBytes > 0) {
    turns++;
    await new Promise((r) => setTimeout(r, 5)); // the event loop goes on meanwhile
    if (turns === 10) for (let i = 4000; i < 4100; i++) batch.write(line(i)); // more while full
  }
  reader.end();
  const out = await reader.output();
  assert.deepEqual(lost, []);
  const got = out.split('\n').filter(Boolean);
  assert.equal(got.length, 4100);
  for (let i = 0; i < 4100; i += 97) assert.equal(`${got[i]}\n`, line(i));
  assert.equal(out, Array.from({ length: 4100 }, (_, i) => line(i)).join(''));
});

test('batched: past maxPending bytes a flush waits for the destination; one that fails loses what waited, counted', () => {
  let full = true;
  let failing = false;
  const taken: string[] = [];
  const dest = {
    write: (l: string) => taken.push(l),
    tryWrite: (d: Buffer) => {
      if (failing) throw Object.assign(new Error('EPIPE'), { code: 'EPIPE' });
      if (full) return 0;
      taken.push(d.toString());
      return d.length;
    },
    writeAll: (d: Buffer) => {
      if (failing) throw Object.assign(new Error('EPIPE'), { code: 'EPIPE' });
      full = false; // (a destination that a wait lets drain)
      taken.push(d.toString());
    },
  };
  const lost: number[] = [];
  const batch = new LineBatch(dest, (n) => lost.push(n), 65536, 1000);
  batch.write('a\n');
  batch.flush();
  assert.equal(batch.pendingBytes, 2, 'full: waiting, not written');
  batch.write(`${'b'.repeat(1200)}\n`);
  batch.flush(); // over maxPending: waits (writeAll), in order
  assert.equal(batch.pendingBytes, 0);
  assert.deepEqual(taken, ['a\n', `${'b'.repeat(1200)}\n`]);
  full = true;
  batch.write('c\n');
  batch.write('d\n');
  batch.flush();
  failing = true;
  batch.flush(true); // (on exit) the destination fails: both waiting lines are lost and counted
  assert.deepEqual(lost, [2]);
  assert.equal(batch.pendingBytes, 0);
});

test('batched: the lines of several turns of the event loop go out in one write, flushMs after the first', async () => {
  const writes: string[] = [];
  const dest = {
    write: (l: string) => writes.push(l),
    tryWrite: (d: Buffer) => {
      writes.push(d.toString());
      return d.length;
    },
    writeAll: (d: Buffer) => {
      writes.push(d.toString());
    },
  };
  const batch = new LineBatch(dest, () => {}, 65536, 1000, 1000);
  const turn = () => new Promise((r) => setImmediate(r));
  batch.write('one\n');
  await turn();
  batch.write('two\n');
  await turn();
  batch.write('three\n');
  assert.deepEqual(writes, [], 'nothing written at the end of a turn');
  while (writes.length === 0) await new Promise((r) => setTimeout(r, 20));
  assert.deepEqual(writes, ['one\ntwo\nthree\n']);
  // flushMs 0: at the end of the turn, as before
  const now = new LineBatch(dest, () => {}, 65536, 1000, 0);
  now.write('four\n');
  await turn();
  await turn();
  assert.deepEqual(writes, ['one\ntwo\nthree\n', 'four\n']);
});

/** A destination with tryWrite and writeAll (as a descriptor's), keeping a copy of every write. */
function capture() {
  const taken: Buffer[] = [];
  const dest = {
    write: (l: string) => taken.push(Buffer.from(l)),
    tryWrite: (d: Buffer) => {
      taken.push(Buffer.from(d));
      return d.length;
    },
    writeAll: (d: Buffer) => {
      taken.push(Buffer.from(d));
    },
  };
  return { taken, dest };
}

test('batched: lines are encoded as they come; a line longer than a batch goes on its own, in order; UTF-8 whole', () => {
  const { taken, dest } = capture();
  const batch = new LineBatch(dest, () => {}, 1024, 1 << 20, 1000);
  const lines = [
    'first\n',
    `${'ä€😀'.repeat(150)}\n`, // 150 * 9 bytes: fills most of a 2 KiB buffer
    `${'x'.repeat(5000)}\n`, // longer than the batch
    'last\n',
  ];
  for (const l of lines) batch.write(l);
  batch.flush();
  assert.equal(Buffer.concat(taken).toString(), lines.join(''));
  assert.ok(taken.length >= 3, `${taken.length} writes`);
  assert.equal(batch.pendingBytes, 0);
});

/** A seeded generator of the values log fields hold (numbers, strings with what must be escaped or
 * encoded, objects, null, undefined). */
function fieldValues(seed: number) {
  let x = seed;
  const rnd = (n: number) => {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    return x % n;
  };
  const pieces = [
    'AF_INET(198.18.1.2:40000)',
    "it's",
    'back\\slash',
    'tab\there',
    'ä€',
    '😀',
    '\ud800',
    'x\x7fy',
    '',
    'clients',
    'z'.repeat(300),
  ];
  const value = (): unknown => {
    switch (rnd(12)) {
      case 0:
        return rnd(100000);
      case 1:
        return -rnd(1000) - 1;
      case 2:
        return rnd(1000) / 7;
      case 3:
        return null;
      case 4:
        return undefined;
      case 5:
        return rnd(2) === 0;
      case 6:
        return { a: pieces[rnd(pieces.length)], n: [1, 2] };
      case 7:
        return Number.MAX_SAFE_INTEGER - rnd(10);
      case 8:
        return 2 ** 60;
      default: {
        let v = '';
        for (let i = rnd(4); i >= 0; i--) v += pieces[rnd(pieces.length)];
        return v;
      }
    }
  };
  return { rnd, value };
}

test("ZorpLineEncoder: the bytes of formatZorpLine's line, or -1 when the buffer is short; never past its end", () => {
  const { rnd, value } = fieldValues(20261206);
  const enc = new ZorpLineEncoder();
  const big = Buffer.alloc(8192);
  for (let i = 0; i < 3000; i++) {
    const fields: LogFields | undefined = rnd(8) === 0 ? undefined : {};
    if (fields) for (let k = rnd(12); k > 0; k--) fields[`key_${k}`] = value();
    const sessionId = rnd(5) === 0 ? null : `svc/web€:${i}`;
    const msg = rnd(3) === 0 ? 'Starting proxy session' : String(value());
    const level = rnd(11);
    const want = Buffer.from(
      `2026-12-06T02:21:00.123Z tzorp[42]: ${formatZorpLine('core.session', level, sessionId, msg, fields)}\n`,
    );
    enc.set('2026-12-06T02:21:00.123Z', 'tzorp[42]: ', 'core.session', level, sessionId, msg, fields);
    const at = rnd(16);
    const end = enc.encode(big, at);
    assert.equal(end, at + want.length, `line ${i}`);
    assert.ok(
      big.subarray(at, end).equals(want),
      `line ${i}: ${big.subarray(at, end).toString()} != ${want.toString()}`,
    );
    // a buffer too short for it: -1 and nothing written past its end
    const room = rnd(want.length + 8);
    const guard = Buffer.alloc(room + 64, 0xee);
    const short = guard.subarray(0, room);
    const r = enc.encode(short, 0);
    if (r >= 0) {
      assert.equal(r, want.length);
      assert.ok(short.subarray(0, r).equals(want));
    }
    assert.ok(
      guard.subarray(room).every((b) => b === 0xee),
      `line ${i}: written past the end`,
    );
  }
});

test('batched text lines encoded in place are the lines an unbatched log writes, long and UTF-8 ones included', () => {
  const { taken, dest } = capture();
  const plain = sink();
  const opts = { format: 'text' as const, levels: new LogLevels(9), now, name: 'tzorp' };
  const encode = ZorpLineEncoder.prototype.encode;
  let encoded = 0;
  ZorpLineEncoder.prototype.encode = function (this: ZorpLineEncoder, buf: Buffer, at: number) {
    encoded++;
    return encode.call(this, buf, at);
  };
  after(() => {
    ZorpLineEncoder.prototype.encode = encode;
  });
  const batched = new ZorpLog({ ...opts, destination: dest, batched: true });
  const unbatched = new ZorpLog({ ...opts, destination: plain });
  const { rnd, value } = fieldValues(7);
  for (let i = 0; i < 2000; i++) {
    const fields: LogFields = {};
    for (let k = rnd(8); k > 0; k--) fields[`f${k}`] = value();
    if (i % 500 === 3) fields.huge = 'ü'.repeat(70000); // longer than a batch's buffer
    for (const log of [batched, unbatched]) log.log('core.session', 4, `svc/s:${i}`, `line ${i}`, fields);
  }
  batched.flush();
  assert.ok(encoded >= 2000, `${encoded} lines encoded in place`);
  // (as bytes: an unpaired surrogate is U+FFFD in both, and not in the unbatched lines' strings)
  const got = Buffer.concat(taken);
  const want = Buffer.from(plain.lines.join(''));
  let at = 0;
  while (at < want.length && got[at] === want[at]) at++;
  assert.ok(
    at === want.length && got.length === want.length,
    `differs at ${at} of ${want.length}: ${JSON.stringify(got.subarray(at - 80, at + 80).toString())} != ${JSON.stringify(want.subarray(at - 80, at + 80).toString())}`,
  );
});
