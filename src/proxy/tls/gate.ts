// The TLS gates: cores placed in front of a service's own core that read the client's ClientHello and
// decide on it (sni-policy.ts) before anything else happens. `TlsHelloGate` is that shared hello phase;
// `TlsPassthroughGate` (below) then hands the session to the inner core with every byte the client
// sent, the ClientHello included, so the server sees the client's own handshake and the client sees the
// server's own certificate: nothing is decrypted. The inspect gate (inspect-gate.ts) terminates TLS.
//
// Passthrough:
//
// States (one handler each):
//
//   init ──start──▶ hello ──hello accepted──▶ handover ──held bytes delivered──▶ relay
//                     │ refused / bad hello / timeout / client gone            (the inner core's
//                     ▼                                                         events, untouched)
//                    done ◀── (the inner core says done itself in handover and relay)
//
// hello: client bytes are collected (bounded by maxHelloBytes) and read again on each arrival; the
//   server is not contacted. A refusal sends a fatal alert (access_denied, unrecognized_name,
//   protocol_version or the reader's decode_error) and closes: `tls.violation`, DENIED_BY_POLICY.
// handover: the inner core got 'start'. Most cores pause the client until their server is connected
//   (plug does); the collected bytes, and anything that still arrives, are held until the inner core
//   resumes the client, then delivered in order as ordinary 'data'/'end' events.
// relay: every event goes to the inner core as it is; the gate adds nothing per event.
import { assertNever, type CoreDescription, Outbox } from '../core/index.ts';
import type { ProxyCommand, ProxyCore, ProxyEvent } from '../core/types.ts';
import { ALERT, alertRecord, type ClientHello, versionName } from './client-hello.ts';
import { helloStep, refusalFields, tlsAccountFields } from './handshake.ts';
import type { CompiledTls } from './sni-policy.ts';

/** init and hello are the shared phase; the others belong to one gate each (passthrough: handover,
 * relay; inspect: serverTls, clientTls, open). */
export type GateState = 'init' | 'hello' | 'handover' | 'relay' | 'serverTls' | 'clientTls' | 'open' | 'done';

/** The gate's own timer; the inner core's timers pass through untouched. */
export const HELLO_TIMER = 'tls.hello';

/** The handshake's outcome in the accounting (tls_result) and the metrics: a small fixed set of values
 * (a metric label must not take free text), the alert's RFC 8446 name for a refusal. */
export const ALERT_NAMES: Readonly<Record<number, string>> = Object.fromEntries(
  Object.entries(ALERT).map(([k, v]) => [v, k.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`)]),
);

/** The hello phase both gates share: collect, read and decide the ClientHello; refuse with an alert. */
export abstract class TlsHelloGate implements ProxyCore {
  protected state: GateState = 'init';
  protected readonly out = new Outbox('tls');
  protected startEvent: Extract<ProxyEvent, { type: 'start' }> | null = null;
  protected collected: Uint8Array = new Uint8Array(0);
  protected hello: ClientHello | null = null;
  protected result: string = 'incomplete';

  constructor(
    protected readonly policy: CompiledTls,
    protected readonly inner: ProxyCore,
  ) {}

  handle(ev: ProxyEvent): ProxyCommand[] {
    switch (this.state) {
      case 'init':
        this.onInit(ev);
        return this.out.take();
      case 'hello':
        return this.onHello(ev);
      case 'done':
        return [];
      default:
        return this.afterHello(ev);
    }
  }

  abstract describe(): CoreDescription;
  /** The host name of the CONNECT tunnel this gate inspects (null: none, or an address): a hello
   * without SNI is decided by it (sni-policy.ts decideHello). */
  protected tunnelName(): string | null {
    return null;
  }
  /** The hello was accepted (the hello timer is cleared, `result` is 'accepted'). */
  protected abstract accept(now: number, hello: ClientHello, matched: string | null): ProxyCommand[];
  /** Every event in the gate's own states after the hello. */
  protected abstract afterHello(ev: ProxyEvent): ProxyCommand[];

  protected onInit(ev: ProxyEvent): void {
    if (ev.type === 'start') {
      this.startEvent = ev;
      this.state = 'hello';
      this.out.emit({ type: 'setTimer', timer: HELLO_TIMER, ms: this.policy.helloTimeoutMs });
    } else if (ev.type === 'abort') this.state = 'done';
  }

  protected onHello(ev: ProxyEvent): ProxyCommand[] {
    switch (ev.type) {
      case 'data': {
        if (ev.stream !== 'client') break;
        const next = new Uint8Array(this.collected.length + ev.data.length);
        next.set(this.collected);
        next.set(ev.data, this.collected.length);
        this.collected = next;
        const step = helloStep(this.collected, this.policy, this.tunnelName());
        if (step === null) break; // need more
        this.hello = step.hello;
        if (!step.ok) {
          this.refuse(step.alert, step.reason);
          break;
        }
        this.out.emit({ type: 'clearTimer', timer: HELLO_TIMER });
        this.result = 'accepted';
        return this.accept(ev.now, step.hello, step.matched);
      }
      case 'end':
      case 'closed':
        if (ev.stream !== 'client') break;
        this.result = 'client_closed';
        this.out.violation('Client closed before a complete ClientHello', {
          received_bytes: this.collected.length,
        });
        this.finish('DENIED_BY_POLICY', 'client closed before a complete TLS ClientHello');
        break;
      case 'timer':
        if (ev.timer !== HELLO_TIMER) break;
        this.result = 'timeout';
        this.out.violation('No complete ClientHello in time', {
          timeout_ms: this.policy.helloTimeoutMs,
          received_bytes: this.collected.length,
        });
        this.finish('DENIED_BY_POLICY', `no TLS ClientHello within ${this.policy.helloTimeoutMs} ms`);
        break;
      case 'abort':
        this.finish('ACCEPTED', `aborted: ${ev.reason}`);
        break;
      case 'start':
      case 'drain':
      case 'connected':
      case 'connectFailed':
      case 'listening':
      case 'listenFailed':
      case 'accepted':
      case 'relayStarted': // (no relay is asked for before the hello is decided)
      case 'relayEnded':
      case 'bodyRelayed':
      case 'tls': // passthrough starts no TLS of its own
        break; // nothing is connected or listening before the hello is decided
      default:
        assertNever(ev, 'event');
    }
    return this.out.take();
  }

  /** Refuse the handshake: a fatal alert, a close, the reason logged; the server is never contacted. */
  protected refuse(alert: number, reason: string): void {
    this.result = ALERT_NAMES[alert] ?? 'refused';
    this.out.send('client', alertRecord(alert));
    this.out.violation('TLS handshake refused', refusalFields(reason, alert, this.hello));
    this.finish('DENIED_BY_POLICY', `TLS: ${reason}`);
  }

  protected finish(verdict: 'DENIED_BY_POLICY' | 'ACCEPTED', info: string): void {
    this.state = 'done';
    this.out.end(verdict, info, {
      clearTimers: [HELLO_TIMER],
      close: ['client'],
      account: this.accountFields(),
    });
  }

  protected accountFields(): Record<string, string | number> {
    return tlsAccountFields(this.policy.mode, this.hello, this.result);
  }
}

/** Passthrough: after the hello, the inner core gets the session and every byte, unchanged. */
export class TlsPassthroughGate extends TlsHelloGate {
  /** Client events held in handover while the inner core has the client paused. */
  private held: ProxyEvent[] = [];
  private innerPausedClient = false;

  describe(): CoreDescription {
    return {
      proxy: 'tls',
      state: this.state,
      collected_bytes: this.collected.length,
      held_events: this.held.length,
      sni: this.hello?.sni ?? null,
      inner: this.state === 'handover' || this.state === 'relay' ? this.inner.describe() : null,
    };
  }

  protected afterHello(ev: ProxyEvent): ProxyCommand[] {
    if (this.state === 'relay') return this.inner.handle(ev);
    return this.onHandover(ev);
  }

  protected accept(now: number, hello: ClientHello, matched: string | null): ProxyCommand[] {
    this.out.log('tls.session', 'info', 'TLS ClientHello accepted; relaying unchanged', {
      mode: this.policy.mode,
      sni: hello.sni,
      offered_max_version: versionName(hello.maxVersion),
      offered_versions: (hello.supportedVersions.length > 0 ? hello.supportedVersions : [hello.legacyVersion])
        .map(versionName)
        .join(','),
      alpn: hello.alpn.join(','),
      sni_allow_matched: matched,
    });
    this.out.emit({ type: 'account', fields: this.accountFields() });
    this.state = 'handover';
    const cmds = this.out.take();
    const start = { ...this.startEvent!, now };
    this.held.push({ type: 'data', now, stream: 'client', data: this.collected });
    this.collected = new Uint8Array(0);
    cmds.push(...this.track(this.inner.handle(start)));
    cmds.push(...this.flushHeld());
    return cmds;
  }

  private onHandover(ev: ProxyEvent): ProxyCommand[] {
    if (ev.type === 'timer' && ev.timer === HELLO_TIMER) return [];
    if ((ev.type === 'data' || ev.type === 'end') && ev.stream === 'client' && this.innerPausedClient) {
      this.held.push(ev);
      return [];
    }
    const cmds = this.track(this.inner.handle(ev));
    cmds.push(...this.flushHeld());
    return cmds;
  }

  /** Deliver held client events while the inner core reads the client; relay once none are left. */
  private flushHeld(): ProxyCommand[] {
    const cmds: ProxyCommand[] = [];
    while (this.held.length > 0 && !this.innerPausedClient) {
      cmds.push(...this.track(this.inner.handle(this.held.shift()!)));
    }
    if (this.held.length === 0 && !this.innerPausedClient && this.state === 'handover') this.state = 'relay';
    return cmds;
  }

  /** Follows the inner core's pause/resume of the client stream. */
  private track(cmds: ProxyCommand[]): ProxyCommand[] {
    for (const c of cmds) {
      if (c.type === 'pause' && c.stream === 'client') this.innerPausedClient = true;
      else if (c.type === 'resume' && c.stream === 'client') this.innerPausedClient = false;
    }
    return cmds;
  }
}
