// The TLS inspect gate (docs/tls.md): the hello phase of gate.ts, then TLS terminated on the client
// side and originated on the server side, so the service's own core (HTTP, plug) runs on plaintext.
// The handshakes are the driver's (`startTls`, src/net/driver.ts, with inspect.ts); this core only
// decides when, with which names, and what a failure means.
//
// States (one handler each):
//
//   init ──start──▶ hello ──hello accepted──▶ serverTls ──server verified, or failed──▶ clientTls
//                     │ refused / bad hello /                                              │ client
//                     ▼ timeout / client gone                                              ▼ handshake done
//                    done ◀──────────── handshake failed, client gone, timeout ────────── open
//
// serverTls (server first, as Squid's bump at step 3): the gate connects the server itself (the
//   session's router: the original destination; in a CONNECT tunnel the tunnel's connection), starts
//   TLS there with the client's SNI and verifies the certificate against the SNI, or the server's
//   address without one. This is what lets the client's certificate carry the verified server
//   certificate's names.
// clientTls: `startTls terminate` with a certificate for the SNI (or, without one, the address the
//   client dialled) plus the verified server certificate's names, the ClientHello replayed into the
//   handshake; ALPN only what the inner core speaks. A server that failed still gets the client a
//   session (names: the SNI only), so that HTTP can answer 502 inside it.
// open: the inner core got 'start' and sees plaintext. Its first connect of 'server' is answered with
//   the connection made in serverTls ('connected', then any server events held meanwhile), or with
//   'connectFailed' when that failed (HTTP answers 502 over the client's TLS session; the stream's own
//   'closed' is not passed on; `tls.violation` named the reason). A later connect (a kept-alive
//   connection the server closed) goes out as it is; its 'connected' is held while `startTls
//   originate` runs, and a failure becomes 'connectFailed' the same way. Every other event goes to the
//   inner core untouched.

import type { CoreDescription } from '../core/index.ts';
import type {
  Addr,
  ProxyCommand,
  ProxyCore,
  ProxyEvent,
  TlsEndpoint,
  TlsHandshakeInfo,
} from '../core/types.ts';
import type { ClientHello } from './client-hello.ts';
import { versionName } from './client-hello.ts';
import { HELLO_TIMER, TlsHelloGate } from './gate.ts';
import { leafNames, serverTlsFields, tlsAccountFields } from './handshake.ts';
import type { CompiledTls } from './sni-policy.ts';

type Connected = Extract<ProxyEvent, { type: 'connected' }>;

export class TlsInspectGate extends TlsHelloGate {
  /** The server's 'connected', held while TLS is put on the stream. */
  private serverConnected: Connected | null = null;
  /** The server connection made before the client's handshake (serverTls), until the inner core's
   * first connect takes it: its 'connected' (TLS on, verified) or why it failed, and the server's
   * events that came before the inner core could have them. */
  private first: {
    connected: Connected | null;
    failure: { error: string; target?: Addr } | null;
    held: ProxyEvent[];
    handed: boolean;
  } = { connected: null, failure: null, held: [], handed: false };
  /** Streams whose TLS failed: the inner core was told 'connectFailed'; their 'closed' is not passed. */
  private readonly failed = new Set<string>();
  private client: TlsHandshakeInfo | null = null;
  private server: TlsHandshakeInfo | null = null;

  constructor(
    policy: CompiledTls,
    inner: ProxyCore,
    private readonly endpoint: TlsEndpoint,
    /** ALPN the inner core speaks (['http/1.1'] for HTTP), none for a byte relay. */
    private readonly alpn: string[] | undefined,
    /** The host name a CONNECT tunnel was opened for (null: an address, or no tunnel): without SNI
     * from the client it is the name the server is asked for, verified against and named on the
     * client's certificate, instead of the address. */
    private readonly targetName: string | null = null,
  ) {
    super(policy, inner);
  }

  protected override tunnelName(): string | null {
    return this.targetName;
  }

  describe(): CoreDescription {
    return {
      proxy: 'tls',
      mode: 'inspect',
      state: this.state,
      sni: this.hello?.sni ?? null,
      client_tls: this.client,
      server_tls: this.server,
      inner: this.state === 'open' ? this.inner.describe() : null,
    };
  }

  protected accept(_now: number, hello: ClientHello, matched: string | null): ProxyCommand[] {
    this.out.log('tls.session', 'info', 'TLS ClientHello accepted; terminating', {
      mode: 'inspect',
      sni: hello.sni,
      offered_max_version: versionName(hello.maxVersion),
      alpn: hello.alpn.join(','),
      sni_allow_matched: matched,
    });
    // the server first: its verified names go on the client's certificate
    this.state = 'serverTls';
    this.out.emit({ type: 'connect', stream: 'server', options: {} });
    return this.out.take();
  }

  protected afterHello(ev: ProxyEvent): ProxyCommand[] {
    switch (this.state) {
      case 'serverTls':
        return this.onServerFirst(ev);
      case 'clientTls':
        return this.onClientTls(ev);
      default:
        return this.onOpen(ev);
    }
  }

  /** serverTls: the gate's own server connection and its TLS. */
  private onServerFirst(ev: ProxyEvent): ProxyCommand[] {
    if (ev.type === 'connected' && ev.stream === 'server') {
      this.originate(ev);
      // the server's handshake gets the hello timer's time, from now
      this.out.emit({ type: 'setTimer', timer: HELLO_TIMER, ms: this.policy.helloTimeoutMs });
    } else if (ev.type === 'connectFailed' && ev.stream === 'server') {
      this.result = 'connect_failed';
      // named like a server that fails its TLS: the reason is what the administrator looks for
      this.out.violation('Server connection failed', {
        reason: this.result,
        sni: this.hello?.sni ?? null,
        error: ev.error,
      });
      this.first.failure = { error: ev.error, ...(ev.target ? { target: ev.target } : {}) };
      this.terminate([]);
    } else if (ev.type === 'tls' && ev.stream === 'server') {
      this.out.emit({ type: 'clearTimer', timer: HELLO_TIMER });
      const connected = this.serverConnected!;
      this.serverConnected = null;
      const failure = this.serverTlsDone(ev, connected);
      if (failure) this.first.failure = failure;
      else this.first.connected = { ...connected, now: ev.now };
      this.terminate(ev.ok ? ev.info.altNames : []);
    } else if (ev.type === 'timer' && ev.timer === HELLO_TIMER) {
      this.result = 'handshake_failure';
      this.out.violation('Server TLS handshake not complete in time', {
        reason: this.result,
        timeout_ms: this.policy.helloTimeoutMs,
      });
      this.failed.add('server');
      this.out.emit({ type: 'close', stream: 'server' });
      this.first.failure = {
        error: `TLS: server handshake not complete within ${this.policy.helloTimeoutMs} ms`,
        ...(this.serverConnected ? { target: this.serverConnected.remote } : {}),
      };
      this.serverConnected = null;
      this.terminate([]);
    } else if ((ev.type === 'closed' || ev.type === 'end') && ev.stream === 'client') {
      if (this.result === 'accepted') this.result = 'client_closed';
      this.finish('DENIED_BY_POLICY', 'TLS: the client went away before its handshake');
    } else if (ev.type === 'abort') {
      this.finish('ACCEPTED', `aborted: ${ev.reason}`);
    } else if (onServer(ev)) {
      // (a server that sends or closes before its handshake is done: the tls event says how it went)
      if (ev.type !== 'closed' || !this.failed.delete('server')) this.first.held.push(ev);
    }
    return this.out.take();
  }

  /** `startTls originate` on a connected server stream (SNI as the client sent it). */
  private originate(ev: Connected): void {
    this.serverConnected = ev;
    const sni = this.hello?.sni ?? this.targetName;
    this.out.emit({
      type: 'startTls',
      stream: 'server',
      side: {
        role: 'originate',
        sni,
        verifyName: sni ?? ev.remote.host,
        ...(this.alpn ? { alpn: this.alpn } : {}),
      },
      endpoint: this.endpoint,
    });
  }

  /** The client's handshake: a certificate for its name and `serverNames`, the ClientHello replayed. */
  private terminate(serverNames: readonly string[]): void {
    this.state = 'clientTls';
    // the handshake gets its own time: the hello timer again, from now
    this.out.emit({ type: 'setTimer', timer: HELLO_TIMER, ms: this.policy.helloTimeoutMs });
    const first = this.hello?.sni ?? this.targetName ?? this.startEvent!.clientLocal.host;
    this.out.emit({
      type: 'startTls',
      stream: 'client',
      side: {
        role: 'terminate',
        names: leafNames(first, serverNames),
        held: this.collected,
        ...(this.alpn ? { alpn: this.alpn } : {}),
      },
      endpoint: this.endpoint,
    });
    this.collected = new Uint8Array(0);
  }

  /** The inner core's commands: its first connect of 'server' is answered with the connection made
   * before the client's handshake. */
  private fromInner(cmds: ProxyCommand[], now: number): ProxyCommand[] {
    if (this.first.handed) return cmds;
    const at = cmds.findIndex((c) => c.type === 'connect' && c.stream === 'server');
    if (at < 0) return cmds;
    this.first.handed = true;
    const out = cmds.slice(0, at);
    const rest = cmds.slice(at + 1);
    const { connected, failure, held } = this.first;
    this.first = { connected: null, failure: null, held: [], handed: true };
    if (failure) {
      out.push(
        ...this.inner.handle({
          type: 'connectFailed',
          now,
          stream: 'server',
          error: failure.error,
          ...(failure.target ? { target: failure.target } : {}),
        }),
      );
    } else {
      out.push(...this.inner.handle({ ...connected!, now }));
      for (const ev of held) out.push(...this.inner.handle({ ...ev, now }));
    }
    out.push(...rest);
    return out;
  }

  private onClientTls(ev: ProxyEvent): ProxyCommand[] {
    if (ev.type === 'tls' && ev.stream === 'client') {
      if (!ev.ok) {
        this.result = 'client_handshake';
        this.out.violation('Client TLS handshake failed', {
          reason: ev.detail ?? null,
          sni: this.hello?.sni ?? null,
        });
        this.finish('DENIED_BY_POLICY', `TLS: client handshake failed: ${ev.detail ?? ''}`);
        return this.out.take();
      }
      this.client = ev.info;
      this.out.emit({ type: 'clearTimer', timer: HELLO_TIMER });
      this.out.log('tls.session', 'info', 'Client TLS session established', {
        side: 'client',
        sni: ev.info.sni,
        version: ev.info.version,
        cipher: ev.info.cipher,
        alpn: ev.info.alpn,
      });
      this.out.emit({ type: 'account', fields: this.accountFields() });
      this.state = 'open';
      const cmds = this.out.take();
      cmds.push(...this.fromInner(this.inner.handle({ ...this.startEvent!, now: ev.now }), ev.now));
      return cmds;
    }
    if (onServer(ev)) {
      if (ev.type !== 'closed' || !this.failed.delete('server')) this.first.held.push(ev);
      return [];
    }
    if (ev.type === 'timer' && ev.timer === HELLO_TIMER) {
      this.result = 'timeout';
      this.out.violation('Client TLS handshake not complete in time', {
        timeout_ms: this.policy.helloTimeoutMs,
      });
      this.finish(
        'DENIED_BY_POLICY',
        `TLS: client handshake not complete within ${this.policy.helloTimeoutMs} ms`,
      );
    } else if ((ev.type === 'closed' || ev.type === 'end') && ev.stream === 'client') {
      if (this.result === 'accepted') this.result = 'client_closed';
      this.finish('DENIED_BY_POLICY', 'TLS: the client went away during the handshake');
    } else if (ev.type === 'abort') {
      this.finish('ACCEPTED', `aborted: ${ev.reason}`);
    }
    return this.out.take();
  }

  private onOpen(ev: ProxyEvent): ProxyCommand[] {
    if (ev.type === 'timer' && ev.timer === HELLO_TIMER) return [];
    if (ev.type === 'closed' && this.failed.delete(ev.stream)) return [];
    if (!this.first.handed && onServer(ev)) {
      // the first server connection, not taken by the inner core yet
      if (ev.type !== 'closed' || !this.failed.delete('server')) this.first.held.push(ev);
      return [];
    }
    if (ev.type === 'connected' && ev.stream === 'server') {
      this.originate(ev);
      return this.out.take();
    }
    if (ev.type === 'tls' && ev.stream === 'server') return this.onServerTls(ev);
    return this.fromInner(this.inner.handle(ev), ev.now);
  }

  /** A later server connection's TLS (the first one's is onServerFirst's). */
  private onServerTls(ev: Extract<ProxyEvent, { type: 'tls' }>): ProxyCommand[] {
    const connected = this.serverConnected!;
    this.serverConnected = null;
    const failure = this.serverTlsDone(ev, connected);
    const cmds = this.out.take();
    cmds.push(
      ...this.inner.handle(
        failure
          ? {
              type: 'connectFailed',
              now: ev.now,
              stream: ev.stream,
              error: failure.error,
              ...(failure.target ? { target: failure.target } : {}),
            }
          : { ...connected, now: ev.now },
      ),
    );
    return cmds;
  }

  /** Log and account a server handshake; what the inner core is to be told when it failed. */
  private serverTlsDone(
    ev: Extract<ProxyEvent, { type: 'tls' }>,
    connected: Connected,
  ): { error: string; target?: Addr } | null {
    this.server = ev.info;
    const fields = serverTlsFields(ev.info);
    if (ev.ok) {
      this.result = 'accepted';
      this.out.log('tls.session', 'info', 'Server TLS session established', fields);
      this.out.emit({ type: 'account', fields: this.accountFields() });
      return null;
    }
    this.result = ev.reason ?? 'handshake_failure';
    this.failed.add(ev.stream);
    this.out.violation('Server TLS session refused', {
      ...fields,
      reason: this.result,
      detail: ev.detail ?? null,
    });
    this.out.emit({ type: 'account', fields: this.accountFields() });
    return {
      error: `TLS: ${this.result}${ev.detail ? ` (${ev.detail})` : ''}`,
      target: connected.remote,
    };
  }

  protected override accountFields(): Record<string, string | number> {
    return tlsAccountFields(this.policy.mode, this.hello, this.result, {
      client: this.client,
      server: this.server,
    });
  }
}

/** Bytes, an end, a close or a drain of the server stream. */
function onServer(ev: ProxyEvent): boolean {
  return (
    (ev.type === 'data' || ev.type === 'end' || ev.type === 'closed' || ev.type === 'drain') &&
    ev.stream === 'server'
  );
}
