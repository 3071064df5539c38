// The control channel: greeting, command and reply policy, limits, multi-line replies, FEAT,
// non-transparent login.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CLIENT, Script, SERVER_ADDR } from './script.ts';

describe('ftp core: control channel', () => {
  it('connects to the server through the router and relays the greeting', () => {
    const s = new Script();
    const start = s.ev({ type: 'start', client: CLIENT, clientLocal: SERVER_ADDR });
    const connect = start.of('connect');
    assert.equal(connect.length, 1);
    assert.equal(connect[0]!.stream, 'server');
    assert.deepEqual(connect[0]!.options, {});
    s.ev({
      type: 'connected',
      stream: 'server',
      local: { host: '198.18.2.1', port: 40000, family: 4 },
      remote: SERVER_ADDR,
    });
    s.fromServer('220-Hello\r\n220 there\r\n');
    assert.equal(s.last.sent('client'), '220-Hello\r\n220 there\r\n');
  });

  it('forwards commands one at a time and replies in order', () => {
    const s = new Script();
    s.open();
    // Two pipelined commands: the second waits for the first reply.
    s.fromClient('USER ftp\r\nPASS secret\r\n');
    assert.equal(s.last.sent('server'), 'USER ftp\r\n');
    s.fromServer('331 Password required\r\n');
    assert.equal(s.last.sent('client'), '331 Password required\r\n');
    assert.equal(s.last.sent('server'), 'PASS secret\r\n');
    s.fromServer('230 OK\r\n');
    assert.equal(s.last.sent('client'), '230 OK\r\n');
  });

  it('answers a multi-line reply only when its last line is in, whatever the split', () => {
    const s = new Script();
    s.login();
    s.fromClient('HELP\r\n');
    s.fromServer('214-The following commands are recognized.\r\n ABOR ACCT\r\n214-still more\r\n');
    assert.equal(s.last.sent('client'), '');
    s.fromServer('214 Help OK.\r\n');
    assert.equal(
      s.last.sent('client'),
      '214-The following commands are recognized.\r\n ABOR ACCT\r\n214-still more\r\n214 Help OK.\r\n',
    );
  });

  it('read_only refuses STOR without asking the server', () => {
    const s = new Script({ policy_set: 'read_only' });
    s.login();
    s.fromClient('STOR evil.bin\r\n');
    assert.match(s.last.sent('client'), /^500 /);
    assert.equal(s.last.sent('server'), '');
    assert.ok(s.last.of('log').some((l) => l.category === 'ftp.policy'));
    // ... and still allows reading commands
    s.fromClient('PWD\r\n');
    assert.equal(s.last.sent('server'), 'PWD\r\n');
  });

  it('read_write allows STOR (it reaches the data-channel check)', () => {
    const s = new Script({ policy_set: 'read_write' });
    s.login();
    s.fromClient('STOR ok.bin\r\n');
    assert.match(s.last.sent('client'), /^425 /);
  });

  it('anon_read_only accepts only ftp/anonymous', () => {
    const s = new Script({ policy_set: 'anon_read_only' });
    s.open();
    s.fromClient('USER alice\r\n');
    assert.match(s.last.sent('client'), /^530 /);
    assert.equal(s.last.sent('server'), '');
    s.fromClient('USER anonymous\r\n');
    assert.equal(s.last.sent('server'), 'USER anonymous\r\n');
  });

  it('strict sets replace replies the RFC does not allow for the command', () => {
    const s = new Script({ policy_set: 'read_only' });
    s.login();
    s.fromClient('PWD\r\n');
    s.fromServer('250 "/" weird\r\n');
    assert.equal(s.last.sent('client'), '500 Reply rejected by policy\r\n');
    s.fromClient('CWD /pub\r\n');
    s.fromServer('250 OK\r\n');
    assert.equal(s.last.sent('client'), '250 OK\r\n');
  });

  it('response policy uses the dimhash order (cmd,code) > (cmd,"55") > (cmd,"5") > (cmd,*) > (*,...)', () => {
    const s = new Script({
      response: {
        RETR: { '55': { action: 'reject', code: 550, text: 'hidden' } },
        '*': { '550': { action: 'reject', code: 551, text: 'never used for RETR' } },
      },
    });
    s.login();
    s.fromClient('SIZE x\r\n');
    s.fromServer('550 No such file\r\n');
    assert.equal(s.last.sent('client'), '551 never used for RETR\r\n');
  });

  it('a 421 aborts the session (Zorp default)', () => {
    const s = new Script();
    s.login();
    s.fromClient('NOOP\r\n');
    s.fromServer('421 Bye\r\n');
    assert.equal(s.last.sent('client'), '421 Logoff\r\n');
    assert.equal(s.done()?.verdict, 'ABORTED_BY_POLICY_ACTION');
  });

  it('request policy: reject with code and text, abort, conditional entries', () => {
    const s = new Script({
      request: {
        DELE: { action: 'reject', code: 550, text: 'No deleting here' },
        SITE: 'abort',
        MKD: [
          { param: '^tmp', action: 'accept' },
          { action: 'reject', code: 553, text: 'only tmp*' },
        ],
      },
    });
    s.login();
    s.fromClient('DELE x\r\n');
    assert.equal(s.last.sent('client'), '550 No deleting here\r\n');
    s.fromClient('MKD tmp1\r\n');
    assert.equal(s.last.sent('server'), 'MKD tmp1\r\n');
    s.fromServer('257 created\r\n');
    s.fromClient('MKD other\r\n');
    assert.equal(s.last.sent('client'), '553 only tmp*\r\n');
    s.fromClient('SITE CHMOD 777 x\r\n');
    assert.match(s.last.sent('client'), /^421 /);
    assert.equal(s.done()?.verdict, 'ABORTED_BY_POLICY_ACTION');
  });

  it('unknown commands are refused unless permit_unknown_command', () => {
    const s = new Script({ policy_set: 'read_only' });
    s.login();
    s.fromClient('XYZZ\r\n');
    assert.match(s.last.sent('client'), /^500 XYZZ not understood/);
    const p = new Script({ permit_unknown_command: true });
    p.login();
    p.fromClient('XYZZ arg\r\n');
    assert.equal(p.last.sent('server'), 'XYZZ arg\r\n');
  });

  it('limits: line length, user name, password, user name characters', () => {
    const s = new Script({ policy_set: 'read_only' });
    s.open();
    s.fromClient(`NOOP ${'a'.repeat(300)}\r\n`);
    assert.match(s.last.sent('client'), /^500 Line too long/);
    s.fromClient(`USER ${'u'.repeat(33)}\r\n`);
    assert.match(s.last.sent('client'), /^501 Username too long/);
    s.fromClient('USER bad-name!\r\n');
    assert.match(s.last.sent('client'), /^501 Invalid character/);
    s.fromClient(`USER ${'u'.repeat(32)}\r\n`);
    assert.equal(s.last.sent('server'), `USER ${'u'.repeat(32)}\r\n`);
    s.fromServer('331 pass\r\n');
    s.fromClient(`PASS ${'p'.repeat(65)}\r\n`);
    assert.match(s.last.sent('client'), /^501 Password too long/);
    assert.equal(s.last.sent('server'), '');
    assert.ok(s.all.of('log').some((l) => l.category === 'ftp.violation'));
    assert.equal(s.done(), undefined, 'client errors do not end the session');
  });

  it('an overlong line split over many chunks gives one error and the next command works', () => {
    const s = new Script();
    s.login();
    const line = `NOOP ${'b'.repeat(600)}\r\nPWD\r\n`;
    let client = '';
    let server = '';
    for (const ch of line) {
      s.fromClient(ch);
      client += s.last.sent('client');
      server += s.last.sent('server');
    }
    assert.equal(client.match(/^500 /gm)?.length, 1);
    assert.equal(server, 'PWD\r\n');
  });

  it('strips Telnet IAC sequences (IAC IP IAC DM before ABOR)', () => {
    const s = new Script();
    s.login();
    s.ev({
      type: 'data',
      stream: 'client',
      data: Uint8Array.from([0xff, 0xf4, 0xff, 0xf2, ...new TextEncoder().encode('NOOP\r\n')]),
    });
    assert.equal(s.last.sent('server'), 'NOOP\r\n');
  });

  it('a server protocol violation ends the session cleanly with 421', () => {
    const s = new Script();
    s.login();
    s.fromClient('PWD\r\n');
    s.fromServer('hello there\r\n');
    assert.match(s.last.sent('client'), /^421 /);
    assert.equal(
      s.last.of('close').some((c) => c.stream === 'client'),
      true,
    );
    assert.ok(s.done());
  });

  it('a multi-line reply longer than max_continuous_line is a violation', () => {
    const s = new Script({ max_continuous_line: 5 });
    s.login();
    s.fromClient('HELP\r\n');
    s.fromServer('214-a\r\n b\r\n c\r\n d\r\n e\r\n f\r\n214 end\r\n');
    assert.match(s.last.sent('client'), /^421 /);
    assert.ok(s.done());
  });

  it('FEAT: features dropped, inserted, TLS features removed', () => {
    const s = new Script({ features: { MDTM: 'drop', EPSV: 'insert' } });
    s.login();
    s.fromClient('FEAT\r\n');
    s.fromServer('211-Features:\r\n MDTM\r\n SIZE\r\n AUTH TLS\r\n UTF8\r\n211 End\r\n');
    assert.equal(s.last.sent('client'), '211-Features:\r\n SIZE\r\n UTF8\r\n EPSV\r\n211 End\r\n');
  });

  it('AUTH TLS is refused (tzorp does not terminate control-channel TLS)', () => {
    const s = new Script();
    s.login();
    s.fromClient('AUTH TLS\r\n');
    assert.match(s.last.sent('client'), /^504 /);
    assert.equal(s.last.sent('server'), '');
  });

  it('QUIT: 221 is relayed and the session ends', () => {
    const s = new Script();
    s.login();
    s.fromClient('QUIT\r\n');
    s.fromServer('221 Goodbye\r\n');
    assert.equal(s.last.sent('client'), '221 Goodbye\r\n');
    assert.equal(s.done()?.verdict, 'ACCEPTED');
  });

  it('server connect failure: 421 and DENIED_BY_CONNECTION_FAIL', () => {
    const s = new Script();
    s.ev({ type: 'start', client: CLIENT, clientLocal: SERVER_ADDR });
    s.ev({ type: 'connectFailed', stream: 'server', error: 'ECONNREFUSED' });
    assert.match(s.last.sent('client'), /^421 /);
    assert.equal(s.done()?.verdict, 'DENIED_BY_CONNECTION_FAIL');
  });

  it('idle timeout re-arms while there is activity and ends an idle session', () => {
    const s = new Script({ timeout: 1000 });
    s.login();
    s.now += 500;
    s.fromClient('NOOP\r\n');
    s.now += 600;
    s.ev({ type: 'timer', timer: 'idle' });
    assert.equal(s.done(), undefined);
    const re = s.last.of('setTimer');
    assert.equal(re.length, 1);
    s.now += 2000;
    s.ev({ type: 'timer', timer: 'idle' });
    assert.match(s.last.sent('client'), /^421 /);
    assert.ok(s.done());
  });
});

describe('ftp core: non-transparent mode (inband router)', () => {
  it('greets, connects to user@host:port and logs in on the client`s behalf', () => {
    const s = new Script({ transparent_mode: false, target_port_range: '21,2121' }, { inband: true });
    s.ev({ type: 'start', client: CLIENT, clientLocal: { host: '198.18.1.1', port: 50021, family: 4 } });
    assert.match(s.last.sent('client'), /^220 /);
    assert.equal(s.last.of('connect').length, 0);
    s.fromClient('SYST\r\n');
    assert.match(s.last.sent('client'), /^530 /);
    s.fromClient('USER bob@ftp.example.org:2121\r\n');
    const c = s.last.of('connect');
    assert.deepEqual(c[0]?.options, { inband: { host: 'ftp.example.org', port: 2121 } });
    s.ev({
      type: 'connected',
      stream: 'server',
      local: { host: '198.18.2.1', port: 40000, family: 4 },
      remote: { host: '198.18.2.2', port: 2121, family: 4 },
    });
    s.fromServer('220 real server\r\n');
    assert.equal(s.last.sent('client'), '', 'the server greeting is not shown (the proxy already greeted)');
    assert.equal(s.last.sent('server'), 'USER bob\r\n');
    s.fromServer('331 pass?\r\n');
    assert.equal(s.last.sent('client'), '331 pass?\r\n');
  });

  it('refuses ports outside target_port_range, long host names, and a missing host', () => {
    const s = new Script({ transparent_mode: false, max_hostname_length: 12 });
    s.ev({ type: 'start', client: CLIENT, clientLocal: { host: '198.18.1.1', port: 50021, family: 4 } });
    s.fromClient('USER bob@h:2222\r\n');
    assert.match(s.last.sent('client'), /^501 Port 2222/);
    s.fromClient('USER bob@very-long-host.example\r\n');
    assert.match(s.last.sent('client'), /^501 Hostname/);
    s.fromClient('USER bob\r\n');
    assert.match(s.last.sent('client'), /^530 /);
    s.fromClient('USER bob@[2001:db8::5]\r\n');
    assert.deepEqual(s.last.of('connect')[0]?.options, { inband: { host: '2001:db8::5', port: 21 } });
  });
});
