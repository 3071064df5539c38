// Test servers for the HTTP end-to-end tests (run in the lab's server namespace, dual stack).
//   web=PORT   a Node HTTP server: /echo (the request as JSON), /big?n=N[&chunked=1] (N deterministic
//              bytes, X-Sha256), /upload (sha256 and length of the body), /status/N, /server-header,
//              and a WebSocket-style upgrade on /ws (101, then echoes raw bytes)
//   raw=P1,P2  raw TCP servers for the corpus: they record every byte received since the last reset,
//              count the complete requests they can parse, and answer each with the current response
// stdin: "reset ID BASE64RESPONSE" -> "reset-ok ID"; "dump ID" -> "dump ID REQUESTS BASE64BYTES".
// Prints "ready" when every server listens.
import { createHash } from 'node:crypto';
import http from 'node:http';
import net from 'node:net';
import { createInterface } from 'node:readline';
import { HttpReader } from '../../src/proxy/http/index.ts';

const LENIENT = {
  maxLineLength: 1 << 20,
  maxUrlLength: 1 << 20,
  maxHostnameLength: 1024,
  maxHeaderLines: 10_000,
  maxHeaderBytes: 4 << 20,
  maxBodyLength: 0,
  maxChunkLength: 0,
  maxChunkExtensionBytes: 1 << 20,
};

function pattern(n: number): Buffer {
  const b = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i++) b[i] = (i * 7 + (i >> 12)) & 0xff;
  return b;
}

function web(port: number): Promise<void> {
  const srv = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    if (url.pathname === '/echo') {
      const body = JSON.stringify({
        method: req.method,
        url: req.url,
        version: req.httpVersion,
        headers: req.rawHeaders,
      });
      res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) });
      res.end(body);
    } else if (url.pathname === '/big') {
      const data = pattern(Number(url.searchParams.get('n') ?? '1000'));
      const headers: Record<string, string> = { 'X-Sha256': createHash('sha256').update(data).digest('hex') };
      if (!url.searchParams.get('chunked')) headers['Content-Length'] = String(data.length);
      res.writeHead(200, headers);
      for (let i = 0; i < data.length; i += 65536) res.write(data.subarray(i, i + 65536));
      res.end();
    } else if (url.pathname === '/upload') {
      const h = createHash('sha256');
      let n = 0;
      req.on('data', (d: Buffer) => {
        h.update(d);
        n += d.length;
      });
      req.on('end', () => {
        const body = JSON.stringify({
          sha256: h.digest('hex'),
          length: n,
          te: req.headers['transfer-encoding'] ?? null,
        });
        res.writeHead(200, { 'Content-Length': Buffer.byteLength(body) });
        res.end(body);
      });
    } else if (url.pathname.startsWith('/status/')) {
      const code = Number(url.pathname.slice(8));
      res.writeHead(code, { 'Content-Length': 11 });
      res.end(`status ${code}`);
    } else if (url.pathname === '/server-header') {
      res.writeHead(200, { Server: 'Secret/1.0', 'Content-Length': 2 });
      res.end('ok');
    } else {
      res.writeHead(404, { 'Content-Length': 9 });
      res.end('not found');
    }
  });
  srv.keepAliveTimeout = 30_000;
  srv.on('upgrade', (req, socket: net.Socket, head: Buffer) => {
    const key = String(req.headers['sec-websocket-key'] ?? '');
    const accept = createHash('sha1').update(`${key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64');
    socket.write(
      `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`,
    );
    if (head.length) socket.write(head);
    socket.on('data', (d) => socket.write(d));
    socket.on('end', () => socket.end());
  });
  return new Promise((r) => srv.listen(port, '::', () => r()));
}

let received: Buffer[] = [];
let requests = 0;
let response = Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok', 'latin1');

function raw(port: number): Promise<void> {
  const srv = net.createServer((sock) => {
    const reader = new HttpReader('request', LENIENT);
    let broken = false;
    sock.on('data', (d) => {
      received.push(d);
      if (broken) return;
      reader.push(d);
      for (;;) {
        let it: ReturnType<HttpReader['read']>;
        try {
          it = reader.read();
        } catch {
          broken = true;
          return;
        }
        if (it.type === 'need' || it.type === 'eof') return;
        if (it.type === 'end') {
          requests++;
          sock.write(response);
        }
      }
    });
    sock.on('error', () => {});
    sock.on('end', () => sock.end());
  });
  return new Promise((r) => srv.listen(port, '::', () => r()));
}

const waits: Promise<void>[] = [];
for (const a of process.argv.slice(2)) {
  const [kind, val] = a.split('=') as [string, string];
  if (kind === 'web') waits.push(web(Number(val)));
  else if (kind === 'raw') for (const p of val.split(',')) waits.push(raw(Number(p)));
}
await Promise.all(waits);
createInterface({ input: process.stdin }).on('line', (line) => {
  const [cmd, id, arg] = line.split(' ');
  if (cmd === 'reset') {
    received = [];
    requests = 0;
    response = Buffer.from(arg ?? '', 'base64');
    process.stdout.write(`reset-ok ${id}\n`);
  } else if (cmd === 'dump') {
    process.stdout.write(`dump ${id} ${requests} ${Buffer.concat(received).toString('base64')}\n`);
  }
});
process.stdout.write('ready\n');
