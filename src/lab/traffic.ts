// Real clients run inside lab nodes (curl for HTTP and FTP, the probe for bare TCP), and what the
// other side recorded: the servers' log, vsftpd's protocol log, tzorp's log, the firewall's counters.
// Used by the demo and by the lab's tests, so both check the same things.

import { closeSync, openSync, readSync, statSync } from 'node:fs';
import { DEFAULTS } from '../defaults.ts';
import { nodeEntryArgs } from '../entry.ts';
import type { ProbeResult } from './probe.ts';
import type { ServerRecord } from './servers.ts';
import { runIn } from './system.ts';

export interface HttpResult {
  ok: boolean;
  status: number | null;
  /** What the lab's HTTP server answered: the request as it saw it. */
  seen: ServerRecord | null;
  localPort: number | null;
  error: string | null;
}

/** Fetches a URL with curl inside a node; `userAgent` is what the client sends. */
export async function httpGet(
  ns: string,
  url: string,
  opts: { userAgent?: string; src?: string } = {},
): Promise<HttpResult> {
  const argv = [
    'curl',
    '-sS',
    '-g',
    '--max-time',
    String(DEFAULTS.labClientTimeoutS),
    '-w',
    '\n%{http_code} %{local_port}',
  ];
  if (opts.userAgent) argv.push('-A', opts.userAgent);
  if (opts.src) argv.push('--interface', opts.src);
  argv.push(url);
  const r = await runIn(ns, argv, { allowFail: true, timeoutMs: (DEFAULTS.labClientTimeoutS + 5) * 1000 });
  const lines = r.stdout.trimEnd().split('\n');
  const [code, port] = (lines.pop() ?? '').split(' ');
  const body = lines.join('\n');
  let seen: ServerRecord | null = null;
  try {
    seen = JSON.parse(body) as ServerRecord;
  } catch {}
  const status = code && code !== '000' ? Number(code) : null;
  return {
    ok: r.code === 0 && status !== null && status < 400,
    status,
    seen,
    localPort: port && port !== '0' ? Number(port) : null,
    error:
      r.code === 0
        ? status !== null && status >= 400
          ? `HTTP ${status}`
          : null
        : r.stderr.trim() || `curl exit ${r.code}`,
  };
}

export interface FtpResult {
  ok: boolean;
  content: string | null;
  localPort: number | null;
  error: string | null;
}

/** Downloads a file with curl inside a node, passive (EPSV/PASV) or active (EPRT/PORT). */
export async function ftpGet(ns: string, url: string, mode: 'passive' | 'active'): Promise<FtpResult> {
  const argv = [
    'curl',
    '-sS',
    '-g',
    '--max-time',
    String(DEFAULTS.labClientTimeoutS),
    '-w',
    '\n%{local_port}',
  ];
  if (mode === 'active') argv.push('-P', '-');
  argv.push(url);
  const r = await runIn(ns, argv, { allowFail: true, timeoutMs: (DEFAULTS.labClientTimeoutS + 5) * 1000 });
  const i = r.stdout.lastIndexOf('\n');
  const port = Number(r.stdout.slice(i + 1));
  return {
    ok: r.code === 0,
    content: r.code === 0 ? r.stdout.slice(0, i) : null,
    localPort: port > 0 ? port : null,
    error: r.code === 0 ? null : r.stderr.trim() || `curl exit ${r.code}`,
  };
}

/** One TCP connection attempt inside a node (probe.ts). */
export async function tcpProbe(ns: string, host: string, port: number, src?: string): Promise<ProbeResult> {
  const argv = [process.execPath, ...nodeEntryArgs(import.meta.url, './probe-main'), host, String(port)];
  if (src) argv.push(src);
  const r = await runIn(ns, argv, { allowFail: true, timeoutMs: 30_000 });
  try {
    return JSON.parse(r.stdout) as ProbeResult;
  } catch {
    return {
      outcome: 'error',
      errno: r.stderr.trim() || `exit ${r.code}`,
      firstLine: null,
      localAddress: null,
      localPort: null,
    };
  }
}

/** A position in a growing log file; `since` returns the complete lines written after it. */
export class LogCursor {
  private offset: number;
  constructor(readonly file: string) {
    this.offset = LogCursor.size(file);
  }
  private static size(file: string): number {
    try {
      return statSync(file).size;
    } catch {
      return 0;
    }
  }
  /** Lines added since the cursor was made (or last advanced); advances the cursor. */
  take(): string[] {
    const end = LogCursor.size(this.file);
    if (end <= this.offset) return [];
    const buf = Buffer.alloc(end - this.offset);
    const fd = openSync(this.file, 'r');
    try {
      readSync(fd, buf, 0, buf.length, this.offset);
    } finally {
      closeSync(fd);
    }
    const text = buf.toString('utf8');
    const last = text.lastIndexOf('\n');
    if (last < 0) return [];
    this.offset += Buffer.byteLength(text.slice(0, last + 1));
    return text.slice(0, last).split('\n').filter(Boolean);
  }
}

export function serverRecords(lines: string[]): ServerRecord[] {
  const out: ServerRecord[] = [];
  for (const l of lines) {
    try {
      out.push(JSON.parse(l) as ServerRecord);
    } catch {}
  }
  return out;
}

/** Packets counted by the first `counter` of a chain of the firewall's tzorp table, or null when the
 * chain (or the table) does not exist. */
export async function chainCounter(fwNs: string, chain: string): Promise<number | null> {
  const r = await runIn(fwNs, ['nft', 'list', 'chain', 'inet', 'tzorp', chain], { allowFail: true });
  if (r.code !== 0) return null;
  const m = /counter packets (\d+)/.exec(r.stdout);
  return m ? Number(m[1]) : null;
}

/** The firewall's conntrack entries for TCP connections to `dport` from `src` (one line each). */
export async function conntrackLines(fwNs: string, src: string, dport: number): Promise<string[]> {
  const fam = src.includes(':') ? 'ipv6' : 'ipv4';
  const r = await runIn(
    fwNs,
    ['conntrack', '-L', '-f', fam, '-p', 'tcp', '--orig-src', src, '--orig-port-dst', String(dport)],
    {
      allowFail: true,
    },
  );
  return r.stdout.split('\n').filter((l) => l.startsWith('tcp'));
}
