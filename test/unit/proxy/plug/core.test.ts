// Scripted event/command tests of the plug core: no sockets, no timers.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Addr, ProxyCommand, ProxyEvent } from '../../../../src/proxy/core/types.ts';
import { createPlugCore, parsePlugOptions } from '../../../../src/proxy/plug/index.ts';

const client: Addr = { host: '198.18.1.2', port: 40000, family: 4 };
const clientLocal: Addr = { host: '198.18.2.2', port: 80, family: 4 };
const serverLocal: Addr = { host: '198.18.2.1', port: 50000, family: 4 };
const enc = (s: string) => new TextEncoder().encode(s);

function core(options: Record<string, unknown> = {}) {
  const c = createPlugCore({ sessionId: 'svc/t:1', service: 't', options, clientZone: null, inband: false });
  let now = 0;
  const ev = (e: Record<string, unknown>) => {
    now += 1;
    return c.handle({ now, ...e } as ProxyEvent);
  };
  return { c, ev };
}

const types = (cmds: ProxyCommand[]) => cmds.map((c) => ('stream' in c ? `${c.type}:${c.stream}` : c.type));

function started(options: Record<string, unknown> = {}) {
  const t = core(options);
  t.ev({ type: 'start', client, clientLocal });
  t.ev({ type: 'connected', stream: 'server', local: serverLocal, remote: clientLocal });
  return t;
}

test('start pauses the client and connects the server through the router; connected resumes it', () => {
  const { ev } = core();
  const a = ev({ type: 'start', client, clientLocal });
  assert.deepEqual(types(a), ['pause:client', 'connect:server', 'setTimer']);
  const connect = a[1] as Extract<ProxyCommand, { type: 'connect' }>;
  assert.deepEqual(connect.options, {}); // no target: router and chainer decide
  const b = ev({ type: 'connected', stream: 'server', local: serverLocal, remote: clientLocal });
  assert.deepEqual(types(b), ['clearTimer', 'resume:client', 'setTimer']);
});

test('relays both ways; data moves the idle deadline without timer commands', () => {
  const { ev } = started({ timeout: 1000 });
  const a = ev({ type: 'data', stream: 'client', data: enc('GET /') });
  assert.deepEqual(types(a), ['send:server']);
  assert.deepEqual((a[0] as { data: Uint8Array }).data, enc('GET /'));
  const b = ev({ type: 'data', stream: 'server', data: enc('200') });
  assert.deepEqual(types(b), ['send:client']);
});

test('idle timer: re-armed for the rest when there was activity, fires after a quiet timeout', () => {
  const c = createPlugCore({
    sessionId: 's',
    service: 't',
    options: { timeout: 1000 },
    clientZone: null,
    inband: false,
  });
  c.handle({ type: 'start', now: 0, client, clientLocal });
  const armed = c.handle({
    type: 'connected',
    now: 100,
    stream: 'server',
    local: serverLocal,
    remote: clientLocal,
  });
  assert.deepEqual(armed.at(-1), { type: 'setTimer', timer: 'idle', ms: 1000 });
  c.handle({ type: 'data', now: 700, stream: 'client', data: enc('x') });
  // Fires at 1100: only 400 ms since the last data, so 600 ms more.
  assert.deepEqual(c.handle({ type: 'timer', now: 1100, timer: 'idle' }), [
    { type: 'setTimer', timer: 'idle', ms: 600 },
  ]);
  const end = c.handle({ type: 'timer', now: 1700, timer: 'idle' });
  assert.deepEqual(end.at(-1), { type: 'done', verdict: 'ACCEPTED', info: 'idle timeout (1000 ms)' });
});

test('half-close: client FIN becomes a shutdown toward the server, the reply still flows, then done', () => {
  const { ev } = started();
  assert.deepEqual(types(ev({ type: 'end', stream: 'client' })), ['shutdown:server']);
  assert.deepEqual(types(ev({ type: 'data', stream: 'server', data: enc('reply') })), ['send:client']);
  const end = ev({ type: 'end', stream: 'server' });
  assert.deepEqual(types(end), [
    'shutdown:client',
    'close:client',
    'close:server',
    'clearTimer',
    'clearTimer',
    'account',
    'done',
  ]);
  assert.deepEqual(end.at(-1), { type: 'done', verdict: 'ACCEPTED' });
  assert.deepEqual((end.at(-2) as { fields: unknown }).fields, {
    plug_bytes_from_client: 0,
    plug_bytes_to_server: 0,
    plug_bytes_from_server: 5,
    plug_bytes_to_client: 5,
  });
  assert.deepEqual(ev({ type: 'data', stream: 'server', data: enc('late') }), []); // after done: nothing
});

test('half-close the other way: server FIN first, client keeps sending', () => {
  const { ev } = started();
  assert.deepEqual(types(ev({ type: 'end', stream: 'server' })), ['shutdown:client']);
  assert.deepEqual(types(ev({ type: 'data', stream: 'client', data: enc('more') })), ['send:server']);
  assert.equal(ev({ type: 'end', stream: 'client' }).at(-1)?.type, 'done');
});

test('copy_to_server / copy_to_client false drop that direction', () => {
  const { ev } = started({ copy_to_server: false });
  assert.deepEqual(types(ev({ type: 'data', stream: 'client', data: enc('x') })), []);
  assert.deepEqual(types(ev({ type: 'data', stream: 'server', data: enc('y') })), ['send:client']);
  const t2 = started({ copy_to_client: false });
  assert.deepEqual(types(t2.ev({ type: 'data', stream: 'server', data: enc('y') })), []);
});

test('connect failure resets the client and ends DENIED_BY_CONNECTION_FAIL', () => {
  const { ev } = core();
  ev({ type: 'start', client, clientLocal });
  const r = ev({ type: 'connectFailed', stream: 'server', error: 'connect ECONNREFUSED' });
  assert.deepEqual(
    r.find((c) => c.type === 'close'),
    { type: 'close', stream: 'client', reset: true },
  );
  assert.deepEqual(r.at(-1), {
    type: 'done',
    verdict: 'DENIED_BY_CONNECTION_FAIL',
    info: 'connect ECONNREFUSED',
  });
});

test('connect timer ends the session when the server never answers', () => {
  const { ev } = core({ timeout: 5000 });
  ev({ type: 'start', client, clientLocal });
  const r = ev({ type: 'timer', timer: 'connect' });
  assert.deepEqual(types(r).slice(0, 2), ['close:client', 'close:server']);
  assert.equal((r.at(-1) as { verdict: string }).verdict, 'DENIED_BY_CONNECTION_FAIL');
});

test('idle timeout closes both sides and ends ACCEPTED', () => {
  const { ev } = started({ timeout: 1 });
  ev({ type: 'data', stream: 'client', data: enc('x') });
  const r = ev({ type: 'timer', timer: 'idle' }); // the event clock has moved past the timeout
  assert.ok(types(r).includes('close:client') && types(r).includes('close:server'));
  assert.deepEqual(r.at(-1), { type: 'done', verdict: 'ACCEPTED', info: 'idle timeout (1 ms)' });
});

test('a reset on one side closes the other and ends the session', () => {
  const { ev } = started();
  const r = ev({ type: 'closed', stream: 'server', error: 'read ECONNRESET' });
  assert.deepEqual(types(r).slice(0, 1), ['close:client']);
  assert.deepEqual(r.at(-1), { type: 'done', verdict: 'ACCEPTED', info: 'server: read ECONNRESET' });
});

test('the client leaving while the server connects gives up the connect', () => {
  const { ev } = core();
  ev({ type: 'start', client, clientLocal });
  const r = ev({ type: 'closed', stream: 'client' });
  assert.deepEqual(types(r).slice(0, 1), ['close:server']);
  assert.equal(r.at(-1)?.type, 'done');
});

test('abort (daemon stop) closes both and finishes', () => {
  const { ev } = started();
  const r = ev({ type: 'abort', reason: 'stop' });
  assert.deepEqual(r.at(-1), { type: 'done', verdict: 'ACCEPTED', info: 'aborted: stop' });
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
