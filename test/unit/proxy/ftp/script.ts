// A scripted driver for the FTP core: feed events, look at the commands that came back.

import type { Addr, ProxyCommand, ProxyEvent } from '../../../../src/proxy/core/index.ts';
import { createFtpCore } from '../../../../src/proxy/ftp/index.ts';

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

export const CLIENT: Addr = { host: '198.18.1.2', port: 50000, family: 4 };
export const SERVER_ADDR: Addr = { host: '198.18.2.2', port: 21, family: 4 };
export const FW_SERVER_SIDE: Addr = { host: '198.18.2.1', port: 40001, family: 4 };
export const CLIENT6: Addr = { host: '2001:db8:1::2', port: 50000, family: 6 };
export const SERVER6: Addr = { host: '2001:db8:2::2', port: 21, family: 6 };
export const FW6_SERVER_SIDE: Addr = { host: '2001:db8:2::1', port: 40001, family: 6 };

const enc = new TextEncoder();
const dec = new TextDecoder('latin1');

export class Script {
  readonly core;
  now = 1000;
  last: ProxyCommand[] = [];
  all: ProxyCommand[] = [];

  constructor(options: Record<string, unknown> = {}, extra: { inband?: boolean } = {}) {
    this.core = createFtpCore({
      sessionId: 'svc/ftp:1',
      service: 'ftp',
      options,
      clientZone: 'clients',
      inband: extra.inband ?? false,
    });
  }

  ev(e: DistributiveOmit<ProxyEvent, 'now'>): ProxyCommand[] {
    this.now += 1;
    this.last = this.core.handle({ ...e, now: this.now } as ProxyEvent);
    this.all.push(...this.last);
    return this.last;
  }

  /** Text sent to a stream by the last event. */
  sent(stream: string, cmds: ProxyCommand[] = this.last): string {
    return cmds
      .filter((c): c is Extract<ProxyCommand, { type: 'send' }> => c.type === 'send' && c.stream === stream)
      .map((c) => dec.decode(c.data))
      .join('');
  }

  of<T extends ProxyCommand['type']>(
    type: T,
    cmds: ProxyCommand[] = this.last,
  ): Extract<ProxyCommand, { type: T }>[] {
    return cmds.filter((c): c is Extract<ProxyCommand, { type: T }> => c.type === type);
  }

  fromClient(text: string): ProxyCommand[] {
    return this.ev({ type: 'data', stream: 'client', data: enc.encode(text) });
  }

  fromServer(text: string): ProxyCommand[] {
    return this.ev({ type: 'data', stream: 'server', data: enc.encode(text) });
  }

  data(stream: string, bytes: Uint8Array | string): ProxyCommand[] {
    return this.ev({ type: 'data', stream, data: typeof bytes === 'string' ? enc.encode(bytes) : bytes });
  }

  /** Start a transparent session and get through the greeting. */
  open(client: Addr = CLIENT, server: Addr = SERVER_ADDR, fwServerSide: Addr = FW_SERVER_SIDE): void {
    this.ev({ type: 'start', client, clientLocal: server });
    this.ev({ type: 'connected', stream: 'server', local: fwServerSide, remote: server });
    this.fromServer('220 Welcome\r\n');
  }

  /** open() plus USER/PASS. */
  login(client: Addr = CLIENT, server: Addr = SERVER_ADDR, fwServerSide: Addr = FW_SERVER_SIDE): void {
    this.open(client, server, fwServerSide);
    this.fromClient('USER ftp\r\n');
    this.fromServer('331 Password please\r\n');
    this.fromClient('PASS x@y\r\n');
    this.fromServer('230 Logged in\r\n');
  }

  done(): Extract<ProxyCommand, { type: 'done' }> | undefined {
    return this.of('done', this.all)[0];
  }
}

export function bytes(n: number, seed = 1): Uint8Array {
  const b = new Uint8Array(n);
  let x = seed;
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    b[i] = x >>> 24;
  }
  return b;
}
