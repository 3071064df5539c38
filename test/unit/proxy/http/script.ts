// Scripted event/command sequences for the http core, on the playbook harness (../playbook.ts): the
// protocol's events by name, and the questions HTTP tests ask of the whole session so far.
import type { Addr, CoreContext, ProxyCommand } from '../../../../src/proxy/core/types.ts';
import { httpModule } from '../../../../src/proxy/http/index.ts';
import { bindCore } from '../../../../src/proxy/index.ts';
import { Playbook, type Step } from '../playbook.ts';

export const CLIENT: Addr = { host: '198.18.1.10', port: 40000, family: 4 };
export const DEST: Addr = { host: '198.18.2.20', port: 80, family: 4 };

export class Script extends Playbook {
  constructor(
    options: Record<string, unknown> = {},
    ctx: {
      inband?: boolean;
      clientLocal?: Addr;
      inspectConnect?: CoreContext['inspectConnect'];
      tls?: boolean;
    } = {},
  ) {
    super(
      bindCore(
        httpModule,
        options,
      )({
        sessionId: 'svc/test:1',
        service: 'http_test',

        clientZone: 'clients',
        inband: ctx.inband ?? false,
        clientLocal: ctx.clientLocal ?? DEST,
        ...(ctx.inspectConnect ? { inspectConnect: ctx.inspectConnect } : {}),
        ...(ctx.tls ? { tls: true } : {}),
      }),
      { now: 1_000_000 },
    );
  }

  start(): Step {
    return this.feed({ type: 'start', client: CLIENT, clientLocal: DEST });
  }
  data(stream: 'client' | 'server', s: string | Uint8Array): Step {
    const data = typeof s === 'string' ? Buffer.from(s, 'latin1') : s;
    return this.feed({ type: 'data', stream, data });
  }
  client(s: string | Uint8Array): Step {
    return this.data('client', s);
  }
  server(s: string | Uint8Array): Step {
    return this.data('server', s);
  }
  connected(): Step {
    return this.feed({ type: 'connected', stream: 'server', local: CLIENT, remote: DEST });
  }
  end(stream: 'client' | 'server'): Step {
    return this.feed({ type: 'end', stream });
  }
  closed(stream: 'client' | 'server', error?: string): Step {
    return this.feed(error ? { type: 'closed', stream, error } : { type: 'closed', stream });
  }
  timer(timer: string): Step {
    return this.feed({ type: 'timer', timer });
  }

  // Questions about the whole session so far.
  connects(): Extract<ProxyCommand, { type: 'connect' }>[] {
    return this.all.of('connect');
  }
  done(): Extract<ProxyCommand, { type: 'done' }> | undefined {
    return this.all.of('done')[0];
  }
  logs(category: string): Extract<ProxyCommand, { type: 'log' }>[] {
    return this.all.of('log').filter((c) => c.category === category);
  }
  closedStreams(): string[] {
    return this.all.of('close').map((c) => c.stream);
  }
  /** Status codes of the responses sent to the client, in order (interim ones too). */
  statuses(): number[] {
    return [...this.all.sent('client').matchAll(/HTTP\/1\.1 (\d{3}) /g)].map((m) => Number(m[1]));
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
