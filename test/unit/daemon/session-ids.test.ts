import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { IdBlockAllocator, SessionIdSource, sessionId } from '../../../src/daemon/session-ids.ts';

test('session id form is svc/<service>:<n>', () => {
  assert.equal(sessionId('web', 12), 'svc/web:12');
});

/** Several workers taking ids, the primary answering block requests asynchronously (in random order). */
test('ids are unique per service across workers and count from 1', async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.array(fc.tuple(fc.nat(2), fc.constantFrom('a', 'b')), { minLength: 1, maxLength: 400 }),
      fc.integer({ min: 1, max: 8 }),
      async (takes, blockSize) => {
        const primary = new IdBlockAllocator(blockSize);
        const queue: (() => void)[] = [];
        const workers = [0, 1, 2].map((): SessionIdSource => {
          const src: SessionIdSource = new SessionIdSource(
            (svc) => queue.push(() => src.addBlock(primary.allocate(svc))),
            Math.min(2, blockSize),
          );
          return src;
        });
        const pending: Promise<[string, number]>[] = [];
        for (const [w, svc] of takes) {
          pending.push(workers[w]!.next(svc).then((n) => [svc, n]));
          // deliver some block answers late: exercise the waiting path
          if (queue.length > 0 && takes.length % 3 !== 0) queue.shift()!();
        }
        while (queue.length > 0) {
          queue.shift()!();
          await Promise.resolve();
        }
        const got = await Promise.all(pending);
        const seen = new Set(got.map(([s, n]) => `${s}:${n}`));
        assert.equal(seen.size, got.length);
        for (const [, n] of got) assert.ok(n >= 1);
      },
    ),
    { numRuns: 200 },
  );
});

test('a single worker gets 1, 2, 3 ... in order and asks for the next block early', () => {
  const primary = new IdBlockAllocator(4);
  const asked: string[] = [];
  const src = new SessionIdSource((s) => asked.push(s), 1);
  src.addBlock(primary.allocate('x'));
  assert.deepEqual([src.tryTake('x'), src.tryTake('x'), src.tryTake('x')], [1, 2, 3]);
  assert.deepEqual(asked, ['x']); // one left: refill requested once
  src.addBlock(primary.allocate('x'));
  assert.deepEqual([src.tryTake('x'), src.tryTake('x')], [4, 5]);
  assert.equal(src.tryTake('y'), null);
});
