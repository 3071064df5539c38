// The proxy side of the macro benchmarks' peers (http-peers.ts, relay-peers.ts, tls-peers.ts): one
// service's sessions on transparent listeners on 127.0.0.1 and ::1, with the transparent router and no
// logging, as `tzorp run` serves a proxy service: through the real driver, or (a plug service with the
// native relay on, as the daemon does it) accepted, connected and relayed by the addon; with `nativeIo`
// (an HTTP service, as the daemon runs it unless --no-native-io) accepted by the addon and run by the
// driver on NativeSockets. The compiled tree runs (code.ts).
import type { CoreFactory } from '../../src/proxy/core/types.ts';
import type { PlugOptions } from '../../src/proxy/plug/options.ts';
import { load } from '../code.ts';

const { listenFd } = await load<typeof import('../../src/native/index.ts')>('native/index');
const { acceptNative } = await load<typeof import('../../src/net/accept.ts')>('net/accept');
const { openListener, runSession, ServiceUpstream } =
  await load<typeof import('../../src/net/index.ts')>('net/index');
const { runNativePlug } = await load<typeof import('../../src/net/native-plug.ts')>('net/native-plug');
const { nativeRelayDefault } = await load<typeof import('../../src/net/relay.ts')>('net/relay');
const { NativeSocket } = await load<typeof import('../../src/net/native-socket.ts')>('net/native-socket');

export async function serveProxy(
  port: number,
  createCore: CoreFactory,
  plug?: PlugOptions,
  nativeIo = false,
): Promise<void> {
  const upstream = new ServiceUpstream({
    name: 'bench',
    router: { type: 'transparent', forcedPort: null, forgeAddr: false, forgePort: 'any' },
    chainer: { type: 'connect', timeoutConnectMs: 5000 },
    limitTargetZonesTo: [],
    maxSessions: 0,
  });
  let n = 0;
  for (const host of ['127.0.0.1', '::1']) {
    if (plug && nativeRelayDefault()) {
      acceptNative(
        listenFd(host, port, { v6Only: true }),
        (conn) => {
          const id = `svc/bench:${++n}`;
          runNativePlug({
            id,
            service: 'bench',
            conn,
            upstream,
            options: plug,
            admitted: true,
            clientZone: null,
            ruleId: null,
          });
        },
        () => {},
      );
      continue;
    }
    if (nativeIo) {
      acceptNative(
        listenFd(host, port, { v6Only: true }),
        (conn) => {
          const socket = new NativeSocket(conn.fd, true);
          const addrs = { remote: conn.remote, local: conn.local };
          runSession({ id: `svc/bench:${++n}`, service: 'bench', socket, addrs, createCore, upstream });
        },
        () => {},
      );
      continue;
    }
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
