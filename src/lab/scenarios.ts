// The demo's rows: connections from the lab's clients, what the policy says should happen to each
// (asked of the decision engine, not written down here), what really happened (the client's result,
// what the servers recorded, tzorp's log lines with the session id, the firewall's counters), and
// whether the two agree. `npm run demo` prints them; test/netns/lab.test.ts asserts them.

import { DEFAULTS } from '../defaults.ts';
import { zoneIdent } from '../kernel/index.ts';
import { canonicalAddress } from '../policy/index.ts';
import type { Service } from '../policy/model.ts';
import { proxyModule } from '../proxy/index.ts';
import type { ProbeOutcome, ProbeResult } from './probe.ts';
import type { ServerRecord } from './servers.ts';
import type { LabState } from './state.ts';
import { LAB_ADDR, type NodeRole } from './topology.ts';
import {
  chainCounter,
  conntrackLines,
  type FtpResult,
  ftpGet,
  type HttpResult,
  httpGet,
  LogCursor,
  serverRecords,
  tcpProbe,
} from './traffic.ts';
import { FTP_FILES } from './vsftpd.ts';

export type ScenarioKind = 'http' | 'ftp-passive' | 'ftp-active' | 'tcp';

export interface Scenario {
  id: string;
  /** What the row shows, in the words of the issue that asked for it. */
  title: string;
  kind: ScenarioKind;
  from: NodeRole;
  /** Source address the client uses (its main address when absent). */
  src: string;
  dst: string;
  port: number;
}

const UA_SENT = 'tzorp-demo/1.0';
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** The connections the demo makes; the policy decides what happens to each. The addresses match
 * examples/policy.yaml (servers.http_header_replace is 198.18.21.25). */
export const SCENARIOS: readonly Scenario[] = [
  {
    id: 'http-header',
    title: 'HTTP through the HTTP proxy, a header rewritten',
    kind: 'http',
    from: 'client',
    src: LAB_ADDR.client4,
    dst: '198.18.21.25',
    port: 80,
  },
  {
    id: 'http-v6',
    title: 'HTTP over IPv6 through the HTTP proxy',
    kind: 'http',
    from: 'client',
    src: LAB_ADDR.client6,
    dst: LAB_ADDR.server6,
    port: 80,
  },
  {
    id: 'ftp-passive',
    title: 'FTP download, passive mode',
    kind: 'ftp-passive',
    from: 'client',
    src: LAB_ADDR.client4,
    dst: LAB_ADDR.server4,
    port: 21,
  },
  {
    id: 'ftp-active',
    title: 'FTP download, active mode',
    kind: 'ftp-active',
    from: 'client',
    src: LAB_ADDR.client4,
    dst: LAB_ADDR.server4,
    port: 21,
  },
  {
    id: 'plug',
    title: 'TCP through the plug proxy',
    kind: 'tcp',
    from: 'client',
    src: LAB_ADDR.client4,
    dst: '198.18.21.33',
    port: 443,
  },
  {
    id: 'forward',
    title: 'forwarded connection, client address kept',
    kind: 'tcp',
    from: 'client',
    src: LAB_ADDR.client4,
    dst: LAB_ADDR.server4,
    port: 22,
  },
  {
    id: 'deny',
    title: 'denied port, answered with a reset',
    kind: 'tcp',
    from: 'client',
    src: LAB_ADDR.client4,
    dst: LAB_ADDR.server4,
    port: 5555,
  },
  {
    id: 'deny-v6',
    title: 'denied port over IPv6, answered as the policy says for IPv6',
    kind: 'tcp',
    from: 'client',
    src: LAB_ADDR.client6,
    dst: LAB_ADDR.server6,
    port: 5555,
  },
  {
    id: 'internet-deny',
    title: 'from the internet to a privileged port inside: denied',
    kind: 'tcp',
    from: 'outside',
    src: LAB_ADDR.outside4,
    dst: LAB_ADDR.server4,
    port: 22,
  },
  {
    id: 'unmatched',
    title: 'unmatched connection, dropped',
    kind: 'tcp',
    from: 'outside',
    src: LAB_ADDR.outside4,
    dst: LAB_ADDR.server4,
    port: 9999,
  },
];

/** What the policy says about a scenario's connection (from the decision engine). */
export interface ScenarioDecision {
  rule: number | null;
  service: Service | null;
  clientZone: string | null;
  serverZone: string | null;
}

export type RowStatus = 'pass' | 'fail' | 'unavailable';

export interface RowResult {
  scenario: Scenario;
  decision: ScenarioDecision;
  /** "rule 5 → http_header_replace (proxy http)" / "no rule: dropped". */
  decisionText: string;
  /** What should happen, in one line. */
  expected: string;
  status: RowStatus;
  /** One line each: what the client got, what the server recorded. */
  client: string;
  server: string;
  /** tzorp's session id for proxied rows. */
  sessionId: string | null;
  /** Lines that prove what happened: tzorp log lines, vsftpd lines, counters, conntrack entries. */
  proof: string[];
  /** Why a row failed (empty when it passed). */
  problems: string[];
}

export interface ScenarioContext {
  state: LabState;
  decide: (s: Scenario) => ScenarioDecision;
}

function describeDecision(d: ScenarioDecision): string {
  if (!d.rule || !d.service) return 'no rule matches: dropped';
  const s = d.service;
  const what = s.type === 'proxy' ? `proxy ${s.proxy}` : s.type === 'deny' ? `deny` : 'forward';
  return `rule ${d.rule} → ${s.name} (${what})`;
}

/** The reply a deny method gives, as the client's connect sees it. ICMP port unreachable is reported
 * to TCP as ECONNREFUSED, like a reset (RFC 1122 §4.2.3.9, Linux icmp_err_convert). */
function denyOutcome(method: string): ProbeOutcome {
  if (method === 'drop') return 'timeout';
  if (method === 'tcp-reset' || method === 'icmp-port-unreachable') return 'reset';
  return 'unreachable';
}

/** The header value the HTTP proxy should send for User-Agent, from the service's options as written
 * (`request_header: { User-Agent: { action: change_value, value: ... } }` or the tuple form). */
export function expectedUserAgent(options: Record<string, unknown>, sent: string): string {
  const rh = options.request_header;
  if (!rh || typeof rh !== 'object') return sent;
  for (const [name, v] of Object.entries(rh as Record<string, unknown>)) {
    if (name.toLowerCase() !== 'user-agent') continue;
    const [action, value] = Array.isArray(v)
      ? [v[0], v[1]]
      : typeof v === 'object' && v
        ? [(v as { action?: unknown }).action, (v as { value?: unknown }).value]
        : [v, undefined];
    if ((action === 'change_value' || action === 'replace') && typeof value === 'string') return value;
    if (action === 'drop') return '(none)';
  }
  return sent;
}

const fam = (a: string) => (a.includes(':') ? 6 : 4);
/** The firewall's address toward the servers: what a server sees without forge_addr. */
const fwTowardServers = (dst: string) => (fam(dst) === 6 ? LAB_ADDR.fwServer6 : LAB_ADDR.fwServer4);

/** Session ids are written in parentheses in the readable log, e.g. `(svc/http:7)`. */
const SESSION_RE = /\((svc\/[^)\s]+)\)/;

/** tzorp's log lines of the session whose client end was src:port, and its id. */
export function sessionLines(
  lines: string[],
  src: string,
  port: number,
): { id: string | null; lines: string[] } {
  const addr = fam(src) === 6 ? `[${src}]:${port}` : `${src}:${port}`;
  // the port must end there: client port 4000 is not 40000
  const start = lines.find((l) => {
    const i = l.indexOf(addr);
    return i >= 0 && !/\d/.test(l[i + addr.length] ?? '') && SESSION_RE.test(l);
  });
  const id = start ? (SESSION_RE.exec(start)?.[1] ?? null) : null;
  if (!id) return { id: null, lines: [] };
  // the session's own lines (not its children's, which extend the id with '/')
  return { id, lines: lines.filter((l) => l.includes(`(${id})`) || l.includes(`(${id}/`)) };
}

function serverLine(recs: ServerRecord[]): string {
  if (recs.length === 0) return 'nothing';
  const r = recs[0] as ServerRecord;
  return `${r.event} from ${r.peer}${recs.length > 1 ? ` (+${recs.length - 1} more)` : ''}`;
}

/** The data-connection commands vsftpd received (how the server side of the proxy talked to it). */
/** The client address of a vsftpd CONNECT log line (`Client "::ffff:198.18.1.2"`), canonical. */
function vsftpdClient(line: string): string | null {
  const text = /Client "([^"]+)"/.exec(line)?.[1];
  return text === undefined ? null : (canonicalAddress(text)?.host ?? text);
}

function ftpDataCommands(lines: string[]): string {
  const cmds = lines.flatMap((l) => {
    const m = /FTP command: Client "[^"]*", "(PASV|EPSV|PORT|EPRT|RETR|STOR)\b/.exec(l);
    return m ? [m[1] as string] : [];
  });
  return cmds.length ? ` (${cmds.join(', ')})` : '';
}

function probeText(p: ProbeResult): string {
  if (p.outcome === 'connected') return `connected${p.firstLine ? `: "${p.firstLine}"` : ''}`;
  if (p.outcome === 'reset') return `refused (${p.errno}: a reset)`;
  if (p.outcome === 'timeout') return 'no answer (timed out: dropped)';
  if (p.outcome === 'unreachable') return `rejected with an ICMP error (${p.errno})`;
  return `${p.outcome} (${p.errno})`;
}

export async function runScenario(ctx: ScenarioContext, s: Scenario): Promise<RowResult> {
  const { state } = ctx;
  const decision = ctx.decide(s);
  const svc = decision.rule ? decision.service : null;
  const row: RowResult = {
    scenario: s,
    decision,
    decisionText: describeDecision(decision),
    expected: '',
    status: 'pass',
    client: '',
    server: '',
    sessionId: null,
    proof: [],
    problems: [],
  };
  const fail = (p: string) => {
    row.status = 'fail';
    row.problems.push(p);
  };

  if (svc?.type === 'proxy') {
    if (state.firewall.mode !== 'run') {
      row.status = 'unavailable';
      row.expected = `proxied by ${svc.name}`;
      row.client =
        row.server = `not available yet: tzorp run is not in this tree (firewall: ${state.firewall.mode})`;
      return row;
    }
    if (!proxyModule(svc.proxy)) {
      row.status = 'unavailable';
      row.expected = `proxied by ${svc.name}`;
      row.client = row.server = `not available yet: the ${svc.proxy} proxy is not in this tree`;
      return row;
    }
  }
  if (state.firewall.mode === 'none') {
    row.status = 'unavailable';
    row.expected = describeDecision(decision);
    row.client = row.server = 'not available: tzorp is not running in the lab';
    return row;
  }

  const ns = state.namespaces[s.from];
  const fwNs = state.namespaces.fw;
  const servers = new LogCursor(state.logs.servers);
  const ftpLog = new LogCursor(state.logs.vsftpd);
  const tzorpLog = state.logs.tzorp ? new LogCursor(state.logs.tzorp) : null;
  // The chain whose counter moves for this decision: a deny service's reject chain, the service's (or,
  // in older rulesets, the rule's) chain, or the "no rule" counter of the decision chain.
  const chains = !svc
    ? [`decide_v${fam(s.dst)}`]
    : [
        ...(svc.type === 'deny' ? [`deny_${zoneIdent(svc.name)}`] : []),
        `svc_${zoneIdent(svc.name)}`,
        `rule_${decision.rule}`,
      ];
  let counterChain = chains[0] as string;
  let before: number | null = null;
  if (svc?.type !== 'proxy') {
    for (const c of chains) {
      before = await chainCounter(fwNs, c);
      if (before !== null) {
        counterChain = c;
        break;
      }
    }
  }
  const host = fam(s.dst) === 6 ? `[${s.dst}]` : s.dst;

  // --- drive the traffic ---
  let localPort: number | null = null;
  let connected = false;
  let http: HttpResult | null = null;
  let ftp: FtpResult | null = null;
  let probe: ProbeResult | null = null;
  // A connection the policy refuses is tried with the probe, which tells a reset from a silent drop
  // (and does not wait curl's whole timeout for a drop).
  const refused = !svc || svc.type === 'deny';
  if (refused) {
    probe = await tcpProbe(ns, s.dst, s.port, s.src);
    localPort = probe.localPort;
    connected = probe.outcome === 'connected';
    row.client = probeText(probe);
  } else if (s.kind === 'http') {
    http = await httpGet(ns, `http://${host}:${s.port}/demo/${s.id}`, { userAgent: UA_SENT, src: s.src });
    localPort = http.localPort;
    connected = http.ok;
    row.client = http.ok ? `HTTP ${http.status}` : `failed: ${http.error}`;
  } else if (s.kind === 'ftp-passive' || s.kind === 'ftp-active') {
    ftp = await ftpGet(
      ns,
      `ftp://${host}:${s.port}/${FTP_FILES.hello.path}`,
      s.kind === 'ftp-active' ? 'active' : 'passive',
    );
    localPort = ftp.localPort;
    connected = ftp.ok;
    row.client = ftp.ok
      ? ftp.content === FTP_FILES.hello.text
        ? `downloaded ${FTP_FILES.hello.path} (${ftp.content.length} bytes, content matches)`
        : `downloaded ${FTP_FILES.hello.path}, content DIFFERS`
      : `failed: ${ftp.error}`;
    if (ftp.ok && ftp.content !== FTP_FILES.hello.text)
      fail('the downloaded file differs from the server copy');
  } else {
    probe = await tcpProbe(ns, s.dst, s.port, s.src);
    localPort = probe.localPort;
    connected = probe.outcome === 'connected';
    row.client = probeText(probe);
  }
  // The servers and tzorp write their logs as things happen, a little after the client is done: read
  // until what a passing row needs is there (or DEFAULTS.labLogSettleMs passed; a refused row waits the minimum).
  const serverLines: string[] = [];
  const ftpLines: string[] = [];
  const tzLines: string[] = [];
  const isFtp = s.kind === 'ftp-passive' || s.kind === 'ftp-active';
  const complete = () => {
    if (refused) return false;
    const serverSide = isFtp
      ? ftpLines.some((l) => l.includes('RETR'))
      : serverRecords(serverLines).some((r) => r.event !== 'ready' && r.localPort === s.port);
    const session =
      svc?.type !== 'proxy' ||
      (localPort !== null &&
        sessionLines(tzLines, s.src, localPort).lines.some((l) => l.includes('summary')));
    return serverSide && session;
  };
  const settleEnd = Date.now() + (refused ? DEFAULTS.labLogMinWaitMs : DEFAULTS.labLogSettleMs);
  await sleep(DEFAULTS.labLogMinWaitMs);
  for (;;) {
    serverLines.push(...servers.take());
    ftpLines.push(...ftpLog.take());
    tzLines.push(...(tzorpLog?.take() ?? []));
    if (complete() || Date.now() >= settleEnd) break;
    await sleep(50);
  }
  const seen = serverRecords(serverLines).filter((r) => r.event !== 'ready' && r.localPort === s.port);
  row.server =
    s.kind === 'ftp-passive' || s.kind === 'ftp-active'
      ? ftpLines.some((l) => l.includes('CONNECT:'))
        ? `FTP session from ${vsftpdClient(ftpLines.find((l) => l.includes('CONNECT:')) ?? '') ?? '?'}${ftpDataCommands(ftpLines)}`
        : 'nothing'
      : serverLine(seen);

  // --- compare with the decision ---
  if (!svc) {
    row.expected = 'dropped: no answer, the server sees nothing';
    if (probe && probe.outcome !== 'timeout') fail(`expected a silent drop, the client saw: ${row.client}`);
    if (seen.length) fail('the server saw the connection');
  } else if (svc.type === 'deny') {
    const method = fam(s.dst) === 6 ? svc.ipv6 : svc.ipv4;
    const want = denyOutcome(method);
    row.expected = `denied (${method}): ${want === 'timeout' ? 'no answer' : want}, the server sees nothing`;
    if (probe && probe.outcome !== want) fail(`expected ${want}, the client saw: ${row.client}`);
    if (!probe && connected) fail('the connection went through');
    if (seen.length) fail('the server saw the connection');
  } else {
    const forge = svc.router.forgeAddr;
    const peer = forge ? s.src : fwTowardServers(s.dst);
    row.expected = `${svc.type === 'proxy' ? `proxied by ${svc.name}` : `forwarded by ${svc.name}`}; the server sees ${peer}${forge ? ' (forge_addr)' : ''}`;
    if (!connected) fail(`the client could not connect: ${row.client}`);
    if (s.kind === 'http' || s.kind === 'tcp') {
      if (seen.length === 0) fail('the server saw nothing');
      else if (seen[0]?.peer !== peer) fail(`the server saw ${seen[0]?.peer}, expected ${peer}`);
    } else {
      const connect = ftpLines.find((l) => l.includes('CONNECT:'));
      if (!connect) fail('vsftpd saw no FTP session');
      else if (vsftpdClient(connect) !== canonicalAddress(peer)?.host) {
        fail(`vsftpd saw ${connect.replace(/.*Client /, '')}, expected ${peer}`);
      }
      const cmds = ftpLines.filter((l) => /FTP command: .*"(PASV|EPSV|PORT |EPRT |RETR )/.test(l));
      row.proof.push(...cmds.map((l) => `vsftpd: ${l.replace(/^.*FTP command: /, '')}`));
    }
    if (http && s.id === 'http-header') {
      const want = expectedUserAgent(svc.type === 'proxy' ? svc.options : {}, UA_SENT);
      const got = http.seen?.headers?.find(([n]) => n.toLowerCase() === 'user-agent')?.[1] ?? '(none)';
      row.server += `; User-Agent: "${got}" (sent "${UA_SENT}")`;
      if (got !== want) fail(`the server saw User-Agent "${got}", the policy says "${want}"`);
      if (want === UA_SENT) fail('the policy does not rewrite User-Agent for this service');
    }
  }

  // --- proof from tzorp and the kernel ---
  if (svc?.type === 'proxy') {
    if (localPort === null) fail('the client did not report its port; cannot find the session');
    else {
      const sess = sessionLines(tzLines, s.src, localPort);
      row.sessionId = sess.id;
      row.proof.unshift(...sess.lines);
      if (!sess.id) fail(`tzorp logged no session for ${s.src} port ${localPort}`);
    }
  } else {
    const after = await chainCounter(fwNs, counterChain);
    if (before !== null && after !== null) {
      row.proof.push(`nft chain ${counterChain}: counter ${before} → ${after} packets`);
      if (after <= before) fail(`the firewall's ${counterChain} counter did not move`);
    } else row.proof.push(`nft chain ${counterChain}: not found`);
    if (svc?.type === 'forward') {
      const ct = await conntrackLines(fwNs, s.src, s.port);
      row.proof.push(...ct.slice(-1).map((l) => `conntrack: ${l.replace(/\s+/g, ' ')}`));
    }
  }
  return row;
}

export async function runScenarios(
  ctx: ScenarioContext,
  onRow?: (r: RowResult, i: number) => void,
  scenarios: readonly Scenario[] = SCENARIOS,
): Promise<RowResult[]> {
  const out: RowResult[] = [];
  for (const [i, s] of scenarios.entries()) {
    const r = await runScenario(ctx, s);
    out.push(r);
    onRow?.(r, i);
  }
  return out;
}
