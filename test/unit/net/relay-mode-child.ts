// Child of relay-mode.test.ts: chooses where the native relay runs (argv[2]: loop | thread; none =
// the default), relays one plug session natively (accept, connect and relay in the addon) to an echo
// server, and prints one JSON line: the mode, the process's threads before and after the relay ran,
// what came back, and whether choosing the other mode afterwards was refused.
import { readdirSync } from 'node:fs';
import { closeFd, listenFd } from '../../../src/native/index.ts';
import { acceptNative } from '../../../src/net/accept.ts';
import { ServiceUpstream } from '../../../src/net/index.ts';
import { runNativePlug } from '../../../src/net/native-plug.ts';
import { nativeRelayMode, nativeRelaysActive, setNativeRelayMode } from '../../../src/net/relay.ts';
import { boundPort, echo, exchange, proxyService, tcpServer, until } from './helpers.ts';

const threads = () => readdirSync('/proc/self/task').length;
const want = process.argv[2];
if (want === 'loop' || want === 'thread') setNativeRelayMode(want);
const srv = await tcpServer(echo);
const up = new ServiceUpstream(
  proxyService([{ host: '127.0.0.1', port: srv.port }], {
    chainer: { type: 'failover', timeoutConnectMs: 5000, timeoutStateMs: 1000 },
  }),
  { transparentUpstream: false },
);
const fd = listenFd('127.0.0.1', 0, { transparent: false });
const port = boundPort(fd);
let ended = 0;
const acceptor = acceptNative(
  fd,
  (conn) => {
    runNativePlug({
      id: 'svc/mode:1',
      service: 'mode',
      conn,
      upstream: up,
      options: { timeoutMs: 60_000, copyToServer: true, copyToClient: true },
      admitted: true,
      clientZone: null,
      ruleId: 1,
      onEnd: () => ended++,
    });
  },
  () => {},
);
closeFd(fd);
// (the echo server, the listener and the JIT's threads are there before the first relay)
await new Promise((r) => setTimeout(r, 200));
const before = threads();
const reply = await exchange(port, 'hello through the relay');
await until(() => ended === 1 && nativeRelaysActive() === 0, 'the session ended');
const after = threads();
const other = nativeRelayMode() === 'loop' ? 'thread' : 'loop';
let refused = false;
try {
  setNativeRelayMode(other);
} catch {
  refused = true;
}
acceptor.stop();
await srv.close();
process.stdout.write(
  `${JSON.stringify({ mode: nativeRelayMode(), before, after, reply: reply.toString(), refused })}\n`,
);
