// The TLS inspect gate (docs/tls.md): the hello phase of gate.ts, then TLS terminated on the client
// side and originated on the server side, so the service's own core (HTTP, plug) runs on plaintext.
// The handshakes are the driver's (`startTls`, src/net/driver.ts, with inspect.ts); this core only
// decides when, with which names, and what a failure means.
//
// States (one handler each):
//
//   init ──start──▶ hello ──hello accepted──▶ clientTls ──client handshake done──▶ open
//                     │ refused / bad hello /        │ handshake failed,            (the inner core
//                     ▼ timeout / client gone        ▼ client gone, timeout          runs; below)
//                    done ◀──────────────────────────┘
//
// clientTls: `startTls terminate` with a certificate for the SNI (or, without one, the address the
//   client dialled), the ClientHello replayed into the handshake; ALPN only what the inner core speaks.
// open: the inner core got 'start' and sees plaintext. Its server connection is followed: the
//   'connected' event is held while `startTls originate` runs (SNI as the client sent it; the
//   certificate verified against the SNI, or the server's address without one). A verified session
//   gives the inner core its 'connected'; a failure gives it 'connectFailed' (HTTP answers 502 over the
//   client's TLS session), the stream's own 'closed' is not passed on, and `tls.violation` names the
//   reason. Every other event goes to the inner core untouched.

import type { CoreDescription } from '../core/index.ts';
import type { ProxyCommand, ProxyCore, ProxyEvent, TlsEndpoint, TlsHandshakeInfo } from '../core/types.ts';
import type { ClientHello } from './client-hello.ts';
import { versionName } from './client-hello.ts';
import { HELLO_TIMER, TlsHelloGate } from './gate.ts';
import type { CompiledTls } from './sni-policy.ts';

export class TlsInspectGate extends TlsHelloGate {
  /** The inner core's 'connected' for the server, held while TLS is put on the stream. */
  private serverConnected: Extract<ProxyEvent, { type: 'connected' }> | null = null;
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
  ) {
    super(policy, inner);
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
    this.state = 'clientTls';
    // the handshake gets its own time: the hello timer again, from now
    this.out.emit({ type: 'setTimer', timer: HELLO_TIMER, ms: this.policy.helloTimeoutMs });
    const names = [hello.sni ?? this.startEvent!.clientLocal.host];
    this.out.emit({
      type: 'startTls',
      stream: 'client',
      side: {
        role: 'terminate',
        names,
        held: this.collected,
        ...(this.alpn ? { alpn: this.alpn } : {}),
      },
      endpoint: this.endpoint,
    });
    this.collected = new Uint8Array(0);
    return this.out.take();
  }

  protected afterHello(ev: ProxyEvent): ProxyCommand[] {
    return this.state === 'clientTls' ? this.onClientTls(ev) : this.onOpen(ev);
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
      cmds.push(...this.inner.handle({ ...this.startEvent!, now: ev.now }));
      return cmds;
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
    if (ev.type === 'connected' && ev.stream === 'server') {
      this.serverConnected = ev;
      const sni = this.hello?.sni ?? null;
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
      return this.out.take();
    }
    if (ev.type === 'tls' && ev.stream === 'server') return this.onServerTls(ev);
    return this.inner.handle(ev);
  }

  private onServerTls(ev: Extract<ProxyEvent, { type: 'tls' }>): ProxyCommand[] {
    const connected = this.serverConnected!;
    this.serverConnected = null;
    this.server = ev.info;
    const fields = {
      side: 'server',
      sni: ev.info.sni,
      version: ev.info.version,
      cipher: ev.info.cipher,
      alpn: ev.info.alpn,
      subject: ev.info.subject,
      issuer: ev.info.issuer,
      verify: ev.info.verify,
    };
    if (ev.ok) {
      this.result = 'accepted';
      this.out.log('tls.session', 'info', 'Server TLS session established', fields);
      this.out.emit({ type: 'account', fields: this.accountFields() });
      const cmds = this.out.take();
      cmds.push(...this.inner.handle({ ...connected, now: ev.now }));
      return cmds;
    }
    this.result = ev.reason ?? 'handshake_failure';
    this.failed.add(ev.stream);
    this.out.violation('Server TLS session refused', {
      ...fields,
      reason: this.result,
      detail: ev.detail ?? null,
    });
    this.out.emit({ type: 'account', fields: this.accountFields() });
    const cmds = this.out.take();
    cmds.push(
      ...this.inner.handle({
        type: 'connectFailed',
        now: ev.now,
        stream: ev.stream,
        error: `TLS: ${this.result}${ev.detail ? ` (${ev.detail})` : ''}`,
        target: connected.remote,
      }),
    );
    return cmds;
  }

  protected override accountFields(): Record<string, string | number> {
    return {
      ...super.accountFields(),
      tls_version: this.client?.version ?? '',
      tls_server_version: this.server?.version ?? '',
      tls_server_subject: this.server?.subject ?? '',
      tls_server_issuer: this.server?.issuer ?? '',
      tls_server_verify: this.server?.verify ?? '',
    };
  }
}
