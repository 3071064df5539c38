// The plug proxy core: a byte copier between the client and the server (Zorp Plug), sans-IO.
//
//   ┌──────┐ start  ┌────────────┐ connected  ┌──────────┐ both directions ended, a side closed,
//   │ init │ ─────▶ │ connecting │ ─────────▶ │ relaying │ idle timeout, abort        ┌──────┐
//   └──────┘        └────────────┘            └──────────┘ ─────────────────────────▶ │ done │
//                         │ connectFailed, connect timer, client gone, abort           └──────┘
//                         └───────────────────────────────────────────────────────────────▲
//
// - The server is connected through the session's router and chainer (`connect` without a target).
// - Until it is connected the client is not read (bounded memory: nothing is buffered here at all;
//   the driver's backpressure keeps the socket buffers bounded).
// - Half-close both ways: a FIN from one side becomes a shutdown (FIN) toward the other, and the
//   other direction keeps flowing. The session is over when both directions have ended, or one side
//   closed/reset (then the other is closed too).
// - copy_to_server / copy_to_client false: that direction's bytes are read and dropped (Zorp).
// - Timers: 'connect' guards the whole connect phase (the chainer's per-target timeout_connect runs
//   in the driver); 'idle' is the plug `timeout` since the last data either way (checked when the
//   timer fires, so data costs no timer commands).
// - Native relay: once relaying starts (and both directions are copied), the core asks the driver to
//   copy natively (`relay`). If the driver takes the streams (`relayStarted`) the idle timeout, the
//   half-close and the byte counts are the native relay's, and its `relayEnded` ends the session; if it
//   declines, everything above goes on in JavaScript.
import {
  assertNever,
  type CoreDescription,
  dispatchByState,
  Outbox,
  type StateHandler,
} from '../core/index.ts';
import type { ProxyCommand, ProxyCore, ProxyEvent, Verdict } from '../core/types.ts';
import type { PlugOptions } from './options.ts';

type Phase = 'init' | 'connecting' | 'relaying' | 'done';

interface Side {
  /** The peer sent FIN (or the stream is gone): nothing more comes from it. */
  readEnded: boolean;
  /** We sent FIN (or the stream is gone): we must not send to it any more. */
  writeEnded: boolean;
  closed: boolean;
  /** Bytes read from this side. */
  bytesIn: number;
  /** Bytes sent to this side. */
  bytesOut: number;
}

const IDLE = 'idle';
const CONNECT = 'connect';

export class PlugCore implements ProxyCore {
  private phase: Phase = 'init';
  /** `now` of the last data either way (ms): the idle timeout counts from here. */
  private lastActivity = 0;
  private readonly client: Side = newSide();
  private readonly server: Side = newSide();
  /** The driver copies natively (after relayStarted). */
  private native = false;

  private readonly out = new Outbox('plug');

  constructor(readonly opts: PlugOptions) {}

  handle(ev: ProxyEvent): ProxyCommand[] {
    if (this.phase === 'done') return [];
    this.dispatch(ev);
    return this.out.take();
  }

  describe(): CoreDescription {
    const side = (s: Side) => ({ read_ended: s.readEnded, write_ended: s.writeEnded, closed: s.closed });
    return { proxy: 'plug', state: this.phase, client: side(this.client), server: side(this.server) };
  }

  /** One handler per state; what they leave to it, onAnyState does the same in every state. */
  private dispatch(ev: ProxyEvent): void {
    dispatchByState(this, this.phase, PlugCore.handlers, this.onAnyState, ev);
  }

  private static readonly handlers: Readonly<Record<Phase, StateHandler<PlugCore> | null>> = {
    init: PlugCore.prototype.inInit,
    connecting: PlugCore.prototype.inConnecting,
    relaying: PlugCore.prototype.inRelaying,
    done: null,
  };

  private inInit(ev: ProxyEvent): boolean {
    return ev.type === 'start' && this.onStart();
  }

  private onStart(): true {
    this.phase = 'connecting';
    this.out.emit({ type: 'pause', stream: 'client' });
    this.out.emit({ type: 'connect', stream: 'server', options: {} });
    this.out.emit({ type: 'setTimer', timer: CONNECT, ms: this.opts.timeoutMs });
    return true;
  }

  /** connecting: the server connection's outcome, the connect timer, the client giving up. */
  private inConnecting(ev: ProxyEvent): boolean {
    const out = this.out;
    switch (ev.type) {
      case 'connected':
        if (ev.stream !== 'server') return true;
        this.phase = 'relaying';
        out.emit({ type: 'clearTimer', timer: CONNECT });
        if (this.client.closed) {
          // The client went away while we were connecting.
          this.finish(out, 'ACCEPTED', 'client closed before the server connection was established');
          return true;
        }
        if (this.client.readEnded) this.endToward('server', out);
        else out.emit({ type: 'resume', stream: 'client' });
        this.lastActivity = ev.now;
        this.armIdle(out, this.opts.timeoutMs);
        if (this.opts.copyToServer && this.opts.copyToClient) {
          out.emit({ type: 'relay', a: 'client', b: 'server', idleMs: this.opts.timeoutMs });
        }
        return true;
      case 'connectFailed':
        if (ev.stream !== 'server') return true;
        out.emit({ type: 'clearTimer', timer: CONNECT });
        this.server.closed = this.server.readEnded = this.server.writeEnded = true;
        // The client sees a reset, as it would from a server that refused.
        if (!this.client.closed) out.emit({ type: 'close', stream: 'client', reset: true });
        this.client.closed = this.client.readEnded = this.client.writeEnded = true;
        this.finish(out, 'DENIED_BY_CONNECTION_FAIL', ev.error);
        return true;
      case 'closed':
        if (ev.stream !== 'client' || this.client.closed) return false;
        this.client.closed = this.client.readEnded = this.client.writeEnded = true;
        // Keep connecting would only waste a server connection: give up now.
        out.emit({ type: 'close', stream: 'server' });
        this.server.closed = this.server.readEnded = this.server.writeEnded = true;
        this.finish(out, 'ACCEPTED', 'client closed before the server connection was established');
        return true;
      case 'timer':
        if (ev.timer !== CONNECT) return true;
        this.closeAll(out);
        this.finish(
          out,
          'DENIED_BY_CONNECTION_FAIL',
          `server connection not established within ${this.opts.timeoutMs} ms`,
        );
        return true;
      default:
        return false;
    }
  }

  /** relaying: bytes copied, FINs passed on, the idle timer. */
  private inRelaying(ev: ProxyEvent): boolean {
    const out = this.out;
    switch (ev.type) {
      case 'data': {
        const from = this.side(ev.stream);
        if (!from || from.readEnded) return true;
        from.bytesIn += ev.data.length;
        const toName = ev.stream === 'client' ? 'server' : 'client';
        const to = this.side(toName)!;
        const copy = ev.stream === 'client' ? this.opts.copyToServer : this.opts.copyToClient;
        if (copy && !to.writeEnded && ev.data.length > 0) {
          out.emit({ type: 'send', stream: toName, data: ev.data });
          to.bytesOut += ev.data.length;
        }
        // Activity only moves the deadline: the idle timer is re-armed when it fires (below), not per
        // chunk, so a bulk transfer costs no timer operations.
        this.lastActivity = ev.now;
        return true;
      }
      case 'end': {
        const from = this.side(ev.stream);
        if (!from || from.readEnded) return true;
        from.readEnded = true;
        this.endToward(ev.stream === 'client' ? 'server' : 'client', out);
        this.maybeFinish(out);
        return true;
      }
      case 'closed':
        this.onRelayClosed(ev.stream, ev.error);
        return true;
      case 'relayStarted':
        this.native = true;
        out.emit({ type: 'clearTimer', timer: IDLE });
        return true;
      case 'relayEnded':
        if (this.native) this.onNativeEnded(ev);
        return true;
      case 'timer': {
        // (a stale idle timer after the handover: the native relay keeps the idle timeout now)
        if (ev.timer !== IDLE || this.native) return true;
        const quiet = ev.now - this.lastActivity;
        if (quiet < this.opts.timeoutMs) {
          this.armIdle(out, this.opts.timeoutMs - quiet);
          return true;
        }
        out.log('plug.session', 'info', 'Idle timeout, closing the session', {
          timeout_ms: this.opts.timeoutMs,
        });
        this.closeAll(out);
        this.finish(out, 'ACCEPTED', `idle timeout (${this.opts.timeoutMs} ms)`);
        return true;
      }
      default:
        return false;
    }
  }

  /** The native relay is over: its bytes are the session's, both streams are closed already. */
  private onNativeEnded(ev: Extract<ProxyEvent, { type: 'relayEnded' }>): void {
    for (const [name, side] of [
      ['client', this.client],
      ['server', this.server],
    ] as const) {
      const b = ev.bytes[name];
      if (b) {
        side.bytesIn += b.read;
        side.bytesOut += b.written;
      }
      side.closed = side.readEnded = side.writeEnded = true;
    }
    if (ev.reason === 'idle') {
      this.out.log('plug.session', 'info', 'Idle timeout, closing the session', {
        timeout_ms: this.opts.timeoutMs,
      });
      this.finish(this.out, 'ACCEPTED', `idle timeout (${this.opts.timeoutMs} ms)`);
    } else if (ev.reason === 'error') {
      this.finish(this.out, 'ACCEPTED', `${ev.by ?? 'relay'}: ${ev.error ?? 'error'}`);
    } else this.finish(this.out, 'ACCEPTED');
  }

  private onRelayClosed(stream: string, error: string | undefined): void {
    const s = this.side(stream);
    if (!s || s.closed) return;
    s.closed = s.readEnded = s.writeEnded = true;
    const otherName = stream === 'client' ? 'server' : 'client';
    const other = this.side(otherName)!;
    if (error !== undefined || !this.bothEnded()) {
      // One side is gone (reset, error, or closed before both directions ended): the relay is over.
      // The other side gets what is queued for it, then a close.
      if (!other.closed) this.out.emit({ type: 'close', stream: otherName });
      other.closed = other.readEnded = other.writeEnded = true;
      this.finish(this.out, 'ACCEPTED', error !== undefined ? `${stream}: ${error}` : undefined);
    } else this.maybeFinish(this.out);
  }

  /** Every state but done: bookkeeping of bytes and ends that are not relayed (the client is paused
   * until the server is connected, so little arrives), and the daemon's abort. */
  private onAnyState(ev: ProxyEvent): void {
    switch (ev.type) {
      case 'data': {
        const from = this.side(ev.stream);
        if (!from || from.readEnded) return;
        from.bytesIn += ev.data.length;
        this.lastActivity = ev.now;
        return;
      }
      case 'end': {
        const from = this.side(ev.stream);
        if (from) from.readEnded = true;
        return;
      }
      case 'closed': {
        const s = this.side(ev.stream);
        if (s) s.closed = s.readEnded = s.writeEnded = true;
        return;
      }
      case 'abort':
        this.closeAll(this.out);
        this.finish(this.out, 'ACCEPTED', `aborted: ${ev.reason}`);
        return;
      case 'start':
      case 'connected':
      case 'connectFailed':
      case 'timer':
      case 'drain':
      case 'listening':
      case 'listenFailed':
      case 'accepted':
      case 'relayStarted': // (only while relaying: handled there)
      case 'relayEnded':
      case 'bodyRelayed': // (plug asks for no body relay)
      case 'tls': // the TLS layer in front (tls/inspect-gate.ts) keeps its own events
        // The driver's backpressure needs nothing from us; plug opens no listeners.
        return;
      default:
        assertNever(ev, 'event');
    }
  }

  private side(stream: string): Side | null {
    return stream === 'client' ? this.client : stream === 'server' ? this.server : null;
  }

  private bothEnded(): boolean {
    return this.client.readEnded && this.server.readEnded && this.client.writeEnded && this.server.writeEnded;
  }

  /** Half-close toward `name`: its peer has nothing more to say to it. */
  private endToward(name: 'client' | 'server', out: Outbox): void {
    const s = this.side(name)!;
    if (s.writeEnded) return;
    s.writeEnded = true;
    out.emit({ type: 'shutdown', stream: name });
  }

  private maybeFinish(out: Outbox): void {
    if (!this.bothEnded()) return;
    for (const name of ['client', 'server'] as const) {
      const s = this.side(name)!;
      if (!s.closed) out.emit({ type: 'close', stream: name });
      s.closed = true;
    }
    this.finish(out, 'ACCEPTED');
  }

  private closeAll(out: Outbox): void {
    for (const name of ['client', 'server'] as const) {
      const s = this.side(name)!;
      if (name === 'server' && this.phase === 'init') continue;
      if (!s.closed) out.emit({ type: 'close', stream: name });
      s.closed = s.readEnded = s.writeEnded = true;
    }
  }

  private armIdle(out: Outbox, ms: number): void {
    out.emit({ type: 'setTimer', timer: IDLE, ms });
  }

  private finish(out: Outbox, verdict: Verdict, info?: string): void {
    this.phase = 'done';
    out.end(verdict, info, {
      clearTimers: [IDLE, CONNECT],
      account: {
        plug_bytes_from_client: this.client.bytesIn,
        plug_bytes_to_server: this.server.bytesOut,
        plug_bytes_from_server: this.server.bytesIn,
        plug_bytes_to_client: this.client.bytesOut,
      },
    });
  }
}

function newSide(): Side {
  return { readEnded: false, writeEnded: false, closed: false, bytesIn: 0, bytesOut: 0 };
}
