// Child of relay-mode.test.ts: relays natively (accept, connect, relay in the addon; the relay mode from
// argv[2]) to 127.0.0.1:argv[3], prints `PORT <n>`; on a `block` line on stdin it prints BLOCK, keeps its
// JavaScript thread busy for 3 s (as a reload's new generation would), then prints UNBLOCKED.
import { writeSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { setNativeRelayMode } from '../../../src/net/relay.ts';
import { nativePlugFront } from './helpers.ts';

setNativeRelayMode(process.argv[2] === 'loop' ? 'loop' : 'thread');
const front = nativePlugFront(Number(process.argv[3]));
writeSync(1, `PORT ${front.port}\n`);
createInterface({ input: process.stdin }).on('line', (l) => {
  if (l === 'block') {
    writeSync(1, 'BLOCK\n');
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 3000);
    writeSync(1, 'UNBLOCKED\n');
  } else if (l === 'exit') {
    front.stop();
    process.exit(0);
  }
});
