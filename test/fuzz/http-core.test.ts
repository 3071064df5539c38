// Fuzzing the HTTP core with random event sequences (client and server bytes, split anywhere, ends,
// closes, connect results, timers): it never throws (a throw is a bug of ours), timers are positive,
// there is at most one 'done', and nothing is emitted after it.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import type { ProxyCommand, ProxyEvent } from '../../src/proxy/core/types.ts';
import { httpModule } from '../../src/proxy/http/index.ts';
import { bindCore } from '../../src/proxy/index.ts';
import { messagesArb } from './http-gen.ts';

const ADDR = { host: '198.18.2.20', port: 80, family: 4 as const };

const eventArb = fc.oneof(
  { weight: 6, arbitrary: messagesArb('request').map((d) => ({ k: 'client' as const, d })) },
  { weight: 6, arbitrary: messagesArb('response').map((d) => ({ k: 'server' as const, d })) },
  {
    weight: 1,
    arbitrary: fc
      .constantFrom(
        'end-client',
        'end-server',
        'closed-server',
        'closed-client',
        'connected',
        'connectFailed',
      )
      .map((k) => ({ k, d: Buffer.alloc(0) })),
  },
  {
    weight: 1,
    arbitrary: fc
      .constantFrom('idle', 'request', 'response')
      .map((t) => ({ k: `timer-${t}`, d: Buffer.alloc(0) })),
  },
);

function toEvent(e: { k: string; d: Buffer }, now: number): ProxyEvent {
  switch (e.k) {
    case 'client':
    case 'server':
      return { type: 'data', now, stream: e.k, data: e.d };
    case 'end-client':
      return { type: 'end', now, stream: 'client' };
    case 'end-server':
      return { type: 'end', now, stream: 'server' };
    case 'closed-server':
      return { type: 'closed', now, stream: 'server' };
    case 'closed-client':
      return { type: 'closed', now, stream: 'client' };
    case 'connected':
      return { type: 'connected', now, stream: 'server', local: ADDR, remote: ADDR };
    case 'connectFailed':
      return { type: 'connectFailed', now, stream: 'server', error: 'ECONNREFUSED' };
    default:
      return { type: 'timer', now, timer: e.k.slice(6) };
  }
}

test('http core: random event sequences never throw and nothing follows done', () => {
  fc.assert(
    fc.property(
      fc.array(eventArb, { maxLength: 25 }),
      fc.constantFrom<Record<string, unknown>>(
        {},
        { transparent_mode: false },
        { permit_upgrade: true, request: { '*': 'accept' } },
        { max_body_length: 10 },
      ),
      (events, options) => {
        const core = bindCore(
          httpModule,
          options,
        )({
          sessionId: 's',
          service: 'h',

          clientZone: null,
          inband: true,
          clientLocal: ADDR,
        });
        let now = 0;
        let done = false;
        const all: ProxyCommand[] = [...core.handle({ type: 'start', now, client: ADDR, clientLocal: ADDR })];
        for (const e of events) {
          now += 10;
          const cmds = core.handle(toEvent(e, now));
          if (done) assert.deepEqual(cmds, [], 'nothing after done');
          for (const c of cmds) {
            if (c.type === 'done') done = true;
            if (c.type === 'setTimer') assert.ok(c.ms > 0);
          }
          all.push(...cmds);
        }
        assert.ok(all.filter((c) => c.type === 'done').length <= 1);
      },
    ),
    { numRuns: 1500 },
  );
});
