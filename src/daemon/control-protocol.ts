// The control protocol between `tzorp status|sessions|reload|stop|log` and the daemon: one JSON object
// per line over a UNIX stream socket (0600). A request is `{"id":1,"cmd":"status"}`; the answer is
// `{"id":1,"ok":true,"result":...}` or `{"id":1,"ok":false,"error":{"code":"TZ3002","message":...,
// "errors":["file:line:col: TZ1031 ..."]}}`. Several requests may share a connection; answers come in
// request order. This file is pure: framing, validation and the shapes of the results.

import { TzorpError } from '../errors.ts';
import type { EffectiveConfig } from './config.ts';
import type { WorkerResources } from './ipc.ts';
import type { DaemonState } from './lifecycle.ts';

export type ControlRequest =
  | { id: number; cmd: 'status' }
  | { id: number; cmd: 'sessions' }
  | { id: number; cmd: 'reload'; confirmSeconds?: number }
  | { id: number; cmd: 'confirm' }
  | { id: number; cmd: 'stop'; timeoutMs?: number }
  | { id: number; cmd: 'log'; spec?: string; verbosity?: number; delta?: number };

export type ControlCommand = ControlRequest['cmd'];
export const CONTROL_COMMANDS: readonly ControlCommand[] = [
  'status',
  'sessions',
  'reload',
  'confirm',
  'stop',
  'log',
];

export interface ControlErrorBody {
  code: string;
  message: string;
  /** Policy errors (reload refused), each formatted as "file:line:col: CODE message". */
  errors?: string[];
  warnings?: string[];
}

export type ControlResponse =
  | { id: number; ok: true; result: unknown }
  | { id: number; ok: false; error: ControlErrorBody };

// ---- results -------------------------------------------------------------------------------------

export interface ServiceStatus {
  name: string;
  proxy: string;
  sessionsRunning: number;
  sessionsTotal: number;
  /** Sessions started per second, exponentially averaged over 1, 5 and 15 minutes (Zorp rate_avg). */
  rate: { m1: number; m5: number; m15: number };
  /** ISO time of the last session start, null when none. */
  lastStarted: string | null;
  /** Sessions refused at admission (max_sessions or a per-client limit). */
  sessionsRefused: number;
  /** The same by limit: max_sessions, max_sessions_per_client, new_sessions_per_client. */
  sessionsRefusedBy: Record<string, number>;
  listeners: string[];
}

export interface StatusResult {
  /** Where the daemon is in its lifecycle (lifecycle.ts). */
  state: DaemonState;
  pid: number;
  startedAt: string;
  /** sha256 and loadedAt are null while the daemon is starting (no generation yet). */
  policy: { file: string; sha256: string | null; loadedAt: string | null };
  /** 0 while starting. */
  generation: number;
  workers: number;
  workersAlive: number;
  workerPids: number[];
  controlSocket: string;
  kernel: boolean;
  log: { verbosity: number; spec: string; format: string };
  /** Sessions of older generations still running. */
  oldGenerations: { generation: number; sessions: number }[];
  services: ServiceStatus[];
  /** Every tunable and run setting the daemon runs with (tzorp run --print-config prints the same). */
  config: EffectiveConfig;
  /** Per worker: descriptors, handles and timers, memory (absent while starting). */
  workerResources?: WorkerResources[];
}

export interface EndpointInfo {
  address: string;
  port: number;
  zone: string | null;
}

export interface SessionInfo {
  id: string;
  service: string;
  proxy: string;
  rule: number | null;
  client: EndpointInfo;
  /** The address the client dialled (transparent: the original destination). */
  clientLocal: { address: string; port: number };
  server: EndpointInfo | null;
  bytesFromClient: number;
  bytesToClient: number;
  startedAt: string;
  ageMs: number;
  generation: number;
  worker: number;
  /** How the rule was learned: 'kernel' = the accepted socket's mark (the kernel's own decision);
   * 'engine' = decided again from the addresses (no tproxy mark: tcp_fwmark_accept off or --no-kernel). */
  decision: 'kernel' | 'engine';
  /** Services with a `tls` block: what the TLS layer saw of the handshake (docs/tls.md); null fields
   * are not known yet (no complete ClientHello) or not sent by the client. */
  tls?: TlsSessionInfo;
}

export interface TlsSessionInfo {
  mode: string;
  sni: string | null;
  /** The highest version the client offered. */
  offeredMaxVersion: string | null;
  /** ALPN protocols the client offered, in its order. */
  alpnOffered: string[];
  /** accepted, or why not (docs/tls.md, Metrics); incomplete while the ClientHello is awaited. */
  result: string;
  /** inspect: the client session's version, and the server certificate as we verified it. */
  version?: string | null;
  serverVersion?: string | null;
  serverSubject?: string | null;
  serverIssuer?: string | null;
  /** ok, disabled (server_verify: false) or why not. */
  serverVerify?: string | null;
}

export interface ReloadResult {
  generation: number;
  previousGeneration: number;
  sha256: string;
  warnings: string[];
  servicesAdded: string[];
  servicesRemoved: string[];
  /** reload --confirm: the generation is reverted to the last confirmed policy unless `confirm`
   * arrives within this many seconds. */
  confirmSeconds?: number;
}

export interface ConfirmResult {
  /** The generation the confirmation keeps. */
  generation: number;
}

export interface StopResult {
  drained: boolean;
  sessionsLeft: number;
  flushed: boolean;
}

export interface LogResult {
  verbosity: number;
  spec: string;
}

// ---- validation ----------------------------------------------------------------------------------

function bad(msg: string): TzorpError {
  return new TzorpError('DAEMON_CONTROL_REQUEST', msg);
}

/** Validate one decoded request line. Throws TzorpError DAEMON_CONTROL_REQUEST. */
export function parseRequest(line: string): ControlRequest {
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch {
    throw bad('request is not JSON');
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw bad('request must be a JSON object');
  const o = v as Record<string, unknown>;
  const id = o.id ?? 0;
  if (typeof id !== 'number' || !Number.isSafeInteger(id)) throw bad('id must be an integer');
  const cmd = o.cmd;
  if (typeof cmd !== 'string' || !(CONTROL_COMMANDS as readonly string[]).includes(cmd)) {
    throw bad(`unknown command ${JSON.stringify(cmd)}; known: ${CONTROL_COMMANDS.join(', ')}`);
  }
  const known: Record<ControlCommand, string[]> = {
    status: [],
    sessions: [],
    reload: ['confirmSeconds'],
    confirm: [],
    stop: ['timeoutMs'],
    log: ['spec', 'verbosity', 'delta'],
  };
  for (const k of Object.keys(o)) {
    if (k !== 'id' && k !== 'cmd' && !known[cmd as ControlCommand].includes(k)) {
      throw bad(`${cmd}: unknown field ${JSON.stringify(k)}`);
    }
  }
  switch (cmd as ControlCommand) {
    case 'reload': {
      const s = o.confirmSeconds;
      if (s === undefined) return { id, cmd: 'reload' };
      if (typeof s !== 'number' || !Number.isInteger(s) || s < 1 || s > 86_400) {
        throw bad('reload: confirmSeconds must be an integer from 1 to 86400');
      }
      return { id, cmd: 'reload', confirmSeconds: s };
    }
    case 'stop': {
      const t = o.timeoutMs;
      if (t !== undefined && (typeof t !== 'number' || !Number.isFinite(t) || t < 0)) {
        throw bad('stop: timeoutMs must be a number >= 0');
      }
      return t === undefined ? { id, cmd: 'stop' } : { id, cmd: 'stop', timeoutMs: t };
    }
    case 'log': {
      const r: ControlRequest & { cmd: 'log' } = { id, cmd: 'log' };
      if (o.spec !== undefined) {
        if (typeof o.spec !== 'string') throw bad('log: spec must be a string');
        r.spec = o.spec;
      }
      if (o.verbosity !== undefined) {
        if (typeof o.verbosity !== 'number' || !Number.isInteger(o.verbosity)) {
          throw bad('log: verbosity must be an integer');
        }
        r.verbosity = o.verbosity;
      }
      if (o.delta !== undefined) {
        if (typeof o.delta !== 'number' || !Number.isInteger(o.delta))
          throw bad('log: delta must be an integer');
        r.delta = o.delta;
      }
      return r;
    }
    default:
      return { id, cmd: cmd as 'status' | 'sessions' | 'confirm' };
  }
}

/** The error body for anything a handler threw. */
export function errorBody(e: unknown): ControlErrorBody {
  if (e instanceof TzorpError) {
    const body: ControlErrorBody = { code: e.code, message: e.message };
    const d = e.details as { errors?: unknown; warnings?: unknown } | undefined;
    if (Array.isArray(d?.errors)) body.errors = d.errors.map(String);
    if (Array.isArray(d?.warnings)) body.warnings = d.warnings.map(String);
    return body;
  }
  const err = e as Error;
  return { code: 'TZ9001', message: err?.message ?? String(e) };
}

/** Splits a byte stream into lines, refusing a line longer than `max` bytes. */
export class LineDecoder {
  private buf = '';

  constructor(private readonly max: number) {}

  /** The complete lines in `chunk` (plus what was buffered). Throws DAEMON_CONTROL_REQUEST when a line is
   * too long. */
  push(chunk: string): string[] {
    this.buf += chunk;
    const lines: string[] = [];
    let nl = this.buf.indexOf('\n');
    while (nl >= 0) {
      const line = this.buf.slice(0, nl).replace(/\r$/, '');
      this.buf = this.buf.slice(nl + 1);
      if (line.trim() !== '') lines.push(line);
      nl = this.buf.indexOf('\n');
    }
    if (Buffer.byteLength(this.buf) > this.max) {
      throw new TzorpError('DAEMON_CONTROL_REQUEST', `line longer than ${this.max} bytes`);
    }
    return lines;
  }
}
