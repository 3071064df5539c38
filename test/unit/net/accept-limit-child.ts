// Child of native-accept-limit.test.ts, started under a small RLIMIT_NOFILE: accepts natively on a
// loopback port and holds every connection it gets. Prints `PORT <n>`; on stdin, `stats` prints
// `STATS <held> <full>` (full: accept failures for want of descriptors reported to JavaScript) and
// `release` closes every held connection.
import { createInterface } from 'node:readline';
import { closeFd, listenFd } from '../../../src/native/index.ts';
import { acceptNative } from '../../../src/net/accept.ts';
import { boundPort } from './helpers.ts';

const held: number[] = [];
let accepted = 0;
let full = 0;
const fd = listenFd('127.0.0.1', 0, { transparent: false, backlog: 256 });
const acceptor = acceptNative(
  fd,
  (c) => {
    accepted++;
    held.push(c.fd);
  },
  () => {
    full++;
  },
);
process.stdout.write(`PORT ${boundPort(fd)}\n`);
closeFd(fd);
createInterface({ input: process.stdin }).on('line', (l) => {
  if (l === 'stats') process.stdout.write(`STATS ${accepted} ${full}\n`);
  else if (l === 'release') {
    for (const h of held.splice(0)) closeFd(h);
    process.stdout.write('RELEASED\n');
  } else if (l === 'exit') {
    acceptor.stop();
    process.exit(0);
  }
});
