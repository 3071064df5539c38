// The plug proxy core: a byte copier between the client and the server (Zorp Plug), sans-IO.
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
import { assertNever, type CoreDescription, Outbox } from '../core/index.ts';
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

  private dispatch(ev: ProxyEvent): void {
    const out = this.out;
    switch (ev.type) {
      case 'start':
        if (this.phase !== 'init') break;
        this.phase = 'connecting';
        out.emit({ type: 'pause', stream: 'client' });
        out.emit({ type: 'connect', stream: 'server', options: {} });
        out.emit({ type: 'setTimer', timer: CONNECT, ms: this.opts.timeoutMs });
        break;
      case 'connected':
        if (ev.stream !== 'server' || this.phase !== 'connecting') break;
        this.phase = 'relaying';
        out.emit({ type: 'clearTimer', timer: CONNECT });
        if (this.client.closed) {
          // The client went away while we were connecting.
          this.finish(out, 'ACCEPTED', 'client closed before the server connection was established');
          break;
        }
        if (this.client.readEnded) this.endToward('server', out);
        else out.emit({ type: 'resume', stream: 'client' });
        this.lastActivity = ev.now;
        this.armIdle(out, this.opts.timeoutMs);
        break;
      case 'connectFailed':
        if (ev.stream !== 'server' || this.phase !== 'connecting') break;
        out.emit({ type: 'clearTimer', timer: CONNECT });
        this.server.closed = this.server.readEnded = this.server.writeEnded = true;
        // The client sees a reset, as it would from a server that refused.
        if (!this.client.closed) out.emit({ type: 'close', stream: 'client', reset: true });
        this.client.closed = this.client.readEnded = this.client.writeEnded = true;
        this.finish(out, 'DENIED_BY_CONNECTION_FAIL', ev.error);
        break;
      case 'data': {
        const from = this.side(ev.stream);
        if (!from || from.readEnded) break;
        from.bytesIn += ev.data.length;
        const toName = ev.stream === 'client' ? 'server' : 'client';
        const to = this.side(toName)!;
        const copy = ev.stream === 'client' ? this.opts.copyToServer : this.opts.copyToClient;
        if (copy && !to.writeEnded && this.phase === 'relaying' && ev.data.length > 0) {
          out.emit({ type: 'send', stream: toName, data: ev.data });
          to.bytesOut += ev.data.length;
        }
        // Activity only moves the deadline: the idle timer is re-armed when it fires (below), not per
        // chunk, so a bulk transfer costs no timer operations.
        this.lastActivity = ev.now;
        break;
      }
      case 'end': {
        const from = this.side(ev.stream);
        if (!from || from.readEnded) break;
        from.readEnded = true;
        if (this.phase === 'relaying') {
          this.endToward(ev.stream === 'client' ? 'server' : 'client', out);
          this.maybeFinish(out);
        }
        break;
      }
      case 'closed': {
        const s = this.side(ev.stream);
        if (!s || s.closed) break;
        s.closed = s.readEnded = s.writeEnded = true;
        if (this.phase === 'connecting' && ev.stream === 'client') {
          // Keep connecting would only waste a server connection: give up now.
          out.emit({ type: 'close', stream: 'server' });
          this.server.closed = this.server.readEnded = this.server.writeEnded = true;
          this.finish(out, 'ACCEPTED', 'client closed before the server connection was established');
          break;
        }
        if (this.phase !== 'relaying') break;
        const otherName = ev.stream === 'client' ? 'server' : 'client';
        const other = this.side(otherName)!;
        if (ev.error !== undefined || !this.bothEnded()) {
          // One side is gone (reset, error, or closed before both directions ended): the relay is over.
          // The other side gets what is queued for it, then a close.
          if (!other.closed) out.emit({ type: 'close', stream: otherName });
          other.closed = other.readEnded = other.writeEnded = true;
          this.finish(out, 'ACCEPTED', ev.error !== undefined ? `${ev.stream}: ${ev.error}` : undefined);
        } else this.maybeFinish(out);
        break;
      }
      case 'timer':
        if (ev.timer === CONNECT && this.phase === 'connecting') {
          this.closeAll(out);
          this.finish(
            out,
            'DENIED_BY_CONNECTION_FAIL',
            `server connection not established within ${this.opts.timeoutMs} ms`,
          );
        } else if (ev.timer === IDLE && this.phase === 'relaying') {
          const quiet = ev.now - this.lastActivity;
          if (quiet < this.opts.timeoutMs) {
            this.armIdle(out, this.opts.timeoutMs - quiet);
            break;
          }
          out.log('plug.session', 'info', 'Idle timeout, closing the session', {
            timeout_ms: this.opts.timeoutMs,
          });
          this.closeAll(out);
          this.finish(out, 'ACCEPTED', `idle timeout (${this.opts.timeoutMs} ms)`);
        }
        break;
      case 'abort':
        this.closeAll(out);
        this.finish(out, 'ACCEPTED', `aborted: ${ev.reason}`);
        break;
      case 'drain':
      case 'listening':
      case 'listenFailed':
      case 'accepted':
        // The driver's backpressure needs nothing from us; plug opens no listeners.
        break;
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
