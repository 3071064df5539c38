// Native accept (issue 14): the addon's relay thread accepts on a listening socket and hands
// JavaScript each connection as a descriptor with its addresses and SYN mark, without a net.Socket.
// A plug session can then connect and relay it natively from the first byte (native-plug.ts); any
// other session makes a net.Socket of the descriptor (socketOfFd).
import net from 'node:net';
import { type AcceptCallback, acceptStart, acceptStop, closeFd } from '../native/index.ts';
import type { Addr } from '../proxy/core/types.ts';
import { addonAddr } from './addr.ts';
import { onRelayEnd } from './relay.ts';

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

interface Receiver {
  onConn(c: NativeConn): void;
  /** An accept failed for want of descriptors or memory (errno name); the addon pauses a moment. */
  onFull(errno: number): void;
}

const receivers = new Map<number, Receiver>();

const onAccept: AcceptCallback = (id, fd, peerHost, peerPort, localHost, localPort, mark) => {
  const r = receivers.get(id);
  if (fd < 0) {
    r?.onFull(-fd);
    return;
  }
  if (!r || !peerHost || !localHost) {
    // stopped meanwhile, or a connection reset before its addresses could be read
    try {
      closeFd(fd);
    } catch {
      // (EBADF cannot happen: the descriptor came from the addon and nobody else has it)
    }
    return;
  }
  r.onConn({ fd, remote: addonAddr(peerHost, peerPort), local: addonAddr(localHost, localPort), mark });
};

/**
 * Accept on `listenFd` (a listening socket; the addon keeps a dup of it, so the caller may close its
 * own) natively. Throws TzorpError NATIVE_CALL / NATIVE_MISSING.
 */
export function acceptNative(
  listenFd: number,
  onConn: (c: NativeConn) => void,
  onFull: (errno: number) => void,
): NativeAcceptor {
  const id = acceptStart(listenFd, onAccept, onRelayEnd);
  receivers.set(id, { onConn, onFull });
  return {
    stop: () => {
      receivers.delete(id);
      acceptStop(id);
    },
  };
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
