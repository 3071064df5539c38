// Messages between the daemon's primary process and its workers (cluster IPC with the 'advanced'
// serialization, so a resolved Policy with its Maps and bigints crosses as it is). A request that
// wants an answer carries `rid`; the worker answers `{ t: 'reply', rid, ok, data | error }`.
import type { Policy } from '../policy/model.ts';
import type { ClientAdmission, LimitName } from './client-limits.ts';
import type { SessionInfo } from './control-protocol.ts';
import type { LogFormat } from './log.ts';
import type { IdBlock } from './session-ids.ts';
import type { ServiceCounters } from './stats.ts';

/** One listening socket, named by family, address and port; the primary owns the fd. */
export interface ListenerSpec {
  key: string;
  family: 4 | 6;
  host: string;
  port: number;
  fd: number;
}

export function listenerKey(family: 4 | 6, host: string, port: number): string {
  return family === 6 ? `[${host}]:${port}` : `${host}:${port}`;
}

export interface WorkerGenerationSpec {
  n: number;
  policy: Policy;
  /** Service name -> its v4 and v6 listener keys. */
  services: Record<string, { v4: string; v6: string }>;
  listeners: ListenerSpec[];
}

/** A generation as it crosses to a worker: the policy serialized once by the primary (v8.serialize)
 * and the same bytes sent to every worker, instead of a structured clone made per worker (about 90 ms
 * each for a 10,000-rule policy). */
export interface WorkerGenerationWire extends Omit<WorkerGenerationSpec, 'policy'> {
  policy: Uint8Array;
  /** The policy was written without its zones: they equal the zones of the last policy this worker
   * was sent whole (the worker keeps those). */
  zonesKept?: true;
}

export interface LogSettings {
  format: LogFormat;
  verbosity: number;
  spec: string;
}

export type ToWorker =
  | {
      t: 'init';
      rid: number;
      index: number;
      log: LogSettings;
      tproxyMarkFallback: number;
      /** false: `tzorp run --no-native-relay` (every byte through JavaScript). */
      nativeRelay?: boolean;
      /** false: `tzorp run --no-native-io` (HTTP sessions on net.Socket). */
      nativeIo?: boolean;
      /** `tzorp run --relay-thread` / `--relay-loop`: where the native relay runs (unset: the addon's
       * default, the event loop). */
      relayMode?: 'loop' | 'thread';
    }
  /** Sent with the listening socket's handle (child_process handle passing), before a 'prepare'
   * that names it. */
  | { t: 'listener'; spec: ListenerSpec }
  | { t: 'prepare'; rid: number; gen: WorkerGenerationWire }
  | { t: 'commit'; rid: number; n: number }
  | { t: 'abort'; rid: number; n: number }
  | { t: 'ids'; block: IdBlock }
  /** refused: which limit said no (absent when ok, or for max_sessions from an older primary). */
  | { t: 'admitted'; rid: number; ok: boolean; refused?: LimitName; slots?: number }
  /** The primary has no max_sessions slot of `service` left: give back the free ones (LocalSlots),
   * replied with their number. */
  | { t: 'reclaim'; rid: number; service: string }
  | { t: 'status'; rid: number }
  | { t: 'sessions'; rid: number }
  /** prom-client's getMetricsAsJSON() of the worker's registry. */
  | { t: 'metrics'; rid: number }
  | { t: 'log'; rid: number; verbosity: number; spec: string }
  | { t: 'stop'; rid: number; timeoutMs: number };

export interface WorkerStatus {
  counters: Record<string, ServiceCounters>;
  /** Running sessions per generation. */
  generations: Record<number, number>;
  /** What the worker process holds (leak checks): set by worker-main. */
  resources?: WorkerResources;
}

/** A worker's descriptors, libuv handles and timers, and memory: a leak shows as numbers that do not
 * come back to their baseline once the sessions are gone. */
export interface WorkerResources {
  worker: number;
  pid: number;
  /** Open file descriptors (/proc/self/fd). */
  fds: number;
  /** Of those, the native relay's idle pipes kept for reuse (bounded: at most 128). */
  relayPoolFds: number;
  /** Where this worker's native relay runs: on its event loop (the default), on a thread of its own
   * (--relay-thread), or off (--no-native-relay, or the addon is missing). */
  nativeRelay: 'loop' | 'thread' | 'off';
  /** NativeSockets (HTTP sessions on native socket I/O) open now, and made since the worker started. */
  nativeSockets: { open: number; made: number };
  /** process.getActiveResourcesInfo() by type (TCPSocketWrap, Timeout, ...). */
  handles: Record<string, number>;
  rssBytes: number;
  heapUsedBytes: number;
  sessions: number;
}

export interface StopReply {
  left: number;
}

export type FromWorker =
  | { t: 'ready' }
  | { t: 'wantIds'; service: string }
  /** max_sessions is counted daemon-wide by the primary. */
  | { t: 'admit'; rid: number; service: string; max: number; client?: ClientAdmission }
  /** max_sessions slots for a service without per-client limits, a few at a time (LocalSlots); `back`
   * free slots of an earlier max_sessions are given back first. Answered by 'admitted' with `slots`. */
  | { t: 'lease'; rid: number; service: string; max: number; back: number }
  /** A slot (or `n` leased slots) given back. */
  | { t: 'release'; service: string; client?: string; n?: number }
  /** The worker's running sessions, sent when the number changed (at most once per event-loop turn):
   * what the primary reports as lost when the worker dies. */
  | { t: 'load'; sessions: number }
  | { t: 'reply'; rid: number; ok: true; data?: unknown }
  | { t: 'reply'; rid: number; ok: false; error: { code: string; message: string } };

export type WorkerReplyData = WorkerStatus | SessionInfo[] | StopReply | undefined;
