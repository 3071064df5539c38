// Helper for http.bench.ts, run inside the lab's firewall namespace:
//   http-peers.ts proxy <port>   tzorp's HTTP proxy (real driver, http core with default options,
//                                transparent listeners on 127.0.0.1 and ::1, transparent router, no
//                                logging), on native I/O as `tzorp run` runs it (TZORP_NATIVE_IO=0:
//                                on Node's sockets, as --no-native-io); prints READY
//   http-peers.ts floor <port>   a Node relay that parses nothing (each socket's 'data' written to the
//                                other, transparent listeners the same way): what Node's own sockets
//                                allow per core, the ceiling of any proxy built on them; prints READY
//   http-peers.ts nfloor <port>  the same relay on tzorp's native socket I/O (accepted by the addon,
//                                NativeSocket both sides, as `tzorp run` runs an HTTP service): the
//                                ceiling of any proxy on the I/O layer tzorp's HTTP proxy uses
import { load } from '../code.ts';
import { profileOnSignals } from './profile-hook.ts';
import { serveProxy } from './serve-proxy.ts';

/** What the floors need of a socket (net.Socket and NativeSocket both have it). */
interface Relayable {
  on(event: string, listener: (b: Buffer) => void): unknown;
  write(b: Buffer): unknown;
  end(): unknown;
  destroy(): unknown;
}

/** Each side's bytes written to the other, each end and error passed on: nothing parsed. */
function copyBothWays(c: Relayable, s: Relayable): void {
  c.on('data', (b) => s.write(b));
  s.on('data', (b) => c.write(b));
  c.on('end', () => s.end());
  s.on('end', () => c.end());
  c.on('error', () => s.destroy());
  s.on('error', () => c.destroy());
  c.on('close', () => s.destroy());
  s.on('close', () => c.destroy());
}

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
        copyBothWays(c, s);
        c.resume(); // (openListener's sockets start paused)
      },
    });
  }
}

/** The floor on native I/O: each NativeSocket's bytes written to the other, nothing parsed. */
async function serveNativeFloor(port: number): Promise<void> {
  const { listenFd, clientFd } = await load<typeof import('../../src/native/index.ts')>('native/index');
  const { acceptNative } = await load<typeof import('../../src/net/accept.ts')>('net/accept');
  const { NativeSocket } = await load<typeof import('../../src/net/native-socket.ts')>('net/native-socket');
  for (const host of ['127.0.0.1', '::1']) {
    acceptNative(
      listenFd(host, port, { v6Only: true }),
      (conn) => {
        const c = new NativeSocket(conn.fd, true);
        const s = new NativeSocket(clientFd(conn.local.family, { noDelay: true }));
        copyBothWays(c, s);
        s.connect(conn.local.host, conn.local.port, (err) => {
          if (err) {
            c.destroy();
            return;
          }
          s.resume();
          c.resume();
        });
      },
      () => {},
    );
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
} else if (mode === 'nfloor') {
  await serveNativeFloor(Number(port));
} else {
  process.stderr.write('usage: http-peers.ts proxy|floor|nfloor <port>\n');
  process.exit(2);
}
process.stdout.write('READY\n');
profileOnSignals(); // bench/macro/profile.ts
