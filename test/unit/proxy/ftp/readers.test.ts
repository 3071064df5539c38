// The command and reply readers (RFC 959 §4.1, §4.2) and the endpoint texts (RFC 959, 1123, 2428).

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ProtocolError } from '../../../../src/errors.ts';
import {
  CommandReader,
  format227,
  format229,
  formatEprt,
  parse227,
  parse229,
  parseEprt,
  parseHostPort,
  ReplyReader,
} from '../../../../src/proxy/ftp/index.ts';

const enc = (s: string) => new TextEncoder().encode(s);

function commands(text: string, max = 255) {
  const r = new CommandReader({ maxLineBytes: max });
  r.push(enc(text));
  const out: unknown[] = [];
  for (let i = r.next(); i; i = r.next()) {
    out.push('error' in i ? { error: i.error.reply } : i.command);
  }
  return out;
}

describe('CommandReader', () => {
  it('splits lines, upper-cases verbs, keeps the parameter verbatim', () => {
    assert.deepEqual(commands('user Bob\r\nRETR  two  spaces \r\nPWD\n'), [
      { verb: 'USER', param: 'Bob' },
      { verb: 'RETR', param: ' two  spaces ' },
      { verb: 'PWD', param: '' },
    ]);
  });

  it('waits for the line end', () => {
    const r = new CommandReader({ maxLineBytes: 255 });
    r.push(enc('NOO'));
    assert.equal(r.next(), null);
    r.push(enc('P\r'));
    assert.equal(r.next(), null);
    r.push(enc('\n'));
    assert.deepEqual(r.next(), { command: { verb: 'NOOP', param: '' } });
  });

  it('answers bad verbs with 500 and NUL/CR inside a line with 501', () => {
    assert.deepEqual(commands('1234\r\nTOOLONG x\r\nAB\r\n'), [
      { error: 500 },
      { error: 500 },
      { error: 500 },
    ]);
    assert.deepEqual(commands('RETR a\0b\r\nRETR a\rb\r\n'), [{ error: 501 }, { error: 501 }]);
  });

  it('limits the line length (raw bytes, without the line end)', () => {
    assert.deepEqual(commands(`NOOP ${'x'.repeat(5)}\r\n`, 10), [{ verb: 'NOOP', param: 'xxxxx' }]);
    assert.deepEqual(commands(`NOOP ${'x'.repeat(6)}\r\nPWD\r\n`, 10), [
      { error: 500 },
      { verb: 'PWD', param: '' },
    ]);
  });

  it('removes Telnet commands and un-doubles IAC IAC', () => {
    const r = new CommandReader({ maxLineBytes: 255 });
    r.push(Uint8Array.from([0xff, 0xf4, 0xff, 0xf2, 0x41, 0x42, 0x4f, 0x52, 0x0d, 0x0a]));
    assert.deepEqual(r.next(), { command: { verb: 'ABOR', param: '' } });
    r.push(Uint8Array.from([...enc('RETR a'), 0xfb, 0xff, 0xfb, 0x01, ...enc('b'), 0x0d, 0x0a]));
    assert.deepEqual(r.next(), { command: { verb: 'RETR', param: 'a\xfbb' } });
  });

  it('refuses a literal 0xFF (IAC IAC): a Telnet-aware server would act on what follows (finding 4)', () => {
    const r = new CommandReader({ maxLineBytes: 255 });
    // RETR sec IAC IAC IAC-IP ret.txt: the policy would see "sec\xff\xf4ret.txt", ProFTPD "secret.txt".
    r.push(Uint8Array.from([...enc('RETR sec'), 0xff, 0xff, 0xf4, ...enc('ret.txt'), 0x0d, 0x0a]));
    const item = r.next();
    assert.ok(item && 'error' in item);
    assert.equal(item.error.reply, 501);
    r.push(enc('RETR ok.txt\r\n'));
    assert.deepEqual(r.next(), { command: { verb: 'RETR', param: 'ok.txt' } });
  });

  it('an empty line is an empty command (the core decides, permit_empty_command)', () => {
    assert.deepEqual(commands('\r\n'), [{ verb: '', param: '' }]);
  });
});

function replies(text: string, opts = { maxLineBytes: 255, maxLines: 100 }) {
  const r = new ReplyReader(opts);
  r.push(enc(text));
  const out = [];
  for (let x = r.next(); x; x = r.next()) out.push(x);
  return out;
}

describe('ReplyReader', () => {
  it('single and multi-line replies (RFC 959 §4.2)', () => {
    assert.deepEqual(replies('220 Hi\r\n211-Features:\r\n MDTM\r\n211-not the end\r\n211 End\r\n'), [
      { code: '220', lines: ['220 Hi'] },
      { code: '211', lines: ['211-Features:', ' MDTM', '211-not the end', '211 End'] },
    ]);
  });

  it('a line with a different code does not end a multi-line reply', () => {
    // The middle line that reads like a final reply is padded (RFC 959 §4.2; finding 10).
    assert.deepEqual(replies('150-a\r\n226 b\r\n150 c\r\n'), [
      { code: '150', lines: ['150-a', ' 226 b', '150 c'] },
    ]);
  });

  it('pads middle lines that look like another reply, keeps continuation lines (finding 10)', () => {
    assert.deepEqual(
      replies(
        '211-Status\r\n227 Entering Passive Mode (6,6,6,6,0,21)\r\n211-more\r\n 220 x\r\n226\r\n211 End\r\n',
      ),
      [
        {
          code: '211',
          lines: [
            '211-Status',
            ' 227 Entering Passive Mode (6,6,6,6,0,21)',
            '211-more',
            ' 220 x',
            ' 226',
            '211 End',
          ],
        },
      ],
    );
  });

  it('accepts a bare code and LF line ends (leniency)', () => {
    assert.deepEqual(replies('226\n'), [{ code: '226', lines: ['226'] }]);
  });

  it('rejects invalid codes, bad separators, long lines and too many lines; stays failed', () => {
    for (const bad of ['hello\r\n', '600 x\r\n', '2x0 y\r\n', '220_x\r\n', `220 ${'a'.repeat(300)}\r\n`]) {
      assert.throws(() => replies(bad), ProtocolError, JSON.stringify(bad));
    }
    assert.throws(
      () => replies('214-a\r\n b\r\n c\r\n214 d\r\n', { maxLineBytes: 255, maxLines: 3 }),
      ProtocolError,
    );
    const r = new ReplyReader({ maxLineBytes: 255, maxLines: 100 });
    r.push(enc('xyz\r\n220 ok\r\n'));
    assert.throws(() => r.next(), ProtocolError);
    assert.throws(() => r.next(), ProtocolError);
  });

  it('reports an overlong line before its end arrives (bounded buffer)', () => {
    const r = new ReplyReader({ maxLineBytes: 10, maxLines: 100 });
    r.push(enc('220 aaaaaaaaaaaaaaa'));
    assert.throws(() => r.next(), ProtocolError);
  });
});

describe('endpoints', () => {
  it('PORT host-port and 227', () => {
    assert.deepEqual(parseHostPort('198,18,1,2,195,81'), { host: '198.18.1.2', port: 50001, family: 4 });
    assert.equal(parseHostPort('198,18,1,2,195'), null);
    assert.equal(parseHostPort('256,18,1,2,195,81'), null);
    assert.equal(parseHostPort('a,18,1,2,195,81'), null);
    assert.deepEqual(parse227('Entering Passive Mode (198,18,2,2,195,80).'), {
      host: '198.18.2.2',
      port: 50000,
      family: 4,
    });
    assert.deepEqual(parse227('Entering Passive Mode 198,18,2,2,195,80'), {
      host: '198.18.2.2',
      port: 50000,
      family: 4,
    });
    assert.equal(parse227('Entering Passive Mode'), null);
    assert.equal(
      format227({ host: '198.18.2.2', port: 40123 }),
      '227 Entering Passive Mode (198,18,2,2,156,187).',
    );
  });

  it('EPRT (any delimiter, canonical addresses) and 229', () => {
    assert.deepEqual(parseEprt('|1|198.18.1.2|50001|'), { host: '198.18.1.2', port: 50001, family: 4 });
    assert.deepEqual(parseEprt('!2!2001:DB8::0:2!50001!'), { host: '2001:db8::2', port: 50001, family: 6 });
    assert.equal(parseEprt('|2|198.18.1.2|50001|'), null, 'protocol 2 needs an IPv6 address');
    assert.equal(parseEprt('|1|2001:db8::2|50001|'), null);
    assert.equal(parseEprt('|3|198.18.1.2|50001|'), null);
    assert.equal(parseEprt('|1|198.18.1.2|0|'), null);
    assert.equal(parseEprt('|1|198.18.1.2|70000|'), null);
    assert.equal(parseEprt('|1|1|21|'), null, 'legacy IPv4 forms are not addresses here');
    assert.equal(formatEprt({ host: '2001:db8::1', port: 21, family: 6 }), '|2|2001:db8::1|21|');
    assert.equal(parse229('Entering Extended Passive Mode (|||50000|)'), 50000);
    assert.equal(parse229('Entering Extended Passive Mode (!!!50000!)'), 50000);
    assert.equal(parse229('Entering Extended Passive Mode (||50000|)'), null);
    assert.equal(parse229('no parens'), null);
    assert.equal(format229(40000), '229 Entering Extended Passive Mode (|||40000|)');
  });
});
