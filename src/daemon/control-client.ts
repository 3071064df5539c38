// The CLI's end of the control socket. No daemon (no socket file, nobody listening, or no answer in
// time) is DAEMON_NOT_RUNNING naming the socket path, which the CLI reports with exit code 1.

import net from 'node:net';
import { DEFAULTS } from '../defaults.ts';
import { idOfCode, TzorpError } from '../errors.ts';
import {
  type ControlErrorBody,
  type ControlRequest,
  type ControlResponse,
  LineDecoder,
} from './control-protocol.ts';

type Body<R> = R extends unknown ? Omit<R, 'id'> : never;

/** The daemon answered ok: false: its error, with the daemon's code (a policy refused by a reload
 * carries the policy's errors in `body.errors`). */
export class ControlError extends TzorpError {
  constructor(readonly body: ControlErrorBody) {
    super(idOfCode(body.code), body.message, { details: { ...body } });
  }
}

export interface RequestOptions {
  /** How long to wait for the answer (stop waits for the drain). Default DEFAULTS.controlRequestTimeoutMs. */
  timeoutMs?: number;
}

/** Send one request and return its result; throws DAEMON_NOT_RUNNING or ControlError. */
export async function controlRequest<T = unknown>(
  path: string,
  req: Body<ControlRequest>,
  opts: RequestOptions = {},
): Promise<T> {
  const timeoutMs = opts.timeoutMs ?? DEFAULTS.controlRequestTimeoutMs;
  const res = await new Promise<ControlResponse>((resolve, reject) => {
    const sock = net.connect(path);
    const decoder = new LineDecoder(DEFAULTS.maxControlReplyBytes);
    let connected = false;
    let settled = false;
    const finish = (f: () => void) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      sock.destroy();
      f();
    };
    const notRunning = (why: string) =>
      new TzorpError('DAEMON_NOT_RUNNING', `no tzorp daemon answers on ${path} (${why})`, {
        details: { path },
      });
    const timer = setTimeout(
      () =>
        finish(() => reject(notRunning(connected ? `no answer in ${timeoutMs} ms` : 'connect timed out'))),
      timeoutMs,
    );
    sock.setEncoding('utf8');
    sock.on('connect', () => {
      connected = true;
      sock.write(`${JSON.stringify({ id: 1, ...req })}\n`);
    });
    sock.on('data', (chunk: string) => {
      let lines: string[];
      try {
        lines = decoder.push(chunk);
      } catch (e) {
        finish(() => reject(e));
        return;
      }
      const line = lines[0];
      if (line === undefined) return;
      try {
        const r = JSON.parse(line) as ControlResponse;
        finish(() => resolve(r));
      } catch (e) {
        finish(() =>
          reject(
            new TzorpError(
              'DAEMON_CONTROL_REPLY',
              `the daemon sent a malformed answer: ${(e as Error).message}`,
              {
                cause: e,
              },
            ),
          ),
        );
      }
    });
    sock.on('error', (e: NodeJS.ErrnoException) => finish(() => reject(notRunning(e.code ?? e.message))));
    sock.on('close', () => finish(() => reject(notRunning('the connection closed without an answer'))));
  });
  if (!res.ok) throw new ControlError(res.error);
  return res.result as T;
}
