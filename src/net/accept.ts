// Native accept (issue 14): the addon accepts on a listening socket, on the loop that runs the sessions
// (tzorp_io.c), and hands JavaScript each connection as a descriptor with its addresses and SYN mark,
// without a net.Socket.
// A plug session can then connect and relay it natively from the first byte (native-plug.ts); any
// other session makes a net.Socket of the descriptor (socketOfFd).
import net from 'node:net';
import { closeFd } from '../native/index.ts';
import type { Addr } from '../proxy/core/types.ts';
import { addonAddr } from './addr.ts';
import { listenIo } from './native-socket.ts';

/** A connection the addon accepted. Nothing has been read from it; the descriptor is the receiver's
 * to close (closeFd), to relay (connectRelay) or to make a socket of (socketOfFd). */
export interface NativeConn {
  fd: number;
  /** The client. */
  remote: Addr;
  /** The address the client dialled (the original destination under TPROXY). */
  local: Addr;
  /** The SYN's mark (tcp_fwmark_accept), null when unreadable. */
  mark: number | null;
}

export interface NativeAcceptor {
  /** Stop accepting (the addon's copy of the listening socket is closed at once). */
  stop(): void;
}

/**
 * Accept on `listenFd` (a listening socket; the addon keeps a dup of it, so the caller may close its
 * own) natively, on this thread's loop (tzorp_io.c ioListen). `onFull` hears of an accept that failed
 * for want of descriptors or memory (errno); the addon pauses the listener a moment meanwhile. A
 * throw from `onConn` closes that connection's descriptor, then goes on as a throw in a net.Server's
 * 'connection' listener does (uncaughtException). Throws TzorpError NATIVE_MISSING.
 */
export function acceptNative(
  listenFd: number,
  onConn: (c: NativeConn) => void,
  onFull: (errno: number) => void,
): NativeAcceptor {
  return listenIo(listenFd, {
    accepted: (fd, peerHost, peerPort, localHost, localPort, mark) => {
      if (!peerHost || !localHost) {
        // a connection reset before its addresses could be read
        closeQuietly(fd);
        return;
      }
      try {
        onConn({ fd, remote: addonAddr(peerHost, peerPort), local: addonAddr(localHost, localPort), mark });
      } catch (e) {
        closeQuietly(fd);
        throw e;
      }
    },
    full: onFull,
  });
}

function closeQuietly(fd: number): void {
  try {
    closeFd(fd);
  } catch {
    // (EBADF cannot happen: the descriptor came from the addon and nobody else has it)
  }
}

/** A paused, half-open capable net.Socket made of an accepted descriptor (for the sessions that run
 * through the JavaScript driver). */
export function socketOfFd(fd: number): net.Socket {
  // pauseOnCreate: as net.Server's pauseOnConnect, nothing is read before the session asks.
  const opts = { fd, allowHalfOpen: true, readable: true, writable: true, pauseOnCreate: true };
  const sock = new net.Socket(opts as net.SocketConstructorOpts);
  sock.setNoDelay(true);
  return sock;
}
