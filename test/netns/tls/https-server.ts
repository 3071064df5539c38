// Test HTTPS server for the TLS namespace tests (runs in the lab's server namespace, dual stack).
// argv: CERT KEY PORT...   Prints "ready" when listening, "tcp <port> <client>" for every TCP
// connection (before any TLS byte: a refused handshake must never get here), and "tls <port> <sni>
// <version>" for every completed handshake. Answers "hello from <sni> over <version>".
import { readFileSync } from 'node:fs';
import https from 'node:https';

const [cert, key, ...ports] = process.argv.slice(2);
let pending = ports.length;
for (const p of ports.map(Number)) {
  const srv = https.createServer({ cert: readFileSync(cert!), key: readFileSync(key!) }, (req, res) => {
    const s = req.socket as import('node:tls').TLSSocket;
    const servername = (s as unknown as { servername?: string | false }).servername || '-';
    res.end(`hello from ${servername} over ${s.getProtocol()}\n`);
  });
  srv.on('connection', (c: import('node:net').Socket) => console.log(`tcp ${p} ${c.remoteAddress}`));
  srv.on('secureConnection', (s) => {
    const servername = (s as unknown as { servername?: string | false }).servername || '-';
    console.log(`tls ${p} ${servername} ${s.getProtocol()}`);
  });
  srv.listen({ port: p, host: '::', ipv6Only: false }, () => {
    if (--pending === 0) console.log('ready');
  });
}
