// The one error catalogue. Every error tzorp reports has a stable code from here; docs/errors.md lists
// them. Three kinds are kept apart (design.md, house style 4):
//   user  - a policy or configuration error: collected, reported together with file:line:column;
//   peer  - a protocol error by a client or server: answered with a protocol reply and a close;
//   ours  - a broken invariant: ends one session, is logged, the daemon keeps running.
// Code ranges: TZ1xxx policy, TZ2xxx kernel (compile/apply), TZ3xxx daemon, control and command line,
// TZ4xxx proxies, TZ5xxx native and network, TZ6xxx lab, TZ9xxx internal.
//
// Nothing in src/ throws a bare Error: test/unit/errors.test.ts fails on a new one.

export type ErrorKind = 'user' | 'peer' | 'ours' | 'env';

export interface CatalogueEntry {
  code: string;
  kind: ErrorKind;
  /** One-line summary, used as the heading in docs/errors.md. */
  title: string;
}

function entry(code: string, kind: ErrorKind, title: string): CatalogueEntry {
  return { code, kind, title };
}

export const E = {
  // --- policy (TZ1xxx) ---
  POLICY_READ: entry('TZ1001', 'user', 'the policy file cannot be read'),
  POLICY_SYNTAX: entry('TZ1002', 'user', 'YAML/JSON syntax error'),
  POLICY_TOO_LARGE: entry('TZ1003', 'user', 'the policy file is larger than the loader accepts'),
  POLICY_TOO_MANY_ERRORS: entry('TZ1004', 'user', 'too many errors: the rest are not reported'),
  POLICY_TYPE: entry('TZ1010', 'user', 'a field has the wrong type'),
  POLICY_UNKNOWN_FIELD: entry('TZ1011', 'user', 'unknown field'),
  POLICY_MISSING_FIELD: entry('TZ1012', 'user', 'a required field is missing'),
  POLICY_BAD_VALUE: entry('TZ1013', 'user', 'a value is not one of the allowed ones'),
  POLICY_BAD_CIDR: entry('TZ1020', 'user', 'not a valid address or network'),
  POLICY_BAD_PORT: entry('TZ1021', 'user', 'not a valid port or port range'),
  POLICY_BAD_ENDPOINT: entry('TZ1022', 'user', 'not a valid address:port'),
  POLICY_DUPLICATE_NETWORK: entry('TZ1030', 'user', 'the same network is in two zones'),
  POLICY_UNKNOWN_ZONE: entry('TZ1031', 'user', 'reference to an unknown zone'),
  POLICY_PARENT_CYCLE: entry('TZ1032', 'user', 'zone parents form a cycle'),
  POLICY_ZONE_TOO_DEEP: entry('TZ1033', 'user', 'zone hierarchy deeper than KZorp allows'),
  POLICY_DUPLICATE_NAME: entry('TZ1034', 'user', 'a name is defined twice'),
  POLICY_UNKNOWN_SERVICE: entry('TZ1040', 'user', 'reference to an unknown service'),
  POLICY_BAD_SERVICE: entry('TZ1041', 'user', 'a service is inconsistent'),
  POLICY_DUPLICATE_RULE_ID: entry('TZ1050', 'user', 'two rules have the same id'),
  POLICY_BAD_RULE: entry('TZ1051', 'user', 'a rule is inconsistent'),
  POLICY_BAD_SETTING: entry('TZ1060', 'user', 'a setting is out of range'),
  ENGINE_BAD_CONNECTION: entry('TZ1070', 'user', 'a connection to decide is malformed'),
  // warnings (lint)
  LINT_SHADOWED_RULE: entry('TZ1501', 'user', 'a rule can never win'),
  LINT_TIED_RULES: entry('TZ1502', 'user', 'two rules tie for some connection'),
  LINT_UNUSED_ZONE: entry('TZ1503', 'user', 'a zone is not used'),
  LINT_UNUSED_SERVICE: entry('TZ1504', 'user', 'a service is not used'),
  LINT_HOST_BITS: entry('TZ1505', 'user', 'a network has host bits set (they are masked off)'),
  LINT_NEVER_MATCHES: entry('TZ1506', 'user', 'a rule can never match any connection'),
  LINT_TLS_UNVERIFIED: entry('TZ1530', 'user', "a TLS service does not verify the server's certificate"),
  LINT_TLS_IGNORED: entry('TZ1531', 'user', 'a TLS setting has no effect in the chosen mode'),
  // warnings (safety lint: what locks the administrator out or lets traffic through unexpectedly)
  LINT_NO_MANAGEMENT: entry('TZ1520', 'user', 'no management entry: nothing reaches the firewall itself'),
  LINT_EMPTY_MANAGEMENT: entry('TZ1521', 'user', 'management is empty: nothing reaches the firewall itself'),
  LINT_DIRECTED_MASQUERADE: entry('TZ1522', 'user', 'a directed forward service hides every client address'),
  LINT_TARGET_ZONE_EXCLUDED: entry(
    'TZ1523',
    'user',
    "limit_target_zones_to excludes the rule's own destination zone",
  ),
  LINT_UDP_TO_PROXY: entry('TZ1524', 'user', 'a rule sends UDP to a proxy, which speaks TCP only'),
  LINT_DENY_OUTRANKED: entry(
    'TZ1525',
    'user',
    'a deny rule loses some of its traffic to a more specific rule',
  ),
  // --- kernel (TZ2xxx) ---
  KERNEL_NFT_CHECK: entry('TZ2001', 'env', 'nft rejected the compiled ruleset (nothing was changed)'),
  KERNEL_NFT_APPLY: entry('TZ2002', 'env', 'nft failed to apply the ruleset (the previous one stays)'),
  KERNEL_ROUTING: entry('TZ2003', 'env', 'policy routing could not be installed'),
  KERNEL_SYSCTL: entry('TZ2004', 'env', 'a sysctl tzorp depends on has the wrong value'),
  KERNEL_NOT_ROOT: entry('TZ2005', 'env', 'CAP_NET_ADMIN is needed'),
  KERNEL_TOOL_MISSING: entry('TZ2006', 'env', 'nft or ip is not installed'),
  KERNEL_BAD_OPTION: entry('TZ2007', 'user', 'a kernel compile option or setting cannot be used'),
  KERNEL_CONFIRM_PENDING: entry('TZ2020', 'user', 'an earlier apply --confirm waits for tzorp confirm'),
  // --- daemon (TZ3xxx) ---
  DAEMON_NOT_RUNNING: entry('TZ3001', 'env', 'no daemon answers on the control socket'),
  DAEMON_RELOAD_REFUSED: entry('TZ3002', 'user', 'reload refused: the new policy is not valid'),
  DAEMON_NOTHING_TO_CONFIRM: entry(
    'TZ3013',
    'user',
    'tzorp confirm: no reload --confirm or apply --confirm waits',
  ),
  DAEMON_LISTEN: entry('TZ3003', 'env', 'a proxy listener could not be opened'),
  DAEMON_CONTROL_REQUEST: entry('TZ3004', 'user', 'bad control request'),
  LOG_SPEC: entry('TZ3005', 'user', 'bad log spec (category-glob:level, levels 0..10)'),
  DAEMON_ALREADY_RUNNING: entry('TZ3006', 'env', 'another daemon already answers on the control socket'),
  DAEMON_START: entry('TZ3007', 'env', 'the daemon could not start (kernel, listeners or workers)'),
  DAEMON_STOPPING: entry('TZ3008', 'env', 'the daemon is stopping and refuses the request'),
  DAEMON_STARTING: entry('TZ3009', 'env', 'the daemon is still starting and refuses the request'),
  DAEMON_WORKER: entry('TZ3010', 'env', 'a worker process did not start, exited, or is not running'),
  DAEMON_CONTROL_REPLY: entry('TZ3011', 'env', "the daemon's answer on the control socket is malformed"),
  CLI_USAGE: entry('TZ3012', 'user', 'a command-line argument is not valid'),
  DAEMON_USER: entry('TZ3030', 'env', 'the daemon cannot run as the --user it was given'),
  // --- proxies (TZ4xxx) ---
  PROXY_PROTOCOL: entry('TZ4001', 'peer', 'protocol violation by a peer'),
  PROXY_POLICY: entry('TZ4002', 'peer', 'denied by the proxy policy'),
  PROXY_LIMIT: entry('TZ4003', 'peer', 'a protocol limit was exceeded'),
  PROXY_TIMEOUT: entry('TZ4004', 'peer', 'a peer timed out'),
  TLS_CERTIFICATE: entry('TZ4101', 'user', 'a TLS certificate or key cannot be made, read or used'),
  // --- native / network (TZ5xxx) ---
  NATIVE_CALL: entry('TZ5001', 'env', 'a socket call failed'),
  NATIVE_MISSING: entry('TZ5002', 'env', 'the native addon is not built'),
  CONNECT_FAILED: entry('TZ5010', 'peer', 'the server connection failed'),
  SOCKET_IO: entry('TZ5011', 'peer', 'a connection failed while it was read or written (reset, broken pipe)'),
  // --- lab (TZ6xxx) ---
  LAB_COMMAND: entry('TZ6001', 'env', 'a command the lab runs is not installed, failed, or did not finish'),
  LAB_STATE: entry('TZ6002', 'env', 'the lab state file is missing or damaged'),
  // --- internal (TZ9xxx) ---
  INTERNAL: entry('TZ9001', 'ours', 'internal error (a bug): one session ended, the daemon goes on'),
} as const satisfies Record<string, CatalogueEntry>;

export type ErrorId = keyof typeof E;

const ID_OF_CODE = new Map<string, ErrorId>(
  (Object.entries(E) as [ErrorId, CatalogueEntry][]).map(([id, e]) => [e.code, id]),
);

/** The catalogue id of a code (`TZ3003` -> DAEMON_LISTEN); INTERNAL for a code tzorp does not have
 * (an answer from another version). */
export function idOfCode(code: string): ErrorId {
  return ID_OF_CODE.get(code) ?? 'INTERNAL';
}

/** An error with a catalogue code. `pos` names the policy location for user errors. */
export class TzorpError extends Error {
  readonly code: string;
  readonly kind: ErrorKind;
  readonly id: ErrorId;
  readonly pos?: { file: string; line: number; col: number };
  readonly details?: Record<string, unknown>;

  constructor(
    id: ErrorId,
    message: string,
    opts: {
      pos?: { file: string; line: number; col: number };
      details?: Record<string, unknown>;
      cause?: unknown;
    } = {},
  ) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'TzorpError';
    this.id = id;
    this.code = E[id].code;
    this.kind = E[id].kind;
    if (opts.pos) this.pos = opts.pos;
    if (opts.details) this.details = opts.details;
  }

  /** "file:line:col: TZ1031 message" (the form editors and compilers use). */
  format(): string {
    const where = this.pos ? `${this.pos.file}:${this.pos.line}:${this.pos.col}: ` : '';
    return `${where}${this.code} ${this.message}`;
  }
}

/** A broken invariant of ours (INTERNAL): the code that finds it throws this instead of a bare Error,
 * and the session (or request) it happened in ends; the daemon goes on. */
export function bug(message: string): TzorpError {
  return new TzorpError('INTERNAL', message);
}

/** The two peers of a proxy session. */
export type PeerSide = 'client' | 'server';

/**
 * A peer broke its protocol (kind 'peer', PROXY_PROTOCOL or PROXY_LIMIT): parsers throw it, cores turn
 * it into a reply and (usually) a close, never into a crash. `side` is the peer that misbehaved; `reply`
 * is the protocol's answer for it (an HTTP status, an FTP reply code). For a server's error the reply is
 * what the client is told on its behalf (502, 421).
 */
export class ProtocolError extends TzorpError {
  readonly side: PeerSide;
  readonly reply: number;

  constructor(side: PeerSide, reply: number, message: string, opts: { limit?: boolean } = {}) {
    super(opts.limit ? 'PROXY_LIMIT' : 'PROXY_PROTOCOL', message, { details: { side, reply } });
    this.name = 'ProtocolError';
    this.side = side;
    this.reply = reply;
  }
}
