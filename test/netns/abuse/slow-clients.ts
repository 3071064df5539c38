// Slow and greedy HTTP clients for the namespace tests (issue 16), run in the lab's client namespace:
//   node --import tsx slow-clients.ts HOST PORT COUNT MODE [BYTE_EVERY_MS]
// MODE slowloris: each connection sends a request head one byte every BYTE_EVERY_MS and never ends it;
// MODE silent: each connection opens and never sends. Prints "open N" once every connection is up,
// then, when every connection was closed by the other side, one JSON line:
//   { opened, closed, failed, got408, maxOpen }
// (got408: connections answered "HTTP/1.1 408"). Exits when all are closed.
import net from 'node:net';

const [host, portText, countText, mode, everyText] = process.argv.slice(2);
const port = Number(portText);
const count = Number(countText);
const every = Number(everyText ?? 2000);
const HEAD = 'GET /slow HTTP/1.1\r\nHost: slow.test\r\nX-Slow: ';

let opened = 0;
let closed = 0;
let failed = 0;
let got408 = 0;
let open = 0;
let maxOpen = 0;
const sockets = new Set<net.Socket>();

function done(): void {
  if (closed + failed < count) return;
  process.stdout.write(`${JSON.stringify({ opened, closed, failed, got408, maxOpen })}\n`);
  process.exit(0);
}

function one(i: number): Promise<void> {
  return new Promise((resolve) => {
    const s = net.connect({ host, port });
    let sent = 0;
    let timer: NodeJS.Timeout | null = null;
    let first = '';
    s.on('connect', () => {
      opened++;
      open++;
      maxOpen = Math.max(maxOpen, open);
      sockets.add(s);
      resolve();
      if (mode === 'slowloris') {
        // spread the clients' bytes over the interval instead of all at once
        const send = () => {
          s.write(HEAD[sent % HEAD.length] ?? 'a');
          sent++;
          timer = setTimeout(send, every);
        };
        timer = setTimeout(send, (i * 37) % every);
      }
    });
    s.on('data', (d) => {
      if (first.length < 16) first += d.toString('latin1');
    });
    s.on('error', () => {});
    s.on('close', (hadError) => {
      if (timer) clearTimeout(timer);
      if (sockets.delete(s)) {
        open--;
        closed++;
        if (first.startsWith('HTTP/1.1 408')) got408++;
      } else {
        failed++;
        resolve();
      }
      void hadError;
      done();
    });
  });
}

// open in waves so the listener's accept queue is not the thing under test
for (let i = 0; i < count; i += 100) {
  await Promise.all(Array.from({ length: Math.min(100, count - i) }, (_, k) => one(i + k)));
}
process.stdout.write(`open ${opened}\n`);
done();
