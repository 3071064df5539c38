// What the control commands (tzorp status|sessions|reload|stop|log) share: the --control option, the
// request, and the error reporting (exit 1 when no daemon answers or the daemon refused).
import { type Command, InvalidArgumentError } from 'commander';
import { DEFAULTS } from '../defaults.ts';
import { TzorpError } from '../errors.ts';
import { ControlError, controlRequest, type RequestOptions } from './control-client.ts';
import type { ControlRequest } from './control-protocol.ts';
import { parseLogSpec } from './log-spec.ts';

export function addControlOption(cmd: Command): Command {
  return cmd.option('--control <path>', 'control socket of the daemon', DEFAULTS.controlSocketPath);
}

type Body<R> = R extends unknown ? Omit<R, 'id'> : never;

/** Send the request; on failure print the reason to stderr, set exit code 1 and return undefined. */
export async function ask<T>(
  path: string,
  req: Body<ControlRequest>,
  opts: RequestOptions = {},
): Promise<T | undefined> {
  try {
    return await controlRequest<T>(path, req, opts);
  } catch (e) {
    if (e instanceof ControlError) {
      // the daemon's own code (it may be one this client does not know), then a refused policy's errors
      process.stderr.write(`tzorp: ${e.body.code} ${e.body.message}\n`);
      for (const line of e.body.errors ?? []) process.stderr.write(`${line}\n`);
    } else if (e instanceof TzorpError) {
      process.stderr.write(`tzorp: ${e.code} ${e.message}\n`);
    } else {
      process.stderr.write(`tzorp: ${(e as Error).message}\n`);
    }
    process.exitCode = 1;
    return undefined;
  }
}

/** "1.2.3.4:80" / "[2001:db8::1]:80". */
export function hostPort(address: string, port: number): string {
  return address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;
}

export function formatAge(ms: number): string {
  const s = Math.floor(ms / 1000);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${String(s % 60).padStart(2, '0')}s`;
  const h = Math.floor(m / 60);
  return `${h}h${String(m % 60).padStart(2, '0')}m`;
}

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(1)} ${units[i]}`;
}

/** commander argument parser: a Zorp log level 0..10. */
export function levelArg(v: string): number {
  if (!/^\d{1,2}$/.test(v) || Number(v) > 10) throw new InvalidArgumentError('must be a level 0..10');
  return Number(v);
}

/** commander argument parser: a log spec (category-glob:level,...). */
export function logSpecArg(v: string): string {
  try {
    parseLogSpec(v);
  } catch (e) {
    throw new InvalidArgumentError((e as Error).message);
  }
  return v;
}
