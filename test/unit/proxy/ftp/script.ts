// A scripted driver for the FTP core on the playbook harness (../playbook.ts): the FTP session's
// openings and events by name. What a step sent is `s.last.sent(stream)` (the last event) or
// `s.all.sent(stream)` (the whole session).

import type { Addr, ProxyEvent } from '../../../../src/proxy/core/index.ts';
import { OptionProblems } from '../../../../src/proxy/core/module.ts';
import { FtpCore, ftpModule } from '../../../../src/proxy/ftp/index.ts';
import type { FtpTls } from '../../../../src/proxy/ftp/options.ts';
import { Playbook, type Step } from '../playbook.ts';

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

export const CLIENT: Addr = { host: '198.18.1.2', port: 50000, family: 4 };
export const SERVER_ADDR: Addr = { host: '198.18.2.2', port: 21, family: 4 };
export const FW_SERVER_SIDE: Addr = { host: '198.18.2.1', port: 40001, family: 4 };
export const CLIENT6: Addr = { host: '2001:db8:1::2', port: 50000, family: 6 };
export const SERVER6: Addr = { host: '2001:db8:2::2', port: 21, family: 6 };
export const FW6_SERVER_SIDE: Addr = { host: '2001:db8:2::1', port: 40001, family: 6 };

const enc = new TextEncoder();

export class Script extends Playbook {
  /** `extra.tls`: the service's `tls: { mode: inspect }` as bind.ts passes it. */
  constructor(options: Record<string, unknown> = {}, extra: { inband?: boolean; tls?: FtpTls } = {}) {
    const parsed = ftpModule.parseOptions(options);
    if (parsed instanceof OptionProblems) throw new Error(parsed.problems.map((p) => p.message).join('; '));
    super(
      new FtpCore(
        { sessionId: 'svc/ftp:1', service: 'ftp', clientZone: 'clients', inband: extra.inband ?? false },
        extra.tls ? { ...parsed, tls: extra.tls } : parsed,
      ),
      // Every event is 1 ms after the one before (tests that need more move `now` themselves).
      { now: 1000, tick: 1 },
    );
  }

  /** One event; `now` is the playbook's clock. */
  ev(e: DistributiveOmit<ProxyEvent, 'now'> | ProxyEvent): Step {
    return this.feed(e);
  }

  fromClient(text: string): Step {
    return this.ev({ type: 'data', stream: 'client', data: enc.encode(text) });
  }

  fromServer(text: string): Step {
    return this.ev({ type: 'data', stream: 'server', data: enc.encode(text) });
  }

  data(stream: string, bytes: Uint8Array | string): Step {
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

  done() {
    return this.all.of('done')[0];
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
