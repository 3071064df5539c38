// Helper for http.bench.ts, run inside the lab's firewall namespace:
//   http-peers.ts proxy <port>   tzorp's HTTP proxy (real driver, http core with default options,
//                                transparent listeners on 127.0.0.1 and ::1, transparent router, no
//                                logging); prints READY
import { load } from '../code.ts';
import { profileOnSignals } from './profile-hook.ts';
import { serveProxy } from './serve-proxy.ts';

const { httpModule } = await load<typeof import('../../src/proxy/http/index.ts')>('proxy/http/index');
const { bindCore } = await load<typeof import('../../src/proxy/index.ts')>('proxy/index');

const [mode, port] = process.argv.slice(2);
if (mode !== 'proxy') {
  process.stderr.write('usage: http-peers.ts proxy <port>\n');
  process.exit(2);
}
// options parsed once, as the daemon does per generation
await serveProxy(Number(port), bindCore(httpModule, {}));
process.stdout.write('READY\n');
profileOnSignals(); // bench/macro/profile.ts
