// Loopback peers for driver tests: plain sockets, port 0, nothing else on the host touched.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import net from 'node:net';
import { closeFd, listenFd } from '../../../src/native/index.ts';
import { acceptNative } from '../../../src/net/accept.ts';
import { openListener, runSession, ServiceUpstream, type SessionSummary } from '../../../src/net/index.ts';
import { runNativePlug } from '../../../src/net/native-plug.ts';
import { type DriverSocket, NativeSocket } from '../../../src/net/native-socket.ts';
import type { ProxyService } from '../../../src/policy/model.ts';
import type { Addr, CoreFactory, ProxyEvent } from '../../../src/proxy/core/types.ts';
import { httpModule } from '../../../src/proxy/http/index.ts';
import { bindCore } from '../../../src/proxy/index.ts';

/** A server that runs `onConn` for each connection; resolves with its port and a close function. */
export async function tcpServer(
  onConn: (s: net.Socket) => void,
  host = '127.0.0.1',
): Promise<{ port: number; server: net.Server; close: () => Promise<void> }> {
  const conns = new Set<net.Socket>();
  const server = net.createServer({ allowHalfOpen: true }, (s) => {
    conns.add(s);
    s.on('close', () => conns.delete(s));
    onConn(s);
  });
  await new Promise<void>((r) => server.listen(0, host, r));
  const port = (server.address() as net.AddressInfo).port;
  return {
    port,
    server,
    close: () =>
      new Promise<void>((r) => {
        server.close(() => r());
        for (const c of conns) c.destroy();
      }),
  };
}

/** Echo with half-close: echoes everything, ends after the client's FIN. */
export function echo(s: net.Socket): void {
  s.on('error', () => {});
  s.pipe(s);
}

/** Reads all, answers with "<n bytes> <sha256>" after the client's FIN, then ends. */
export function digestReply(s: net.Socket): void {
  s.on('error', () => {});
  const h = createHash('sha256');
  let n = 0;
  s.on('data', (d: Buffer) => {
    n += d.length;
    h.update(d);
  });
  s.on('end', () => s.end(`${n} ${h.digest('hex')}`));
}

/** Connect, send `payload`, shut the write side, collect everything until the server's FIN. */
export function exchange(port: number, payload: Buffer | string, host = '127.0.0.1'): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const c = net.connect({ port, host, allowHalfOpen: true });
    const parts: Buffer[] = [];
    c.on('data', (d: Buffer) => parts.push(d));
    c.on('end', () => {
      c.end();
      resolve(Buffer.concat(parts));
    });
    c.on('error', reject);
    c.on('connect', () => {
      c.write(payload);
      c.end();
    });
  });
}

export function proxyService(
  targets: { host: string; port: number }[],
  over: Partial<ProxyService> = {},
): Pick<ProxyService, 'name' | 'router' | 'chainer' | 'limitTargetZonesTo' | 'maxSessions'> {
  return {
    name: 'test_plug',
    router: {
      type: 'directed',
      targets: targets.map((t) => ({ host: t.host, port: t.port, family: t.host.includes(':') ? 6 : 4 })),
      forgeAddr: false,
      forgePort: 'any',
    },
    chainer: { type: 'connect', timeoutConnectMs: 5000 },
    limitTargetZonesTo: [],
    maxSessions: 0,
    ...over,
  };
}

/** Socket descriptors of this process (pipes of the relay's pool and its epoll are not counted). */
export function socketFds(): number {
  let n = 0;
  for (const f of readdirSync('/proc/self/fd')) {
    try {
      if (readlinkSync(`/proc/self/fd/${f}`).startsWith('socket:')) n++;
    } catch {
      // closed while listing
    }
  }
  return n;
}

/** Wait until `cond` holds (polled every 5 ms), failing after 60 s with `what`. */
export async function until(cond: () => boolean, what: string): Promise<void> {
  for (let i = 0; !cond(); i++) {
    if (i > 12_000) assert.fail(`still waiting after 60 s: ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** The port a listening descriptor is bound to (the addon's listen takes port 0), from
 * /proc/net/tcp{,6} by the socket's inode. */
export function boundPort(fd: number): number {
  const inode = /socket:\[(\d+)\]/.exec(readlinkSync(`/proc/self/fd/${fd}`))?.[1];
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    for (const line of readFileSync(file, 'utf8').split('\n').slice(1)) {
      const cols = line.trim().split(/\s+/);
      if (cols[9] === inode) return Number.parseInt(cols[1]!.split(':')[1]!, 16);
    }
  }
  throw new assert.AssertionError({ message: `no port for fd ${fd}` });
}

/** `createCore`'s cores, each showing the test every event before it handles it. */
export function watchedCores(createCore: CoreFactory, watch: (ev: ProxyEvent) => void): CoreFactory {
  return (ctx) => {
    const core = createCore(ctx);
    const handle = core.handle.bind(core);
    core.handle = (ev: ProxyEvent) => {
      watch(ev);
      return handle(ev);
    };
    return core;
  };
}

/** The HTTP proxy (the real driver and HTTP core with `options`) on a loopback listener, in front of
 * 127.0.0.1:`serverPort`: its sessions' `http.accounting` fields and summaries, each core event shown
 * to `watch` first. Close it with `close`. `nativeIo`: the addon accepts and the sessions run on
 * NativeSockets (src/net/native-socket.ts), as `tzorp run` runs HTTP services. */
export async function loopbackHttpProxy(
  serverPort: number,
  options: Record<string, unknown>,
  nativeRelay: boolean,
  watch: (ev: ProxyEvent) => void,
  nativeIo = false,
): Promise<{
  port: number;
  lines: Record<string, unknown>[];
  summaries: SessionSummary[];
  close: () => Promise<void>;
}> {
  const upstream = new ServiceUpstream(proxyService([{ host: '127.0.0.1', port: serverPort }]), {
    transparentUpstream: false,
  });
  const lines: Record<string, unknown>[] = [];
  const summaries: SessionSummary[] = [];
  const createCore = watchedCores(bindCore(httpModule, options), watch);
  let n = 0;
  const run = (socket: DriverSocket, addrs?: { remote: Addr; local: Addr }) =>
    runSession({
      id: `svc/web:${++n}`,
      service: 'web',
      socket,
      ...(addrs ? { addrs } : {}),
      createCore,
      upstream,
      nativeRelay,
      log: (category, _level, _msg, fields) => {
        if (category === 'http.accounting') lines.push(fields);
      },
      onEnd: (s) => summaries.push(s),
    });
  if (nativeIo) {
    const fd = listenFd('127.0.0.1', 0, { transparent: false });
    const port = boundPort(fd);
    const acceptor = acceptNative(
      fd,
      (c) => run(new NativeSocket(c.fd, true), { remote: c.remote, local: c.local }),
      () => {},
    );
    closeFd(fd); // (the addon accepts on its own duplicate)
    return { port, lines, summaries, close: async () => acceptor.stop() };
  }
  const l = await loopbackListener((socket: net.Socket) => run(socket));
  return { port: l.local.port, lines, summaries, close: () => l.close() };
}

/** A plain (not transparent) listener on 127.0.0.1, any port, for sessions run by the test. */
export function loopbackListener(onConnection: (sock: net.Socket) => void): ReturnType<typeof openListener> {
  return openListener({ host: '127.0.0.1', port: 0, transparent: false, onConnection });
}

/** The HTTP relay tests' four ways to run (native relay on/off, native I/O on/off), with their names. */
export const RELAY_IO_MODES = (
  [
    [true, false],
    [false, false],
    [true, true],
    [false, true],
  ] as const
).map(([nativeRelay, nativeIo]) => ({
  nativeRelay,
  nativeIo,
  mode: `native relay ${nativeRelay ? 'on' : 'off'}${nativeIo ? ', native I/O' : ''}`,
}));

/** A native plug front on loopback (accept, connect and relay in the addon) to 127.0.0.1:`target`;
 * `onEnd` hears each session's end. */
export function nativePlugFront(target: number, onEnd?: () => void): { port: number; stop(): void } {
  const up = new ServiceUpstream(
    proxyService([{ host: '127.0.0.1', port: target }], {
      chainer: { type: 'failover', timeoutConnectMs: 5000, timeoutStateMs: 1000 },
    }),
    { transparentUpstream: false },
  );
  const fd = listenFd('127.0.0.1', 0, { transparent: false });
  const port = boundPort(fd);
  let n = 0;
  const acceptor = acceptNative(
    fd,
    (conn) => {
      runNativePlug({
        id: `svc/front:${++n}`,
        service: 'front',
        conn,
        upstream: up,
        options: { timeoutMs: 60_000, copyToServer: true, copyToClient: true },
        admitted: true,
        clientZone: null,
        ruleId: 1,
        ...(onEnd ? { onEnd } : {}),
      });
    },
    () => {},
  );
  closeFd(fd); // (the addon keeps its own dup)
  return { port, stop: () => acceptor.stop() };
}
