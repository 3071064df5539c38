// Many concurrent plug sessions with clients and servers that misbehave at random moments (resets
// before, during and after the transfer; half-closes; immediate closes). Every accepted session must
// end with exactly one summary, and when all have ended the driver must have left nothing behind:
// no socket and no timer of any session is still alive.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { test } from 'node:test';
import fc from 'fast-check';
import { closeFd, listenFd } from '../../../src/native/index.ts';
import { acceptNative } from '../../../src/net/accept.ts';
import { openListener, runSession, ServiceUpstream, type SessionSummary } from '../../../src/net/index.ts';
import { runNativePlug } from '../../../src/net/native-plug.ts';
import { nativeRelayAvailable, nativeRelaysActive } from '../../../src/net/relay.ts';
import { bindCore } from '../../../src/proxy/index.ts';
import { plugModule } from '../../../src/proxy/plug/index.ts';
import { boundPort, proxyService, socketFds, tcpServer } from './helpers.ts';

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

/** Random client behaviours (10-40 clients at once) and server behaviours (taken in turn). */
const CLIENT_ACTS = fc.array(
  fc.constantFrom<ClientAct>('normal', 'resetEarly', 'resetMid', 'halfThenReset', 'closeNow'),
  { minLength: 10, maxLength: 40 },
);
const SERVER_ACTS = fc.array(fc.constantFrom<ServerAct>('echo', 'resetOnData', 'closeAtOnce'), {
  minLength: 1,
  maxLength: 8,
});

/** A server that treats each connection as the next of `acts` says (echo when empty). */
function misbehavingServer(acts: ServerAct[]) {
  let conn = 0;
  return tcpServer((s) => {
    const act = acts[conn++ % Math.max(1, acts.length)] ?? 'echo';
    s.on('error', () => {});
    if (act === 'closeAtOnce')
      s.resume().end(); // reads (and drops) what comes, answers nothing
    else if (act === 'resetOnData') {
      s.once('data', () => s.resetAndDestroy());
      s.on('end', () => s.end()); // a client that sends nothing gets a clean close
    } else s.pipe(s);
  });
}

/** Run the clients at once; every session the relay accepted meanwhile ends, exactly once: their
 * summaries. */
async function everyOneEnds(
  port: number,
  acts: ClientAct[],
  summaries: SessionSummary[],
  accepted: () => number,
): Promise<SessionSummary[]> {
  const before = summaries.length;
  const acceptedBefore = accepted();
  await Promise.all(acts.map((a) => client(port, a, randomBytes(200_000))));
  await until(() => summaries.length - before === accepted() - acceptedBefore, 'a summary for every session');
  const ids = summaries.map((s) => s.id);
  assert.equal(new Set(ids).size, ids.length, 'one summary per session');
  return summaries.slice(before);
}

test('random misbehaviour: one summary per session, nothing left behind', async () => {
  const serverActs: ServerAct[] = [];
  const srv = await misbehavingServer(serverActs);
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
      fc.asyncProperty(CLIENT_ACTS, SERVER_ACTS, async (clientActs, sActs) => {
        serverActs.splice(0, serverActs.length, ...sActs);
        for (const s of await everyOneEnds(l.local.port, clientActs, summaries, () => accepted)) {
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
      }),
      { numRuns: 6 },
    );
  } finally {
    await l.close();
    await srv.close();
  }
});

test('random misbehaviour, native plug sessions (accept, connect, relay in the addon): one summary each, nothing left', {
  skip: nativeRelayAvailable() ? false : 'the native addon is not built',
  timeout: 120_000,
}, async () => {
  const serverActs: ServerAct[] = [];
  const srv = await misbehavingServer(serverActs);
  const up = new ServiceUpstream(proxyService([{ host: '127.0.0.1', port: srv.port }]), {
    transparentUpstream: false,
  });
  // some sessions go to a port nobody listens on: the connect fails, the client gets a reset
  const gone = await tcpServer(() => {});
  await gone.close();
  const dead = new ServiceUpstream(proxyService([{ host: '127.0.0.1', port: gone.port }]), {
    transparentUpstream: false,
  });
  const refuse: boolean[] = [];
  const summaries: SessionSummary[] = [];
  let accepted = 0;
  const fd = listenFd('127.0.0.1', 0, { transparent: false });
  const port = boundPort(fd);
  const acceptor = acceptNative(
    fd,
    (c) => {
      accepted++;
      runNativePlug({
        id: `svc/stress:${accepted}`,
        service: 'stress',
        conn: c,
        upstream: refuse[accepted % Math.max(1, refuse.length)] ? dead : up,
        options: { timeoutMs: 60_000, copyToServer: true, copyToClient: true },
        admitted: true,
        clientZone: null,
        ruleId: null,
        onEnd: (s) => summaries.push(s),
      });
    },
    () => {},
  );
  closeFd(fd);
  const baseline = socketFds();
  try {
    await fc.assert(
      fc.asyncProperty(
        CLIENT_ACTS,
        SERVER_ACTS,
        fc.array(fc.boolean(), { minLength: 1, maxLength: 8 }),
        async (clientActs, sActs, refusals) => {
          serverActs.splice(0, serverActs.length, ...sActs);
          refuse.splice(0, refuse.length, ...refusals);
          for (const s of await everyOneEnds(port, clientActs, summaries, () => accepted)) {
            assert.ok(
              ['ACCEPTED', 'DENIED_BY_CONNECTION_FAIL'].includes(s.verdict),
              `${s.id}: ${s.verdict} ${s.info}`,
            );
            assert.ok(s.bytes.toServer <= s.bytes.fromClient && s.bytes.toClient <= s.bytes.fromServer);
          }
          // no relay and no socket of a finished session is left (the server's own sockets close
          // with their clients)
          await until(() => nativeRelaysActive() === 0, 'no relay left');
          await until(
            () => socketFds() <= baseline,
            `socket descriptors back to ${baseline} (now ${socketFds()})`,
          );
        },
      ),
      { numRuns: 6 },
    );
  } finally {
    acceptor.stop();
    await srv.close();
  }
});
