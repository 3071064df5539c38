// Exact playbooks of the FTP core: every command of a session, in order. The data channel's listener
// and stream ids are placeholders: the core names them, the script feeds them back.
import { describe, it } from 'node:test';
import { any, slot } from '../playbook.ts';
import { CLIENT, FW_SERVER_SIDE, Script, SERVER_ADDR } from './script.ts';

const debug = (category: string, msg: string) =>
  ({ type: 'log', category, level: 'debug', msg, fields: any }) as const;
const data = (text: string) => new TextEncoder().encode(text);

/** The playbook up to an open transfer: greeting, PASV (server passive), the client's data connection
 * accepted (`cd`), RETR, the server's data connection (`ds1`) connected and both offered to the
 * native relay. */
function untilTransfer() {
  const listener = slot<string>('client listener');
  const serverData = slot<string>('server data stream');
  const timer = slot<string>('data timer');
  const local = { host: SERVER_ADDR.host, port: 40123, family: 4 } as const;
  const s = new Script();
  s.on({ type: 'start', client: CLIENT, clientLocal: SERVER_ADDR })
    .out({ type: 'setTimer', timer: 'idle', ms: 300_000 }, { type: 'connect', stream: 'server', options: {} })
    .on({ type: 'connected', stream: 'server', local: FW_SERVER_SIDE, remote: SERVER_ADDR })
    .out({
      type: 'log',
      category: 'ftp.session',
      level: 'info',
      msg: 'Server connection established',
      fields: any,
    })
    .on({ type: 'data', stream: 'server', data: data('220 Welcome\r\n') })
    .out(debug('ftp.response', 'Reply from server'), {
      type: 'send',
      stream: 'client',
      data: '220 Welcome\r\n',
    })
    .on({ type: 'data', stream: 'client', data: data('PASV\r\n') })
    .out(debug('ftp.request', 'Command from client'), debug('ftp.request', 'Command to server'), {
      type: 'send',
      stream: 'server',
      data: 'PASV\r\n',
    })
    .on({
      type: 'data',
      stream: 'server',
      data: data('227 Entering Passive Mode (198,18,2,2,195,80).\r\n'),
    })
    .out(debug('ftp.response', 'Reply from server'), {
      type: 'listen',
      listener,
      host: SERVER_ADDR.host,
      port: { min: 40000, max: 41000 },
      transparent: true,
      acceptFrom: CLIENT.host,
      maxAccepts: 1,
    })
    .on({ type: 'listening', listener, local })
    .out(debug('ftp.data', 'Client-side data listener ready'), {
      type: 'send',
      stream: 'client',
      data: '227 Entering Passive Mode (198,18,2,2,156,187).\r\n',
    })
    .on({ type: 'accepted', listener, stream: 'cd', local, remote: { ...CLIENT, port: 50001 } })
    .out({ type: 'unlisten', listener }, debug('ftp.data', 'Data connection accepted'))
    .on({ type: 'data', stream: 'client', data: data('RETR f\r\n') })
    .out(
      debug('ftp.request', 'Command from client'),
      debug('ftp.request', 'Command to server'),
      { type: 'send', stream: 'server', data: 'RETR f\r\n' },
      { type: 'setTimer', timer, ms: 60_000 },
      {
        type: 'connect',
        stream: serverData,
        options: {
          target: { host: '198.18.2.2', port: 50000, family: 4 },
          local: { host: FW_SERVER_SIDE.host, port: 0, transparent: true },
        },
      },
    )
    .on({ type: 'connected', stream: serverData, local: FW_SERVER_SIDE, remote: SERVER_ADDR })
    // both data connections are open: offered to the native relay (this driver declines: no
    // relayStarted, so the core copies as before)
    .out({ type: 'clearTimer', timer }, { type: 'relay', a: 'cd', b: serverData, idleMs: 300_000 });
  return { s, serverData, timer };
}

describe('ftp core playbooks', () => {
  it('greeting, PASV (server passive), RETR: the 226 waits until the client has the data', () => {
    const { s, serverData, timer } = untilTransfer();
    s.on({ type: 'data', stream: 'server', data: data('150 Opening\r\n') })
      .out(debug('ftp.response', 'Reply from server'), {
        type: 'send',
        stream: 'client',
        data: '150 Opening\r\n',
      })
      .on({ type: 'data', stream: serverData, data: data('hello') })
      .out({ type: 'send', stream: 'cd', data: 'hello' })
      .on({ type: 'data', stream: 'server', data: data('226 Done\r\n') })
      .out(debug('ftp.response', 'Reply from server'), { type: 'setTimer', timer, ms: 60_000 })
      .on({ type: 'end', stream: serverData })
      .out({ type: 'shutdown', stream: 'cd' })
      .on({ type: 'end', stream: 'cd' })
      .out(
        { type: 'shutdown', stream: serverData },
        { type: 'close', stream: 'cd' },
        { type: 'close', stream: serverData },
        { type: 'send', stream: 'client', data: '226 Done\r\n' },
      )
      .on({ type: 'closed', stream: 'cd' })
      .on({ type: 'closed', stream: serverData })
      .out(
        { type: 'clearTimer', timer },
        {
          type: 'log',
          category: 'ftp.accounting',
          level: 'info',
          msg: 'Accounting',
          fields: {
            command: 'RETR',
            file: 'f',
            direction: 'download',
            bytes: 5,
            username: null,
            client_mode: 'passive',
            server_mode: 'passive',
            duration_ms: any,
            result: 'complete',
          },
        },
        { type: 'account', fields: { ftp_transfers: 1, ftp_download_bytes: 5 } },
      )
      .check();
  });
});
