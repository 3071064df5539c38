// The daemon's reader of the kernel's log (issue 10, item 5): forward and deny services with
// `logging: true` have their first packets logged by nft to an NFLOG group (src/kernel/compile), and
// this turns each into a log line like Zorp's kernel messages ("Starting forwarded session",
// "Session denied") with addresses, zones, rule id and service, and counts it. The socket is read on
// the thread pool (one blocking read at a time: it holds one of its threads while idle); each read
// returns within a second (the socket's receive timeout), so a stopped reader closes the fd and lets
// the process end.
import { close, read } from 'node:fs';
import { ZoneTrie } from '../engine/zone-trie.ts';
import { type LoggedConnection, parseNflogDatagram } from '../kernel/nflog.ts';
import type { Policy } from '../policy/index.ts';

export interface KernelLogEntry {
  message: 'Starting forwarded session' | 'Session denied';
  fields: Record<string, string | number | null>;
}

const PROTOS: Record<number, string> = { 1: 'icmp', 6: 'tcp', 17: 'udp', 58: 'icmpv6', 132: 'sctp' };

/** What one logged connection says, in the terms of the policy that decided it. Pure. */
export function describeLogged(c: LoggedConnection, policy: Policy, zones: ZoneTrie): KernelLogEntry {
  const mask = policy.settings.serviceMarkMask;
  const unit = (mask & -mask) >>> 0;
  const service = [...policy.services.values()].find((s) => s.id * unit === c.sid)?.name ?? null;
  const rule = (c.mark & ~policy.settings.tproxyMark) >>> 0;
  return {
    message: c.verdict === 'forward' ? 'Starting forwarded session' : 'Session denied',
    fields: {
      verdict: c.verdict === 'forward' ? 'FORWARDED' : 'DENIED',
      proto: PROTOS[c.proto] ?? c.proto,
      client_address: c.src,
      client_port: c.srcPort,
      client_zone: zones.lookup(c.src)?.name ?? null,
      server_address: c.dst,
      server_port: c.dstPort,
      server_zone: zones.lookup(c.dst)?.name ?? null,
      rule_id: rule === 0 ? null : rule,
      service,
    },
  };
}

export class KernelLog {
  private closed = false;
  private zones: { policy: Policy; trie: ZoneTrie } | null = null;

  constructor(
    private readonly fd: number,
    private readonly policy: () => Policy | null,
    private readonly emit: (e: KernelLogEntry) => void,
  ) {}

  start(): void {
    const buf = Buffer.allocUnsafe(65536);
    const next = (): void => {
      read(this.fd, buf, 0, buf.length, null, (err, n) => {
        if (this.closed) {
          close(this.fd, () => {});
          return;
        }
        if (err) {
          // EAGAIN: the receive timeout, nothing logged; ENOBUFS: the kernel dropped messages when we
          // were slow. Either way the socket goes on; anything else ends the reader.
          const code = (err as NodeJS.ErrnoException).code;
          if (code !== 'EAGAIN' && code !== 'EWOULDBLOCK' && code !== 'ENOBUFS') {
            this.onError?.(err);
            close(this.fd, () => {});
            return;
          }
          if (code === 'ENOBUFS') this.onError?.(err);
        } else {
          this.deliver(buf.subarray(0, n));
        }
        next();
      });
    };
    next();
  }

  private deliver(datagram: Buffer): void {
    const policy = this.policy();
    if (!policy) return;
    if (this.zones?.policy !== policy) this.zones = { policy, trie: new ZoneTrie(policy.zones.values()) };
    for (const c of parseNflogDatagram(datagram)) this.emit(describeLogged(c, policy, this.zones.trie));
  }

  /** Told of a read error (ENOBUFS: entries were lost; anything else: the reader stopped). */
  onError: ((e: Error) => void) | null = null;

  /** Stops reading; the fd is closed when the read in flight returns (within a second). */
  close(): void {
    this.closed = true;
  }
}
