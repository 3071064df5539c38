// Many concurrent plug sessions with clients and servers that misbehave at random moments (resets
// before, during and after the transfer; half-closes; immediate closes). Every accepted session must
// end with exactly one summary, and when all have ended the driver must have left nothing behind:
// no socket and no timer of any session is still alive.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { test } from 'node:test';
import fc from 'fast-check';
import { openListener, runSession, ServiceUpstream, type SessionSummary } from '../../../src/net/index.ts';
import { bindCore } from '../../../src/proxy/index.ts';
import { plugModule } from '../../../src/proxy/plug/index.ts';
import { proxyService, tcpServer } from './helpers.ts';

type ClientAct = 'normal' | 'resetEarly' | 'resetMid' | 'halfThenReset' | 'closeNow';
type ServerAct = 'echo' | 'resetOnData' | 'closeAtOnce';

/** Wait for `cond`; give up (fail, not hang) after a generous bound that only a leak or a stuck
 * session exceeds. */
const until = async (cond: () => boolean, what: string) => {
  for (let i = 0; !cond(); i++) {
    if (i > 12_000) assert.fail(`still waiting after 60 s: ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
};

function handles(): Record<string, number> {
  const out: Record<string, number> = {};
  for (const r of process.getActiveResourcesInfo()) out[r] = (out[r] ?? 0) + 1;
  return out;
}

function client(port: number, act: ClientAct, payload: Buffer): Promise<void> {
  return new Promise((resolve) => {
    const c = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
    c.on('error', () => {});
    c.on('close', () => resolve());
    c.on('data', () => {});
    c.on('end', () => c.end());
    c.on('connect', () => {
      switch (act) {
        case 'normal':
          c.end(payload);
          break;
        case 'resetEarly':
          c.resetAndDestroy();
          break;
        case 'resetMid':
          c.write(payload.subarray(0, payload.length >> 1), () => c.resetAndDestroy());
          break;
        case 'halfThenReset':
          c.end(payload, () => setImmediate(() => c.resetAndDestroy()));
          break;
        case 'closeNow':
          c.end();
          break;
      }
    });
  });
}

test('random misbehaviour: one summary per session, nothing left behind', async () => {
  const serverActs: ServerAct[] = [];
  let conn = 0;
  const srv = await tcpServer((s) => {
    const act = serverActs[conn++ % Math.max(1, serverActs.length)] ?? 'echo';
    s.on('error', () => {});
    if (act === 'closeAtOnce')
      s.resume().end(); // reads (and drops) what comes, answers nothing
    else if (act === 'resetOnData') {
      s.once('data', () => s.resetAndDestroy());
      s.on('end', () => s.end()); // a client that sends nothing gets a clean close
    } else s.pipe(s);
  });
  const up = new ServiceUpstream(proxyService([{ host: '127.0.0.1', port: srv.port }]), {
    transparentUpstream: false,
  });
  const summaries: SessionSummary[] = [];
  let accepted = 0;
  const l = await openListener({
    host: '127.0.0.1',
    port: 0,
    transparent: false,
    onConnection: (socket) => {
      accepted++;
      runSession({
        id: `svc/stress:${accepted}`,
        service: 'stress',
        socket,
        createCore: bindCore(plugModule, { timeout: 60_000 }),
        upstream: up,
        onEnd: (s) => summaries.push(s),
      });
    },
  });
  const baseline = handles();
  try {
    await fc.assert(
      fc.asyncProperty(
        fc.array(
          fc.constantFrom<ClientAct>('normal', 'resetEarly', 'resetMid', 'halfThenReset', 'closeNow'),
          {
            minLength: 10,
            maxLength: 40,
          },
        ),
        fc.array(fc.constantFrom<ServerAct>('echo', 'resetOnData', 'closeAtOnce'), {
          minLength: 1,
          maxLength: 8,
        }),
        async (clientActs, sActs) => {
          serverActs.splice(0, serverActs.length, ...sActs);
          const before = summaries.length;
          const acceptedBefore = accepted;
          await Promise.all(clientActs.map((a) => client(l.local.port, a, randomBytes(200_000))));
          // Every session the relay accepted ends, exactly once.
          await until(
            () => summaries.length - before === accepted - acceptedBefore,
            'a summary for every session',
          );
          const ids = summaries.map((s) => s.id);
          assert.equal(new Set(ids).size, ids.length, 'one summary per session');
          for (const s of summaries.slice(before)) {
            // A client reset before the session could read its addresses is an unknown failure; every
            // other session ends as relayed or as a failed server connection.
            const ok =
              s.client === null
                ? s.verdict === 'DENIED_BY_UNKNOWN_FAIL'
                : ['ACCEPTED', 'DENIED_BY_CONNECTION_FAIL'].includes(s.verdict);
            assert.ok(ok, `${s.id}: ${s.verdict} ${s.info}`);
            assert.ok(s.bytes.toServer <= s.bytes.fromClient && s.bytes.toClient <= s.bytes.fromServer);
          }
          // Nothing of the finished sessions is alive: sockets and timers are back to the baseline.
          await until(
            () => {
              const h = handles();
              return (
                (h.TCPSocketWrap ?? 0) <= (baseline.TCPSocketWrap ?? 0) &&
                (h.Timeout ?? 0) <= (baseline.Timeout ?? 0)
              );
            },
            `sockets and timers back to the baseline ${JSON.stringify(baseline)}`,
          );
        },
      ),
      { numRuns: 6 },
    );
  } finally {
    await l.close();
    await srv.close();
  }
});
