// HTTP clients for the fault tests, in the lab's client namespace:
//   node --import tsx fault-client.ts HOST PORT COUNT MODE [CONCURRENCY]
// MODE normal: send a GET and read until the connection closes; MODE vanish: reset the connection as
// soon as the first bytes of the answer arrive. Prints one JSON line: the status codes seen (0 = no
// status line), and how many connections were closed by the other side.
import net from 'node:net';

const [host, portText, countText, mode, concText] = process.argv.slice(2);
const port = Number(portText);
const count = Number(countText);
const conc = Number(concText ?? 20);
const statuses: Record<string, number> = {};
let peerClosed = 0;

function one(): Promise<void> {
  return new Promise((resolve) => {
    const s = net.connect({ host, port });
    let first = '';
    let vanished = false;
    s.on('connect', () => s.write(`GET /f HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`));
    s.on('data', (d) => {
      if (first.length < 16) first += d.toString('latin1');
      if (mode === 'vanish' && !vanished) {
        vanished = true;
        s.resetAndDestroy();
      }
    });
    s.on('error', () => {});
    s.on('close', () => {
      const m = /^HTTP\/1\.1 (\d{3})/.exec(first);
      const k = m ? m[1]! : '0';
      statuses[k] = (statuses[k] ?? 0) + 1;
      if (!vanished) peerClosed++;
      resolve();
    });
  });
}

let next = 0;
async function lane(): Promise<void> {
  while (next < count) {
    next++;
    await one();
  }
}
await Promise.all(Array.from({ length: Math.min(conc, count) }, lane));
process.stdout.write(`${JSON.stringify({ statuses, peerClosed })}\n`);
