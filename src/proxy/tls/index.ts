// The TLS layer of proxy services (docs/tls.md). Public surface.
export {
  ALERT,
  alertRecord,
  type ClientHello,
  isGrease,
  readClientHello,
  TLS_VERSION_NAMES,
  versionName,
} from './client-hello.ts';
export { inspectEndpoint } from './endpoint.ts';
export { ALERT_NAMES, TlsHelloGate, TlsPassthroughGate } from './gate.ts';
export {
  type HelloStep,
  helloStep,
  leafNames,
  refusalFields,
  serverTlsFields,
  tlsAccountFields,
} from './handshake.ts';
// The handshakes themselves (inspect.ts: node:tls) are not re-exported: the driver loads them on first
// use (net/driver.ts tlsLayer), and a value export here would load node:tls with this module.
export type {
  OriginateOptions,
  OriginateResult,
  ServerFailure,
  TerminateOptions,
  TlsSessionInfo,
} from './inspect.ts';
export { TlsInspectGate } from './inspect-gate.ts';
export { type CompiledTls, compileTls, decideHello, type HelloDecision } from './sni-policy.ts';
