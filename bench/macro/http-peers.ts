// Helper for http.bench.ts, run inside the lab's firewall namespace:
//   http-peers.ts proxy <port>   tzorp's HTTP proxy (real driver, http core with default options,
//                                transparent listeners on 127.0.0.1 and ::1, transparent router, no
//                                logging), on native I/O as `tzorp run` runs it (TZORP_NATIVE_IO=0:
//                                on Node's sockets, as --no-native-io); prints READY
//   http-peers.ts floor <port>   a Node relay that parses nothing (each socket's 'data' written to the
//                                other, transparent listeners the same way): what Node's own sockets
//                                allow per core, the ceiling of any proxy built on them; prints READY
import { load } from '../code.ts';
import { profileOnSignals } from './profile-hook.ts';
import { serveProxy } from './serve-proxy.ts';

async function serveFloor(port: number): Promise<void> {
  const net = await import('node:net');
  const { openListener } = await load<typeof import('../../src/net/index.ts')>('net/index');
  for (const host of ['127.0.0.1', '::1']) {
    await openListener({
      host,
      port,
      v6Only: true,
      onConnection: (c) => {
        // the original destination is the accepted socket's local address (TPROXY)
        const s = net.connect({ host: c.localAddress!, port: c.localPort!, noDelay: true });
        c.on('data', (b) => s.write(b));
        s.on('data', (b) => c.write(b));
        c.on('end', () => s.end());
        s.on('end', () => c.end());
        c.on('error', () => s.destroy());
        s.on('error', () => c.destroy());
        c.on('close', () => s.destroy());
        s.on('close', () => c.destroy());
        c.resume(); // (openListener's sockets start paused)
      },
    });
  }
}

const { httpModule } = await load<typeof import('../../src/proxy/http/index.ts')>('proxy/http/index');
const { bindCore } = await load<typeof import('../../src/proxy/index.ts')>('proxy/index');

const [mode, port] = process.argv.slice(2);
if (mode === 'proxy') {
  // options parsed once, as the daemon does per generation
  await serveProxy(Number(port), bindCore(httpModule, {}), undefined, process.env.TZORP_NATIVE_IO !== '0');
} else if (mode === 'floor') {
  await serveFloor(Number(port));
} else {
  process.stderr.write('usage: http-peers.ts proxy|floor <port>\n');
  process.exit(2);
}
process.stdout.write('READY\n');
profileOnSignals(); // bench/macro/profile.ts
