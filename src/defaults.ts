// Every default value and tunable in one place, with its unit in its name (design.md, house style 7).
// A value here is what tzorp uses when the policy or the command line does not say otherwise; the
// reason for a value is next to it. The object is deep-frozen (nothing can change a default at run
// time) and test/unit/defaults.test.ts pins every value, so a change here is a deliberate one.
// `tzorp run --print-config` prints these with the command line applied; `tzorp status --json` shows
// the running daemon's (field `config`).

/** Freezes `o` and everything in it. */
export function deepFreeze<T>(o: T): T {
  if (o !== null && typeof o === 'object' && !Object.isFrozen(o)) {
    Object.freeze(o);
    for (const v of Object.values(o)) deepFreeze(v);
  }
  return o;
}

export const DEFAULTS = deepFreeze({
  // kernel
  tproxyMark: 0x80000000, // Zorp's reserved mark bit; policy routing sends marked packets to `table`
  serviceMarkMask: 0x0000ffff, // conntrack-mark bits carrying the service id (65535 services)
  routingTable: 100, // `ip rule fwmark ... lookup 100`
  listenV4: '127.0.0.1',
  listenV6: '::1',
  listenPortBase: 50000, // proxy service with id i listens on listenPortBase + i - 1
  routingProtocol: 122, // rtnetlink protocol that tags tzorp's ip rules and routes (flush finds them by it)
  kernelLogGroup: 4242, // NFLOG group of the log rules of forward/deny services with logging (the daemon reads it)
  kernelLogRate: 100, // log lines per second the kernel sends for them (more are not logged, nothing else changes)
  kernelLogBurst: 200, // packets over kernelLogRate allowed at once
  kernelLogCopyBytes: 128, // bytes of each logged packet copied to the daemon: IP and transport headers
  kernelZoneChunkAbove: 4096, // a longest-match zone map with more ranges than this is split into chunks (render.ts)
  kernelZoneChunkAverage: 1024, // the chunks' average size in ranges (content-defined boundaries)
  kernelStagedZoneNetworks: 20000, // a first apply of zones this large loads their maps while the rest compiles (apply/staged.ts)
  kernelRecreateAfterDeletes: 256, // an incremental apply re-creates an interval set losing more elements than this (nft deletes them slowly)
  routingRulePrefLocal: 9000, // `iif lo fwmark M/M lookup main`: tzorp's own marked sockets route normally
  routingRulePrefTproxy: 9001, // `fwmark M/M lookup <table>`: diverted packets are delivered locally
  kernelStateDir: '/run/tzorp', // `tzorp apply` keeps the model of the table it installed here (per netns)
  // policy loader
  kernelClientLimitFactor: 2, // the ruleset drops new connections from one source above this many times its per-client limits
  kernelClientSetEntries: 65_535, // source addresses each per-client set of the ruleset holds
  clientRateTableEntries: 100_000, // new_sessions_per_client buckets kept (least recently used dropped beyond)
  maxPolicyBytes: 64 * 1024 * 1024, // refuse larger files before parsing: bounded memory
  maxYamlAliasCount: 100, // YAML alias expansion limit ("billion laughs")
  maxYamlPolicyBytes: 8 * 1024 * 1024, // the yaml package needs ~100 B of memory per byte: larger -> JSON
  maxPolicyErrors: 1000, // errors (and, separately, warnings) reported per load; the rest are counted
  maxJsonNesting: 1000, // containers nested deeper are refused; the policy format needs fewer than 10 levels
  maxOptionPositions: 10_000, // option positions kept per proxy service (ProxyService.optionPositions)
  maxSuggestNames: 10_000, // "did you mean" over more names is skipped: it costs O(names) per unknown name
  maxLintPairs: 2_000_000, // rule pairs compared at most (shadowing, ties are pairwise): bounds lint time
  maxLintReachScan: 20_000, // networks scanned to prove a zone owns an address (LPM leaves it something)
  // proxies, shared
  connectTimeoutMs: 30_000,
  idleTimeoutMs: 600_000, // Zorp plug `timeout` 600000 ms
  failoverStateTimeoutMs: 60_000, // Zorp StateBasedChainer timeout_state
  relayBufferBytes: 64 * 1024, // per direction before reading pauses (backpressure)
  httpBodyRelayMinBytes: 256 * 1024, // a response body with this much still to come goes to the native relay
  // The most one read of native socket I/O takes (src/net/native-socket.ts; the addon's cap, 64 KiB, is
  // the same): bulk bytes in few calls, and one buffer that every read lands in and is copied out of.
  ioReadBufferBytes: 64 * 1024,
  // The least of the buffered input one latin1 conversion for a head's lines takes: a typical head whole,
  // without copying much of a body that came in the same read (src/proxy/http/reader.ts).
  httpHeadTextBytes: 4096,
  closeFlushTimeoutMs: 30_000, // a closing stream's peer gets this long to take our last bytes, then a reset
  forgePortRandomMin: 1024, // forge_port random draws from here up: outside the well-known range, as Zorp
  forgePortRandomMax: 65535,
  forgePortRandomTries: 16, // random ports tried before giving up on EADDRINUSE
  // FTP proxy (Zorp's FtpProxy attribute defaults, zorp:`pylib/Zorp/Ftp.py`)
  ftpMaxLineBytes: 255, // max_line_length: RFC 959 commands are short; bounds each buffered line
  ftpMaxUsernameBytes: 32, // max_username_length
  ftpMaxPasswordBytes: 64, // max_password_length
  ftpMaxHostnameBytes: 128, // max_hostname_length (USER user@host in non-transparent mode)
  ftpMaxReplyLines: 100, // max_continuous_line: lines of one multi-line reply
  ftpTimeoutMs: 300_000, // timeout: control connection idle time (data activity counts too)
  ftpDataTimeoutMs: 60_000, // a data connection must be established this long after it was announced
  ftpDataPortMin: 40000, // data_port_min: ports tzorp listens on / announces for data connections
  ftpDataPortMax: 41000, // data_port_max
  ftpDefaultPort: 21, // non-transparent mode: USER user@host without :port
  ftpsImplicitPort: 990, // tls implicit: auto: a client dialling this port starts TLS at once (RFC 4217 §1, IANA ftps)
  ftpMaxDeferredCommands: 16, // client commands read ahead while a transfer runs (only ABOR acts at once)
  // TLS layer (src/proxy/tls)
  tlsHelloTimeoutMs: 10_000, // a client must complete its ClientHello this long after connecting
  tlsMaxClientHelloBytes: 32 * 1024, // records up to the end of the ClientHello; post-quantum hellos are ~2 KiB
  tlsCaValidityDays: 1825, // `tzorp tls ca create` without --days: five years, then a new CA is rolled out
  tlsLeafBackdateMs: 3_600_000, // leaf certificates start an hour early: a client whose clock lags still accepts
  tlsLeafValidityDays: 7, // certificates made for a server name: short-lived, made again when they expire
  tlsLeafCacheEntries: 10_000, // certificates kept per generation (one per server name), least recently used out
  tlsSystemCaFile: '/etc/ssl/certs/ca-certificates.crt', // server_verify's trust anchors without server_ca_file (Debian's bundle; node's own roots when it is absent)
  tlsLeafCaches: 8, // CAs whose leaf caches are kept across reloads (leafCacheFor), oldest out
  // http proxy (Zorp's HttpProxy defaults, zorp-semantics §6.2; the reasons are in src/proxy/http)
  httpMaxLineLengthBytes: 4096,
  httpMaxUrlLengthBytes: 4096,
  httpMaxHostnameLengthBytes: 256,
  httpMaxHeaderLines: 50,
  httpMaxLeadingEmptyLines: 8, // empty lines tolerated before a request-line (RFC 9112 §2.2 asks for one)
  httpMaxHeaderBytes: 65_536, // one head; larger than 50 full lines would be never hit, cookies need room
  httpMaxBodyLengthBytes: 0, // 0 = unlimited
  httpMaxChunkLengthBytes: 0, // 0 = unlimited
  httpMaxChunkExtensionBytes: 16_384, // per message, as Node's parser
  httpIdleTimeoutMs: 300_000, // Zorp http `timeout`
  httpRequestTimeoutMs: 10_000, // Zorp `timeout_request`: time to receive a request head
  httpResponseTimeoutMs: 300_000, // Zorp `timeout_response`: time to the response head
  httpMaxKeepaliveRequests: 0, // 0 = unlimited
  httpParentProxyPort: 3128,
  httpTargetPortRange: '80,443',
  // daemon
  controlSocketPath: '/run/tzorp/control.sock',
  stopDrainTimeoutMs: 30_000,
  listenBacklog: 4096, // listen() backlog of proxy listeners: room for bursts while workers are busy
  // A worker asked to give back its free max_sessions slots (admission.ts LocalSlots) answers by then,
  // or keeps them (they stay counted as taken): the session waiting for a slot is refused meanwhile.
  reclaimTimeoutMs: 2_000,
  workerStartTimeoutMs: 60_000, // a new worker must be ready by then (from source, tsx compiles first)
  // V8's young generation per worker, MB per semi-space (node's default is 16): a worker holding many
  // connections keeps less freed set-up garbage in memory (bench/README.md: 11.3 -> 8.6 KiB per held
  // connection; the new-connection rate and throughput measured the same; compared again with 16 on
  // 2026-12-05: a third of the GC time, no clear gain in rate, +3.1 KiB per held connection)
  workerSemiSpaceMb: 2,
  workerLoadReportMs: 100, // a worker tells the primary its session count at most this often (worker-main.ts)
  workerRestartDelayMs: 1_000, // a crashing worker is restarted at most this often: one dying at start must not spin
  rateTickMs: 5_000, // how often the session-rate averages are updated (the load-average interval)
  sessionIdBlockSize: 256, // session numbers per block: refills rare, gaps readable
  sessionIdRefillAt: 64, // a worker asks for its next block when this many numbers are left
  maxControlLineBytes: 64 * 1024, // a longer control request line is refused: bounded memory per client
  maxControlReplyBytes: 64 * 1024 * 1024, // answers (sessions lists) may be long; the client refuses more
  controlRequestTimeoutMs: 10_000, // how long a control command waits for the daemon's answer
  controlStopReplyGraceMs: 120_000, // `tzorp stop` waits this long beyond the drain timeout (flush, exit)
  logFormat: 'text', // Zorp's readable lines; 'json' for log shippers
  logVerbosity: 3, // Zorp's default --verbose
  logPendingBytes: 4 * 1024 * 1024, // log bytes a worker keeps while its log destination is full (a slow reader) before it waits for it
  logFlushMs: 10, // a worker's log lines are written together at most this long after the first of them (one write for many sessions)
  logRetryMs: 2, // how soon a worker tries a full log destination again (the event loop runs meanwhile)
  logSpec: 'core.summary:4,tls.session:4', // Zorp writes the connection summary at level 4: keep it by default; the TLS handshake line (docs/tls.md) too
  // capacity (RLIMIT_NOFILE): a worker admits sessions while (limit - reserve) / perSession allows
  fdReserveCount: 128, // listeners, IPC, logs, the native relay's epoll and pipe pool, DNS, ...
  fdsPerSessionCount: 2, // a plug or HTTP session: client and server socket (FTP data channels add more)
  capacityLogIntervalMs: 10_000, // "descriptor limit reached" is logged at most this often per worker
  // lab (tzorp lab, tzorp demo): generous for a loaded CI machine; a healthy lab answers in milliseconds
  labStartTimeoutMs: 60_000, // servers and tzorp must be up by then (a healthy start takes seconds)
  labStopGraceMs: 3_000, // between SIGTERM and SIGKILL on `down`: lab sessions need not survive
  labClientTimeoutS: 15, // one client command (FTP with its data connection, through a proxy)
  labLogSettleMs: 5_000, // wait for a row's log lines (written within milliseconds)
  labLogMinWaitMs: 200, // a refused row waits this long: a connection that got through would show by then
  labProbeConnectTimeoutMs: 3_000, // a SYN unanswered this long was dropped, not delayed
  labProbeReadTimeoutMs: 5_000, // a banner through a proxy needs the server connection first
  labMaxResponseBytes: 1024 * 1024 * 1024, // GET /bytes/N at most: watch throughput, fill no disk
} as const);

export type Defaults = typeof DEFAULTS;
