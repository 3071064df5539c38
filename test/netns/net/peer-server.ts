// The server-side peer of the relay namespace tests (runs in the lab's server namespace).
//   digest ports: read until the client's FIN, then answer one line naming what the server saw
//     ("peer=<addr> port=<port> local=<addr>:<port> bytes=<n> sha256=<hex>") and end: proves the
//     relay's source address/port and half-close (the client shut its write side first).
//   http port: any request gets a fixed random body; its sha256 is printed at start ("BIGSHA <hex>").
// Usage: peer-server.ts <digest ports comma-separated> <http port> <http body bytes>
import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import net from 'node:net';

const digestPorts = (process.argv[2] ?? '').split(',').filter(Boolean).map(Number);
const httpPort = Number(process.argv[3] ?? 0);
const bodyBytes = Number(process.argv[4] ?? 0);

function unmap(a: string | undefined): string {
  return (a ?? '').replace(/^::ffff:/, '');
}

let pending = digestPorts.length + (httpPort ? 1 : 0);
const ready = () => {
  if (--pending === 0) process.stdout.write('READY\n');
};

for (const port of digestPorts) {
  const srv = net.createServer({ allowHalfOpen: true }, (s) => {
    s.on('error', () => {});
    const h = createHash('sha256');
    let n = 0;
    s.on('data', (d: Buffer) => {
      n += d.length;
      h.update(d);
    });
    s.on('end', () => {
      s.end(
        `peer=${unmap(s.remoteAddress)} port=${s.remotePort} local=${unmap(s.localAddress)}:${s.localPort} bytes=${n} sha256=${h.digest('hex')}\n`,
      );
    });
  });
  srv.listen({ host: '::', port, ipv6Only: false }, ready);
}

if (httpPort) {
  const body = randomBytes(bodyBytes);
  process.stdout.write(`BIGSHA ${createHash('sha256').update(body).digest('hex')}\n`);
  http
    .createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': body.length });
      res.end(body);
    })
    .listen({ host: '::', port: httpPort, ipv6Only: false }, ready);
}
