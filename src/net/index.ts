// Public surface of the net module: transparent listeners, the session driver that runs a proxy
// core over real sockets, and the routers/chainers that pick and connect the server.
//
// Typical use (the daemon), per proxy service and policy generation:
//
//   const upstream = new ServiceUpstream(service, { zones: { zoneOf: (h) => engine.zoneOf(h), zones: policy.zones }, limiter });
//   const listener = await openListener({ host: '127.0.0.1', port, onConnection(sock) {
//     runSession({ id: `svc/${service.name}:${++n}`, service: service.name, socket: sock,
//                  createCore: generation.proxies.get(service.name)!.createCore,  // options bound once
//                  upstream, clientZone, ruleId, log, onEnd: (summary) => ... });
//   }});
//
// See docs/native.md for the socket-level choices (transparent upstream sockets, IP_BIND_ADDRESS_NO_PORT).
export { canonicalHost, familyOf, formatAddr, makeAddr, socketAddrs, zorpAddr } from './addr.ts';
export { type Attempt, ChainerRuntime, ChainFailed, ChainStop } from './chainer.ts';
export {
  type RunSessionOptions,
  runSession,
  type SessionBytes,
  type SessionHandle,
  type SessionLog,
  type SessionSnapshot,
  type SessionSummary,
} from './driver.ts';
export { type Listener, type ListenerOptions, openListener } from './listener.ts';
export {
  isAddressLiteral,
  localBindFor,
  RouteError,
  type RouteInput,
  type RouteTarget,
  routeTargets,
} from './router.ts';
export {
  type ServerConnection,
  ServiceUpstream,
  type ServiceUpstreamOptions,
  SessionLimiter,
  TargetZoneDenied,
  type ZoneLookup,
} from './service.ts';
export { Cancel, connectUpstream, type LocalBind, type UpstreamConnectOptions } from './upstream.ts';
