// Every default value in one place, with its unit in its name (design.md, house style 7).
// A value here is what tzorp uses when the policy or the command line does not say otherwise.

export const DEFAULTS = {
  // kernel
  tproxyMark: 0x80000000, // Zorp's reserved mark bit; policy routing sends marked packets to `table`
  serviceMarkMask: 0x0000ffff, // conntrack-mark bits carrying the service id (65535 services)
  routingTable: 100, // `ip rule fwmark ... lookup 100`
  listenV4: '127.0.0.1',
  listenV6: '::1',
  listenPortBase: 50000, // proxy service with id i listens on listenPortBase + i - 1
  routingProtocol: 122, // rtnetlink protocol that tags tzorp's ip rules and routes (flush finds them by it)
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
  // proxies, shared
  connectTimeoutMs: 30_000,
  idleTimeoutMs: 600_000, // Zorp plug `timeout` 600000 ms
  failoverStateTimeoutMs: 60_000, // Zorp StateBasedChainer timeout_state
  relayBufferBytes: 64 * 1024, // per direction before reading pauses (backpressure)
  closeFlushTimeoutMs: 30_000, // a closing stream's peer gets this long to take our last bytes, then a reset
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
  // TLS layer (src/proxy/tls)
  tlsHelloTimeoutMs: 10_000, // a client must complete its ClientHello this long after connecting
  tlsMaxClientHelloBytes: 32 * 1024, // records up to the end of the ClientHello; post-quantum hellos are ~2 KiB
  // http proxy (Zorp's HttpProxy defaults, zorp-semantics §6.2; the reasons are in src/proxy/http)
  httpMaxLineLengthBytes: 4096,
  httpMaxUrlLengthBytes: 4096,
  httpMaxHostnameLengthBytes: 256,
  httpMaxHeaderLines: 50,
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
  logFormat: 'text', // Zorp's readable lines; 'json' for log shippers
  logVerbosity: 3, // Zorp's default --verbose
  logSpec: 'core.summary:4', // Zorp writes the connection summary at level 4: keep it by default
} as const;
