// The lab's TCP probe on loopback: a banner read, a refused port, and the errno classification.
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:net';
import { describe, it } from 'node:test';
import { outcomeOf, probe } from '../../../src/lab/probe.ts';

function listen(onConn: (s: import('node:net').Socket) => void): Promise<Server> {
  return new Promise((resolve) => {
    const srv = createServer(onConn);
    srv.listen(0, '127.0.0.1', () => resolve(srv));
  });
}

describe('lab probe', () => {
  it('reports a connection and the first line the server sent', async () => {
    const srv = await listen((s) => s.end('hello there\r\nmore\r\n'));
    const port = (srv.address() as { port: number }).port;
    const r = await probe('127.0.0.1', port);
    srv.close();
    assert.equal(r.outcome, 'connected');
    assert.equal(r.firstLine, 'hello there');
    assert.equal(r.localAddress, '127.0.0.1');
  });

  it('reports a closed port as reset', async () => {
    const srv = await listen(() => {});
    const port = (srv.address() as { port: number }).port;
    await new Promise<void>((r) => srv.close(() => r()));
    const r = await probe('127.0.0.1', port);
    assert.equal(r.outcome, 'reset');
    assert.equal(r.errno, 'ECONNREFUSED');
  });

  it('classifies errnos as a firewall administrator would', () => {
    assert.equal(outcomeOf('ECONNREFUSED'), 'reset');
    assert.equal(outcomeOf('EHOSTUNREACH'), 'unreachable');
    assert.equal(outcomeOf('ENETUNREACH'), 'unreachable');
    assert.equal(outcomeOf('ETIMEDOUT'), 'timeout');
    assert.equal(outcomeOf('EMFILE'), 'error');
  });
});
