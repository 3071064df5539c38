// Listeners for diverted connections. A TPROXY target socket must have IP_TRANSPARENT /
// IPV6_TRANSPARENT set (linux-tproxy.md step 2 and pitfall 1), which Node cannot do before bind:
// the native addon makes the socket and net.Server adopts the fd.

import net from 'node:net';
import { DEFAULTS } from '../defaults.ts';
import { TzorpError } from '../errors.ts';
import { listenFd, nativeAvailable } from '../native/index.ts';
import type { Addr } from '../proxy/core/types.ts';
import { formatAddr, makeAddr } from './addr.ts';

export interface ListenerOptions {
  /** Address to bind: an IPv4 or IPv6 literal ("::" is dual stack unless v6Only). */
  host: string;
  /** 0 = the kernel picks. */
  port: number;
  /** IP(V6)_TRANSPARENT before bind (default true): needed for TPROXY and for foreign addresses. */
  transparent?: boolean;
  /** SO_REUSEPORT, so several worker processes can each open the same listener. */
  reusePort?: boolean;
  v6Only?: boolean;
  /** listen() backlog (default DEFAULTS.listenBacklog). */
  backlog?: number;
  /** Each accepted connection, paused (nothing is read until the session starts) and half-open capable. */
  onConnection: (sock: net.Socket) => void;
}

export interface Listener {
  readonly server: net.Server;
  /** The bound address (port filled in when 0 was asked). */
  readonly local: Addr;
  /** Stop accepting (the listening socket is closed at once); running connections are not touched. */
  close(): Promise<void>;
}

/**
 * Open a (transparent) TCP listener. Transparent or SO_REUSEPORT listeners need the native addon
 * (NATIVE_MISSING otherwise); plain ones use Node alone. Throws TzorpError (NATIVE_CALL, e.g.
 * EADDRINUSE / EPERM, or DAEMON_LISTEN) when the address cannot be bound.
 */
export async function openListener(opts: ListenerOptions): Promise<Listener> {
  const transparent = opts.transparent ?? true;
  const reusePort = opts.reusePort ?? false;
  const backlog = opts.backlog ?? DEFAULTS.listenBacklog;
  // allowHalfOpen: a client's FIN must not end our sending side (half-close relay).
  // pauseOnConnect: bounded memory, nothing is read before the session's core asks for it.
  const server = net.createServer(
    { allowHalfOpen: true, pauseOnConnect: true, noDelay: true },
    opts.onConnection,
  );
  const useNative = transparent || reusePort || (opts.v6Only !== undefined && nativeAvailable());
  await new Promise<void>((resolve, reject) => {
    const onError = (e: Error) => {
      reject(
        new TzorpError('DAEMON_LISTEN', `cannot listen on ${formatAddr(opts)}: ${e.message}`, {
          cause: e,
          details: { host: opts.host, port: opts.port },
        }),
      );
    };
    server.once('error', onError);
    if (useNative) {
      // Throws NATIVE_MISSING / NATIVE_CALL synchronously: pass it on as it is (it names the call).
      let fd: number;
      try {
        fd = listenFd(opts.host, opts.port, {
          backlog,
          transparent,
          reusePort,
          ...(opts.v6Only !== undefined ? { v6Only: opts.v6Only } : {}),
        });
      } catch (e) {
        server.off('error', onError);
        reject(e);
        return;
      }
      server.listen({ fd, backlog }, () => {
        server.off('error', onError);
        resolve();
      });
    } else {
      server.listen({ host: opts.host, port: opts.port, backlog, ipv6Only: opts.v6Only ?? false }, () => {
        server.off('error', onError);
        resolve();
      });
    }
  });
  const a = server.address() as net.AddressInfo;
  const local = makeAddr(a.address, a.port);
  return {
    server,
    local,
    close: async () => {
      // server.close() releases the listening socket at once; its callback would wait for every
      // accepted connection to end, which is the sessions' business, not the listener's.
      if (server.listening) server.close(() => {});
    },
  };
}
