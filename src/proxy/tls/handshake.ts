// What the TLS gates (gate.ts, inspect-gate.ts) and the FTP proxy's own TLS (ftp/core.ts: AUTH TLS,
// implicit FTPS) share: reading and deciding a ClientHello from the bytes collected so far, the log
// fields of a refusal and of a server handshake, the names of the client's certificate, and the
// session's tls_* accounting. Pure.
import { ProtocolError } from '../../errors.ts';
import type { TlsHandshakeInfo } from '../core/types.ts';
import { type ClientHello, readClientHello, versionName } from './client-hello.ts';
import { type CompiledTls, decideHello } from './sni-policy.ts';

export type HelloStep =
  /** Not a whole ClientHello yet. */
  | null
  /** Refused: the alert to send and why (`hello` when it was read whole). */
  | { ok: false; alert: number; reason: string; hello: ClientHello | null }
  | { ok: true; hello: ClientHello; matched: string | null };

/** Read the bytes collected so far and decide the ClientHello (min_version, the SNI policy). */
export function helloStep(
  collected: Uint8Array,
  policy: CompiledTls,
  tunnelName: string | null = null,
): HelloStep {
  let hello: ClientHello | null;
  try {
    hello = readClientHello(collected, policy.maxHelloBytes);
  } catch (e) {
    if (!(e instanceof ProtocolError)) throw e;
    return { ok: false, alert: e.reply, reason: e.message, hello: null };
  }
  if (hello === null) return null;
  const d = decideHello(hello, policy, tunnelName);
  return d.ok
    ? { ok: true, hello, matched: d.matched }
    : { ok: false, alert: d.alert, reason: d.reason, hello };
}

/** The fields of the `tls.violation` line of a refused handshake. */
export function refusalFields(
  reason: string,
  alert: number,
  hello: ClientHello | null,
): Record<string, unknown> {
  return {
    reason,
    alert,
    sni: hello?.sni ?? null,
    offered_max_version: hello ? versionName(hello.maxVersion) : null,
    alpn: hello?.alpn.join(',') ?? null,
  };
}

/** The fields of the log lines of a server handshake ("Server TLS session established" / "refused"). */
export function serverTlsFields(info: TlsHandshakeInfo): Record<string, unknown> {
  return {
    side: 'server',
    sni: info.sni,
    version: info.version,
    cipher: info.cipher,
    alpn: info.alpn,
    subject: info.subject,
    issuer: info.issuer,
    verify: info.verify,
  };
}

/** The names of the certificate shown to the client: its own name first, then the verified server
 * certificate's other names (compared without case). */
export function leafNames(first: string, serverNames: readonly string[]): string[] {
  const own = first.toLowerCase();
  return [first, ...serverNames.filter((n) => n.toLowerCase() !== own)];
}

/** The session's tls_* fields (the summary, `tzorp sessions --json` under `tls`, the metrics); the
 * handshakes' fields only when TLS is terminated (inspect). */
export function tlsAccountFields(
  mode: string,
  hello: ClientHello | null,
  result: string,
  inspect?: { client: TlsHandshakeInfo | null; server: TlsHandshakeInfo | null },
): Record<string, string | number> {
  return {
    tls_mode: mode,
    tls_sni: hello?.sni ?? '',
    tls_offered_max_version: hello ? versionName(hello.maxVersion) : '',
    tls_alpn_offered: hello ? hello.alpn.join(',') : '',
    tls_result: result,
    ...(inspect
      ? {
          tls_version: inspect.client?.version ?? '',
          tls_server_version: inspect.server?.version ?? '',
          tls_server_subject: inspect.server?.subject ?? '',
          tls_server_issuer: inspect.server?.issuer ?? '',
          tls_server_verify: inspect.server?.verify ?? '',
        }
      : {}),
  };
}
