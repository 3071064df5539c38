// The decision on a ClientHello (docs/tls.md): the lowest acceptable version, then the server-name
// policy. Pure; compiled once per generation (bind.ts), decided once per session.
import { DEFAULTS } from '../../defaults.ts';
import type { TlsPolicy } from '../../policy/model.ts';
import { globToRegExp } from '../core/glob.ts';
import { ALERT, type ClientHello, versionName } from './client-hello.ts';

export interface CompiledTls {
  mode: TlsPolicy['mode'];
  allow: readonly RegExp[];
  deny: readonly RegExp[];
  /** The globs as written, for log lines. */
  allowText: readonly string[];
  denyText: readonly string[];
  missing: TlsPolicy['sni']['missing'];
  /** Lowest acceptable highest-offered version (0x0303 = TLS 1.2). */
  minVersion: number;
  maxHelloBytes: number;
  helloTimeoutMs: number;
}

const VERSION_NUMBER: Record<TlsPolicy['minVersion'], number> = { 'TLSv1.2': 0x0303, 'TLSv1.3': 0x0304 };

export function compileTls(p: TlsPolicy): CompiledTls {
  return {
    mode: p.mode,
    allow: p.sni.allow.map((g) => globToRegExp(g, true)),
    deny: p.sni.deny.map((g) => globToRegExp(g, true)),
    allowText: p.sni.allow,
    denyText: p.sni.deny,
    missing: p.sni.missing,
    minVersion: VERSION_NUMBER[p.minVersion],
    maxHelloBytes: DEFAULTS.tlsMaxClientHelloBytes,
    helloTimeoutMs: DEFAULTS.tlsHelloTimeoutMs,
  };
}

export type HelloDecision =
  | { ok: true; matched: string | null }
  | { ok: false; alert: number; reason: string };

export function decideHello(h: ClientHello, p: CompiledTls, tunnelName: string | null = null): HelloDecision {
  if (h.maxVersion < p.minVersion) {
    return {
      ok: false,
      alert: ALERT.protocolVersion,
      reason: `the client offers at most ${versionName(h.maxVersion)}, below min_version ${versionName(p.minVersion)}`,
    };
  }
  // In a CONNECT tunnel to a host name, a hello without SNI is decided by that name: it is the name
  // the server will be asked for (inspect-gate.ts), so it must pass the same allow and deny lists.
  const name = h.sni ?? tunnelName;
  const what = h.sni !== null ? 'server name' : 'CONNECT name (no SNI)';
  if (name === null) {
    return p.missing === 'accept'
      ? { ok: true, matched: null }
      : {
          ok: false,
          alert: ALERT.unrecognizedName,
          reason: 'the ClientHello names no server (sni missing: reject)',
        };
  }
  const denied = p.deny.findIndex((re) => re.test(name));
  if (denied >= 0) {
    return {
      ok: false,
      alert: ALERT.accessDenied,
      reason: `${what} '${name}' matches sni deny '${p.denyText[denied]}'`,
    };
  }
  if (p.allow.length === 0) return { ok: true, matched: null };
  const allowed = p.allow.findIndex((re) => re.test(name));
  if (allowed < 0) {
    return {
      ok: false,
      alert: ALERT.accessDenied,
      reason: `${what} '${name}' matches no sni allow glob`,
    };
  }
  return { ok: true, matched: p.allowText[allowed]! };
}
