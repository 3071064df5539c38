// The http proxy's options (the `options:` of a `proxy: http` service, snake_case keys as written in
// the policy file) and their validation. checkHttpOptions collects every problem with the path of the
// option (['request', 'PUT']) so the policy loader can point at file:line:column.
import { DEFAULTS } from '../../defaults.ts';
import { TzorpError } from '../../errors.ts';
import type { ReaderLimits } from './reader.ts';
import { isFieldValue, isToken } from './syntax.ts';
import { globToRegExp } from './url.ts';

export type RequestAction =
  | { action: 'accept' }
  | { action: 'deny' }
  | { action: 'abort' }
  | { action: 'reject'; status: number; text: string };

export type ResponseAction = RequestAction;

export type HeaderAction =
  | { action: 'accept' }
  | { action: 'drop' }
  | { action: 'abort' }
  | { action: 'change_name'; name: string }
  | { action: 'change_value'; value: string }
  | { action: 'change_both'; name: string; value: string }
  | { action: 'insert'; value: string }
  | { action: 'replace'; value: string };

export interface UrlFilterRule {
  host: RegExp | null;
  path: RegExp | null;
  action: 'accept' | 'reject';
  /** The rule as written, for logs. */
  text: string;
}

export interface UrlFilter {
  rules: UrlFilterRule[];
  default: 'accept' | 'reject';
  rejectStatus: number;
  /** Template of the page sent for a rejected URL (same placeholders as error_template). */
  rejectPage: string | null;
}

export interface PortRange {
  lo: number;
  hi: number;
}

export interface HttpOptions {
  /** true: clients talk to the server (origin-form + Host); false: clients talk to a proxy. */
  transparentMode: boolean;
  permitProxyRequests: boolean;
  permitServerRequests: boolean;
  requireHostHeader: boolean;
  checkHostMatchesDestination: boolean;
  targetPortRange: PortRange[];
  rewriteHostHeader: boolean;
  maxKeepaliveRequests: number;
  parentProxy: { host: string; port: number } | null;
  /** Upgrade protocols (lower case) passed to the server; '*' = any. */
  permitUpgrade: Set<string>;
  addVia: boolean;
  limits: ReaderLimits;
  idleTimeoutMs: number;
  requestTimeoutMs: number;
  responseTimeoutMs: number;
  /** Keys: upper-case method or '*'. */
  request: Map<string, RequestAction>;
  /** Keys: lower-case field name or '*'. */
  requestHeader: Map<string, HeaderAction>;
  responseHeader: Map<string, HeaderAction>;
  /** method (upper case or '*') -> status key ('404', '40', '4' or '*'). */
  response: Map<string, Map<string, ResponseAction>>;
  urlFilter: UrlFilter | null;
  errorTemplate: string;
  hostname: string;
}

/** Headers the proxy itself manages (framing, connection, routing): a header policy cannot touch
 * them, since a policy that broke framing would forward an ambiguous message. */
export const MANAGED_HEADERS = new Set([
  'connection',
  'content-length',
  'host',
  'keep-alive',
  'proxy-connection',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
]);

export const DEFAULT_ERROR_TEMPLATE = `<!DOCTYPE html>
<html><head><title>@INFO@</title></head>
<body><h1>@INFO@</h1><p>@MSG@</p>
<hr><address>tzorp @VERSION@ at @HOST@, @DATE@</address></body></html>
`;

/** The longest delay a Node timer honours (setTimeout clamps larger values to 1 ms). */
export const MAX_TIMER_MS = 2 ** 31 - 1;
const HOSTNAME = /^[A-Za-z0-9._-]{1,253}$/;

const KNOWN = [
  'transparent_mode',
  'permit_proxy_requests',
  'permit_server_requests',
  'require_host_header',
  'check_host_matches_destination',
  'target_port_range',
  'rewrite_host_header',
  'max_keepalive_requests',
  'parent_proxy',
  'parent_proxy_port',
  'permit_upgrade',
  'add_via',
  'max_line_length',
  'max_url_length',
  'max_hostname_length',
  'max_header_lines',
  'max_header_bytes',
  'max_body_length',
  'max_chunk_length',
  'max_chunk_extension_bytes',
  'timeout',
  'timeout_request',
  'timeout_response',
  'request',
  'request_header',
  'response_header',
  'response',
  'url_filter',
  'error_template',
  'hostname',
];

export interface ParsedHttpOptions {
  /** null iff errors is non-empty. */
  options: HttpOptions | null;
  errors: TzorpError[];
}

class Collector {
  readonly errors: TzorpError[] = [];
  err(
    id: 'POLICY_TYPE' | 'POLICY_BAD_VALUE' | 'POLICY_UNKNOWN_FIELD',
    path: (string | number)[],
    msg: string,
  ) {
    this.errors.push(new TzorpError(id, `http option ${path.join('.')}: ${msg}`, { details: { path } }));
  }
}

function isObj(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Parse the http options of one service, or throw one TzorpError (kind 'user') that lists every
 * problem (details.problems has them one by one, each with its option path). The policy step
 * (src/proxy/bind.ts) uses checkHttpOptions through the http module instead, once per generation. */
export function parseHttpOptions(raw: unknown): HttpOptions {
  const r = checkHttpOptions(raw);
  if (!r.options) {
    throw new TzorpError(
      'POLICY_BAD_VALUE',
      `invalid http options: ${r.errors.map((e) => e.message).join('; ')}`,
      {
        details: { problems: r.errors },
      },
    );
  }
  return r.options;
}

/** Validate the http options of one service and collect every problem. Unknown keys are errors (a
 * typo must not silently fall back to a default in a firewall). */
export function checkHttpOptions(raw: unknown): ParsedHttpOptions {
  const c = new Collector();
  const o: Record<string, unknown> = raw === undefined || raw === null ? {} : isObj(raw) ? raw : {};
  if (raw !== undefined && raw !== null && !isObj(raw))
    c.err('POLICY_TYPE', ['options'], 'must be a mapping');
  for (const k of Object.keys(o)) {
    if (!KNOWN.includes(k)) c.err('POLICY_UNKNOWN_FIELD', [k], `unknown option (known: ${KNOWN.join(', ')})`);
  }
  const bool = (k: string, d: boolean): boolean => {
    const v = o[k];
    if (v === undefined) return d;
    if (typeof v !== 'boolean') {
      c.err('POLICY_TYPE', [k], 'must be true or false');
      return d;
    }
    return v;
  };
  const int = (k: string, d: number, min: number, max = Number.MAX_SAFE_INTEGER): number => {
    const v = o[k];
    if (v === undefined) return d;
    if (typeof v !== 'number' || !Number.isInteger(v)) {
      c.err('POLICY_TYPE', [k], 'must be an integer');
      return d;
    }
    if (v < min || v > max) {
      c.err('POLICY_BAD_VALUE', [k], `must be between ${min} and ${max}`);
      return d;
    }
    return v;
  };
  const str = (k: string, d: string): string => {
    const v = o[k];
    if (v === undefined) return d;
    if (typeof v !== 'string') {
      c.err('POLICY_TYPE', [k], 'must be a string');
      return d;
    }
    return v;
  };

  const transparentMode = bool('transparent_mode', true);
  const limits: ReaderLimits = {
    maxLineLength: int('max_line_length', DEFAULTS.httpMaxLineLengthBytes, 64, 1 << 20),
    maxUrlLength: int('max_url_length', DEFAULTS.httpMaxUrlLengthBytes, 16, 1 << 20),
    maxHostnameLength: int('max_hostname_length', DEFAULTS.httpMaxHostnameLengthBytes, 1, 4096),
    maxHeaderLines: int('max_header_lines', DEFAULTS.httpMaxHeaderLines, 1, 10_000),
    maxHeaderBytes: int('max_header_bytes', DEFAULTS.httpMaxHeaderBytes, 256, 16 << 20),
    maxBodyLength: int('max_body_length', DEFAULTS.httpMaxBodyLengthBytes, 0),
    maxChunkLength: int('max_chunk_length', DEFAULTS.httpMaxChunkLengthBytes, 0),
    maxChunkExtensionBytes: int('max_chunk_extension_bytes', DEFAULTS.httpMaxChunkExtensionBytes, 0, 1 << 20),
  };
  // The head buffer must hold the longest lines the other limits allow, or the limit reported would
  // depend on how the bytes arrived.
  const needHead = Math.max(limits.maxLineLength, limits.maxUrlLength + 64) + 2;
  if (limits.maxHeaderBytes < needHead) {
    c.err(
      'POLICY_BAD_VALUE',
      ['max_header_bytes'],
      `must be at least ${needHead} (the longest start line allowed)`,
    );
    limits.maxHeaderBytes = needHead;
  }

  const opts: HttpOptions = {
    transparentMode,
    permitProxyRequests: bool('permit_proxy_requests', false),
    permitServerRequests: bool('permit_server_requests', true),
    requireHostHeader: bool('require_host_header', true),
    checkHostMatchesDestination: bool('check_host_matches_destination', false),
    targetPortRange: parsePortRange(o.target_port_range ?? DEFAULTS.httpTargetPortRange, c),
    rewriteHostHeader: bool('rewrite_host_header', true),
    maxKeepaliveRequests: int('max_keepalive_requests', DEFAULTS.httpMaxKeepaliveRequests, 0),
    parentProxy: parseParent(
      o.parent_proxy,
      int('parent_proxy_port', DEFAULTS.httpParentProxyPort, 1, 65535),
      c,
    ),
    permitUpgrade: parseUpgrade(o.permit_upgrade, c),
    addVia: bool('add_via', false),
    limits,
    // Node turns a timer above 2^31-1 ms into a 1 ms timer (an instant 504, or a timer loop).
    idleTimeoutMs: int('timeout', DEFAULTS.httpIdleTimeoutMs, 1, MAX_TIMER_MS),
    requestTimeoutMs: int('timeout_request', DEFAULTS.httpRequestTimeoutMs, 1, MAX_TIMER_MS),
    responseTimeoutMs: int('timeout_response', DEFAULTS.httpResponseTimeoutMs, 1, MAX_TIMER_MS),
    request: parseRequestPolicy(o.request, transparentMode, c),
    requestHeader: parseHeaderPolicy(o.request_header, 'request_header', c),
    responseHeader: parseHeaderPolicy(o.response_header, 'response_header', c),
    response: parseResponsePolicy(o.response, c),
    urlFilter: parseUrlFilter(o.url_filter, c),
    errorTemplate: str('error_template', DEFAULT_ERROR_TEMPLATE),
    hostname: str('hostname', 'tzorp'),
  };
  // hostname goes into Via and error pages: a host name only (no CR/LF to inject a header with).
  if (!HOSTNAME.test(opts.hostname))
    c.err('POLICY_BAD_VALUE', ['hostname'], 'must be a host name (letters, digits, . - _; at most 253)');
  return c.errors.length ? { options: null, errors: c.errors } : { options: opts, errors: [] };
}

function parsePortRange(v: unknown, c: Collector): PortRange[] {
  const items: unknown[] = typeof v === 'string' ? v.split(',') : Array.isArray(v) ? v : [v];
  const out: PortRange[] = [];
  for (const it of items) {
    const s = typeof it === 'number' ? String(it) : typeof it === 'string' ? it.trim() : null;
    const m = s === null ? null : /^(\d{1,5})(?:-(\d{1,5}))?$/.exec(s);
    const lo = m ? Number(m[1]) : Number.NaN;
    const hi = m ? Number(m[2] ?? m[1]) : Number.NaN;
    if (!m || lo < 1 || hi > 65535 || lo > hi) {
      c.err('POLICY_BAD_VALUE', ['target_port_range'], `'${String(it)}' is not a port or lo-hi port range`);
      continue;
    }
    out.push({ lo, hi });
  }
  return out;
}

function parseParent(v: unknown, defaultPort: number, c: Collector): { host: string; port: number } | null {
  if (v === undefined || v === null || v === '') return null;
  if (typeof v !== 'string') {
    c.err('POLICY_TYPE', ['parent_proxy'], "must be a string 'host' or 'host:port'");
    return null;
  }
  const m =
    /^(?:\[([0-9A-Fa-f:.]+)\]|([A-Za-z0-9.-]+))(?::(\d{1,5}))?$/.exec(v) ??
    /^([0-9A-Fa-f:]+:[0-9A-Fa-f:.]*)()$/.exec(v);
  const port = m?.[3] ? Number(m[3]) : defaultPort;
  if (!m || port < 1 || port > 65535) {
    c.err('POLICY_BAD_VALUE', ['parent_proxy'], `'${v}' is not host, host:port or [v6]:port`);
    return null;
  }
  return { host: (m[1] || m[2])!.toLowerCase(), port };
}

function parseUpgrade(v: unknown, c: Collector): Set<string> {
  if (v === undefined || v === false || v === null) return new Set();
  if (v === true) return new Set(['*']);
  const list = typeof v === 'string' ? [v] : Array.isArray(v) ? v : null;
  if (!list || list.some((x) => typeof x !== 'string' || (x !== '*' && !isToken(x.split('/')[0]!)))) {
    c.err(
      'POLICY_TYPE',
      ['permit_upgrade'],
      "must be true, false or a list of protocol names like 'websocket'",
    );
    return new Set();
  }
  return new Set(list.map((x) => (x as string).toLowerCase()));
}

type Args = { action: string; status?: unknown; text?: unknown; name?: unknown; value?: unknown };

/** An action is written as a string ('accept'), a mapping ({action: reject, status: 403, text: ...})
 * or Zorp's tuple form ([reject, 403, 'text'], [change_value, 'x']). */
function actionArgs(v: unknown, path: (string | number)[], c: Collector, positional: string[]): Args | null {
  if (typeof v === 'string') return { action: v };
  if (Array.isArray(v) && typeof v[0] === 'string') {
    const a: Args = { action: v[0] };
    positional.forEach((k, i) => {
      if (v[i + 1] !== undefined) (a as Record<string, unknown>)[k] = v[i + 1];
    });
    if (v.length > positional.length + 1) c.err('POLICY_BAD_VALUE', path, 'too many arguments');
    return a;
  }
  if (isObj(v) && typeof v.action === 'string') {
    for (const k of Object.keys(v)) {
      if (k !== 'action' && !positional.includes(k))
        c.err('POLICY_UNKNOWN_FIELD', [...path, k], 'unknown field');
    }
    return v as Args;
  }
  c.err('POLICY_TYPE', path, "must be an action name or a mapping with 'action'");
  return null;
}

function statusText(
  a: Args,
  path: (string | number)[],
  c: Collector,
  defStatus: number,
): { status: number; text: string } {
  const status = a.status ?? defStatus;
  if (typeof status !== 'number' || !Number.isInteger(status) || status < 400 || status > 599) {
    c.err('POLICY_BAD_VALUE', [...path, 'status'], 'must be an error status 400..599');
  }
  if (a.text !== undefined && (typeof a.text !== 'string' || !isFieldValue(a.text))) {
    c.err('POLICY_BAD_VALUE', [...path, 'text'], 'must be a one-line string');
  }
  return { status: status as number, text: typeof a.text === 'string' ? a.text : '' };
}

function parseRequestLike(v: unknown, path: (string | number)[], c: Collector): RequestAction | null {
  const a = actionArgs(v, path, c, ['status', 'text']);
  if (!a) return null;
  switch (a.action) {
    case 'accept':
    case 'deny':
    case 'abort':
      if (a.status !== undefined || a.text !== undefined)
        c.err('POLICY_BAD_VALUE', path, `${a.action} takes no status or text`);
      return { action: a.action };
    case 'reject':
      return { action: 'reject', ...statusText(a, path, c, 403) };
    default:
      c.err('POLICY_BAD_VALUE', path, `unknown action '${a.action}' (accept, reject, abort, deny)`);
      return null;
  }
}

function parseRequestPolicy(v: unknown, transparent: boolean, c: Collector): Map<string, RequestAction> {
  const m = new Map<string, RequestAction>();
  if (v === undefined) {
    // Zorp's HttpProxy: GET, POST and HEAD; a non-transparent proxy also tunnels CONNECT.
    for (const k of ['GET', 'HEAD', 'POST']) m.set(k, { action: 'accept' });
    if (!transparent) m.set('CONNECT', { action: 'accept' });
    return m;
  }
  if (!isObj(v)) {
    c.err('POLICY_TYPE', ['request'], 'must be a mapping of method to action');
    return m;
  }
  for (const [k, av] of Object.entries(v)) {
    if (k !== '*' && !isToken(k)) c.err('POLICY_BAD_VALUE', ['request', k], 'not a method name');
    const key = k.toUpperCase();
    if (m.has(key))
      c.err('POLICY_BAD_VALUE', ['request', k], 'method listed twice (methods are case-insensitive)');
    const a = parseRequestLike(av, ['request', k], c);
    if (a) m.set(key, a);
  }
  return m;
}

function parseHeaderPolicy(v: unknown, key: string, c: Collector): Map<string, HeaderAction> {
  const m = new Map<string, HeaderAction>();
  if (v === undefined) return m;
  if (!isObj(v)) {
    c.err('POLICY_TYPE', [key], 'must be a mapping of header name to action');
    return m;
  }
  for (const [name, av] of Object.entries(v)) {
    const path = [key, name];
    const lower = name.toLowerCase();
    if (name !== '*' && !isToken(name)) c.err('POLICY_BAD_VALUE', path, 'not a header field name');
    if (MANAGED_HEADERS.has(lower))
      c.err('POLICY_BAD_VALUE', path, 'this header is managed by the proxy (framing/connection)');
    if (m.has(lower)) c.err('POLICY_BAD_VALUE', path, 'header listed twice (names are case-insensitive)');
    const a = actionArgs(av, path, c, ['name', 'value']);
    if (!a) continue;
    const needName = (): string => {
      if (typeof a.name !== 'string' || !isToken(a.name) || MANAGED_HEADERS.has(a.name.toLowerCase())) {
        c.err(
          'POLICY_BAD_VALUE',
          [...path, 'name'],
          'needs a valid header name that is not managed by the proxy',
        );
        return 'X-Invalid';
      }
      return a.name;
    };
    const needValue = (): string => {
      if (typeof a.value !== 'string' || !isFieldValue(a.value)) {
        c.err('POLICY_BAD_VALUE', [...path, 'value'], 'needs a one-line string value');
        return '';
      }
      return a.value;
    };
    let act: HeaderAction | null = null;
    switch (a.action) {
      case 'accept':
      case 'drop':
      case 'abort':
        act = { action: a.action };
        break;
      case 'change_name':
        act = { action: 'change_name', name: needName() };
        break;
      case 'change_value':
        act = { action: 'change_value', value: needValue() };
        break;
      case 'change_both':
        act = { action: 'change_both', name: needName(), value: needValue() };
        break;
      case 'insert':
      case 'replace':
        act = { action: a.action, value: needValue() };
        break;
      default:
        c.err(
          'POLICY_BAD_VALUE',
          path,
          `unknown action '${a.action}' (accept, drop, abort, change_name, change_value, change_both, insert, replace)`,
        );
    }
    if (act && name === '*' && !['accept', 'drop', 'abort'].includes(act.action)) {
      c.err('POLICY_BAD_VALUE', path, "the '*' default can only accept, drop or abort");
      act = null;
    }
    if (act) m.set(lower, act);
  }
  return m;
}

function parseResponsePolicy(v: unknown, c: Collector): Map<string, Map<string, ResponseAction>> {
  const m = new Map<string, Map<string, ResponseAction>>();
  if (v === undefined) return m;
  if (!isObj(v)) {
    c.err('POLICY_TYPE', ['response'], 'must be a mapping: method -> status -> action');
    return m;
  }
  for (const [method, byStatus] of Object.entries(v)) {
    if (method !== '*' && !isToken(method))
      c.err('POLICY_BAD_VALUE', ['response', method], 'not a method name');
    if (!isObj(byStatus)) {
      c.err(
        'POLICY_TYPE',
        ['response', method],
        "must be a mapping of status ('404', '40', '4' or '*') to action",
      );
      continue;
    }
    const inner = new Map<string, ResponseAction>();
    for (const [status, av] of Object.entries(byStatus)) {
      const path = ['response', method, status];
      if (status !== '*' && !/^[1-5]\d{0,2}$/.test(status)) {
        c.err(
          'POLICY_BAD_VALUE',
          path,
          "status key must be '*', a status like '404' or a prefix like '40' or '4'",
        );
      }
      const a = parseRequestLike(av, path, c);
      if (a) inner.set(status, a);
    }
    m.set(method.toUpperCase(), inner);
  }
  return m;
}

function parseUrlFilter(v: unknown, c: Collector): UrlFilter | null {
  if (v === undefined || v === null) return null;
  if (!isObj(v)) {
    c.err('POLICY_TYPE', ['url_filter'], 'must be a mapping with rules, default, reject_status, reject_page');
    return null;
  }
  for (const k of Object.keys(v)) {
    if (!['rules', 'default', 'reject_status', 'reject_page'].includes(k))
      c.err('POLICY_UNKNOWN_FIELD', ['url_filter', k], 'unknown field');
  }
  const rules: UrlFilterRule[] = [];
  const list = v.rules ?? [];
  if (!Array.isArray(list)) c.err('POLICY_TYPE', ['url_filter', 'rules'], 'must be a list');
  else
    list.forEach((r, i) => {
      const path = ['url_filter', 'rules', i];
      if (!isObj(r) || (r.action !== 'accept' && r.action !== 'reject')) {
        c.err('POLICY_BAD_VALUE', path, 'must be {host?: glob, path?: glob, action: accept|reject}');
        return;
      }
      for (const k of Object.keys(r))
        if (!['host', 'path', 'action'].includes(k))
          c.err('POLICY_UNKNOWN_FIELD', [...path, k], 'unknown field');
      if (
        (r.host !== undefined && typeof r.host !== 'string') ||
        (r.path !== undefined && typeof r.path !== 'string')
      ) {
        c.err('POLICY_TYPE', path, 'host and path are glob strings');
        return;
      }
      if (r.host === undefined && r.path === undefined) c.err('POLICY_BAD_VALUE', path, 'needs host or path');
      rules.push({
        host: typeof r.host === 'string' ? globToRegExp(r.host, true) : null,
        path: typeof r.path === 'string' ? globToRegExp(r.path, false) : null,
        action: r.action,
        text: `${r.host ?? '*'}${r.path ?? ''}`,
      });
    });
  const def = v.default ?? 'accept';
  if (def !== 'accept' && def !== 'reject')
    c.err('POLICY_BAD_VALUE', ['url_filter', 'default'], 'must be accept or reject');
  const rs = v.reject_status ?? 403;
  if (typeof rs !== 'number' || !Number.isInteger(rs) || rs < 400 || rs > 599) {
    c.err('POLICY_BAD_VALUE', ['url_filter', 'reject_status'], 'must be an error status 400..599');
  }
  if (v.reject_page !== undefined && typeof v.reject_page !== 'string') {
    c.err('POLICY_TYPE', ['url_filter', 'reject_page'], 'must be a string (HTML template)');
  }
  return {
    rules,
    default: def === 'reject' ? 'reject' : 'accept',
    rejectStatus: rs as number,
    rejectPage: typeof v.reject_page === 'string' ? v.reject_page : null,
  };
}
