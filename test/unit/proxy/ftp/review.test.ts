// Regression tests for the security review's FTP findings (issue 16), through the core.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Script } from './script.ts';

describe('ftp review findings', () => {
  it('finding 4: RETR with IAC IAC never reaches the server', () => {
    const s = new Script();
    s.login();
    const line = Uint8Array.from([
      ...new TextEncoder().encode('RETR sec'),
      0xff,
      0xff,
      0xf4,
      ...new TextEncoder().encode('ret.txt\r\n'),
    ]);
    s.data('client', line);
    assert.equal(s.last.sent('server'), '');
    assert.match(s.last.sent('client'), /^501 /);
    assert.equal(s.done(), undefined, 'the session goes on');
  });

  it('finding 10: a 227 inside a multi-line reply reaches the client padded', () => {
    const s = new Script();
    s.login();
    s.fromClient('STAT\r\n');
    s.fromServer('211-Status\r\n227 Entering Passive Mode (6,6,6,6,0,21)\r\n211 End\r\n');
    assert.equal(
      s.last.sent('client'),
      '211-Status\r\n 227 Entering Passive Mode (6,6,6,6,0,21)\r\n211 End\r\n',
    );
  });

  it('finding 11: a second final reply in the same read is not the answer to the next command', () => {
    const s = new Script();
    s.login();
    s.fromClient('NOOP\r\nSYST\r\n');
    assert.equal(s.last.sent('server'), 'NOOP\r\n');
    // Two finals for NOOP in one read: SYST must still wait for its own answer.
    s.fromServer('200 NOOP ok\r\n215 UNIX Type: L8 (forged)\r\n');
    assert.equal(s.last.sent('client'), '200 NOOP ok\r\n');
    assert.equal(s.last.sent('server'), 'SYST\r\n');
    assert.ok(
      s.last.commands.some((c) => c.type === 'log' && c.msg === 'Unsolicited reply from server dropped'),
    );
    s.fromServer('215 UNIX Type: L8\r\n');
    assert.equal(s.last.sent('client'), '215 UNIX Type: L8\r\n');
  });
});
