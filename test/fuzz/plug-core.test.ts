// Fuzzed event orders for the plug core (fast-check). A simulated driver delivers only events a real
// driver could deliver at that point (no data from a paused or finished stream, 'connected' only
// after a connect, timers only when armed) and checks, for every event order:
//   - the core never sends to (or shuts down) a stream that is closed or that it already shut down;
//   - when copying, each chunk read from one side is sent to the other side unchanged, exactly once,
//     whenever that side can still be written: bytes out = bytes in per direction;
//   - the session always ends with exactly one `done`, and nothing comes after it.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import type { ProxyCommand, ProxyEvent } from '../../src/proxy/core/types.ts';
import { bindCore } from '../../src/proxy/index.ts';
import { plugModule } from '../../src/proxy/plug/index.ts';

type Side = 'client' | 'server';
type Action =
  | { k: 'data'; side: Side; len: number }
  | { k: 'end'; side: Side }
  | { k: 'closed'; side: Side; error: boolean }
  | { k: 'connectOk' }
  | { k: 'connectFail' }
  | { k: 'timer'; timer: 'idle' | 'connect' }
  | { k: 'drain'; side: Side }
  | { k: 'abort' };

const side = fc.constantFrom<Side>('client', 'server');
const action: fc.Arbitrary<Action> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.record({ k: fc.constant('data' as const), side, len: fc.integer({ min: 0, max: 40 }) }),
  },
  { weight: 2, arbitrary: fc.record({ k: fc.constant('end' as const), side }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('closed' as const), side, error: fc.boolean() }) },
  { weight: 2, arbitrary: fc.constant({ k: 'connectOk' as const }) },
  { weight: 1, arbitrary: fc.constant({ k: 'connectFail' as const }) },
  {
    weight: 1,
    arbitrary: fc.record({
      k: fc.constant('timer' as const),
      timer: fc.constantFrom('idle' as const, 'connect' as const),
    }),
  },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('drain' as const), side }) },
  { weight: 1, arbitrary: fc.constant({ k: 'abort' as const }) },
);

interface StreamSim {
  exists: boolean;
  connecting: boolean;
  closed: boolean; // closed by either side: nothing may be sent any more
  closedEventSent: boolean;
  shutdownByCore: boolean;
  peerFin: boolean;
  paused: boolean;
  bytesIn: number;
  bytesOut: number;
}

function runScenario(
  options: { copy_to_server?: boolean; copy_to_client?: boolean },
  actions: Action[],
): void {
  const core = bindCore(
    plugModule,
    options,
  )({ sessionId: 's', service: 'p', clientZone: null, inband: false });
  const st: Record<Side, StreamSim> = {
    client: {
      exists: true,
      connecting: false,
      closed: false,
      closedEventSent: false,
      shutdownByCore: false,
      peerFin: false,
      paused: false,
      bytesIn: 0,
      bytesOut: 0,
    },
    server: {
      exists: false,
      connecting: false,
      closed: false,
      closedEventSent: false,
      shutdownByCore: false,
      peerFin: false,
      paused: false,
      bytesIn: 0,
      bytesOut: 0,
    },
  };
  const timers = new Set<string>();
  let dones = 0;
  let now = 0;
  let seq = 0;
  const pendingClosed: Side[] = [];
  const copy = { client: options.copy_to_server !== false, server: options.copy_to_client !== false };
  const other = (s: Side): Side => (s === 'client' ? 'server' : 'client');

  const deliver = (ev: ProxyEvent): void => {
    const cmds = core.handle(ev);
    if (dones > 0) assert.deepEqual(cmds, [], `commands after done: ${JSON.stringify(cmds)}`);
    // Per-chunk copy invariant, checked against the state before the commands run.
    if (ev.type === 'data') {
      const to = other(ev.stream as Side);
      const sends = cmds.filter((c) => c.type === 'send');
      const writable = st[to].exists && !st[to].connecting && !st[to].closed && !st[to].shutdownByCore;
      if (copy[ev.stream as Side] && writable && ev.data.length > 0) {
        assert.equal(sends.length, 1, 'a chunk must be sent exactly once');
        assert.deepEqual((sends[0] as { data: Uint8Array }).data, ev.data);
      } else assert.equal(sends.length, 0, 'nothing may be sent for this chunk');
    }
    for (const c of cmds) apply(c);
  };

  const apply = (c: ProxyCommand): void => {
    switch (c.type) {
      case 'send':
      case 'shutdown': {
        const s = st[c.stream as Side];
        assert.ok(s?.exists && !s.connecting, `${c.type} to ${c.stream}, which is not open`);
        assert.ok(!s.closed, `${c.type} to closed stream ${c.stream}`);
        assert.ok(!s.shutdownByCore, `${c.type} to ${c.stream} after its shutdown`);
        if (c.type === 'send') s.bytesOut += c.data.length;
        else s.shutdownByCore = true;
        break;
      }
      case 'close': {
        const s = st[c.stream as Side];
        assert.ok(s?.exists, `close of unknown stream ${c.stream}`);
        if (!s.closed) {
          s.closed = true;
          s.connecting = false;
          pendingClosed.push(c.stream as Side); // the driver reports the close
        }
        break;
      }
      case 'pause':
      case 'resume':
        st[c.stream as Side].paused = c.type === 'pause';
        break;
      case 'connect':
        assert.equal(c.stream, 'server');
        assert.ok(!st.server.exists, 'connect twice');
        st.server.exists = true;
        st.server.connecting = true;
        break;
      case 'setTimer':
        timers.add(c.timer);
        break;
      case 'clearTimer':
        timers.delete(c.timer);
        break;
      case 'done':
        dones++;
        break;
      case 'listen':
      case 'unlisten':
        assert.fail('plug never listens');
        break;
      default:
        break;
    }
  };

  const flushClosed = () => {
    while (pendingClosed.length > 0) {
      const s = pendingClosed.shift()!;
      if (st[s].closedEventSent) continue;
      st[s].closedEventSent = true;
      deliver({ type: 'closed', now: ++now, stream: s });
    }
  };

  deliver({
    type: 'start',
    now: ++now,
    client: { host: '198.18.1.2', port: 1, family: 4 },
    clientLocal: { host: '198.18.2.2', port: 80, family: 4 },
  });
  for (const a of actions) {
    flushClosed();
    if (dones > 0) break;
    const t = ++now;
    switch (a.k) {
      case 'data':
      case 'end': {
        const s = st[a.side];
        if (!s.exists || s.connecting || s.closed || s.peerFin || s.paused) break;
        if (a.k === 'end') {
          s.peerFin = true;
          deliver({ type: 'end', now: t, stream: a.side });
        } else {
          const data = new Uint8Array(a.len).map(() => seq++ & 0xff);
          s.bytesIn += data.length;
          deliver({ type: 'data', now: t, stream: a.side, data });
        }
        break;
      }
      case 'closed': {
        const s = st[a.side];
        if (!s.exists || s.connecting || s.closedEventSent) break;
        s.closed = true;
        s.closedEventSent = true;
        const ev: ProxyEvent = { type: 'closed', now: t, stream: a.side };
        if (a.error) ev.error = 'read ECONNRESET';
        deliver(ev);
        break;
      }
      case 'connectOk':
      case 'connectFail':
        if (!st.server.connecting) break;
        st.server.connecting = false;
        if (a.k === 'connectOk') {
          deliver({
            type: 'connected',
            now: t,
            stream: 'server',
            local: { host: '198.18.2.1', port: 2, family: 4 },
            remote: { host: '198.18.2.2', port: 80, family: 4 },
          });
        } else {
          st.server.closed = true;
          st.server.closedEventSent = true; // reported as connectFailed, never as closed
          deliver({ type: 'connectFailed', now: t, stream: 'server', error: 'connect ECONNREFUSED' });
        }
        break;
      case 'timer':
        if (!timers.has(a.timer)) break;
        timers.delete(a.timer);
        deliver({ type: 'timer', now: t, timer: a.timer });
        break;
      case 'drain':
        if (!st[a.side].exists || st[a.side].connecting || st[a.side].closed) break;
        deliver({ type: 'drain', now: t, stream: a.side });
        break;
      case 'abort':
        deliver({ type: 'abort', now: t, reason: 'fuzz' });
        break;
    }
  }
  // The peers go away: every open stream closes, a pending connect fails, armed timers fire.
  for (let i = 0; i < 20 && dones === 0; i++) {
    flushClosed();
    if (dones > 0) break;
    const open = (['client', 'server'] as const).find(
      (s) => st[s].exists && !st[s].connecting && !st[s].closedEventSent,
    );
    if (open) {
      st[open].closed = true;
      st[open].closedEventSent = true;
      deliver({ type: 'closed', now: ++now, stream: open });
    } else if (st.server.connecting) {
      st.server.connecting = false;
      st.server.closed = st.server.closedEventSent = true;
      deliver({ type: 'connectFailed', now: ++now, stream: 'server', error: 'gone' });
    } else if (timers.size > 0) {
      const t = [...timers][0]!;
      timers.delete(t);
      now += 1e9; // long after any deadline
      deliver({ type: 'timer', now, timer: t });
    } else break;
  }
  flushClosed();
  assert.equal(dones, 1, 'exactly one done');
  // Whole-session byte balance when both directions copy and no side was cut short.
  if (copy.client && copy.server && !st.server.closed && !st.client.closed) {
    assert.equal(st.server.bytesOut, st.client.bytesIn);
    assert.equal(st.client.bytesOut, st.server.bytesIn);
  }
}

// Small idle timeouts (the event clock advances 1 ms per event) so idle expiry and re-arming both happen.
const opts = fc.record({
  copy_to_server: fc.boolean(),
  copy_to_client: fc.boolean(),
  timeout: fc.integer({ min: 1, max: 30 }),
});

test('plug core: fuzzed event orders keep the relay invariants', () => {
  fc.assert(
    fc.property(opts, fc.array(action, { maxLength: 60 }), (o, actions) => {
      runScenario(o, actions);
    }),
    { numRuns: 3000 },
  );
});

test('plug core: a clean half-closed session copies every byte both ways', () => {
  fc.assert(
    fc.property(
      fc.array(fc.record({ side, len: fc.integer({ min: 1, max: 64 }) }), { maxLength: 40 }),
      (chunks) => {
        const actions: Action[] = [{ k: 'connectOk' }];
        for (const c of chunks) actions.push({ k: 'data', side: c.side, len: c.len });
        actions.push({ k: 'end', side: 'client' }, { k: 'end', side: 'server' });
        runScenario({}, actions);
      },
    ),
    { numRuns: 500 },
  );
});
