// Fuzzing the FTP readers and core (fast-check): whatever the bytes, the readers return commands,
// replies or protocol errors (never another exception), and the result does not depend on how the
// bytes were split into chunks. The core never throws for anything peers send.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { ProtocolError } from '../../src/errors.ts';
import type { ProxyEvent } from '../../src/proxy/core/index.ts';
import { CommandReader, ftpModule, ReplyReader } from '../../src/proxy/ftp/index.ts';
import { bindCore } from '../../src/proxy/index.ts';

const enc = new TextEncoder();

/** Bytes biased towards what matters to a line reader: line ends, IAC, digits, separators. */
const interestingByte = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom(0x0d, 0x0a, 0xff, 0xf4, 0xf2, 0xfb, 0x20, 0x2d, 0x00) },
  { weight: 6, arbitrary: fc.constantFrom(...enc.encode('0123456789 -ABORUSERPASVretr227(),|')) },
  { weight: 2, arbitrary: fc.integer({ min: 0, max: 255 }) },
);
const input = fc.oneof(
  fc.uint8Array({ maxLength: 600 }),
  fc.array(interestingByte, { maxLength: 600 }).map((a) => Uint8Array.from(a)),
  fc
    .array(
      fc.oneof(
        fc.constantFrom(
          'USER ftp',
          'PASS x',
          'PASV',
          'EPSV',
          'PORT 1,2,3,4,5,6',
          'RETR a b',
          'ABOR',
          '',
          'x'.repeat(300),
        ),
        fc.string({ maxLength: 40 }),
        fc.constantFrom('220 hi', '211-Features:', ' MDTM', '211 End', '150-a', '150 b', '999 x', '421 bye'),
      ),
      { maxLength: 30 },
    )
    .map((lines) => enc.encode(lines.map((l) => `${l}\r\n`).join(''))),
);

/** Split points: every byte, or a random set of cuts. */
function chunks(b: Uint8Array, cuts: number[]): Uint8Array[] {
  const pts = [...new Set(cuts.map((c) => c % (b.length + 1)))].sort((x, y) => x - y);
  const out: Uint8Array[] = [];
  let at = 0;
  for (const p of pts) {
    out.push(b.subarray(at, p));
    at = p;
  }
  out.push(b.subarray(at));
  return out;
}

function runCommands(parts: Uint8Array[], max: number): string[] {
  const r = new CommandReader({ maxLineBytes: max });
  const out: string[] = [];
  for (const part of parts) {
    r.push(part.slice());
    for (let i = r.next(); i; i = r.next()) {
      out.push('error' in i ? `E${i.error.reply}:${i.error.message}` : JSON.stringify(i.command));
    }
    assert.ok(r.buffered <= max + 2 + part.length, 'the reader keeps at most one partial line');
  }
  return out;
}

function runReplies(parts: Uint8Array[], maxLineBytes: number, maxLines: number): string[] {
  const r = new ReplyReader({ maxLineBytes, maxLines });
  const out: string[] = [];
  for (const part of parts) {
    r.push(part.slice());
    try {
      for (let x = r.next(); x; x = r.next()) out.push(JSON.stringify(x));
    } catch (e) {
      if (!(e instanceof ProtocolError)) throw e;
      out.push(`E:${e.message}`);
      return out;
    }
  }
  return out;
}

describe('fuzz: ftp readers', () => {
  it('CommandReader: only commands or protocol errors; same result for any split', () => {
    fc.assert(
      fc.property(
        input,
        fc.array(fc.nat(), { maxLength: 20 }),
        fc.integer({ min: 16, max: 300 }),
        (b, cuts, max) => {
          const whole = runCommands([b], max);
          assert.deepEqual(runCommands(chunks(b, cuts), max), whole);
          assert.deepEqual(
            runCommands(
              Array.from(b, (_, i) => b.subarray(i, i + 1)),
              max,
            ),
            whole,
          );
        },
      ),
      { numRuns: 400 },
    );
  });

  it('ReplyReader: only replies or protocol errors; same result for any split', () => {
    fc.assert(
      fc.property(
        input,
        fc.array(fc.nat(), { maxLength: 20 }),
        fc.integer({ min: 16, max: 300 }),
        fc.integer({ min: 2, max: 10 }),
        (b, cuts, maxLine, maxLines) => {
          const whole = runReplies([b], maxLine, maxLines);
          assert.deepEqual(runReplies(chunks(b, cuts), maxLine, maxLines), whole);
          assert.deepEqual(
            runReplies(
              Array.from(b, (_, i) => b.subarray(i, i + 1)),
              maxLine,
              maxLines,
            ),
            whole,
          );
        },
      ),
      { numRuns: 400 },
    );
  });
});

describe('fuzz: ftp core', () => {
  const client = { host: '198.18.1.2', port: 50000, family: 4 as const };
  const server = { host: '198.18.2.2', port: 21, family: 4 as const };
  const step = fc.oneof(
    fc.record({ from: fc.constantFrom('client', 'server'), data: input }),
    fc.record({
      from: fc.constant('event'),
      kind: fc.constantFrom(
        'listening',
        'accepted',
        'connected',
        'end',
        'closed',
        'timer',
        'drain',
        'connectFailed',
      ),
      n: fc.nat({ max: 3 }),
    }),
  );

  it('never throws, whatever the peers send and in whatever order events come', () => {
    fc.assert(
      fc.property(
        fc.constantFrom('permissive', 'read_only', 'anon_read_only'),
        fc.constantFrom('keep', 'passive', 'active'),
        fc.array(step, { maxLength: 40 }),
        (set, mode, steps) => {
          const core = bindCore(ftpModule, { policy_set: set, data_mode: mode })({
            sessionId: 'fuzz',
            service: 'ftp',
            clientZone: null,
            inband: false,
          });
          let now = 0;
          const ids = new Set<string>(['client', 'server']);
          const listeners = new Set<string>();
          let finished = false;
          const feed = (e: ProxyEvent) => {
            const out = core.handle(e);
            if (finished) assert.deepEqual(out, [], 'nothing after done');
            for (const c of out) {
              // The driver refuses commands on streams and listeners it does not know (src/net/driver.ts).
              if (c.type === 'connect') {
                assert.ok(!ids.has(c.stream) || c.stream === 'server', `connect reuses ${c.stream}`);
                ids.add(c.stream);
              }
              if (c.type === 'listen') {
                assert.ok(!listeners.has(c.listener), `listen reuses ${c.listener}`);
                listeners.add(c.listener);
              }
              if (c.type === 'unlisten')
                assert.ok(listeners.has(c.listener), `unlisten of unknown ${c.listener}`);
              if (['send', 'shutdown', 'close', 'pause', 'resume'].includes(c.type)) {
                const id = (c as { stream: string }).stream;
                assert.ok(ids.has(id), `${c.type} on unknown stream ${id}`);
              }
              if (c.type === 'done') finished = true;
            }
          };
          feed({ type: 'start', now, client, clientLocal: server });
          feed({
            type: 'connected',
            now,
            stream: 'server',
            local: { ...server, host: '198.18.2.1', port: 40000 },
            remote: server,
          });
          for (const s of steps) {
            now += 10;
            if (s.from === 'client' || s.from === 'server') {
              feed({ type: 'data', now, stream: s.from, data: (s as { data: Uint8Array }).data });
              continue;
            }
            const { kind, n } = s as { kind: string; n: number };
            const stream = [...ids][n % ids.size]!;
            const listener = [...listeners][n % Math.max(1, listeners.size)] ?? 'none';
            const a = { host: n % 2 ? client.host : server.host, port: 20 + n, family: 4 as const };
            switch (kind) {
              case 'listening':
                feed({ type: 'listening', now, listener, local: { ...a, port: 40000 + n } });
                break;
              case 'accepted': {
                const id = `${listener}.${n}`;
                ids.add(id);
                feed({ type: 'accepted', now, listener, stream: id, local: a, remote: a });
                break;
              }
              case 'connected':
                feed({ type: 'connected', now, stream, local: a, remote: a });
                break;
              case 'connectFailed':
                feed({ type: 'connectFailed', now, stream, error: 'ECONNREFUSED' });
                break;
              case 'end':
              case 'closed':
              case 'drain':
                feed({ type: kind, now, stream } as ProxyEvent);
                break;
              case 'timer':
                feed({ type: 'timer', now, timer: n % 2 ? 'idle' : `data${n}` });
                break;
            }
          }
        },
      ),
      { numRuns: 300 },
    );
  });
});
