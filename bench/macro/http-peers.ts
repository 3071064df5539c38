// Helper for http.bench.ts, run inside the lab's firewall namespace:
//   http-peers.ts proxy <port>   tzorp's HTTP proxy (real driver, http core with default options,
//                                transparent listeners on 127.0.0.1 and ::1, transparent router, no
//                                logging); prints READY
import { openListener, runSession, ServiceUpstream } from '../../src/net/index.ts';
import { httpModule } from '../../src/proxy/http/index.ts';
import { bindCore } from '../../src/proxy/index.ts';
import { profileOnSignals } from './profile-hook.ts';

const [mode, port] = process.argv.slice(2);
if (mode !== 'proxy') {
  process.stderr.write('usage: http-peers.ts proxy <port>\n');
  process.exit(2);
}
const upstream = new ServiceUpstream({
  name: 'bench',
  router: { type: 'transparent', forcedPort: null, forgeAddr: false, forgePort: 'any' },
  chainer: { type: 'connect', timeoutConnectMs: 5000 },
  limitTargetZonesTo: [],
  maxSessions: 0,
});
const createCore = bindCore(httpModule, {}); // options parsed once, as the daemon does per generation
let n = 0;
for (const host of ['127.0.0.1', '::1']) {
  await openListener({
    host,
    port: Number(port),
    v6Only: true,
    onConnection: (socket) => {
      runSession({
        id: `svc/bench:${++n}`,
        service: 'bench',
        socket,
        createCore,
        upstream,
      });
    },
  });
}
process.stdout.write('READY\n');
profileOnSignals(); // bench/macro/profile.ts
