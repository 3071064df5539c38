// Data channels: the four client/server mode combinations, IPv6 (EPRT/EPSV), bounce and port checks,
// the order of the final reply against the data, ABOR, timeouts, failures.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Addr } from '../../../../src/proxy/core/index.ts';
import {
  bytes,
  CLIENT,
  CLIENT6,
  FW_SERVER_SIDE,
  FW6_SERVER_SIDE,
  Script,
  SERVER_ADDR,
  SERVER6,
} from './script.ts';

const CLIENT_DATA: Addr = { host: CLIENT.host, port: 50001, family: 4 };

/** Download `payload` over an established transfer: server side `ds`, client side `dc`. */
function relayDownload(s: Script, ds: string, dc: string, payload: string) {
  s.data(ds, payload);
  assert.equal(s.last.sent(dc), payload);
}

/** ABOR during a transfer (Telnet IP/DM first): it goes to the server at once, the client's data
 * connection `c.1` is reset. */
function abortTransfer(s: Script) {
  s.ev({
    type: 'data',
    stream: 'client',
    data: Uint8Array.from([0xff, 0xf4, 0xff, 0xf2, ...new TextEncoder().encode('ABOR\r\n')]),
  });
  assert.equal(s.last.sent('server'), 'ABOR\r\n');
  assert.ok(s.last.of('close').some((x) => x.stream === 'c.1' && x.reset));
}

/** Logged in, PASV answered, the client-side listener up. */
function passiveReady(opts: Record<string, unknown> = {}) {
  const s = new Script(opts);
  s.login();
  s.fromClient('PASV\r\n');
  s.fromServer('227 (198,18,2,2,195,80)\r\n');
  const [l] = s.last.of('listen');
  s.ev({
    type: 'listening',
    listener: l!.listener,
    local: { host: SERVER_ADDR.host, port: 40123, family: 4 },
  });
  return { s, listener: l!.listener };
}

describe('ftp core: client PASV, server passive (data_mode keep)', () => {
  it('rewrites 227 to its own listener on the dialled address and relays a download', () => {
    const s = new Script();
    s.login();
    s.fromClient('PASV\r\n');
    assert.equal(s.last.sent('server'), 'PASV\r\n');
    s.fromServer('227 Entering Passive Mode (198,18,2,2,195,80).\r\n');
    assert.equal(s.last.sent('client'), '', 'the client waits for our own listener');
    const [l] = s.last.of('listen');
    assert.ok(l);
    assert.equal(l.host, SERVER_ADDR.host, 'listens on the address the client dialled (the real server)');
    assert.deepEqual(l.port, { min: 40000, max: 41000 });
    assert.equal(l.transparent, true);
    assert.equal(l.acceptFrom, CLIENT.host);
    assert.equal(l.maxAccepts, 1);
    s.ev({
      type: 'listening',
      listener: l.listener,
      local: { host: SERVER_ADDR.host, port: 40123, family: 4 },
    });
    assert.equal(s.last.sent('client'), '227 Entering Passive Mode (198,18,2,2,156,187).\r\n');

    s.ev({
      type: 'accepted',
      listener: l.listener,
      stream: 'lc1.1',
      local: { host: SERVER_ADDR.host, port: 40123, family: 4 },
      remote: CLIENT_DATA,
    });
    assert.ok(s.last.of('unlisten').some((u) => u.listener === l.listener));
    s.fromClient('RETR file.txt\r\n');
    assert.equal(s.last.sent('server'), 'RETR file.txt\r\n');
    const [c] = s.last.of('connect');
    assert.ok(c);
    assert.deepEqual(c.options.target, { host: '198.18.2.2', port: 50000, family: 4 });
    assert.deepEqual(c.options.local, { host: FW_SERVER_SIDE.host, port: 0, transparent: true });
    s.ev({
      type: 'connected',
      stream: c.stream,
      local: { host: FW_SERVER_SIDE.host, port: 40999, family: 4 },
      remote: { host: '198.18.2.2', port: 50000, family: 4 },
    });
    s.fromServer('150 Opening BINARY mode data connection\r\n');
    assert.equal(s.last.sent('client'), '150 Opening BINARY mode data connection\r\n');
    relayDownload(s, c.stream, 'lc1.1', 'hello world');
    // The server says "complete" before its FIN reached us: the client must not see 226 yet.
    s.fromServer('226 Transfer complete\r\n');
    assert.equal(s.last.sent('client'), '');
    s.ev({ type: 'end', stream: c.stream });
    assert.ok(s.last.of('shutdown').some((x) => x.stream === 'lc1.1'));
    assert.equal(s.last.sent('client'), '');
    // The client read the end of the file and closed its side: now it may hear "complete".
    s.ev({ type: 'end', stream: 'lc1.1' });
    assert.equal(s.last.sent('client'), '226 Transfer complete\r\n');
    s.ev({ type: 'closed', stream: 'lc1.1' });
    s.ev({ type: 'closed', stream: c.stream });
    const acct = s.last.of('log').find((x) => x.category === 'ftp.accounting');
    assert.ok(acct);
    assert.equal(acct.fields?.command, 'RETR');
    assert.equal(acct.fields?.file, 'file.txt');
    assert.equal(acct.fields?.direction, 'download');
    assert.equal(acct.fields?.bytes, 11);
  });
});

describe('ftp core: client PORT, server passive (data_mode passive)', () => {
  it('answers 200 after the server PASV and connects to the client from the server address, port 20', () => {
    const s = new Script({ data_mode: 'passive' });
    s.login();
    s.fromClient('PORT 198,18,1,2,195,81\r\n');
    assert.equal(s.last.sent('server'), 'PASV\r\n');
    s.fromServer('227 Entering Passive Mode (198,18,2,2,195,80)\r\n');
    assert.equal(s.last.sent('client'), '200 PORT command successful\r\n');
    s.fromClient('RETR big.bin\r\n');
    const [c] = s.last.of('connect');
    assert.ok(c);
    s.ev({
      type: 'connected',
      stream: c.stream,
      local: FW_SERVER_SIDE,
      remote: { host: '198.18.2.2', port: 50000, family: 4 },
    });
    // Server data can come before the 150: it waits (the client side is not open yet).
    s.data(c.stream, 'early');
    assert.equal(s.last.of('connect').length, 0, 'no client connect before the 150');
    s.fromServer('150 Here it comes\r\n');
    const [cc] = s.last.of('connect');
    assert.ok(cc);
    assert.deepEqual(cc.options.target, { host: CLIENT.host, port: 50001, family: 4 });
    assert.deepEqual(
      cc.options.local,
      { host: SERVER_ADDR.host, port: 20, transparent: true },
      'control port 21 - 1',
    );
    s.ev({
      type: 'connected',
      stream: cc.stream,
      local: { host: SERVER_ADDR.host, port: 20, family: 4 },
      remote: { host: CLIENT.host, port: 50001, family: 4 },
    });
    assert.equal(s.last.sent(cc.stream), 'early');
    relayDownload(s, c.stream, cc.stream, 'late');
    s.ev({ type: 'end', stream: c.stream });
    s.fromServer('226 OK\r\n');
    assert.equal(s.last.sent('client'), '');
    s.ev({ type: 'end', stream: cc.stream });
    assert.equal(s.last.sent('client'), '226 OK\r\n');
    s.ev({ type: 'closed', stream: cc.stream });
    s.ev({ type: 'closed', stream: c.stream });
  });

  it('active_connection_mode twenty / random pick the source port', () => {
    for (const [mode, port] of [
      ['twenty', 20],
      ['random', 0],
    ] as const) {
      const s = new Script({ data_mode: 'passive', active_connection_mode: mode });
      s.ev({ type: 'start', client: CLIENT, clientLocal: { ...SERVER_ADDR, port: 2121 } });
      s.ev({
        type: 'connected',
        stream: 'server',
        local: FW_SERVER_SIDE,
        remote: { ...SERVER_ADDR, port: 2121 },
      });
      s.fromServer('220 hi\r\n');
      s.fromClient('PORT 198,18,1,2,195,81\r\n');
      s.fromServer('227 (198,18,2,2,195,80)\r\n');
      s.fromClient('RETR x\r\n');
      const [c] = s.last.of('connect');
      s.ev({ type: 'connected', stream: c!.stream, local: FW_SERVER_SIDE, remote: SERVER_ADDR });
      s.fromServer('150 go\r\n');
      assert.equal(s.last.of('connect')[0]?.options.local?.port, port, mode);
    }
  });
});

describe('ftp core: client PASV, server active (data_mode active)', () => {
  it('sends PORT with its own server-side listener, then answers 227', () => {
    const s = new Script({ data_mode: 'active' });
    s.login();
    s.fromClient('PASV\r\n');
    assert.equal(s.last.sent('server'), '');
    const [ls] = s.last.of('listen');
    assert.ok(ls);
    assert.equal(
      ls.host,
      FW_SERVER_SIDE.host,
      'server-side listener on the firewall side of the server connection',
    );
    assert.equal(ls.acceptFrom, SERVER_ADDR.host);
    s.ev({
      type: 'listening',
      listener: ls.listener,
      local: { host: FW_SERVER_SIDE.host, port: 40500, family: 4 },
    });
    assert.equal(s.last.sent('server'), 'PORT 198,18,2,1,158,52\r\n');
    s.fromServer('200 PORT command successful\r\n');
    const [lc] = s.last.of('listen');
    assert.ok(lc);
    assert.equal(lc.host, SERVER_ADDR.host);
    s.ev({
      type: 'listening',
      listener: lc.listener,
      local: { host: SERVER_ADDR.host, port: 40600, family: 4 },
    });
    assert.equal(s.last.sent('client'), '227 Entering Passive Mode (198,18,2,2,158,152).\r\n');
    s.ev({ type: 'accepted', listener: lc.listener, stream: 'c.1', local: SERVER_ADDR, remote: CLIENT_DATA });
    s.fromClient('LIST\r\n');
    assert.equal(s.last.sent('server'), 'LIST\r\n');
    s.ev({
      type: 'accepted',
      listener: ls.listener,
      stream: 's.1',
      local: FW_SERVER_SIDE,
      remote: { host: SERVER_ADDR.host, port: 20, family: 4 },
    });
    s.fromServer('150 Here comes the listing\r\n');
    relayDownload(s, 's.1', 'c.1', 'drwxr-xr-x pub\r\n');
    s.ev({ type: 'end', stream: 's.1' });
    s.ev({ type: 'end', stream: 'c.1' });
    s.ev({ type: 'closed', stream: 's.1' });
    s.ev({ type: 'closed', stream: 'c.1' });
    s.fromServer('226 Directory send OK\r\n');
    assert.equal(
      s.last.sent('client'),
      '226 Directory send OK\r\n',
      'no hold when the data is already through',
    );
  });

  it('strict_port_checking refuses a server data connection from another port', () => {
    const s = new Script({ data_mode: 'active' });
    s.login();
    s.fromClient('PASV\r\n');
    const [ls] = s.last.of('listen');
    s.ev({
      type: 'listening',
      listener: ls!.listener,
      local: { host: FW_SERVER_SIDE.host, port: 40500, family: 4 },
    });
    s.fromServer('200 ok\r\n');
    const [lc] = s.last.of('listen');
    s.ev({
      type: 'listening',
      listener: lc!.listener,
      local: { host: SERVER_ADDR.host, port: 40600, family: 4 },
    });
    s.fromClient('RETR x\r\n');
    s.ev({
      type: 'accepted',
      listener: ls!.listener,
      stream: 's.1',
      local: FW_SERVER_SIDE,
      remote: { host: SERVER_ADDR.host, port: 33333, family: 4 },
    });
    assert.ok(s.last.of('close').some((c) => c.stream === 's.1' && c.reset));
    assert.ok(s.last.of('log').some((l) => l.category === 'ftp.violation'));
    // The listener took its one connection: the client is told at once, the server's reply dropped.
    assert.match(s.last.sent('client'), /^425 /);
    s.fromServer('425 Failed to establish connection.\r\n');
    assert.equal(s.last.sent('client'), '');
    s.fromClient('NOOP\r\n');
    assert.equal(s.last.sent('server'), 'NOOP\r\n');
  });
});

describe('ftp core: client PORT, server active (data_mode keep)', () => {
  it('listens server-side, sends PORT, connects to the client after the server connected and said 150', () => {
    const s = new Script();
    s.login();
    s.fromClient('PORT 198,18,1,2,195,81\r\n');
    const [ls] = s.last.of('listen');
    assert.ok(ls);
    s.ev({
      type: 'listening',
      listener: ls.listener,
      local: { host: FW_SERVER_SIDE.host, port: 40700, family: 4 },
    });
    assert.equal(s.last.sent('server'), 'PORT 198,18,2,1,158,252\r\n');
    s.fromServer('200 PORT command successful. Consider using PASV.\r\n');
    assert.equal(s.last.sent('client'), '200 PORT command successful\r\n');
    s.fromClient('STOR up.bin\r\n');
    assert.equal(s.last.sent('server'), 'STOR up.bin\r\n');
    s.ev({
      type: 'accepted',
      listener: ls.listener,
      stream: 's.1',
      local: FW_SERVER_SIDE,
      remote: { host: SERVER_ADDR.host, port: 20, family: 4 },
    });
    s.fromServer('150 Ok to send data.\r\n');
    const [cc] = s.last.of('connect');
    assert.ok(cc);
    s.ev({
      type: 'connected',
      stream: cc.stream,
      local: { host: SERVER_ADDR.host, port: 20, family: 4 },
      remote: CLIENT_DATA,
    });
    // Upload: client -> server, half-close passes on.
    s.data(cc.stream, 'abc');
    assert.equal(s.last.sent('s.1'), 'abc');
    s.data(cc.stream, 'def');
    s.ev({ type: 'end', stream: cc.stream });
    assert.ok(s.last.of('shutdown').some((x) => x.stream === 's.1'));
    s.ev({ type: 'end', stream: 's.1' });
    s.ev({ type: 'closed', stream: 's.1' });
    s.ev({ type: 'closed', stream: cc.stream });
    s.fromServer('226 Transfer complete.\r\n');
    assert.equal(s.last.sent('client'), '226 Transfer complete.\r\n');
    const acct = s.last.of('log').find((x) => x.category === 'ftp.accounting');
    assert.equal(acct?.fields?.direction, 'upload');
    assert.equal(acct?.fields?.bytes, 6);
  });
});

describe('ftp core: servers that connect at PORT time (pyftpdlib)', () => {
  function portSent(opts: Record<string, unknown>) {
    const s = new Script(opts);
    s.login();
    s.fromClient('PORT 198,18,1,2,195,81\r\n');
    const [ls] = s.last.of('listen');
    s.ev({
      type: 'listening',
      listener: ls!.listener,
      local: { host: FW_SERVER_SIDE.host, port: 40700, family: 4 },
    });
    // The server connects before it even answers the PORT, from a random port.
    s.ev({
      type: 'accepted',
      listener: ls!.listener,
      stream: 's.1',
      local: FW_SERVER_SIDE,
      remote: { host: SERVER_ADDR.host, port: 41835, family: 4 },
    });
    return s;
  }

  it('strict_port_checking: refused, and the PORT is answered 425 at once', () => {
    const s = portSent({});
    assert.ok(s.last.of('close').some((c) => c.stream === 's.1' && c.reset));
    s.fromServer('200 PORT ok\r\n');
    assert.match(s.last.sent('client'), /^425 /);
    s.fromClient('RETR x\r\n');
    assert.match(s.last.sent('client'), /^425 /);
    assert.equal(s.last.sent('server'), '');
  });

  it('without it: the early connection waits for the transfer command', () => {
    const s = portSent({ strict_port_checking: false });
    s.fromServer('200 PORT ok\r\n');
    assert.equal(s.last.sent('client'), '200 PORT command successful\r\n');
    s.fromClient('RETR x\r\n');
    assert.equal(s.last.sent('server'), 'RETR x\r\n');
    s.fromServer('150 go\r\n');
    const [cc] = s.last.of('connect');
    assert.deepEqual(cc?.options.target, { host: CLIENT.host, port: 50001, family: 4 });
  });
});

describe('ftp core: IPv6 (RFC 2428 EPSV/EPRT)', () => {
  it('EPSV to the client, EPSV to the server', () => {
    const s = new Script();
    s.login(CLIENT6, SERVER6, FW6_SERVER_SIDE);
    s.fromClient('EPSV\r\n');
    assert.equal(s.last.sent('server'), 'EPSV\r\n');
    s.fromServer('229 Entering Extended Passive Mode (|||50000|)\r\n');
    const [lc] = s.last.of('listen');
    assert.equal(lc?.host, SERVER6.host);
    assert.equal(lc?.acceptFrom, CLIENT6.host);
    s.ev({
      type: 'listening',
      listener: lc!.listener,
      local: { host: SERVER6.host, port: 40100, family: 6 },
    });
    assert.equal(s.last.sent('client'), '229 Entering Extended Passive Mode (|||40100|)\r\n');
    s.fromClient('RETR f\r\n');
    const [c] = s.last.of('connect');
    assert.deepEqual(c?.options.target, { host: SERVER6.host, port: 50000, family: 6 });
  });

  it('EPRT from the client, EPRT to the server (data_mode active); PASV is refused on IPv6', () => {
    const s = new Script({ data_mode: 'active' });
    s.login(CLIENT6, SERVER6, FW6_SERVER_SIDE);
    s.fromClient('PASV\r\n');
    assert.match(s.last.sent('client'), /^501 /);
    s.fromClient('EPRT |2|2001:DB8:1:0::2|50001|\r\n');
    const [ls] = s.last.of('listen');
    assert.equal(ls?.host, FW6_SERVER_SIDE.host);
    s.ev({
      type: 'listening',
      listener: ls!.listener,
      local: { host: FW6_SERVER_SIDE.host, port: 40200, family: 6 },
    });
    assert.equal(s.last.sent('server'), 'EPRT |2|2001:db8:2::1|40200|\r\n');
    s.fromServer('200 EPRT ok\r\n');
    assert.equal(s.last.sent('client'), '200 EPRT command successful\r\n');
    s.fromClient('RETR f\r\n');
    s.ev({
      type: 'accepted',
      listener: ls!.listener,
      stream: 's.1',
      local: FW6_SERVER_SIDE,
      remote: { host: SERVER6.host, port: 20, family: 6 },
    });
    s.fromServer('150 go\r\n');
    const [cc] = s.last.of('connect');
    assert.deepEqual(cc?.options.target, { host: CLIENT6.host, port: 50001, family: 6 });
    assert.deepEqual(cc?.options.local, { host: SERVER6.host, port: 20, transparent: true });
  });

  it('EPSV with the other protocol number and EPRT of the other family get 522', () => {
    const s = new Script();
    s.login(CLIENT6, SERVER6, FW6_SERVER_SIDE);
    s.fromClient('EPSV 1\r\n');
    assert.match(s.last.sent('client'), /^522 .*\(2\)/);
    s.fromClient('EPRT |1|198.18.1.2|50001|\r\n');
    assert.match(s.last.sent('client'), /^522 /);
  });
});

describe('ftp core: bounce and port checks', () => {
  it('PORT/EPRT to a third host is refused and logged; nothing reaches the server', () => {
    const s = new Script();
    s.login();
    const mark = s.all.length;
    s.fromClient('PORT 198,18,9,9,0,25\r\n');
    assert.match(s.last.sent('client'), /^501 /);
    s.fromClient('EPRT |1|198.18.9.9|2525|\r\n');
    assert.match(s.last.sent('client'), /^501 .*third host/);
    assert.equal(s.since(mark).sent('server'), '');
    assert.ok(s.all.of('log').some((l) => l.category === 'ftp.violation' && /bounce/i.test(l.msg)));
  });

  it("the bounce check compares one normaliser's text: any spelling of the client is the client", () => {
    // the client's own address written IPv4-mapped (RFC 2428 protocol 2): the same host, not a bounce
    const s = new Script({ data_mode: 'passive' });
    s.login();
    s.fromClient(`EPRT |2|::FFFF:${CLIENT.host}|50001|\r\n`);
    assert.equal(s.last.sent('server'), 'PASV\r\n');
    // a third host in the same spelling is still one
    const t = new Script();
    t.login();
    t.fromClient('EPRT |2|::ffff:198.18.9.9|2525|\r\n');
    assert.match(t.last.sent('client'), /^501 .*third host/);
    // an IPv6 client in a long, upper-case spelling is the client too
    const v6 = new Script({ data_mode: 'passive' });
    v6.login(CLIENT6, SERVER6, FW6_SERVER_SIDE);
    v6.fromClient('EPRT |2|2001:0DB8:0001:0000:0000:0000:0000:0002|50001|\r\n');
    assert.equal(v6.last.sent('server'), 'EPSV\r\n');
  });

  it('PORT to a privileged port of the client is refused (strict_port_checking)', () => {
    const s = new Script();
    s.login();
    s.fromClient('PORT 198,18,1,2,0,80\r\n');
    assert.match(s.last.sent('client'), /^501 .*privileged/);
    const lax = new Script({ strict_port_checking: false, data_mode: 'passive' });
    lax.login();
    lax.fromClient('PORT 198,18,1,2,0,80\r\n');
    assert.equal(lax.last.sent('server'), 'PASV\r\n');
  });

  it('a 227 naming another host than the server is refused with 425', () => {
    const s = new Script();
    s.login();
    s.fromClient('PASV\r\n');
    s.fromServer('227 Entering Passive Mode (10,0,0,1,195,80)\r\n');
    assert.match(s.last.sent('client'), /^425 /);
    assert.equal(s.last.of('listen').length, 0);
    const lax = new Script({ permit_server_bounce_attack: true });
    lax.login();
    lax.fromClient('PASV\r\n');
    lax.fromServer('227 Entering Passive Mode (10,0,0,1,195,80)\r\n');
    assert.equal(lax.last.of('listen').length, 1);
  });

  it('a data connection from another host than the client is reset', () => {
    const { s, listener } = passiveReady({ permit_client_bounce_attack: false });
    s.ev({
      type: 'accepted',
      listener,
      stream: 'x.1',
      local: SERVER_ADDR,
      remote: { host: '198.18.1.99', port: 5000, family: 4 },
    });
    assert.ok(s.last.of('close').some((c) => c.stream === 'x.1' && c.reset));
  });
});

describe('ftp core: transfers and their edges', () => {
  /** Client PORT, server PASV, RETR sent and the server side connected. */
  function activeClientPassiveServerRetr() {
    const s = new Script({ data_mode: 'passive' });
    s.login();
    s.fromClient('PORT 198,18,1,2,195,81\r\n');
    s.fromServer('227 (198,18,2,2,195,80)\r\n');
    s.fromClient('RETR x\r\n');
    const [c] = s.last.of('connect');
    s.ev({ type: 'connected', stream: c!.stream, local: FW_SERVER_SIDE, remote: SERVER_ADDR });
    return { s, c };
  }

  it('a transfer command without PORT/PASV gets 425 and is not forwarded', () => {
    const s = new Script();
    s.login();
    s.fromClient('RETR x\r\n');
    assert.match(s.last.sent('client'), /^425 /);
    assert.equal(s.last.sent('server'), '');
  });

  it('only one data channel: a second PASV replaces the first listener', () => {
    const { s, listener } = passiveReady();
    s.fromClient('PASV\r\n');
    assert.ok(s.last.of('unlisten').some((u) => u.listener === listener));
    s.fromServer('227 (198,18,2,2,195,81)\r\n');
    const [l2] = s.last.of('listen');
    assert.notEqual(l2?.listener, listener);
    // A late connection to the old listener is refused.
    s.ev({ type: 'accepted', listener, stream: 'old.1', local: SERVER_ADDR, remote: CLIENT_DATA });
    assert.ok(s.last.of('close').some((c) => c.stream === 'old.1' && c.reset));
  });

  it('a failing transfer (550) tears the channel down and answers at once', () => {
    const { s, listener } = passiveReady();
    s.ev({ type: 'accepted', listener, stream: 'c.1', local: SERVER_ADDR, remote: CLIENT_DATA });
    s.fromClient('RETR missing\r\n');
    const [c] = s.last.of('connect');
    s.ev({ type: 'connected', stream: c!.stream, local: FW_SERVER_SIDE, remote: SERVER_ADDR });
    s.fromServer('550 No such file\r\n');
    assert.ok(s.last.of('close').some((x) => x.stream === 'c.1'));
    assert.equal(s.last.sent('client'), '550 No such file\r\n');
    s.ev({ type: 'closed', stream: 'c.1' });
    s.ev({ type: 'closed', stream: c!.stream });
    // The session goes on.
    s.fromClient('NOOP\r\n');
    assert.equal(s.last.sent('server'), 'NOOP\r\n');
  });

  it('ABOR during a transfer acts at once: data reset, both replies relayed in order', () => {
    const { s, listener } = passiveReady();
    s.ev({ type: 'accepted', listener, stream: 'c.1', local: SERVER_ADDR, remote: CLIENT_DATA });
    s.fromClient('RETR huge\r\n');
    const [c] = s.last.of('connect');
    s.ev({ type: 'connected', stream: c!.stream, local: FW_SERVER_SIDE, remote: SERVER_ADDR });
    s.fromServer('150 go\r\n');
    s.data(c!.stream, bytes(1000));
    abortTransfer(s);
    s.ev({ type: 'closed', stream: 'c.1', error: 'reset' });
    s.ev({ type: 'closed', stream: c!.stream, error: 'reset' });
    s.fromServer('426 Transfer aborted\r\n226 Abort successful\r\n');
    assert.equal(s.last.sent('client'), '426 Transfer aborted\r\n226 Abort successful\r\n');
  });

  it('commands and bad lines sent during a transfer are answered after its 226, in order', () => {
    const { s, listener } = passiveReady();
    s.ev({ type: 'accepted', listener, stream: 'c.1', local: SERVER_ADDR, remote: CLIENT_DATA });
    s.fromClient('RETR f\r\n');
    const [c] = s.last.of('connect');
    s.ev({ type: 'connected', stream: c!.stream, local: FW_SERVER_SIDE, remote: SERVER_ADDR });
    s.fromServer('150 go\r\n');
    s.fromClient(`NOOP\r\n${'x'.repeat(300)}\r\nPWD\r\n`);
    assert.equal(s.last.sent('client'), '', 'nothing answered out of order');
    assert.equal(s.last.sent('server'), '');
    s.data(c!.stream, 'data');
    s.ev({ type: 'end', stream: c!.stream });
    s.fromServer('226 done\r\n');
    assert.equal(s.last.sent('client'), '');
    s.ev({ type: 'end', stream: 'c.1' });
    assert.equal(s.last.sent('client'), '226 done\r\n');
    assert.equal(s.last.sent('server'), 'NOOP\r\n');
    s.ev({ type: 'closed', stream: 'c.1' });
    s.ev({ type: 'closed', stream: c!.stream });
    s.fromServer('200 ok\r\n');
    assert.match(s.last.sent('client'), /^200 ok\r\n500 Line too long/);
    assert.equal(s.last.sent('server'), 'PWD\r\n');
  });

  it('data timeout: the client never connects, it gets 425 and the server`s late reply is dropped', () => {
    const { s } = passiveReady({ data_timeout: 5000 });
    s.fromClient('RETR x\r\n');
    const [c] = s.last.of('connect');
    s.ev({ type: 'connected', stream: c!.stream, local: FW_SERVER_SIDE, remote: SERVER_ADDR });
    s.fromServer('150 go\r\n');
    s.ev({ type: 'timer', timer: 'data1' });
    assert.match(s.last.sent('client'), /^425 .*timeout/);
    s.ev({ type: 'closed', stream: c!.stream });
    s.fromServer('426 broken\r\n');
    assert.equal(s.last.sent('client'), '');
    s.fromClient('NOOP\r\n');
    assert.equal(s.last.sent('server'), 'NOOP\r\n');
  });

  it('client-side connect failure turns the server`s 226 into 425', () => {
    const { s, c } = activeClientPassiveServerRetr();
    s.fromServer('150 go\r\n');
    const [cc] = s.last.of('connect');
    s.ev({ type: 'connectFailed', stream: cc!.stream, error: 'ECONNREFUSED' });
    s.ev({ type: 'closed', stream: c!.stream });
    s.fromServer('226 done\r\n');
    assert.equal(s.last.sent('client'), "425 Can't open data connection\r\n");
  });

  it('bytes waiting for the other side are bounded: the source is paused, resumed once flushed', () => {
    const { s, c } = activeClientPassiveServerRetr();
    s.data(c!.stream, bytes(40_000));
    assert.equal(s.last.of('pause').length, 0);
    s.data(c!.stream, bytes(40_000));
    assert.ok(s.last.of('pause').some((p) => p.stream === c!.stream));
    s.fromServer('150 go\r\n');
    const [cc] = s.last.of('connect');
    s.ev({ type: 'connected', stream: cc!.stream, local: SERVER_ADDR, remote: CLIENT_DATA });
    const sent = s.last.of('send').filter((x) => x.stream === cc!.stream);
    assert.equal(
      sent.reduce((n, x) => n + x.data.length, 0),
      80_000,
    );
    assert.ok(s.last.of('resume').some((p) => p.stream === c!.stream));
  });

  it('masq_address_client is what the 227 announces', () => {
    const { s } = passiveReady({ masq_address_client: '203.0.113.7' });
    assert.equal(s.last.sent('client'), '227 Entering Passive Mode (203,0,113,7,156,187).\r\n');
  });

  it('EPSV ALL is answered by the proxy and locks out PORT/PASV', () => {
    const s = new Script();
    s.login();
    s.fromClient('EPSV ALL\r\n');
    assert.match(s.last.sent('client'), /^200 /);
    s.fromClient('PASV\r\n');
    assert.match(s.last.sent('client'), /^501 /);
  });
});

describe('ftp core: data connections on the native relay', () => {
  /** The client's data connection accepted, `verb path`, the server's connected: both offered to the
   * relay, which the driver takes (relayStarted) unless `take` is false. */
  function relaying(verb = 'RETR big', opts: Record<string, unknown> = {}, take = true) {
    const { s, listener } = passiveReady(opts);
    s.ev({ type: 'accepted', listener, stream: 'c.1', local: SERVER_ADDR, remote: CLIENT_DATA });
    s.fromClient(`${verb}\r\n`);
    const [c] = s.last.of('connect');
    const ds = c!.stream;
    s.ev({ type: 'connected', stream: ds, local: FW_SERVER_SIDE, remote: SERVER_ADDR });
    const [r] = s.last.of('relay');
    assert.deepEqual(r, { type: 'relay', a: 'c.1', b: ds, idleMs: Number(opts.timeout ?? 300_000) });
    if (take) s.ev({ type: 'relayStarted', a: 'c.1', b: ds });
    s.fromServer('150 go\r\n');
    assert.equal(s.last.sent('client'), '150 go\r\n');
    /** The relay's end: `up` bytes client to server, `down` server to client. */
    const ended = (
      reason: 'closed' | 'idle' | 'error' | 'stopped',
      by: string | null,
      up: number,
      down: number,
    ) =>
      s.ev({
        type: 'relayEnded',
        reason,
        by,
        ...(reason === 'error' ? { error: 'ECONNRESET' } : {}),
        bytes: { 'c.1': { read: up, written: down }, [ds]: { read: down, written: up } },
      });
    return { s, ds, ended };
  }
  const accounting = (s: Script) => s.all.of('log').find((x) => x.category === 'ftp.accounting')?.fields;

  it('a download: the 226 waits for the relay`s end, whose bytes are accounted', () => {
    const { s, ds, ended } = relaying();
    s.fromServer('226 done\r\n');
    assert.equal(s.last.sent('client'), '', 'held: the client may not have the data yet');
    ended('closed', ds, 0, 1_000_000);
    assert.equal(s.last.sent('client'), '226 done\r\n');
    assert.deepEqual(s.last.of('close'), [], 'the relay closed both; nothing to close');
    assert.equal(accounting(s)?.bytes, 1_000_000);
    assert.equal(accounting(s)?.result, 'complete');
    assert.deepEqual(s.last.of('account'), [
      { type: 'account', fields: { ftp_transfers: 1, ftp_download_bytes: 1_000_000 } },
    ]);
    s.fromClient('NOOP\r\n');
    assert.equal(s.last.sent('server'), 'NOOP\r\n', 'the session goes on');
  });

  it('an upload ending before the server`s 226: accounted when the reply comes', () => {
    const { s, ended } = relaying('STOR up');
    ended('closed', 'c.1', 4096, 0);
    assert.equal(accounting(s), undefined, 'the server has not answered yet');
    s.fromServer('226 stored\r\n');
    assert.equal(s.last.sent('client'), '226 stored\r\n');
    assert.equal(accounting(s)?.bytes, 4096);
    assert.equal(accounting(s)?.direction, 'upload');
  });

  it('the client resets during a download: the transfer is answered 426, accounted as failed', () => {
    const { s, ended } = relaying();
    ended('error', 'c.1', 0, 800);
    s.fromServer('226 done\r\n');
    assert.match(s.last.sent('client'), /^426 /);
    assert.equal(accounting(s)?.result, 'failed');
    assert.equal(accounting(s)?.bytes, 800);
  });

  it('ABOR while relaying: the relay is stopped, its counts accounted, both replies in order', () => {
    const { s, ended } = relaying();
    abortTransfer(s);
    ended('stopped', null, 0, 300);
    assert.equal(accounting(s)?.bytes, 300);
    s.fromServer('426 Transfer aborted\r\n226 Abort successful\r\n');
    assert.equal(s.last.sent('client'), '426 Transfer aborted\r\n226 Abort successful\r\n');
  });

  it('the session is not idle while its data is relayed; a relay idle timeout fails the transfer', () => {
    const { s, ended } = relaying('RETR big', { timeout: 10_000 });
    s.now += 20_000;
    s.ev({ type: 'timer', timer: 'idle' });
    assert.equal(s.last.sent('client'), '', 'no 421 while the relay runs');
    assert.deepEqual(s.last.of('setTimer'), [{ type: 'setTimer', timer: 'idle', ms: 10_000 }]);
    ended('idle', null, 0, 10);
    assert.ok(s.last.of('log').some((x) => x.category === 'ftp.violation' && /idle/.test(x.msg)));
    s.fromServer('226 done\r\n');
    assert.match(s.last.sent('client'), /^426 /);
  });

  it('a relay the driver declines (no relayStarted): the channel keeps copying', () => {
    const { s, ds } = relaying('RETR f', {}, false);
    relayDownload(s, ds, 'c.1', 'still copied');
  });
});
