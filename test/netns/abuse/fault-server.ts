// Misbehaving HTTP servers for the fault tests (issue 16), in the lab's server namespace:
//   8001: answers 200 with Content-Length 1,000,000, sends 10,000 bytes of it, then resets
//   8002: reads the request and never answers
//   8004: answers 200 with 64 MiB, 64 KiB every 20 ms (a client vanishes, a worker dies mid-body)
// (nothing listens on 8003: a connection there is refused). Prints "ready".
import net from 'node:net';

function serve(port: number, onRequest: (s: net.Socket) => void): void {
  const srv = net.createServer((s) => {
    s.on('error', () => {});
    let head = '';
    s.on('data', (d) => {
      if (head.includes('\r\n\r\n')) return;
      head += d.toString('latin1');
      if (head.includes('\r\n\r\n')) onRequest(s);
    });
  });
  srv.listen({ port, host: '::' });
}

serve(8001, (s) => {
  s.write(`HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n${'x'.repeat(10_000)}`, () =>
    s.resetAndDestroy(),
  );
});
serve(8002, () => {});
const chunk = Buffer.alloc(64 * 1024, 0x61);
serve(8004, (s) => {
  // 64 KiB every 20 ms: a 64 MiB body takes about 20 s, time for a client to vanish or a worker to die
  s.write(`HTTP/1.1 200 OK\r\nContent-Length: ${64 * 1024 * 1024}\r\n\r\n`);
  let sent = 0;
  const t = setInterval(() => {
    if (s.destroyed) return clearInterval(t);
    s.write(chunk);
    if (++sent === 1024) {
      clearInterval(t);
      s.end();
    }
  }, 20);
});
process.stdout.write('ready\n');
