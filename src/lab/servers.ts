// The lab's own servers (everything but FTP, which is vsftpd): they run inside the server namespace and
// record every connection they see, so a test or the demo can prove what came through the firewall and
// with which client address (transparent relay vs. forge_addr) and which headers (HTTP rewriting).
// One JSON object a line goes to the log file; the first line is {"event":"ready"} once every port
// listens.

import { appendFileSync } from 'node:fs';
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createTcpServer, type Server, type Socket } from 'node:net';
import { DEFAULTS } from '../defaults.ts';
import { canonicalAddress } from '../policy/index.ts';

export interface LabServersConfig {
  /** Where the connection records go. */
  log: string;
  http: number[];
  banner: number[];
  canary: number[];
}

/** One line of the servers' log. */
export interface ServerRecord {
  time: string;
  event: 'ready' | 'http' | 'banner' | 'canary';
  port?: number;
  /** The client address as the server saw it (IPv4 without the ::ffff: prefix). */
  peer?: string;
  peerPort?: number;
  /** The address the client reached (any of the server's addresses). */
  local?: string;
  localPort?: number;
  method?: string;
  url?: string;
  /** Request headers as received: [name, value] pairs in order, names as sent. */
  headers?: [string, string][];
}

function plain(addr: string | undefined): string {
  if (!addr) return '?';
  return canonicalAddress(addr)?.host ?? addr;
}

function endpoints(sock: Socket) {
  return {
    peer: plain(sock.remoteAddress),
    peerPort: sock.remotePort ?? 0,
    local: plain(sock.localAddress),
    localPort: sock.localPort ?? 0,
  };
}

export function startLabServers(cfg: LabServersConfig): Promise<Server[]> {
  const record = (r: Omit<ServerRecord, 'time'>) => {
    appendFileSync(cfg.log, `${JSON.stringify({ time: new Date().toISOString(), ...r })}\n`);
  };

  const onHttp = (req: IncomingMessage, res: ServerResponse) => {
    const headers: [string, string][] = [];
    for (let i = 0; i + 1 < req.rawHeaders.length; i += 2) {
      headers.push([req.rawHeaders[i] as string, req.rawHeaders[i + 1] as string]);
    }
    const ep = endpoints(req.socket);
    const rec = {
      event: 'http' as const,
      port: ep.localPort,
      ...ep,
      method: req.method,
      url: req.url,
      headers,
    };
    record(rec);
    req.resume();
    const m = /^\/bytes\/(\d+)$/.exec(req.url ?? '');
    if (m && req.method === 'GET') {
      const n = Math.min(Number(m[1]), DEFAULTS.labMaxResponseBytes);
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(n) });
      const chunk = Buffer.alloc(64 * 1024, 0x61);
      let left = n;
      const pump = () => {
        while (left > 0) {
          const c = left >= chunk.length ? chunk : chunk.subarray(0, left);
          left -= c.length;
          if (!res.write(c)) return void res.once('drain', pump);
        }
        res.end();
      };
      pump();
      return;
    }
    const body = `${JSON.stringify({ server: 'tzorp-lab', ...rec, httpVersion: req.httpVersion }, null, 2)}\n`;
    res.writeHead(200, {
      'content-type': 'application/json',
      'content-length': String(Buffer.byteLength(body)),
      'x-lab-peer': ep.peer,
    });
    res.end(req.method === 'HEAD' ? undefined : body);
  };

  const onBanner = (sock: Socket) => {
    const ep = endpoints(sock);
    record({ event: 'banner', port: ep.localPort, ...ep });
    sock.on('error', () => {});
    sock.write(
      `tzorp-lab banner: you are ${ep.peer} port ${ep.peerPort}, you reached ${ep.local} port ${ep.localPort}\r\n`,
    );
    sock.pipe(sock); // then an echo service, to poke at by hand
  };

  const onCanary = (sock: Socket) => {
    const ep = endpoints(sock);
    record({ event: 'canary', port: ep.localPort, ...ep });
    sock.on('error', () => {});
    sock.end(`tzorp-lab canary on port ${ep.localPort}: you are ${ep.peer}\r\n`);
  };

  const servers: Server[] = [
    ...cfg.http.map((p) => [createHttpServer({ keepAliveTimeout: 30_000 }, onHttp), p] as const),
    ...cfg.banner.map((p) => [createTcpServer(onBanner), p] as const),
    ...cfg.canary.map((p) => [createTcpServer(onCanary), p] as const),
  ].map(([s]) => s);
  const ports = [...cfg.http, ...cfg.banner, ...cfg.canary];
  return Promise.all(
    servers.map(
      (s, i) =>
        new Promise<Server>((resolve, reject) => {
          s.once('error', reject);
          // '::' without ipv6Only: one socket for IPv4 and IPv6, on every address of the namespace.
          s.listen({ port: ports[i], host: '::', ipv6Only: false }, () => resolve(s));
        }),
    ),
  ).then((all) => {
    record({ event: 'ready' });
    return all;
  });
}
