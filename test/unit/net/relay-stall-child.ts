// Child of relay-mode.test.ts: relays natively (accept, connect, relay in the addon; the relay mode from
// argv[2]) to 127.0.0.1:argv[3], prints `PORT <n>`; on a `block` line on stdin it prints BLOCK, keeps its
// JavaScript thread busy for 3 s (as a reload's new generation would), then prints UNBLOCKED.
import { writeSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { closeFd, listenFd } from '../../../src/native/index.ts';
import { acceptNative } from '../../../src/net/accept.ts';
import { ServiceUpstream } from '../../../src/net/index.ts';
import { runNativePlug } from '../../../src/net/native-plug.ts';
import { setNativeRelayMode } from '../../../src/net/relay.ts';
import { boundPort, proxyService } from './helpers.ts';

setNativeRelayMode(process.argv[2] === 'loop' ? 'loop' : 'thread');
const up = new ServiceUpstream(
  proxyService([{ host: '127.0.0.1', port: Number(process.argv[3]) }], {
    chainer: { type: 'failover', timeoutConnectMs: 5000, timeoutStateMs: 1000 },
  }),
  { transparentUpstream: false },
);
const fd = listenFd('127.0.0.1', 0, { transparent: false });
let n = 0;
const acceptor = acceptNative(
  fd,
  (conn) => {
    runNativePlug({
      id: `svc/stall:${++n}`,
      service: 'stall',
      conn,
      upstream: up,
      options: { timeoutMs: 60_000, copyToServer: true, copyToClient: true },
      admitted: true,
      clientZone: null,
      ruleId: 1,
    });
  },
  () => {},
);
writeSync(1, `PORT ${boundPort(fd)}\n`);
closeFd(fd);
createInterface({ input: process.stdin }).on('line', (l) => {
  if (l === 'block') {
    writeSync(1, 'BLOCK\n');
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 3000);
    writeSync(1, 'UNBLOCKED\n');
  } else if (l === 'exit') {
    acceptor.stop();
    process.exit(0);
  }
});
