// Scripted event/command sequences for the http core: feed events, look at the commands.
import type { Addr, ProxyCommand, ProxyEvent } from '../../../../src/proxy/core/types.ts';
import { createHttpCore } from '../../../../src/proxy/http/index.ts';

export const CLIENT: Addr = { host: '198.18.1.10', port: 40000, family: 4 };
export const DEST: Addr = { host: '198.18.2.20', port: 80, family: 4 };

export class Script {
  readonly core;
  now = 1_000_000;
  readonly log: ProxyCommand[] = [];

  constructor(options: Record<string, unknown> = {}, ctx: { inband?: boolean; clientLocal?: Addr } = {}) {
    this.core = createHttpCore({
      sessionId: 'svc/test:1',
      service: 'http_test',
      options,
      clientZone: 'clients',
      inband: ctx.inband ?? false,
      clientLocal: ctx.clientLocal ?? DEST,
    });
  }

  ev(e: ProxyEvent): ProxyCommand[] {
    const cmds = this.core.handle(e);
    this.log.push(...cmds);
    return cmds;
  }
  start(): ProxyCommand[] {
    return this.ev({ type: 'start', now: this.now, client: CLIENT, clientLocal: DEST });
  }
  data(stream: 'client' | 'server', s: string | Uint8Array): ProxyCommand[] {
    const data = typeof s === 'string' ? Buffer.from(s, 'latin1') : s;
    return this.ev({ type: 'data', now: this.now, stream, data });
  }
  client(s: string | Uint8Array): ProxyCommand[] {
    return this.data('client', s);
  }
  server(s: string | Uint8Array): ProxyCommand[] {
    return this.data('server', s);
  }
  connected(): ProxyCommand[] {
    return this.ev({ type: 'connected', now: this.now, stream: 'server', local: CLIENT, remote: DEST });
  }
  end(stream: 'client' | 'server'): ProxyCommand[] {
    return this.ev({ type: 'end', now: this.now, stream });
  }
  closed(stream: 'client' | 'server', error?: string): ProxyCommand[] {
    return this.ev(
      error ? { type: 'closed', now: this.now, stream, error } : { type: 'closed', now: this.now, stream },
    );
  }
  timer(timer: string): ProxyCommand[] {
    return this.ev({ type: 'timer', now: this.now, timer });
  }

  /** Everything sent to a stream so far (latin1). */
  sent(stream: 'client' | 'server'): string {
    return this.log
      .filter((c): c is Extract<ProxyCommand, { type: 'send' }> => c.type === 'send' && c.stream === stream)
      .map((c) => Buffer.from(c.data).toString('latin1'))
      .join('');
  }
  connects(): Extract<ProxyCommand, { type: 'connect' }>[] {
    return this.log.filter((c): c is Extract<ProxyCommand, { type: 'connect' }> => c.type === 'connect');
  }
  done(): Extract<ProxyCommand, { type: 'done' }> | undefined {
    return this.log.find((c): c is Extract<ProxyCommand, { type: 'done' }> => c.type === 'done');
  }
  logs(category: string): Extract<ProxyCommand, { type: 'log' }>[] {
    return this.log.filter(
      (c): c is Extract<ProxyCommand, { type: 'log' }> => c.type === 'log' && c.category === category,
    );
  }
  closedStreams(): string[] {
    return this.log.filter((c) => c.type === 'close').map((c) => (c as { stream: string }).stream);
  }
  /** Status codes of the responses sent to the client, in order (interim ones too). */
  statuses(): number[] {
    return [...this.sent('client').matchAll(/HTTP\/1\.1 (\d{3}) /g)].map((m) => Number(m[1]));
  }
}

/** Start a session, send a request, connect the server: the common opening. */
export function opened(
  options: Record<string, unknown> = {},
  request = 'GET / HTTP/1.1\r\nHost: example.test\r\n\r\n',
): Script {
  const s = new Script(options);
  s.start();
  s.client(request);
  s.connected();
  return s;
}
