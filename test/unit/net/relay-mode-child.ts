// Child of relay-mode.test.ts: chooses where the native relay runs (argv[2]: loop | thread; none =
// the default), relays one plug session natively (accept, connect and relay in the addon) to an echo
// server, and prints one JSON line: the mode, the process's threads before and after the relay ran,
// what came back, and whether choosing the other mode afterwards was refused.
import { readdirSync } from 'node:fs';
import { nativeRelayMode, nativeRelaysActive, setNativeRelayMode } from '../../../src/net/relay.ts';
import { echo, exchange, nativePlugFront, tcpServer, until } from './helpers.ts';

const threads = () => readdirSync('/proc/self/task').length;
const want = process.argv[2];
if (want === 'loop' || want === 'thread') setNativeRelayMode(want);
const srv = await tcpServer(echo);
let ended = 0;
const front = nativePlugFront(srv.port, () => ended++);
const port = front.port;
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
front.stop();
await srv.close();
process.stdout.write(
  `${JSON.stringify({ mode: nativeRelayMode(), before, after, reply: reply.toString(), refused })}\n`,
);
