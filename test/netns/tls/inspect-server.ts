// Test HTTPS server for the inspect namespace test (runs in the lab's server namespace, dual stack).
// argv: PORT:CERT:KEY...   Prints "ready" when listening and "req <port> <method> <path> <header
// x-tzorp-test or ->" for every request it gets. Answers:
//   /big?mb=N  N MiB of deterministic bytes (a counter pattern), for a checked download;
//   /headers   the request headers it received, as JSON;
//   anything else: "hello from <sni> over <version> alpn <alpn>".
import { readFileSync } from 'node:fs';
import https from 'node:https';

const specs = process.argv.slice(2).map((s) => {
  const [port, cert, key] = s.split(':');
  return { port: Number(port), cert: cert!, key: key! };
});

export function bigBody(mib: number): Buffer {
  const b = Buffer.alloc(mib * 1024 * 1024);
  for (let i = 0; i < b.length; i += 4) b.writeUInt32BE((i / 4) >>> 0, i);
  return b;
}

let pending = specs.length;
for (const { port, cert, key } of specs) {
  const srv = https.createServer(
    { cert: readFileSync(cert), key: readFileSync(key), ALPNProtocols: ['h2', 'http/1.1'] },
    (req, res) => {
      const s = req.socket as import('node:tls').TLSSocket;
      const u = new URL(req.url ?? '/', 'https://x');
      console.log(`req ${port} ${req.method} ${u.pathname} ${req.headers['x-tzorp-test'] ?? '-'}`);
      if (u.pathname === '/big') {
        const body = bigBody(Number(u.searchParams.get('mb') ?? '1'));
        res.writeHead(200, { 'content-length': body.length, 'content-type': 'application/octet-stream' });
        res.end(body);
        return;
      }
      if (u.pathname === '/headers') {
        res.end(JSON.stringify(req.headers));
        return;
      }
      const sni = (s as unknown as { servername?: string | false }).servername || '-';
      res.end(`hello from ${sni} over ${s.getProtocol()} alpn ${s.alpnProtocol || '-'}\n`);
    },
  );
  srv.listen({ port, host: '::', ipv6Only: false }, () => {
    if (--pending === 0) console.log('ready');
  });
}
