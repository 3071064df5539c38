// Exact playbooks of the http core: every command of a session, in order.
import { describe, it } from 'node:test';
import { any } from '../playbook.ts';
import { CLIENT, DEST, Script } from './script.ts';

describe('http core playbooks', () => {
  it('GET with keep-alive, then the client leaves', () => {
    const s = new Script({ timeout: 1000 });
    s.on({ type: 'start', client: CLIENT, clientLocal: DEST })
      .out({ type: 'setTimer', timer: 'idle', ms: 1000 })
      .on({
        type: 'data',
        stream: 'client',
        data: Buffer.from('GET /a HTTP/1.1\r\nHost: example.test\r\n\r\n'),
      })
      .out({ type: 'connect', stream: 'server', options: { sendsFirst: true } })
      .on({ type: 'connected', stream: 'server', local: CLIENT, remote: DEST })
      .out(
        { type: 'send', stream: 'server', data: 'GET /a HTTP/1.1\r\nHost: example.test\r\n\r\n' },
        { type: 'setTimer', timer: 'response', ms: 300_000 },
      )
      .on({
        type: 'data',
        stream: 'server',
        data: Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi'),
      })
      .out(
        { type: 'clearTimer', timer: 'response' },
        { type: 'send', stream: 'client', data: 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi' },
        {
          type: 'log',
          category: 'http.accounting',
          level: 'info',
          msg: 'Accounting',
          fields: {
            method: 'GET',
            url: 'http://example.test/a',
            status: 200,
            bytes: 2,
            bytes_to_client: 2,
            bytes_to_server: 0,
            duration_ms: 0,
            service: 'http_test',
            session_id: 'svc/test:1',
          },
        },
        { type: 'account', fields: { http_requests: 1, http_bytes_to_client: 2, http_bytes_to_server: 0 } },
      )
      .on({ type: 'end', stream: 'client' })
      .out(
        { type: 'clearTimer', timer: 'idle' },
        { type: 'clearTimer', timer: 'request' },
        { type: 'clearTimer', timer: 'response' },
        { type: 'close', stream: 'client' },
        { type: 'close', stream: 'server' },
        { type: 'done', verdict: 'ACCEPTED' },
      )
      .check();
  });

  it('a method denied by policy: 403 and the session ends before any server connection', () => {
    const s = new Script({ request: { DELETE: 'deny' } });
    s.on({ type: 'start', client: CLIENT, clientLocal: DEST })
      .out({ type: 'setTimer', timer: 'idle', ms: any })
      .on({
        type: 'data',
        stream: 'client',
        data: Buffer.from('DELETE /x HTTP/1.1\r\nHost: example.test\r\n\r\n'),
      })
      .out(
        {
          type: 'log',
          category: 'http.violation',
          level: 'warn',
          msg: 'Request refused',
          fields: {
            reason: 'Method denied',
            status: 403,
            method: 'DELETE',
            url: 'http://example.test/x',
            service: 'http_test',
            session_id: 'svc/test:1',
          },
        },
        { type: 'send', stream: 'client', data: any },
        { type: 'log', category: 'http.accounting', level: 'info', msg: 'Accounting', fields: any },
        { type: 'account', fields: { http_requests: 1, http_bytes_to_client: 0, http_bytes_to_server: 0 } },
        { type: 'clearTimer', timer: 'idle' },
        { type: 'clearTimer', timer: 'request' },
        { type: 'clearTimer', timer: 'response' },
        { type: 'close', stream: 'client' },
        { type: 'done', verdict: 'DENIED_BY_POLICY' },
      )
      .check();
  });
});
