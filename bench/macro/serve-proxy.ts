// The proxy side of the macro benchmarks' peers (http-peers.ts, relay-peers.ts, tls-peers.ts): one
// service's sessions through the real driver on transparent listeners on 127.0.0.1 and ::1, with the
// transparent router and no logging, as `tzorp run` serves a proxy service.
import { openListener, runSession, ServiceUpstream } from '../../src/net/index.ts';
import type { CoreFactory } from '../../src/proxy/core/types.ts';

export async function serveProxy(port: number, createCore: CoreFactory): Promise<void> {
  const upstream = new ServiceUpstream({
    name: 'bench',
    router: { type: 'transparent', forcedPort: null, forgeAddr: false, forgePort: 'any' },
    chainer: { type: 'connect', timeoutConnectMs: 5000 },
    limitTargetZonesTo: [],
    maxSessions: 0,
  });
  let n = 0;
  for (const host of ['127.0.0.1', '::1']) {
    await openListener({
      host,
      port,
      v6Only: true,
      onConnection: (socket) => {
        runSession({ id: `svc/bench:${++n}`, service: 'bench', socket, createCore, upstream });
      },
    });
  }
}
