// A plug session that never enters JavaScript's socket layer (issue 14): the connection was accepted
// by the addon (accept.ts), the server side is connected and relayed by the addon too (connectRelay),
// so a session costs no net.Socket, no stream state and no handover. JavaScript keeps what the driver
// (driver.ts) does around the plug core: admission, routing and chaining (ServiceUpstream.connectVia),
// limit_target_zones_to, the log lines, the summary, abort and kill, and live byte counts.
//
// What a session does here is what PlugCore (src/proxy/plug/core.ts) does with the native relay, for
// the options that allow it (nativePlugEligible: both directions copied, no TLS layer): the client is
// not read before the server is connected; a failed connect resets the client; then the relay copies
// with half-close, the idle `timeout` and byte counts; its end is the session's end, with the same
// verdicts, info texts and plug_bytes_* counters as the core reports. The connect phase is bounded by
// the plug `timeout` as the core's connect timer bounds it (each target's connect also by the chainer's
// timeout_connect).
import { TzorpError } from '../errors.ts';
import { closeFd } from '../native/index.ts';
import type { ProxyService } from '../policy/model.ts';
import type { Addr, LogLevel, Verdict } from '../proxy/core/types.ts';
import type { PlugOptions } from '../proxy/plug/options.ts';
import type { NativeConn } from './accept.ts';
import { formatAddr, zorpAddr } from './addr.ts';
import {
  connectFailure,
  refusalText,
  SessionDone,
  type SessionHandle,
  type SessionLog,
  type SessionSnapshot,
  type SessionSummary,
  sessionLine,
} from './driver.ts';
import {
  type ConnectingRelayOwner,
  connectRelay,
  type NativeRelay,
  type NativeRelayEnd,
  nativeRelayAvailable,
} from './relay.ts';
import type { ServiceUpstream } from './service.ts';
import { connectFailed, type UpstreamConnectOptions, upstreamFd } from './upstream.ts';

/** Whether a service's sessions can run as NativePlugSession: plug copying both ways, no TLS layer,
 * the native relay wanted (daemon and service) and built. */
export function nativePlugEligible(
  service: Pick<ProxyService, 'proxy' | 'tls' | 'nativeRelay' | 'router'>,
  proxy: { proxy: string; options: unknown },
  nativeRelay: boolean,
): boolean {
  if (!nativeRelay || service.nativeRelay === false || service.proxy !== 'plug' || proxy.proxy !== 'plug')
    return false;
  if (service.tls || service.router.type === 'inband') return false;
  const o = proxy.options as PlugOptions;
  return o.copyToServer && o.copyToClient && nativeRelayAvailable();
}

export interface NativePlugOptions {
  id: string;
  service: string;
  conn: NativeConn;
  upstream: ServiceUpstream;
  /** The plug options (its `timeout`). */
  options: PlugOptions;
  /** As RunSessionOptions.admitted / refusedBy: a session not admitted ends at once. */
  admitted: boolean;
  refusedBy?: string;
  clientZone: string | null;
  ruleId: number | null;
  log?: SessionLog;
  onEnd?: (summary: SessionSummary) => void;
  now?: () => number;
}

interface Pending {
  resolve(local: Addr): void;
  reject(e: Error): void;
  target: Addr;
  timeoutMs: number;
}

/** Start a native plug session (see the top of this file). Returns at once. */
export function runNativePlug(o: NativePlugOptions): SessionHandle {
  return new NativePlugSession(o);
}

class NativePlugSession extends SessionDone implements SessionHandle, ConnectingRelayOwner {
  private readonly now: () => number;
  private readonly startedAt: number;
  /** The client's descriptor while it is ours (before a connect, after a failed one); -1 when the
   * relay has it or it is closed. */
  private clientFd: number;
  /** The addon's relay, while it connects (`pending` is set) and then relays. */
  private relay: NativeRelay | null = null;
  /** The connect of the current target, until the addon says how it went. */
  private pending: Pending | null = null;
  private ended = false;
  private policyDenied = false;
  private server: Addr | null = null;
  private serverLocal: Addr | null = null;
  private serverZone: string | null = null;
  private bytes = { fromClient: 0, toClient: 0, fromServer: 0, toServer: 0 };
  /** The connect phase ends by here (the plug `timeout`, as the core's connect timer). */
  private readonly connectBy: number;

  constructor(private readonly o: NativePlugOptions) {
    super();
    this.now = o.now ?? Date.now;
    this.startedAt = this.now();
    this.clientFd = o.conn.fd;
    this.connectBy = this.startedAt + o.options.timeoutMs;
    this.start();
  }

  get id(): string {
    return this.o.id;
  }

  snapshot(): SessionSnapshot {
    const c = this.relaying() ? this.relay!.counts() : null;
    return {
      id: this.o.id,
      service: this.o.service,
      client: this.o.conn.remote,
      clientZone: this.o.clientZone,
      server: this.server,
      serverZone: this.serverZone,
      startedAt: this.startedAt,
      bytes: c ? { fromClient: c[0], toClient: c[1], fromServer: c[2], toServer: c[3] } : { ...this.bytes },
      counters: {},
    };
  }

  abort(reason: string): void {
    if (this.ended) return;
    this.stopAll(false);
    this.finish('ACCEPTED', `aborted: ${reason}`);
  }

  kill(reason: string): void {
    if (this.ended) return;
    this.stopAll(true);
    this.finish('DENIED_BY_UNKNOWN_FAIL', `killed: ${reason}`);
  }

  private log(category: string, level: LogLevel, msg: string, fields: Record<string, unknown>): void {
    const log = this.o.log;
    if (!log || log.enabled?.(category, level) === false) return;
    sessionLine(log, this.o.id, this.o.service, category, level, msg, fields);
  }

  /** Whether a line would be written: the lines of every session are not built when not. */
  private logs(category: string, level: LogLevel): boolean {
    return this.o.log !== undefined && this.o.log.enabled?.(category, level) !== false;
  }

  private start(): void {
    const { conn, upstream } = this.o;
    if (!this.o.admitted) {
      const { msg, fields, info } = refusalText(upstream, this.o.refusedBy);
      this.log('core.policy', 'warn', msg, {
        client_address: zorpAddr(conn.remote),
        client_zone: this.o.clientZone,
        ...fields,
      });
      this.closeClient(true);
      this.finish('DENIED_BY_LIMIT', info);
      return;
    }
    if (this.logs('core.session', 'info'))
      this.log('core.session', 'info', 'Starting proxy session', {
        client_address: zorpAddr(conn.remote),
        client_local: zorpAddr(conn.local),
        client_zone: this.o.clientZone,
        rule_id: this.o.ruleId,
      });
    upstream
      .connectVia({ client: conn.remote, clientLocal: conn.local }, (c) => this.connectOne(c))
      // (connected: relayConnected has done everything already)
      .catch((e: unknown) => this.connectFailed(e));
  }

  /** One target of the chainer: the addon connects it and, once connected, relays. */
  private connectOne(c: UpstreamConnectOptions): Promise<Addr> {
    return new Promise((resolve, reject) => {
      const left = this.connectBy - this.now();
      if (this.ended || this.clientFd < 0) {
        reject(connectFailed('aborted'));
        return;
      }
      if (left <= 0) {
        reject(connectFailed(`server connection not established within ${this.o.options.timeoutMs} ms`));
        return;
      }
      const timeoutMs = Math.max(1, Math.min(c.timeoutMs, left));
      let serverFd: number;
      try {
        serverFd = upstreamFd(c);
      } catch (e) {
        reject(e);
        return;
      }
      try {
        this.relay = connectRelay(
          this.clientFd,
          serverFd,
          c.target,
          timeoutMs,
          this.o.options.timeoutMs,
          this,
        );
      } catch (e) {
        closeFd(serverFd);
        const code = e instanceof TzorpError ? String(e.details?.code ?? 'EINVAL') : 'EINVAL';
        reject(connectFailed((e as Error).message, { code }));
        return;
      }
      this.clientFd = -1; // the relay's now
      this.pending = { resolve, reject, target: c.target, timeoutMs };
    });
  }

  /** Connected, and the relay runs. Its end can be in the same batch of reports as this: the server
   * is the summary's from here, not from the chainer's promise a microtask later. */
  relayConnected(local: Addr): void {
    const p = this.pending;
    this.pending = null;
    if (!p) return;
    const target = p.target;
    this.server = target;
    this.serverLocal = local;
    this.serverZone = this.o.upstream.zoneOf(target.host);
    if (this.logs('core.session', 'info'))
      this.log('core.session', 'info', 'Server connection established', {
        stream: 'server',
        server_address: zorpAddr(target),
        server_zone: this.serverZone,
        server_local: zorpAddr(local),
      });
    p.resolve(local);
  }

  relayConnectFailed(error: string): void {
    const p = this.pending;
    this.pending = null;
    this.clientFd = this.o.conn.fd; // the addon gave it back, unread
    this.relay = null;
    if (!p) return;
    p.reject(
      error === 'ETIMEDOUT'
        ? connectFailed(`connect to ${formatAddr(p.target)} timed out after ${p.timeoutMs} ms`, {
            code: error,
          })
        : connectFailed(`connect ${error} ${formatAddr(p.target)}`, { code: error }),
    );
  }

  private connectFailed(err: unknown): void {
    if (this.ended) return;
    const { msg, target, denied } = connectFailure(err, 'server', undefined, (c, l, m, f) =>
      this.log(c, l, m, f),
    );
    if (denied) {
      this.policyDenied = true;
      this.serverZone = denied.zone;
      this.server = denied.target;
    }
    if (target && !this.server) this.server = target;
    // The client sees a reset, as it would from a server that refused (PlugCore does the same).
    this.closeClient(true);
    this.finish(this.policyDenied ? 'DENIED_BY_POLICY' : 'DENIED_BY_CONNECTION_FAIL', msg);
  }

  /** The relay ended on its own (relay.ts RelayOwner). */
  relayEnded(end: NativeRelayEnd): void {
    if (this.ended) return;
    this.relay = null;
    this.setBytes(end.counts);
    const timeout = this.o.options.timeoutMs;
    if (end.reason === 'idle') {
      this.log('plug.session', 'info', 'Idle timeout, closing the session', { timeout_ms: timeout });
      this.finish('ACCEPTED', `idle timeout (${timeout} ms)`);
    } else if (end.reason === 'error') {
      const by = end.by === 0 ? 'client' : end.by === 1 ? 'server' : 'relay';
      this.finish('ACCEPTED', `${by}: ${end.error ?? 'error'}`);
    } else this.finish('ACCEPTED', null);
  }

  private setBytes(c: readonly number[]): void {
    this.bytes = { fromClient: c[0]!, toClient: c[1]!, fromServer: c[2]!, toServer: c[3]! };
  }

  /** The relay runs (connected): its counts are the session's. */
  private relaying(): boolean {
    return this.relay !== null && this.pending === null;
  }

  /** End what runs: the relay (connecting or relaying: it closes both sockets) or our client fd. */
  private stopAll(reset: boolean): void {
    const r = this.relay;
    if (r) {
      const c = r.stop(reset);
      if (this.relaying()) this.setBytes(c);
      this.relay = null;
      const p = this.pending;
      this.pending = null;
      p?.reject(connectFailed('aborted'));
    }
    this.closeClient(reset);
  }

  private closeClient(reset: boolean): void {
    if (this.clientFd < 0) return;
    const fd = this.clientFd;
    this.clientFd = -1;
    try {
      closeFd(fd, reset);
    } catch {
      // (EBADF cannot happen: the descriptor is ours alone)
    }
  }

  private finish(verdict: Verdict, info: string | null): void {
    if (this.ended) return;
    this.ended = true;
    const endedAt = this.now();
    const b = this.bytes;
    const summary: SessionSummary = {
      id: this.o.id,
      service: this.o.service,
      ruleId: this.o.ruleId,
      startedAt: this.startedAt,
      endedAt,
      durationMs: endedAt - this.startedAt,
      client: this.o.conn.remote,
      clientLocal: this.o.conn.local,
      clientZone: this.o.clientZone,
      server: this.server,
      serverLocal: this.serverLocal,
      serverZone: this.serverZone,
      bytes: { ...b },
      verdict,
      info,
      // (what PlugCore accounts; a refused session never had a core, so it has none)
      counters:
        verdict === 'DENIED_BY_LIMIT'
          ? {}
          : {
              plug_bytes_from_client: b.fromClient,
              plug_bytes_to_server: b.toServer,
              plug_bytes_from_server: b.fromServer,
              plug_bytes_to_client: b.toClient,
            },
    };
    this.settle(summary, this.o.log, this.o.onEnd);
  }
}
