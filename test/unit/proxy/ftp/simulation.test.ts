// The FTP core in a simulated network: a scripted FTP client and server (sans-IO, like the core) and a
// scheduler that delivers every pending byte, FIN, connect and accept in a random order (each
// connection's bytes stay in order, as TCP keeps them). Every client mode (PASV, EPSV, PORT, EPRT)
// meets every server mode (data_mode keep, passive, active), IPv4 and IPv6, downloads and uploads.
// What must hold whatever the order: the file arrives intact, and the client sees the final 226 only
// after its data connection delivered the last byte and the end of the file.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import type { Addr, ProxyCommand, ProxyEvent } from '../../../../src/proxy/core/index.ts';
import { ftpModule, parse227, parse229, parseEprt, parseHostPort } from '../../../../src/proxy/ftp/index.ts';
import { bindCore } from '../../../../src/proxy/index.ts';
import { bytes } from './script.ts';

type Item = Uint8Array | 'EOF';

interface Conn {
  id: string;
  peer: 'client' | 'server';
  kind: 'control' | 'data';
  toCore: Item[];
  toPeer: Item[];
  corePaused: boolean;
  /** The core sent FIN (shutdown or close); the peer has / has not seen it yet. */
  coreFin: boolean;
  peerGotFin: boolean;
  /** The peer sent FIN and the core got 'end'. */
  peerFin: boolean;
  coreGotEnd: boolean;
  /** The core closed: bytes for it are dropped, 'closed' follows once the peer saw the FIN. */
  coreClosed: boolean;
  closedSent: boolean;
  /** The core has been told (connected / accepted): only then can bytes reach it. */
  established: boolean;
}

const dec = new TextDecoder('latin1');
const enc = new TextEncoder();

interface Net {
  v6: boolean;
  client: Addr;
  server: Addr;
  fwServerSide: Addr;
}
const NET4: Net = {
  v6: false,
  client: { host: '198.18.1.2', port: 50000, family: 4 },
  server: { host: '198.18.2.2', port: 21, family: 4 },
  fwServerSide: { host: '198.18.2.1', port: 40000, family: 4 },
};
const NET6: Net = {
  v6: true,
  client: { host: '2001:db8:1::2', port: 50000, family: 6 },
  server: { host: '2001:db8:2::2', port: 21, family: 6 },
  fwServerSide: { host: '2001:db8:2::1', port: 40000, family: 6 },
};

class Sim {
  now = 0;
  conns = new Map<string, Conn>();
  /** One-shot events for the core (listening, connected, accepted), in any order. */
  oneShots: ProxyEvent[] = [];
  listeners = new Map<string, { host: string; port: number; acceptFrom?: string; accepted: number }>();
  nextPort = 40100;
  done: ProxyCommand | null = null;
  rnd: () => number;
  // client state
  clientCtl: Conn | null = null;
  clientData: Conn | null = null;
  clientBuf = '';
  clientGot: Uint8Array[] = [];
  clientDataEof = false;
  clientSaw226AfterData: boolean | null = null;
  clientReplies: string[] = [];
  client150 = false;
  uploadSent = false;
  clientListen: Addr | null = null;
  // server state
  serverCtl: Conn | null = null;
  serverData: Conn | null = null;
  serverBuf = '';
  serverPassivePort: number | null = null;
  serverActiveTarget: Addr | null = null;
  serverGot: Uint8Array[] = [];
  pendingTransfer: 'RETR' | 'STOR' | null = null;
  serverSent150 = false;
  sessionOver = false;
  readonly core;

  constructor(
    readonly net: Net,
    readonly clientCmd: 'PASV' | 'EPSV' | 'PORT' | 'EPRT',
    dataMode: 'keep' | 'passive' | 'active',
    readonly op: 'RETR' | 'STOR',
    readonly file: Uint8Array,
    seed: number,
  ) {
    let x = seed >>> 0 || 1;
    this.rnd = () => {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      return (x >>> 0) / 2 ** 32;
    };
    this.core = bindCore(ftpModule, { data_mode: dataMode, policy_set: 'read_write' })({
      sessionId: 'sim',
      service: 'ftp',
      clientZone: null,
      inband: false,
    });
  }

  newConn(id: string, peer: 'client' | 'server', kind: 'control' | 'data'): Conn {
    const c: Conn = {
      id,
      peer,
      kind,
      toCore: [],
      toPeer: [],
      corePaused: false,
      coreFin: false,
      peerGotFin: false,
      peerFin: false,
      coreGotEnd: false,
      coreClosed: false,
      closedSent: false,
      established: kind === 'control' && peer === 'client',
    };
    this.conns.set(id, c);
    return c;
  }

  feed(e: ProxyEvent): void {
    if (this.done) return;
    for (const c of this.core.handle(e)) this.exec(c);
  }

  exec(c: ProxyCommand): void {
    switch (c.type) {
      case 'send': {
        const conn = this.conns.get(c.stream)!;
        assert.ok(conn, `send on unknown ${c.stream}`);
        if (!conn.coreFin) conn.toPeer.push(c.data);
        return;
      }
      case 'shutdown': {
        const conn = this.conns.get(c.stream)!;
        if (!conn.coreFin) {
          conn.coreFin = true;
          conn.toPeer.push('EOF');
        }
        return;
      }
      case 'close': {
        const conn = this.conns.get(c.stream);
        assert.ok(conn, `close on unknown ${c.stream}`);
        if (conn.coreClosed) return;
        conn.coreClosed = true;
        conn.toCore = [];
        if (!conn.coreFin) {
          conn.coreFin = true;
          conn.toPeer.push('EOF');
        }
        this.maybeClosed(conn);
        return;
      }
      case 'pause':
      case 'resume':
        this.conns.get(c.stream)!.corePaused = c.type === 'pause';
        return;
      case 'connect': {
        if (c.stream === 'server') {
          this.serverCtl = this.newConn('server', 'server', 'control');
          this.oneShots.push({
            type: 'connected',
            now: 0,
            stream: 'server',
            local: this.net.fwServerSide,
            remote: this.net.server,
          });
          this.serverCtl.toCore.push(enc.encode('220 sim ready\r\n'));
          return;
        }
        const t = c.options.target!;
        if (t.host === this.net.server.host && t.port === this.serverPassivePort) {
          this.serverData = this.newConn(c.stream, 'server', 'data');
          this.oneShots.push({
            type: 'connected',
            now: 0,
            stream: c.stream,
            local: this.net.fwServerSide,
            remote: t,
          });
          this.serverDataUp();
        } else if (
          this.clientListen &&
          t.host === this.clientListen.host &&
          t.port === this.clientListen.port
        ) {
          assert.equal(
            c.options.local?.host,
            this.net.server.host,
            'active data connection comes from the server address',
          );
          this.clientData = this.newConn(c.stream, 'client', 'data');
          this.oneShots.push({
            type: 'connected',
            now: 0,
            stream: c.stream,
            local: { ...this.net.server, port: 20 },
            remote: t,
          });
          this.clientDataUp();
        } else {
          this.oneShots.push({ type: 'connectFailed', now: 0, stream: c.stream, error: 'ECONNREFUSED' });
        }
        return;
      }
      case 'listen': {
        const port = this.nextPort++;
        this.listeners.set(c.listener, {
          host: c.host,
          port,
          accepted: 0,
          ...(c.acceptFrom ? { acceptFrom: c.acceptFrom } : {}),
        });
        this.oneShots.push({
          type: 'listening',
          now: 0,
          listener: c.listener,
          local: { host: c.host, port, family: this.net.v6 ? 6 : 4 },
        });
        return;
      }
      case 'unlisten':
        this.listeners.delete(c.listener);
        return;
      case 'done':
        this.done = c;
        return;
      default:
        return;
    }
  }

  /** A peer connects to the core's listener at `to`; returns the new stream's conn. */
  peerConnect(peer: 'client' | 'server', to: Addr, from: Addr): Conn {
    for (const [id, l] of this.listeners) {
      if (l.host === to.host && l.port === to.port) {
        assert.ok(!l.acceptFrom || l.acceptFrom === from.host, 'acceptFrom names the peer');
        const sid = `${id}.${++l.accepted}`;
        const conn = this.newConn(sid, peer, 'data');
        this.oneShots.push({
          type: 'accepted',
          now: 0,
          listener: id,
          stream: sid,
          local: { host: to.host, port: to.port, family: to.family },
          remote: from,
        });
        return conn;
      }
    }
    throw new Error(`${peer} connects to ${to.host}:${to.port}: nobody listens`);
  }

  maybeClosed(conn: Conn): void {
    if (conn.closedSent) return;
    const bothFin = conn.coreFin && conn.peerGotFin && (conn.coreClosed || (conn.peerFin && conn.coreGotEnd));
    if (bothFin) {
      conn.closedSent = true;
      this.oneShots.push({ type: 'closed', now: 0, stream: conn.id });
    }
  }

  // --- the scripted client ------------------------------------------------------------------------

  clientCtlLine(line: string): void {
    this.clientReplies.push(line);
    const code = line.slice(0, 3);
    if (line[3] === '-') return;
    const send = (s: string): void => {
      this.clientCtl!.toCore.push(enc.encode(`${s}\r\n`));
    };
    if (code === '220') send('USER sim');
    else if (code === '331') send('PASS sim');
    else if (code === '230') {
      if (this.clientCmd === 'PORT' || this.clientCmd === 'EPRT') {
        this.clientListen = { host: this.net.client.host, port: 50001, family: this.net.client.family };
        send(
          this.clientCmd === 'PORT'
            ? `PORT ${this.clientListen.host.split('.').join(',')},${50001 >> 8},${50001 & 255}`
            : `EPRT |${this.net.v6 ? 2 : 1}|${this.clientListen.host}|50001|`,
        );
      } else send(this.clientCmd);
    } else if (code === '227' || code === '229') {
      const to: Addr =
        code === '227'
          ? parse227(line)!
          : { host: this.net.server.host, port: parse229(line)!, family: this.net.server.family };
      assert.equal(to.host, this.net.server.host, 'the client is told the address it dialled');
      this.clientData = this.peerConnect('client', to, { ...this.net.client, port: 50002 });
      this.clientDataUp();
      send(`${this.op} file.bin`);
    } else if (code === '200') send(`${this.op} file.bin`);
    else if (code === '150') {
      this.client150 = true;
      this.clientDataUp();
    } else if (code === '226') {
      this.clientSaw226AfterData = this.op === 'RETR' ? this.clientDataEof : true;
      send('QUIT');
    } else if (code === '221') {
      this.sessionOver = true;
    } else throw new Error(`client got an unexpected reply: ${line}`);
  }

  clientDataUp(): void {
    if (this.op !== 'STOR' || this.uploadSent || !this.clientData || !this.client150) return;
    this.uploadSent = true;
    for (const part of split(this.file, this.rnd)) this.clientData.toCore.push(part);
    this.clientData.toCore.push('EOF');
  }

  // --- the scripted server ------------------------------------------------------------------------

  serverCtlLine(line: string): void {
    const [verb, ...rest] = line.split(' ');
    const param = rest.join(' ');
    const reply = (s: string): void => {
      this.serverCtl!.toCore.push(enc.encode(`${s}\r\n`));
    };
    switch (verb) {
      case 'USER':
        reply('331 Password please');
        return;
      case 'PASS':
        reply('230 Logged in');
        return;
      case 'PASV':
      case 'EPSV': {
        this.serverPassivePort = 50000;
        const h = this.net.server.host.split('.').join(',');
        reply(
          verb === 'PASV'
            ? `227 Entering Passive Mode (${h},195,80).`
            : '229 Entering Extended Passive Mode (|||50000|)',
        );
        return;
      }
      case 'PORT':
      case 'EPRT':
        this.serverActiveTarget = verb === 'PORT' ? parseHostPort(param) : parseEprt(param);
        assert.equal(
          this.serverActiveTarget?.host,
          this.net.fwServerSide.host,
          'PORT names the firewall server side',
        );
        reply('200 PORT command successful');
        return;
      case 'RETR':
      case 'STOR':
        this.pendingTransfer = verb;
        if (this.serverActiveTarget) {
          this.serverData = this.peerConnect('server', this.serverActiveTarget, {
            ...this.net.server,
            port: 20,
          });
        }
        this.serverDataUp();
        return;
      case 'QUIT':
        reply('221 Goodbye');
        this.serverCtl!.toCore.push('EOF');
        return;
      default:
        throw new Error(`server got an unexpected command: ${line}`);
    }
  }

  serverDataUp(): void {
    if (!this.pendingTransfer || !this.serverData || this.serverSent150) return;
    this.serverSent150 = true;
    this.serverCtl!.toCore.push(enc.encode('150 Opening data connection\r\n'));
    if (this.pendingTransfer === 'RETR') {
      for (const part of split(this.file, this.rnd)) this.serverData.toCore.push(part);
      this.serverData.toCore.push('EOF');
      // Real servers send 226 right after closing the data connection; it may overtake the data.
      this.serverCtl!.toCore.push(enc.encode('226 Transfer complete\r\n'));
    }
  }

  // --- delivery -------------------------------------------------------------------------------------

  toPeer(conn: Conn, item: Item): void {
    if (item === 'EOF') {
      conn.peerGotFin = true;
      if (conn.kind === 'data') {
        if (conn.peer === 'client') {
          this.clientDataEof = true;
          if (!conn.peerFin) conn.toCore.push('EOF');
        } else if (this.op === 'STOR') {
          // Upload finished at the server: close and confirm.
          if (!conn.peerFin) conn.toCore.push('EOF');
          this.serverCtl!.toCore.push(enc.encode('226 Transfer complete\r\n'));
        }
      }
      this.maybeClosed(conn);
      return;
    }
    const text = dec.decode(item);
    if (conn.kind === 'data') {
      if (conn.peer === 'client') this.clientGot.push(item);
      else this.serverGot.push(item);
      return;
    }
    if (conn.peer === 'client') {
      this.clientBuf += text;
      for (let i = this.clientBuf.indexOf('\r\n'); i >= 0; i = this.clientBuf.indexOf('\r\n')) {
        const line = this.clientBuf.slice(0, i);
        this.clientBuf = this.clientBuf.slice(i + 2);
        this.clientCtlLine(line);
      }
    } else {
      this.serverBuf += text;
      for (let i = this.serverBuf.indexOf('\r\n'); i >= 0; i = this.serverBuf.indexOf('\r\n')) {
        const line = this.serverBuf.slice(0, i);
        this.serverBuf = this.serverBuf.slice(i + 2);
        this.serverCtlLine(line);
      }
    }
  }

  run(): void {
    this.clientCtl = this.newConn('client', 'client', 'control');
    this.feed({ type: 'start', now: 0, client: this.net.client, clientLocal: this.net.server });
    for (let steps = 0; steps < 100_000; steps++) {
      const choices: Array<() => void> = [];
      if (this.oneShots.length) {
        const i = Math.floor(this.rnd() * this.oneShots.length);
        choices.push(() => {
          const [e] = this.oneShots.splice(i, 1);
          if (e!.type === 'connected' || e!.type === 'accepted')
            this.conns.get(e!.stream)!.established = true;
          this.feed({ ...e!, now: ++this.now } as ProxyEvent);
        });
      }
      for (const conn of this.conns.values()) {
        if (conn.toCore.length && conn.established && !conn.corePaused && !conn.coreClosed) {
          choices.push(() => {
            const item = conn.toCore.shift()!;
            if (item === 'EOF') {
              conn.peerFin = true;
              conn.coreGotEnd = true;
              this.feed({ type: 'end', now: ++this.now, stream: conn.id });
              this.maybeClosed(conn);
            } else this.feed({ type: 'data', now: ++this.now, stream: conn.id, data: item });
          });
        }
        if (conn.toPeer.length) choices.push(() => this.toPeer(conn, conn.toPeer.shift()!));
      }
      if (choices.length === 0) break;
      choices[Math.floor(this.rnd() * choices.length)]!();
    }
  }
}

function split(b: Uint8Array, rnd: () => number): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let at = 0; at < b.length; ) {
    const n = 1 + Math.floor(rnd() * 9000);
    out.push(b.slice(at, at + n));
    at += n;
  }
  return out;
}

function concat(parts: Uint8Array[]): Uint8Array {
  const n = parts.reduce((a, p) => a + p.length, 0);
  const out = new Uint8Array(n);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

describe('ftp core in a simulated network (random delivery order)', () => {
  it('every client mode x data_mode x family x direction: intact file, 226 after the data', () => {
    fc.assert(
      fc.property(
        fc.boolean(),
        fc.constantFrom('PASV', 'EPSV', 'PORT', 'EPRT'),
        fc.constantFrom('keep', 'passive', 'active'),
        fc.constantFrom('RETR', 'STOR'),
        fc.integer({ min: 0, max: 200_000 }),
        fc.integer({ min: 1, max: 2 ** 31 }),
        (v6, cmd, mode, op, size, seed) => {
          const clientCmd =
            v6 && (cmd === 'PASV' || cmd === 'PORT') ? (cmd === 'PASV' ? 'EPSV' : 'EPRT') : cmd;
          const file = bytes(size, seed);
          const sim = new Sim(v6 ? NET6 : NET4, clientCmd, mode, op, file, seed);
          sim.run();
          assert.ok(sim.sessionOver, `the session finished (${sim.clientReplies.join(' | ')})`);
          assert.equal(sim.done?.type === 'done' && sim.done.verdict, 'ACCEPTED');
          if (op === 'RETR') {
            assert.deepEqual(concat(sim.clientGot), file);
            assert.equal(sim.clientSaw226AfterData, true, '226 only after the data and its end');
          } else {
            assert.deepEqual(concat(sim.serverGot), file);
          }
          assert.ok(sim.clientReplies.includes('226 Transfer complete'));
        },
      ),
      { numRuns: 500 },
    );
  });
});
