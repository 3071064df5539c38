// A TCP probe run inside a lab node: connects once and says what happened, in words a firewall
// administrator uses — connected (and the first line the server sent), reset (refused: a TCP RST,
// e.g. a deny service's tcp-reset), unreachable (an ICMP error), or timeout (dropped silently).
// `node --import tsx src/lab/probe-main.ts HOST PORT [SRC]` prints one ProbeResult as JSON.

import { connect } from 'node:net';
import { DEFAULTS } from '../defaults.ts';

export type ProbeOutcome = 'connected' | 'reset' | 'unreachable' | 'timeout' | 'error';

export interface ProbeResult {
  outcome: ProbeOutcome;
  /** errno name for failures (ECONNREFUSED, EHOSTUNREACH, ...). */
  errno: string | null;
  /** First line the server sent, if it sent one before the probe's read timeout. */
  firstLine: string | null;
  localAddress: string | null;
  localPort: number | null;
}

/** Pure: the outcome an errno stands for on Linux (ICMP errors map to these, RFC 1122 §4.2.3.9). */
export function outcomeOf(errno: string): ProbeOutcome {
  switch (errno) {
    case 'ECONNREFUSED':
    case 'ECONNRESET':
      return 'reset';
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
    case 'EACCES':
    case 'EPERM':
    case 'EPROTO':
      return 'unreachable';
    case 'ETIMEDOUT':
      return 'timeout';
    default:
      return 'error';
  }
}

export function probe(host: string, port: number, src?: string): Promise<ProbeResult> {
  return new Promise((resolve) => {
    const sock = connect({ host, port, ...(src ? { localAddress: src } : {}) });
    let done = false;
    let firstLine: string | null = null;
    const finish = (r: Omit<ProbeResult, 'firstLine' | 'localAddress' | 'localPort'>) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      resolve({
        ...r,
        firstLine,
        localAddress: sock.localAddress ?? null,
        localPort: sock.localPort ?? null,
      });
      sock.destroy();
    };
    let timer = setTimeout(
      () => finish({ outcome: 'timeout', errno: 'ETIMEDOUT' }),
      DEFAULTS.labProbeConnectTimeoutMs,
    );
    sock.on('connect', () => {
      clearTimeout(timer);
      timer = setTimeout(() => finish({ outcome: 'connected', errno: null }), DEFAULTS.labProbeReadTimeoutMs);
    });
    let buf = '';
    sock.on('data', (d) => {
      buf += d.toString('latin1');
      const nl = buf.indexOf('\n');
      if (nl >= 0) {
        firstLine = buf.slice(0, nl).replace(/\r$/, '');
        finish({ outcome: 'connected', errno: null });
      }
    });
    sock.on('end', () => finish({ outcome: 'connected', errno: null }));
    sock.on('error', (e: NodeJS.ErrnoException) => {
      const errno = e.code ?? 'EUNKNOWN';
      // a reset after the connection was established is still "connected" for the probe's purpose
      if (sock.remotePort !== undefined && firstLine !== null) finish({ outcome: 'connected', errno: null });
      else finish({ outcome: outcomeOf(errno), errno });
    });
  });
}
