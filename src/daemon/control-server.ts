// The daemon's end of the control socket: a UNIX stream socket only root (the owner) can use (0600 in
// a 0700 directory when tzorp creates the directory). A stale socket file left by a killed daemon is
// replaced; a socket another daemon still answers on is not (DAEMON_ALREADY_RUNNING).

import { chmod, mkdir, unlink } from 'node:fs/promises';
import net from 'node:net';
import { dirname } from 'node:path';
import { DEFAULTS } from '../defaults.ts';
import { TzorpError } from '../errors.ts';
import {
  type ControlRequest,
  type ControlResponse,
  errorBody,
  LineDecoder,
  parseRequest,
} from './control-protocol.ts';

export type ControlHandler = (req: ControlRequest) => Promise<unknown>;

/** True when a daemon answers on the socket at `path` (a stale file of a killed daemon does not). */
export async function controlSocketInUse(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const c = net.connect(path);
    c.once('connect', () => {
      c.destroy();
      resolve(true);
    });
    c.once('error', () => resolve(false));
  });
}

export class ControlServer {
  private server: net.Server | null = null;
  private readonly clients = new Set<net.Socket>();

  constructor(
    readonly path: string,
    private readonly handler: ControlHandler,
  ) {}

  async listen(): Promise<void> {
    await mkdir(dirname(this.path), { recursive: true, mode: 0o700 });
    if (await controlSocketInUse(this.path)) {
      throw new TzorpError('DAEMON_ALREADY_RUNNING', `a daemon already answers on ${this.path}`, {
        details: { path: this.path },
      });
    }
    await unlink(this.path).catch(() => {});
    const server = net.createServer((sock) => this.serve(sock));
    // Created with umask 077 so the socket is never reachable by others, not even briefly.
    const old = process.umask(0o077);
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(this.path, () => {
          server.off('error', reject);
          resolve();
        });
      });
    } catch (e) {
      throw new TzorpError(
        'DAEMON_START',
        `cannot listen on the control socket ${this.path}: ${(e as Error).message}`,
        {
          cause: e,
        },
      );
    } finally {
      process.umask(old);
    }
    await chmod(this.path, 0o600);
    this.server = server;
  }

  private serve(sock: net.Socket): void {
    this.clients.add(sock);
    sock.setEncoding('utf8');
    const decoder = new LineDecoder(DEFAULTS.maxControlLineBytes);
    // Answers go out in request order even when handlers finish out of order.
    let chain = Promise.resolve();
    const reply = (r: ControlResponse) => {
      if (!sock.destroyed) sock.write(`${JSON.stringify(r)}\n`);
    };
    sock.on('data', (chunk: string) => {
      let lines: string[];
      try {
        lines = decoder.push(chunk);
      } catch (e) {
        reply({ id: 0, ok: false, error: { code: 'TZ3004', message: (e as Error).message } });
        sock.end();
        return;
      }
      for (const line of lines) {
        let req: ControlRequest;
        try {
          req = parseRequest(line);
        } catch (e) {
          chain = chain.then(() => reply({ id: 0, ok: false, error: errorBody(e) }));
          continue;
        }
        const done = this.handler(req).then(
          (result): ControlResponse => ({ id: req.id, ok: true, result: result ?? null }),
          (e): ControlResponse => ({ id: req.id, ok: false, error: errorBody(e) }),
        );
        chain = chain.then(() => done.then(reply));
      }
    });
    sock.on('error', () => {});
    sock.on('close', () => this.clients.delete(sock));
  }

  async close(): Promise<void> {
    const s = this.server;
    this.server = null;
    if (!s) return;
    await new Promise<void>((resolve) => s.close(() => resolve()));
    for (const c of this.clients) c.end();
    await unlink(this.path).catch(() => {});
  }
}
