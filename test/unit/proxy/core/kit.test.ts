// The core kit: the outbox's command shapes, assertNever, ProtocolError, and describe() on every core.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ProtocolError, TzorpError } from '../../../../src/errors.ts';
import { assertNever, type CoreContext, Outbox, type ProxyEvent } from '../../../../src/proxy/core/index.ts';
import { ftpModule } from '../../../../src/proxy/ftp/index.ts';
import { httpModule } from '../../../../src/proxy/http/index.ts';
import { bindCore } from '../../../../src/proxy/index.ts';
import { plugModule } from '../../../../src/proxy/plug/index.ts';

test('outbox: commands in order, empty sends dropped, take() empties it', () => {
  const o = new Outbox('demo');
  o.send('client', new Uint8Array(0));
  o.send('client', new Uint8Array([1]));
  o.log('demo.info', 'info', 'no fields');
  o.violation('bad', { why: 'x' });
  assert.deepEqual(o.take(), [
    { type: 'send', stream: 'client', data: new Uint8Array([1]) },
    { type: 'log', category: 'demo.info', level: 'info', msg: 'no fields' },
    { type: 'log', category: 'demo.violation', level: 'warn', msg: 'bad', fields: { why: 'x' } },
  ]);
  assert.deepEqual(o.take(), []);
});

test('outbox: log fields are added to every line', () => {
  const o = new Outbox('demo', { session_id: 's1' });
  o.log('demo.info', 'info', 'a');
  o.log('demo.info', 'info', 'b', { k: 1 });
  assert.deepEqual(
    o.take().map((c) => (c.type === 'log' ? c.fields : null)),
    [{ session_id: 's1' }, { k: 1, session_id: 's1' }],
  );
});

test('outbox: end clears timers, closes, accounts, then done; only once', () => {
  const o = new Outbox('demo');
  o.end('ACCEPTED', undefined, { clearTimers: ['idle'], close: ['client', 'server'], account: { n: 1 } });
  o.end('DENIED_BY_POLICY', 'again');
  assert.equal(o.ended, true);
  assert.deepEqual(o.take(), [
    { type: 'clearTimer', timer: 'idle' },
    { type: 'close', stream: 'client' },
    { type: 'close', stream: 'server' },
    { type: 'account', fields: { n: 1 } },
    { type: 'done', verdict: 'ACCEPTED' },
  ]);
  const p = new Outbox('demo');
  p.end('DENIED_BY_LIMIT', 'why');
  assert.deepEqual(p.take(), [{ type: 'done', verdict: 'DENIED_BY_LIMIT', info: 'why' }]);
});

test('assertNever throws an internal (ours) error naming the value', () => {
  const ev = { type: 'surprise', now: 0 } as unknown as never;
  assert.throws(
    () => assertNever(ev, 'event'),
    (e: unknown) =>
      e instanceof TzorpError && e.code === 'TZ9001' && /unhandled event 'surprise'/.test(e.message),
  );
});

test('ProtocolError: a peer error in the catalogue with the side and the reply', () => {
  const e = new ProtocolError('server', 502, 'malformed status line');
  assert.equal(e.kind, 'peer');
  assert.equal(e.code, 'TZ4001');
  assert.deepEqual([e.side, e.reply], ['server', 502]);
  const l = new ProtocolError('client', 431, 'too big', { limit: true });
  assert.deepEqual([l.id, l.kind, l.side, l.reply], ['PROXY_LIMIT', 'peer', 'client', 431]);
});

const ctx = (): CoreContext => ({
  sessionId: 'svc/t:1',
  service: 't',
  clientZone: null,
  inband: false,
});
const start: ProxyEvent = {
  type: 'start',
  now: 0,
  client: { host: '198.18.1.2', port: 40000, family: 4 },
  clientLocal: { host: '198.18.2.2', port: 21, family: 4 },
};

test('describe(): every core names its proxy and its state, before and after events', () => {
  for (const [proxy, make, after] of [
    ['plug', bindCore(plugModule, {}), 'connecting'],
    ['http', bindCore(httpModule, {}), 'idle'],
    ['ftp', bindCore(ftpModule, {}), 'connecting'],
  ] as const) {
    const core = make(ctx());
    assert.deepEqual(
      [core.describe().proxy, core.describe().state],
      [proxy, proxy === 'http' ? 'idle' : 'init'],
    );
    core.handle(start);
    assert.equal(core.describe().state, after, proxy);
    core.handle({ type: 'abort', now: 1, reason: 'test' });
    assert.equal(core.describe().state, 'done', proxy);
    JSON.stringify(core.describe()); // loggable
  }
});
