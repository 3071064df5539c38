// A worker process: wires WorkerRuntime to the real modules (engine, net driver, proxies, native
// SO_MARK) and to the primary over IPC. The primary sends each listening socket once ('listener',
// with the handle), then generations to prepare and commit.

import { readdirSync } from 'node:fs';
import net from 'node:net';
import v8 from 'node:v8';
import { DEFAULTS } from '../defaults.ts';
import { Engine } from '../engine/index.ts';
import { TzorpError } from '../errors.ts';
import { closeFd, errnoName, getMark, socketFd } from '../native/index.ts';
import { acceptNative, type NativeAcceptor, type NativeConn, socketOfFd } from '../net/accept.ts';
import { tlsLayer } from '../net/driver.ts';
import { runSession, ServiceUpstream } from '../net/index.ts';
import { nativePlugEligible, runNativePlug } from '../net/native-plug.ts';
import {
  type DriverSocket,
  NativeSocket,
  nativeIoEligible,
  nativeSocketCounts,
} from '../net/native-socket.ts';
import { nativeRelayDefault, nativeRelayMode, nativeRelayPoolFds, setNativeRelayMode } from '../net/relay.ts';
import type { Policy, ProxyService } from '../policy/index.ts';
import type { PlugOptions } from '../proxy/plug/options.ts';
import { LocalSlots } from './admission.ts';
import { raiseDescriptorLimit, sessionCapacity } from './capacity.ts';
import { type LimitName, perClientOf } from './client-limits.ts';
import type { FromWorker, ToWorker, WorkerResources } from './ipc.ts';
import { CORE_LEVEL, ZorpLog } from './log.ts';
import { LogLevels } from './log-spec.ts';
import { shedFields, shedMemory } from './memory.ts';
import { dropWorkerPrivileges } from './privileges.ts';
import { SessionIdSource } from './session-ids.ts';
import { ServiceStats } from './stats.ts';
import { WorkerRuntime } from './worker.ts';
import { WorkerMetrics } from './worker-metrics.ts';

// tzorp run --user: a worker started by the primary while still root becomes the user before anything
// else (a failure ends the worker, and with it the daemon's start).
dropWorkerPrivileges();

function send(msg: FromWorker): void {
  if (process.connected) process.send?.(msg);
}

/** Zorp's levels for the driver's coarse ones: a session start is core.session(3) in Zorp, the
 * summary core.summary(4). */
function zorpLevel(category: string, level: keyof typeof CORE_LEVEL): number {
  if (category === 'core.session' && level === 'info') return 3;
  return CORE_LEVEL[level];
}

const handles = new Map<string, object>();
const admissions = new Map<number, (answer: boolean | LimitName, leased: number) => void>();
/** max_sessions slots leased from the primary (admission.ts). */
const slots = new LocalSlots();
let admitRid = 0;
let runtime: WorkerRuntime<ServiceUpstream> | null = null;
/** `tzorp run --no-native-relay` turns the native relay off for every service. */
let nativeRelay = nativeRelayDefault();
/** `tzorp run --no-native-io` runs HTTP sessions on net.Socket. */
let nativeIo = true;
/** The zones of the last policy the primary sent whole; a policy sent without them has these. */
let heldZones: Policy['zones'] | null = null;
let zlog: ZorpLog | null = null;
const metrics = new WorkerMetrics();
const stats = new ServiceStats();
const ids = new SessionIdSource((service) => send({ t: 'wantIds', service }));
setInterval(() => stats.tick(), DEFAULTS.rateTickMs).unref();

function reply(rid: number, p: Promise<unknown> | unknown): void {
  Promise.resolve(p).then(
    (data) => send({ t: 'reply', rid, ok: true, data }),
    (e) =>
      send({
        t: 'reply',
        rid,
        ok: false,
        error: {
          code: (e as { code?: string }).code ?? 'TZ9001',
          message: (e as Error).message ?? String(e),
        },
      }),
  );
}

let workerIndex = -1;
let loadPending = false;
let loadSent = -1;
let loadAt = 0;

/** Where this worker's relayed bytes are copied (docs/native.md, "Where the relay runs"): off with
 * --no-native-relay or without the addon. */
function relayWhere(): WorkerResources['nativeRelay'] {
  return nativeRelay ? (nativeRelayMode() ?? 'off') : 'off';
}

/** Tell the primary how many sessions run here, when it changed: when this worker dies, that is the
 * number of sessions lost. At most once per DEFAULTS.workerLoadReportMs (under a load of short sessions
 * a message per event-loop turn was a sixth of the worker's time, and the primary's too); a status
 * request sends it first, so that the primary's number is the one status showed. */
function reportLoad(): void {
  if (loadPending) return;
  loadPending = true;
  const wait = loadAt + DEFAULTS.workerLoadReportMs - Date.now();
  if (wait <= 0) setImmediate(sendLoad);
  else setTimeout(sendLoad, wait);
}

function sendLoad(): void {
  loadPending = false;
  const n = runtime?.running ?? 0;
  if (n === loadSent) return;
  loadSent = n;
  loadAt = Date.now();
  send({ t: 'load', sessions: n });
}

function init(
  index: number,
  logSettings: { format: 'json' | 'text'; verbosity: number; spec: string },
): void {
  const log = new ZorpLog({
    format: logSettings.format,
    levels: new LogLevels(logSettings.verbosity, logSettings.spec),
    base: { worker: index },
    batched: true,
  });
  zlog = log;
  const logSession = sessionLog(log);
  workerIndex = index;
  // The primary raised the limit before forking us; raising again covers a worker started on its own.
  const nofile = raiseDescriptorLimit();
  runtime = new WorkerRuntime<ServiceUpstream>({
    index,
    ids,
    log,
    capacity: nofile ? sessionCapacity(nofile.soft) : Infinity,
    stats,
    now: Date.now,
    listen: (spec, onConnection, onNative) =>
      new Promise((resolve, reject) => {
        const handle = handles.get(spec.key);
        if (!handle) {
          reject(new TzorpError('DAEMON_LISTEN', `no socket was sent for listener ${spec.key}`));
          return;
        }
        if (onNative) {
          const acceptor = listenNatively(spec.key, handle, onNative);
          if (acceptor) {
            resolve({
              close: async () => {
                handles.delete(spec.key);
                acceptor.stop();
                (handle as { close?: () => void }).close?.();
              },
            });
            return;
          }
        }
        // allowHalfOpen: half-close relay; pauseOnConnect: nothing is read before the core wants it.
        const server = net.createServer(
          { allowHalfOpen: true, pauseOnConnect: true, noDelay: true },
          onConnection,
        );
        server.once('error', reject);
        server.listen(handle as net.ListenOptions, () => {
          server.off('error', reject);
          server.on('error', (e) =>
            log.log('core.error', 1, null, 'Listener error', { listener: spec.key, error: e.message }),
          );
          resolve({
            // close() stops accepting at once; its callback would wait for every session accepted
            // here to end, which neither a reload nor a stop's drain may wait for.
            close: async () => {
              handles.delete(spec.key);
              server.close();
            },
          });
        });
      }),
    mark: (sock) => {
      try {
        return getMark(socketFd(sock));
      } catch {
        return null;
      }
    },
    runsNatively: (service, proxy) =>
      nativePlugEligible(service, proxy, nativeRelay) || nativeIoEligible(service, nativeIo),
    socketOf: socketOfFd,
    loadTls: tlsLayer,
    closeFd: (fd, reset) => {
      try {
        closeFd(fd, reset);
      } catch {
        // (the descriptor is ours alone: nothing else can have closed it)
      }
    },
    engine: (policy) => new Engine(policy),
    upstream: (service, engine, policy) =>
      new ServiceUpstream(service, { zones: { zoneOf: (h) => engine.zoneOf(h), zones: policy.zones } }),
    // max_sessions and the per-client limits are counted daemon-wide by the primary (AdmissionLedger,
    // ClientLimits); max_sessions alone is taken from slots leased to this worker (LocalSlots), without
    // asking the primary each time
    admission: {
      admit: (service, client) => {
        const per = perClientOf(service, client);
        const max = service.maxSessions;
        if (!per && slots.take(service.name, max)) return Promise.resolve(true);
        return new Promise<boolean | LimitName>((resolve) => {
          const rid = ++admitRid;
          if (per) {
            admissions.set(rid, resolve);
            send({ t: 'admit', rid, service: service.name, max, client: per });
            return;
          }
          admissions.set(rid, (answer, leased) => {
            if (answer === true && leased) slots.add(service.name, max, leased - 1);
            resolve(answer);
          });
          send({ t: 'lease', rid, service: service.name, max, back: slots.dropStale(service.name, max) });
        });
      },
      release: (service, client) => {
        if (perClientOf(service, client)) {
          send({ t: 'release', service: service.name, client });
          return;
        }
        const back = slots.give(service.name, service.maxSessions);
        if (back > 0) send({ t: 'release', service: service.name, n: back });
      },
    },
    startSession: (s) => {
      let socket: DriverSocket;
      if (s.native && nativeIoEligible(s.service, nativeIo)) {
        // an HTTP session on native I/O: the driver runs on the addon's descriptor as on a net.Socket
        try {
          socket = new NativeSocket(s.native.fd, true);
        } catch (e) {
          closeFd(s.native.fd, true);
          throw e;
        }
      } else if (s.native) {
        return runNativePlug({
          id: s.id,
          service: s.service.name,
          conn: s.native,
          upstream: s.upstream,
          options: s.options as PlugOptions,
          admitted: s.admitted,
          ...(s.refusedBy ? { refusedBy: s.refusedBy } : {}),
          clientZone: s.clientZone,
          ruleId: s.ruleId,
          log: logSession,
          onEnd: s.onEnd,
        });
      } else socket = s.socket!;
      return runSession({
        id: s.id,
        service: s.service.name,
        socket,
        addrs: s.addrs,
        createCore: s.createCore,
        upstream: s.upstream,
        admitted: s.admitted,
        ...(s.refusedBy ? { refusedBy: s.refusedBy } : {}),
        clientZone: s.clientZone,
        ruleId: s.ruleId,
        nativeRelay: nativeRelay && s.service.nativeRelay !== false,
        // (one function for every session: the driver names the session in each line's fields)
        log: logSession,
        onEnd: s.onEnd,
      });
    },
    onStart: (service: ProxyService) => {
      metrics.started(service.name);
      reportLoad();
    },
    onEnd: (service, summary, running) => {
      metrics.ended(service.name, summary, running);
      if (running) reportLoad();
    },
  });
}

/** Accept on a listener's socket in the addon (native accept); null when the addon cannot (then
 * the caller listens through libuv). A failed accept for want of descriptors is logged once per
 * capacity interval; the addon pauses the listener meanwhile instead of spinning on it. */
function listenNatively(
  key: string,
  handle: object,
  onNative: (conn: NativeConn) => void,
): NativeAcceptor | null {
  const fd = (handle as { fd?: unknown }).fd;
  if (typeof fd !== 'number' || fd < 0) return null;
  let fullAt = Number.NEGATIVE_INFINITY;
  let full = 0;
  try {
    return acceptNative(fd, onNative, (errno) => {
      full++;
      metrics.acceptFailures.inc({ listener: key, error: errnoName(errno) });
      const now = Date.now();
      if (now - fullAt < DEFAULTS.capacityLogIntervalMs) return;
      fullAt = now;
      zlog?.log('core.error', 1, null, 'Cannot accept a connection, out of descriptors or memory', {
        listener: key,
        error: errnoName(errno),
        times: full,
      });
      full = 0;
    });
  } catch (e) {
    zlog?.log('core.error', 1, null, 'Native accept unavailable, accepting through libuv', {
      listener: key,
      error: (e as Error).message,
    });
    return null;
  }
}

/** Requests that need the runtime, which exists from 'init' on. The primary sends none of them to a
 * worker before it is in service; should one arrive anyway, it gets an error reply, not a crash. */
const NEEDS_RUNTIME: ReadonlySet<ToWorker['t']> = new Set([
  'prepare',
  'commit',
  'abort',
  'status',
  'sessions',
  'stop',
]);

process.on('message', (msg: ToWorker, handle?: object) => {
  if (!runtime && NEEDS_RUNTIME.has(msg.t) && 'rid' in msg) {
    reply(
      msg.rid,
      Promise.reject(
        new TzorpError('DAEMON_WORKER', `worker not initialised: '${msg.t}' arrived before 'init'`),
      ),
    );
    return;
  }
  switch (msg.t) {
    case 'init':
      if (msg.nativeRelay === false) nativeRelay = false;
      if (msg.nativeIo === false) nativeIo = false;
      if (msg.relayMode) setNativeRelayMode(msg.relayMode);
      init(msg.index, msg.log);
      // Where this worker's bytes are copied: the administrator's answer to "which switch is on".
      zlog?.write('core.info', 3, null, 'Worker started', {
        native_relay: relayWhere(),
        native_io: nativeIo ? 'on' : 'off',
      });
      reply(msg.rid, undefined);
      return;
    case 'listener':
      if (handle) handles.set(msg.spec.key, handle);
      return;
    case 'ids':
      ids.addBlock(msg.block);
      return;
    case 'admitted': {
      const w = admissions.get(msg.rid);
      admissions.delete(msg.rid);
      w?.(msg.ok ? true : (msg.refused ?? false), msg.slots ?? 0);
      return;
    }
    case 'reclaim':
      reply(msg.rid, { n: slots.drop(msg.service) });
      return;
    case 'prepare': {
      const policy = v8.deserialize(msg.gen.policy) as Policy;
      if (!msg.gen.zonesKept) heldZones = policy.zones;
      else if (heldZones) policy.zones = heldZones;
      else {
        reply(
          msg.rid,
          Promise.reject(new TzorpError('INTERNAL', 'the policy came without zones, and none are kept')),
        );
        return;
      }
      reply(msg.rid, runtime!.prepare({ ...msg.gen, policy }));
      return;
    }
    case 'commit':
      // The preparation of a generation leaves garbage behind: an idle worker (at the start, or with no
      // sessions at a reload) gives it back before it answers, so the daemon's memory is settled when
      // it says it runs. Not with sessions running: the full collection would pause their relaying.
      reply(
        msg.rid,
        runtime!.commit(msg.n).then(() => {
          if (runtime!.running > 0) return;
          const s = shedMemory();
          if (s) zlog?.write('core.info', 4, null, 'Memory given back', shedFields(s));
        }),
      );
      return;
    case 'abort':
      reply(msg.rid, runtime!.abort(msg.n));
      return;
    case 'status':
      sendLoad();
      reply(msg.rid, { ...runtime!.status(), resources: resources() });
      return;
    case 'sessions':
      reply(msg.rid, runtime!.list());
      return;
    case 'metrics':
      reply(msg.rid, metrics.json());
      return;
    case 'log':
      zlog?.levels.setVerbosity(msg.verbosity);
      zlog?.levels.setSpec(msg.spec);
      reply(msg.rid, undefined);
      return;
    case 'stop':
      reply(
        msg.rid,
        runtime!
          .stop(msg.timeoutMs, (ms) => new Promise((r) => setTimeout(r, ms)))
          .then((left) => ({ left })),
      );
      return;
  }
});

// The primary coordinates reload, stop and log levels: a terminal's Ctrl-C or a HUP to the process
// group must not end or confuse a worker on its own.
for (const sig of ['SIGINT', 'SIGHUP', 'SIGUSR1', 'SIGUSR2'] as const) process.on(sig, () => {});
// The primary is gone (killed): exit, which closes our copies of the listening sockets. With the
// primary's copies gone too, the kernel's tproxy finds no socket and drops: fail closed.
process.on('disconnect', () => process.exit(0));
// Profiled (node --cpu-prof bin/tzorp run, pool.ts): the primary's SIGTERM at stop ends the worker
// through exit, which writes the profile (a signal's default action would not).
if (process.execArgv.some((a) => a.startsWith('--cpu-prof'))) process.on('SIGTERM', () => process.exit(0));
send({ t: 'ready' });

/** What this worker holds, for the status's leak counts (ipc.ts WorkerResources). */
function resources(): WorkerResources {
  const handles: Record<string, number> = {};
  for (const r of process.getActiveResourcesInfo()) handles[r] = (handles[r] ?? 0) + 1;
  const m = process.memoryUsage();
  let fds = -1;
  try {
    fds = readdirSync('/proc/self/fd').length - 1; // minus the descriptor readdir itself opened
  } catch {}
  return {
    worker: workerIndex,
    pid: process.pid,
    fds,
    relayPoolFds: nativeRelayPoolFds(),
    nativeRelay: relayWhere(),
    nativeSockets: nativeSocketCounts(),
    handles,
    rssBytes: m.rss,
    heapUsedBytes: m.heapUsed,
    sessions: runtime?.running ?? 0,
  };
}

/** The sessions' log: the driver's lines at the category's Zorp level, each with the session id the
 * driver puts into its fields (the service too, which that id already names). */
function sessionLog(log: ZorpLog): NonNullable<Parameters<typeof runSession>[0]['log']> {
  const f = (
    category: string,
    level: keyof typeof CORE_LEVEL,
    msg: string,
    fields: Record<string, unknown>,
  ) => {
    const { session_id, service: _service, ...rest } = fields;
    log.log(category, zorpLevel(category, level), (session_id as string | undefined) ?? null, msg, rest);
  };
  return Object.assign(f, {
    enabled: (category: string, level: keyof typeof CORE_LEVEL) =>
      log.enabled(category, zorpLevel(category, level)),
    session: (
      category: string,
      level: keyof typeof CORE_LEVEL,
      sessionId: string,
      msg: string,
      fields: Record<string, unknown>,
    ) => log.log(category, zorpLevel(category, level), sessionId, msg, fields),
  });
}
