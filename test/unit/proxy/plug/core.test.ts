// Scripted event/command tests of the plug core on the playbook harness (../playbook.ts): no sockets,
// no timers.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Addr } from '../../../../src/proxy/core/types.ts';
import { bindCore } from '../../../../src/proxy/index.ts';
import { parsePlugOptions, plugModule } from '../../../../src/proxy/plug/index.ts';
import { Playbook } from '../playbook.ts';

const client: Addr = { host: '198.18.1.2', port: 40000, family: 4 };
const clientLocal: Addr = { host: '198.18.2.2', port: 80, family: 4 };
const serverLocal: Addr = { host: '198.18.2.1', port: 50000, family: 4 };
const enc = (s: string) => new TextEncoder().encode(s);

type EventIn = Parameters<Playbook['feed']>[0];

/** A plug session; every event is 1 ms after the one before. */
function core(options: Record<string, unknown> = {}) {
  const p = new Playbook(
    bindCore(plugModule, options)({ sessionId: 'svc/t:1', service: 't', clientZone: null, inband: false }),
    { tick: 1 },
  );
  return { p, ev: (e: EventIn) => p.feed(e) };
}

function started(options: Record<string, unknown> = {}) {
  const t = core(options);
  t.ev({ type: 'start', client, clientLocal });
  t.ev({ type: 'connected', stream: 'server', local: serverLocal, remote: clientLocal });
  return t;
}

test('start pauses the client and connects the server through the router; connected resumes it', () => {
  const { p } = core({ timeout: 1000 });
  p.on({ type: 'start', client, clientLocal })
    // no target: router and chainer decide
    .out(
      { type: 'pause', stream: 'client' },
      { type: 'connect', stream: 'server', options: {} },
      { type: 'setTimer', timer: 'connect', ms: 1000 },
    )
    .on({ type: 'connected', stream: 'server', local: serverLocal, remote: clientLocal })
    .out(
      { type: 'clearTimer', timer: 'connect' },
      { type: 'resume', stream: 'client' },
      { type: 'setTimer', timer: 'idle', ms: 1000 },
      { type: 'relay', a: 'client', b: 'server', idleMs: 1000 },
    )
    .check();
});

test('relays both ways; data moves the idle deadline without timer commands', () => {
  const { ev } = started({ timeout: 1000 });
  const a = ev({ type: 'data', stream: 'client', data: enc('GET /') });
  assert.deepEqual(a.types(), ['send:server']);
  assert.deepEqual((a.commands[0] as { data: Uint8Array }).data, enc('GET /'));
  const b = ev({ type: 'data', stream: 'server', data: enc('200') });
  assert.deepEqual(b.types(), ['send:client']);
});

test('idle timer: re-armed for the rest when there was activity, fires after a quiet timeout', () => {
  const { p } = core({ timeout: 1000 });
  p.on({ type: 'start', now: 0, client, clientLocal })
    .out(
      { type: 'pause', stream: 'client' },
      { type: 'connect', stream: 'server', options: {} },
      { type: 'setTimer', timer: 'connect', ms: 1000 },
    )
    .on({ type: 'connected', now: 100, stream: 'server', local: serverLocal, remote: clientLocal })
    .out(
      { type: 'clearTimer', timer: 'connect' },
      { type: 'resume', stream: 'client' },
      { type: 'setTimer', timer: 'idle', ms: 1000 },
      { type: 'relay', a: 'client', b: 'server', idleMs: 1000 },
    )
    .on({ type: 'data', now: 700, stream: 'client', data: enc('x') })
    .out({ type: 'send', stream: 'server', data: 'x' })
    // Fires at 1100: only 400 ms since the last data, so 600 ms more.
    .on({ type: 'timer', now: 1100, timer: 'idle' })
    .out({ type: 'setTimer', timer: 'idle', ms: 600 })
    .on({ type: 'timer', now: 1700, timer: 'idle' })
    .out(
      {
        type: 'log',
        category: 'plug.session',
        level: 'info',
        msg: 'Idle timeout, closing the session',
        fields: { timeout_ms: 1000 },
      },
      { type: 'close', stream: 'client' },
      { type: 'close', stream: 'server' },
      { type: 'clearTimer', timer: 'idle' },
      { type: 'clearTimer', timer: 'connect' },
      {
        type: 'account',
        fields: {
          plug_bytes_from_client: 1,
          plug_bytes_to_server: 1,
          plug_bytes_from_server: 0,
          plug_bytes_to_client: 0,
        },
      },
      { type: 'done', verdict: 'ACCEPTED', info: 'idle timeout (1000 ms)' },
    )
    .check();
});

test('half-close: client FIN becomes a shutdown toward the server, the reply still flows, then done', () => {
  const { ev } = started();
  assert.deepEqual(ev({ type: 'end', stream: 'client' }).types(), ['shutdown:server']);
  assert.deepEqual(ev({ type: 'data', stream: 'server', data: enc('reply') }).types(), ['send:client']);
  const end = ev({ type: 'end', stream: 'server' });
  assert.deepEqual(end.types(), [
    'shutdown:client',
    'close:client',
    'close:server',
    'clearTimer',
    'clearTimer',
    'account',
    'done',
  ]);
  assert.deepEqual(end.commands.at(-1), { type: 'done', verdict: 'ACCEPTED' });
  assert.deepEqual((end.commands.at(-2) as { fields: unknown }).fields, {
    plug_bytes_from_client: 0,
    plug_bytes_to_server: 0,
    plug_bytes_from_server: 5,
    plug_bytes_to_client: 5,
  });
  assert.deepEqual(ev({ type: 'data', stream: 'server', data: enc('late') }).commands, []); // after done: nothing
});

test('half-close the other way: server FIN first, client keeps sending', () => {
  const { ev } = started();
  assert.deepEqual(ev({ type: 'end', stream: 'server' }).types(), ['shutdown:client']);
  assert.deepEqual(ev({ type: 'data', stream: 'client', data: enc('more') }).types(), ['send:server']);
  assert.equal(ev({ type: 'end', stream: 'client' }).commands.at(-1)?.type, 'done');
});

test('copy_to_server / copy_to_client false drop that direction', () => {
  const { ev } = started({ copy_to_server: false });
  assert.deepEqual(ev({ type: 'data', stream: 'client', data: enc('x') }).types(), []);
  assert.deepEqual(ev({ type: 'data', stream: 'server', data: enc('y') }).types(), ['send:client']);
  const t2 = started({ copy_to_client: false });
  assert.deepEqual(t2.ev({ type: 'data', stream: 'server', data: enc('y') }).types(), []);
});

test('connect failure resets the client and ends DENIED_BY_CONNECTION_FAIL', () => {
  const { ev } = core();
  ev({ type: 'start', client, clientLocal });
  const r = ev({ type: 'connectFailed', stream: 'server', error: 'connect ECONNREFUSED' });
  assert.deepEqual(
    r.commands.find((c) => c.type === 'close'),
    { type: 'close', stream: 'client', reset: true },
  );
  assert.deepEqual(r.commands.at(-1), {
    type: 'done',
    verdict: 'DENIED_BY_CONNECTION_FAIL',
    info: 'connect ECONNREFUSED',
  });
});

test('connect timer ends the session when the server never answers', () => {
  const { ev } = core({ timeout: 5000 });
  ev({ type: 'start', client, clientLocal });
  const r = ev({ type: 'timer', timer: 'connect' });
  assert.deepEqual(r.types().slice(0, 2), ['close:client', 'close:server']);
  assert.equal((r.commands.at(-1) as { verdict: string }).verdict, 'DENIED_BY_CONNECTION_FAIL');
});

test('idle timeout closes both sides and ends ACCEPTED', () => {
  const { ev } = started({ timeout: 1 });
  ev({ type: 'data', stream: 'client', data: enc('x') });
  const r = ev({ type: 'timer', timer: 'idle' }); // the event clock has moved past the timeout
  assert.ok(r.types().includes('close:client') && r.types().includes('close:server'));
  assert.deepEqual(r.commands.at(-1), { type: 'done', verdict: 'ACCEPTED', info: 'idle timeout (1 ms)' });
});

test('a reset on one side closes the other and ends the session', () => {
  const { ev } = started();
  const r = ev({ type: 'closed', stream: 'server', error: 'read ECONNRESET' });
  assert.deepEqual(r.types().slice(0, 1), ['close:client']);
  assert.deepEqual(r.commands.at(-1), { type: 'done', verdict: 'ACCEPTED', info: 'server: read ECONNRESET' });
});

test('the client leaving while the server connects gives up the connect', () => {
  const { ev } = core();
  ev({ type: 'start', client, clientLocal });
  const r = ev({ type: 'closed', stream: 'client' });
  assert.deepEqual(r.types().slice(0, 1), ['close:server']);
  assert.equal(r.commands.at(-1)?.type, 'done');
});

test('abort (daemon stop) closes both and finishes', () => {
  const { ev } = started();
  const r = ev({ type: 'abort', reason: 'stop' });
  assert.deepEqual(r.commands.at(-1), { type: 'done', verdict: 'ACCEPTED', info: 'aborted: stop' });
});

test('option parser: defaults, Zorp names, clear errors', () => {
  assert.deepEqual(parsePlugOptions({}), { timeoutMs: 600_000, copyToServer: true, copyToClient: true });
  assert.deepEqual(parsePlugOptions({ timeout: 5, copy_to_client: false }), {
    timeoutMs: 5,
    copyToServer: true,
    copyToClient: false,
  });
  assert.throws(() => parsePlugOptions({ buffer_size: 1 }), /unknown plug option 'buffer_size'/);
  assert.throws(
    () => parsePlugOptions({ timeout: '10' }),
    (e: Error & { code?: string }) => e.code === 'TZ1010',
  );
  assert.throws(
    () => parsePlugOptions({ timeout: 0 }),
    (e: Error & { code?: string }) => e.code === 'TZ1013',
  );
  assert.throws(() => parsePlugOptions({ copy_to_server: 'no' }), /must be true or false/);
});

test('native relay: asked for only when both directions are copied', () => {
  const { ev } = core({ copy_to_client: false });
  ev({ type: 'start', client, clientLocal });
  const r = ev({ type: 'connected', stream: 'server', local: serverLocal, remote: clientLocal });
  assert.deepEqual(r.types(), ['clearTimer', 'resume:client', 'setTimer']);
});

test('native relay: relayStarted stops the JS idle timer; relayEnded carries bytes and the end', () => {
  const { ev } = started({ timeout: 1000 });
  assert.deepEqual(ev({ type: 'relayStarted', a: 'client', b: 'server' }).commands, [
    { type: 'clearTimer', timer: 'idle' },
  ]);
  // A stale idle timer firing after the handover does nothing.
  assert.deepEqual(ev({ type: 'timer', timer: 'idle' }).commands, []);
  const end = ev({
    type: 'relayEnded',
    reason: 'error',
    by: 'server',
    error: 'ECONNRESET',
    bytes: { client: { read: 10, written: 20 }, server: { read: 20, written: 10 } },
  }).commands;
  assert.deepEqual(end.at(-1), { type: 'done', verdict: 'ACCEPTED', info: 'server: ECONNRESET' });
  assert.deepEqual((end.at(-2) as { fields: unknown }).fields, {
    plug_bytes_from_client: 10,
    plug_bytes_to_server: 10,
    plug_bytes_from_server: 20,
    plug_bytes_to_client: 20,
  });
  // Nothing is closed by the core: the relay closed both streams.
  assert.equal(end.filter((c) => c.type === 'close').length, 0);
});

test('native relay: an idle end logs like the JS idle timeout', () => {
  const { ev } = started({ timeout: 1000 });
  ev({ type: 'relayStarted', a: 'client', b: 'server' });
  const end = ev({ type: 'relayEnded', reason: 'idle', by: null, bytes: {} }).commands;
  assert.equal(end[0]?.type, 'log');
  assert.deepEqual(end.at(-1), { type: 'done', verdict: 'ACCEPTED', info: 'idle timeout (1000 ms)' });
});
