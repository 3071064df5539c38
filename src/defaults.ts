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
  // policy loader
  maxPolicyBytes: 64 * 1024 * 1024, // refuse larger files before parsing: bounded memory
  maxYamlAliasCount: 100, // YAML alias expansion limit ("billion laughs")
  // proxies, shared
  connectTimeoutMs: 30_000,
  idleTimeoutMs: 600_000, // Zorp plug `timeout` 600000 ms
  failoverStateTimeoutMs: 60_000, // Zorp StateBasedChainer timeout_state
  relayBufferBytes: 64 * 1024, // per direction before reading pauses (backpressure)
  // daemon
  controlSocketPath: '/run/tzorp/control.sock',
  stopDrainTimeoutMs: 30_000,
} as const;
