// Helpers for relay.bench.ts, run inside the lab's namespaces.
//   relay-peers.ts relay <port>                 tzorp plug relay (transparent listeners on 127.0.0.1 and
//                                                ::1, transparent router, no logging; native plug
//                                                sessions unless TZORP_NATIVE_RELAY=0); prints READY
//   relay-peers.ts echo <port>                  echo server on [::]; prints READY
//   relay-peers.ts idle <host> <port> <n>       opens n connections, each echoes one byte end to end
//                                                (both legs of the relay exist), prints OPEN, holds them
import net from 'node:net';
import { load } from '../code.ts';
import { profileOnSignals } from './profile-hook.ts';
import { serveProxy } from './serve-proxy.ts';

const { bindCore } = await load<typeof import('../../src/proxy/index.ts')>('proxy/index');
const { plugModule } = await load<typeof import('../../src/proxy/plug/index.ts')>('proxy/plug/index');
const { parsePlugOptions } =
  await load<typeof import('../../src/proxy/plug/options.ts')>('proxy/plug/options');

const [mode, a1, a2, a3] = process.argv.slice(2);

if (mode === 'relay') {
  // options parsed once, as the daemon does
  await serveProxy(Number(a1), bindCore(plugModule, {}), parsePlugOptions({}));
  process.stdout.write('READY\n');
  profileOnSignals();
} else if (mode === 'echo') {
  net
    .createServer({ allowHalfOpen: true }, (s) => {
      s.on('error', () => {});
      s.pipe(s);
    })
    .listen({ host: '::', port: Number(a1), ipv6Only: false, backlog: 4096 }, () =>
      process.stdout.write('READY\n'),
    );
} else if (mode === 'idle') {
  const host = a1!;
  const port = Number(a2);
  const total = Number(a3);
  const held: net.Socket[] = [];
  const BATCH = 100; // connections opened at a time (SYN backlog friendliness)
  const one = () =>
    new Promise<void>((resolve, reject) => {
      const s = net.connect({ host, port });
      s.once('error', reject);
      s.once('connect', () => s.write('x'));
      s.once('data', () => {
        held.push(s);
        resolve();
      });
    });
  for (let i = 0; i < total; i += BATCH) {
    await Promise.all(Array.from({ length: Math.min(BATCH, total - i) }, one));
  }
  process.stdout.write(`OPEN ${held.length}\n`);
  setInterval(() => {}, 1 << 30);
} else {
  process.stderr.write('usage: relay-peers.ts relay <port> | echo <port> | idle <host> <port> <n>\n');
  process.exit(2);
}
