// What to do with one request head, decided without side effects: refuse it (and how), or forward it
// (where to, with which head). The core (core.ts) turns the decision into commands; this file only
// reads the head, the options and the session's context, so every rule here is tested as a table
// (test/unit/proxy/http/plan.test.ts).
//
// Order of the checks (the first that fails decides): request-target syntax, the target's form against
// the proxy mode, Host against the destination (transparent), target_port_range, method spelling, the
// request policy by method, the URL filter, Expect, the request_header policy.
import { ProtocolError } from '../../errors.ts';
import { canonicalAddress } from '../../policy/address.ts';
import type { Addr, ConnectOptions, Verdict } from '../core/index.ts';
import type { ErrorPage } from './error-page.ts';
import { type HttpOptions, MANAGED_HEADERS } from './options.ts';
import { applyHeaderPolicy, checkConnect, checkUrl, portPermitted, requestAction } from './policy.ts';
import { type Framing, type Header, hostAuthorityOf, lowerName, type RequestHead } from './reader.ts';
import { reasonOf } from './reasons.ts';
import { STANDARD_METHODS, splitList } from './syntax.ts';
import { type Authority, formatAuthority, parseRequestTarget, pathAndQuery } from './url.ts';
import { requestHeadBytes } from './writer.ts';

/** What planRequest needs of the session besides the head and the options. */
export interface PlanContext {
  /** Whether the service's router is inband (the request names the server). */
  inband: boolean;
  /** The address the client dialled (transparent mode: the original destination). */
  clientLocal?: Addr;
  /** This request's number on the client connection, from 1 (max_keepalive_requests). Default 1. */
  requestNumber?: number;
  /** The request body's framing as the reader found it. Default: no body. */
  framing?: Framing;
  /** The client connection is TLS the proxy terminated (inspect): URLs are https://, port 443 by
   * default. */
  tls?: boolean;
}

/** Fields every decision carries: what the logs call the request, and whether the connection ends
 * after this exchange. */
interface Common {
  /** For logs and refusal pages: the absolute URL (CONNECT: host:port) once known, else the target. */
  url: string;
  closeAfter: boolean;
}

export type Refusal = Common & { kind: 'refusal' } & (
    | {
        /** Answer with `page` (a violation logged with `reason`); `close` ends the connection after it
         * even when the request could be followed by another. */
        action: 'respond';
        page: ErrorPage;
        /** The page template (null: the proxy's error_template). */
        template: string | null;
        reason: string;
        fields: Record<string, unknown>;
        close: boolean;
        verdict: Verdict;
      }
    | {
        /** End the session without an answer (policy `abort`). */
        action: 'abort';
        reason: string;
        fields: Record<string, unknown>;
        info: string;
      }
    | {
        /** The request is malformed (the client's protocol error). */
        action: 'invalid';
        error: ProtocolError;
      }
  );

export interface Plan extends Common {
  kind: 'plan';
  /** The Upgrade value passed to the server (the policy permits it), or null. */
  upgrade: string | null;
  /** CONNECT without a parent proxy: no head goes to the server, the tunnel opens on connect. */
  connectTunnel: boolean;
  /** The request head for the server (null for a tunnel). */
  serverHead: Buffer | null;
  /** Which server: a request for the same key may reuse an open server connection. */
  serverKey: string;
  connect: ConnectOptions;
}

export type RequestDecision = Refusal | Plan;

/** Fields never forwarded as received: hop-by-hop ones (RFC 9110 §7.6.1), the framing and routing
 * ones the proxy writes itself, and credentials meant for this proxy (RFC 9110 §11.7.2). */
export const HOP_BY_HOP: ReadonlySet<string> = new Set([
  ...MANAGED_HEADERS,
  'proxy-authorization',
  'proxy-authenticate',
]);

/** HOP_BY_HOP by name length: a header's name is compared with the few of its length instead of
 * hashed for a set lookup (a name sliced from a head is a new string every time). */
const HOP_BY_HOP_BY_LENGTH: (string[] | undefined)[] = [];
for (const n of HOP_BY_HOP) {
  const names = HOP_BY_HOP_BY_LENGTH[n.length] ?? [];
  names.push(n);
  HOP_BY_HOP_BY_LENGTH[n.length] = names;
}

export function isHopByHop(lowerName: string): boolean {
  const names = HOP_BY_HOP_BY_LENGTH[lowerName.length];
  if (names === undefined) return false;
  for (let i = 0; i < names.length; i++) if (names[i] === lowerName) return true;
  return false;
}

/** A field name with '_' is dropped: CGI-style servers map '-' and '_' to the same variable, so
 * `Content_Length` could be read as Content-Length behind our back (nginx ignores them too). */
export function forwardable(lowerName: string, connTokens: Set<string>): boolean {
  return (
    !isHopByHop(lowerName) &&
    (connTokens.size === 0 || !connTokens.has(lowerName)) &&
    !lowerName.includes('_')
  );
}

/** Lower-cased tokens of every Connection header (RFC 9110 §7.6.1), plus Proxy-Connection's. */
export function connectionTokens(headers: Header[]): Set<string> {
  const s = new Set<string>();
  for (const h of headers) {
    const n = lowerName(h);
    if (n === 'connection' || n === 'proxy-connection') for (const t of splitList(h.value)) if (t) s.add(t);
  }
  return s;
}

/** Does the request choose the server's port (so target_port_range must bound it)? */
function requestPicksPort(o: HttpOptions, inband: boolean): boolean {
  return !o.transparentMode || inband;
}

/** Two IP literals name the same address, in any spelling (one normaliser: src/policy/address.ts). */
function sameAddress(a: string, b: string): boolean {
  const x = canonicalAddress(a);
  return x !== null && x.host === canonicalAddress(b)?.host;
}

export function planRequest(head: RequestHead, options: HttpOptions, context: PlanContext): RequestDecision {
  const o = options;
  const method = head.method;
  const framing: Framing = context.framing ?? { type: 'none' };
  const conn = connectionTokens(head.headers);
  const requestNumber = context.requestNumber ?? 1;
  const closeAfter =
    conn.has('close') ||
    head.version.minor === 0 ||
    (o.maxKeepaliveRequests > 0 && requestNumber >= o.maxKeepaliveRequests);
  let url = head.target;
  /** A refusal answered with a page of the error template. */
  const respond = (status: number, info: string, msg: string, close = true): Refusal => ({
    kind: 'refusal',
    action: 'respond',
    url,
    closeAfter,
    page: { status, reason: reasonOf(status), info, msg },
    template: null,
    reason: info,
    fields: {},
    close,
    verdict: 'DENIED_BY_POLICY',
  });
  const abort = (reason: string, fields: Record<string, unknown>, info: string): Refusal => ({
    kind: 'refusal',
    action: 'abort',
    url,
    closeAfter,
    reason,
    fields,
    info,
  });

  const scheme = context.tls ? 'https' : 'http';
  const defaultPort = context.tls ? 443 : 80;
  let target: ReturnType<typeof parseRequestTarget>;
  let hostAuth: Authority | null;
  try {
    target = parseRequestTarget(head.target, method, o.limits.maxHostnameLength);
    const hostHeader = head.headers.find((h) => lowerName(h) === 'host')?.value ?? '';
    hostAuth = hostHeader === '' ? null : hostAuthorityOf(head, hostHeader, o.limits.maxHostnameLength);
  } catch (e) {
    if (!(e instanceof ProtocolError)) throw e;
    return { kind: 'refusal', action: 'invalid', url, closeAfter, error: e };
  }

  // Where the request goes, what Host says, and what request-target the server sees.
  let host: string;
  let port: number;
  let hostValue: string;
  let serverTarget: string;
  if (target.form === 'authority') {
    if (o.transparentMode)
      return respond(405, 'CONNECT refused', 'CONNECT is only served by a non-transparent proxy.');
    host = target.authority.host;
    port = target.authority.port!;
    hostValue = formatAuthority(target.authority, -1);
    serverTarget = hostValue;
  } else if (target.form === 'absolute') {
    if (o.transparentMode && !o.permitProxyRequests)
      return respond(
        400,
        'Proxy request refused',
        'Proxy-style requests are not permitted in transparent mode.',
      );
    host = target.authority.host;
    port = target.authority.port ?? 80;
    hostValue =
      o.rewriteHostHeader || !hostAuth ? formatAuthority(target.authority) : formatAuthority(hostAuth);
    serverTarget = o.parentProxy
      ? `http://${formatAuthority(target.authority)}${pathAndQuery(target)}`
      : pathAndQuery(target);
  } else {
    if (!o.transparentMode && !o.permitServerRequests)
      return respond(400, 'Server request refused', 'This is a proxy: requests must use absolute URIs.');
    if (!hostAuth || hostAuth.host === '') {
      if (o.requireHostHeader || !o.transparentMode || !context.clientLocal)
        return respond(400, 'Host header required', 'The request has no Host header.');
      host = context.clientLocal.host;
      port = context.clientLocal.port;
      hostValue = formatAuthority({ host, port }, defaultPort);
    } else {
      host = hostAuth.host;
      port = hostAuth.port ?? defaultPort;
      hostValue = formatAuthority(hostAuth);
    }
    const pq = target.form === 'asterisk' ? '*' : pathAndQuery(target);
    serverTarget =
      o.parentProxy && target.form === 'origin' ? `http://${formatAuthority({ host, port })}${pq}` : pq;
  }
  const path = target.form === 'origin' || target.form === 'absolute' ? target.path : '';
  const pq = target.form === 'origin' || target.form === 'absolute' ? pathAndQuery(target) : '';
  url =
    target.form === 'authority'
      ? hostValue
      : `${scheme}://${formatAuthority({ host, port }, defaultPort)}${pq}`;

  // Transparent mode: optionally the Host must name the original destination. A pure core cannot
  // resolve a name, and an unverified name is exactly what the check exists to stop (an allowed
  // Host on a connection to another address), so a name is refused while the check is on.
  if (o.transparentMode && o.checkHostMatchesDestination && context.clientLocal) {
    const dst = context.clientLocal;
    const literal = canonicalAddress(host) !== null;
    if (!literal || !sameAddress(host, dst.host) || port !== dst.port) {
      return respond(
        400,
        'Host mismatch',
        literal
          ? `Host ${hostValue} is not the connection's destination.`
          : `Host ${hostValue} is a name; check_host_matches_destination needs the destination's address.`,
      );
    }
  }
  // The port range applies wherever the request picks the port (explicit mode, and transparent mode
  // with an inband router, where `Host: 10.0.0.5:6379` would otherwise reach any port).
  if (requestPicksPort(o, context.inband) && !portPermitted(o, port))
    return respond(403, 'Port not permitted', `Port ${port} is not permitted by target_port_range.`);

  // Method names are case-sensitive (RFC 9110 §9.1): `head` is not HEAD to a server, but the policy
  // looks methods up case-insensitively (Zorp), and the response framing needs HEAD exactly.
  if (method !== method.toUpperCase() && STANDARD_METHODS.includes(method.toUpperCase()))
    return respond(400, 'Bad method', `Method ${method} is not ${method.toUpperCase()}.`);
  // Request policy by method (Zorp request hash).
  const act = requestAction(o, method);
  if (act.action === 'deny') return respond(403, 'Method denied', `Method ${method} denied by policy.`);
  if (act.action === 'reject') {
    // A policy reject answers and lets the client go on with its next request.
    const info = act.text || 'Request rejected';
    return respond(act.status, info, act.text || `Method ${method} rejected by policy.`, false);
  }
  if (act.action === 'abort')
    return abort('request aborted by policy', { method }, `method ${method} aborted by policy`);

  // URL filter on the canonical host and path (the same the server gets); a CONNECT target by its
  // host alone (checkConnect: rules with a path cannot see into the tunnel).
  {
    const v = target.form === 'authority' ? checkConnect(o, host) : checkUrl(o, host, path);
    if (!v.accept) {
      const f = o.urlFilter!;
      return {
        kind: 'refusal',
        action: 'respond',
        url,
        closeAfter,
        page: {
          status: f.rejectStatus,
          reason: reasonOf(f.rejectStatus),
          info: 'URL rejected',
          msg: `Access to ${url} is not permitted.`,
        },
        template: f.rejectPage ?? null,
        reason: 'URL rejected by the URL filter',
        fields: { rule: v.rule },
        close: false,
        verdict: 'DENIED_BY_POLICY',
      };
    }
  }

  // Expect (RFC 9110 §10.1.1): only 100-continue exists; it is forwarded for HTTP/1.1.
  const expect = head.headers.filter((h) => lowerName(h) === 'expect');
  if (expect.length > 0 && (expect.length > 1 || expect[0]!.value.toLowerCase() !== '100-continue'))
    return respond(417, 'Expectation failed', 'Only Expect: 100-continue is supported.');

  // Headers: end-to-end ones through the request_header policy, managed ones written here.
  const e2e = head.headers.filter((h) => {
    const n = lowerName(h);
    return forwardable(n, conn) && !(n === 'expect' && head.version.minor === 0);
  });
  const pol = applyHeaderPolicy(e2e, o.requestHeader);
  if (!pol.ok)
    return abort(
      'request header aborted by policy',
      { header: pol.header },
      `request header ${pol.header} aborted by policy`,
    );
  const headers: Header[] = [{ name: 'Host', value: hostValue }, ...pol.headers];
  if (framing.type === 'length') headers.push({ name: 'Content-Length', value: String(framing.length) });
  else if (framing.type === 'chunked') headers.push({ name: 'Transfer-Encoding', value: 'chunked' });

  // Upgrade (RFC 9110 §7.8): passed on only when the policy permits the protocol.
  let upgrade: string | null = null;
  const upg = head.headers.find((h) => lowerName(h) === 'upgrade');
  if (upg && conn.has('upgrade') && o.permitUpgrade.size > 0 && method === 'GET') {
    const protos = splitList(upg.value);
    if (protos.every((p) => p !== '' && (o.permitUpgrade.has('*') || o.permitUpgrade.has(p.split('/')[0]!))))
      upgrade = upg.value;
  }
  if (upgrade !== null) {
    headers.push({ name: 'Connection', value: 'Upgrade' }, { name: 'Upgrade', value: upgrade });
  } else if (closeAfter) headers.push({ name: 'Connection', value: 'close' });
  if (o.addVia) headers.push({ name: 'Via', value: `1.${head.version.minor} ${o.hostname}` });

  // Which server: explicit mode routes inband by the request's host (or to the parent proxy).
  let serverKey = 'default';
  let connect: ConnectOptions = {};
  if (o.parentProxy) {
    if (context.inband) connect = { inband: { host: o.parentProxy.host, port: o.parentProxy.port } };
    serverKey = 'parent';
  } else if (!o.transparentMode || context.inband) {
    serverKey = `${host} ${port}`;
    if (context.inband) connect = { inband: { host, port } };
  }
  const connectTunnel = method === 'CONNECT' && !o.parentProxy;
  // The request head goes out as soon as the server connection is up; a CONNECT tunnel's first bytes
  // are the client's, whenever it sends them (and its server may speak first).
  if (!connectTunnel) connect.sendsFirst = true;
  return {
    kind: 'plan',
    url,
    closeAfter,
    upgrade,
    connectTunnel,
    serverHead: connectTunnel ? null : requestHeadBytes(method, serverTarget, headers),
    serverKey,
    connect,
  };
}
