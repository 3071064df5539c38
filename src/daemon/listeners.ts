// The primary's listening sockets, one per (family, address, port). The native addon makes each one
// transparent (IP_TRANSPARENT / IPV6_TRANSPARENT before bind: TPROXY only assigns connections to such
// sockets) and the primary wraps the fd in a libuv TCP server handle that it never listens on itself:
// it only keeps it open and sends copies to the workers. Node 20 has no public API to make a server
// handle from an fd without also accepting on it; `process.binding('tcp_wrap')` is the one place
// that reaches for the internal binding (child_process itself sends such handles as 'net.Native').
import { TzorpError } from '../errors.ts';
import { type ListenerSpec, listenerKey } from './ipc.ts';
import type { ServerHandle } from './pool.ts';

interface TcpHandle {
  open(fd: number): number;
  close(cb?: () => void): void;
}

interface TcpWrap {
  TCP: new (type: number) => TcpHandle;
  constants: { SERVER: number };
}

function tcpWrap(): TcpWrap {
  return (process as unknown as { binding(name: string): TcpWrap }).binding('tcp_wrap');
}

export interface OpenedListener {
  spec: ListenerSpec;
  handle: ServerHandle;
}

export type ListenFdFn = (host: string, port: number, family: 4 | 6) => number;
export type CloseFdFn = (fd: number) => void;
/** TCP_QUICKACK 0 (`on`) or 1 on a listening socket: what its connections start with. */
export type DeferAcksFn = (fd: number, on: boolean) => void;

export class ListenerTable {
  private readonly byKey = new Map<string, OpenedListener & { raw: TcpHandle; deferAcks: boolean }>();

  constructor(
    private readonly listenFd: ListenFdFn,
    private readonly closeFd: CloseFdFn,
    private readonly setDeferAcks: DeferAcksFn | null = null,
  ) {}

  get(key: string): OpenedListener | undefined {
    return this.byKey.get(key);
  }

  keys(): string[] {
    return [...this.byKey.keys()];
  }

  all(): OpenedListener[] {
    return [...this.byKey.values()];
  }

  /** The listener for family/host/port, opened when not open yet. Throws DAEMON_LISTEN. */
  ensure(family: 4 | 6, host: string, port: number): OpenedListener & { created: boolean } {
    const key = listenerKey(family, host, port);
    const have = this.byKey.get(key);
    if (have) return { ...have, created: false };
    let fd: number;
    try {
      fd = this.listenFd(host, port, family);
    } catch (e) {
      throw new TzorpError('DAEMON_LISTEN', `cannot open the listener ${key}: ${(e as Error).message}`, {
        cause: e,
        details: { host, port },
      });
    }
    const { TCP, constants } = tcpWrap();
    const raw = new TCP(constants.SERVER);
    const err = raw.open(fd);
    if (err !== 0) {
      this.closeFd(fd);
      throw new TzorpError('DAEMON_LISTEN', `cannot adopt the listener ${key} (uv error ${err})`, {
        details: { host, port },
      });
    }
    const entry = { spec: { key, family, host, port, fd }, handle: raw, raw, deferAcks: false };
    this.byKey.set(key, entry);
    return { ...entry, created: true };
  }

  /**
   * Whether the connections `key` accepts from now on delay their ACKs for the reply to carry (HTTP
   * services' listeners; docs/http.md). A listener outlives generations, so each one says it again;
   * the socket is touched only when the answer changes. A failure is the caller's to log: the listener
   * keeps working either way.
   */
  deferAcks(key: string, on: boolean): void {
    const e = this.byKey.get(key);
    if (!e || !this.setDeferAcks || e.deferAcks === on) return;
    this.setDeferAcks(e.spec.fd, on);
    e.deferAcks = on;
  }

  /** Close the primary's copy (workers close theirs; the socket goes when the last copy does). */
  close(key: string): void {
    const e = this.byKey.get(key);
    if (!e) return;
    this.byKey.delete(key);
    e.raw.close();
  }

  closeAll(): void {
    for (const k of this.keys()) this.close(k);
  }
}
