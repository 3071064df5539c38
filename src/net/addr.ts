// Addresses as the driver hands them to cores (types.ts `Addr`): the one canonical text
// (policy/address.ts canonicalAddress), IPv4 never in the ::ffff: form a dual-stack socket reports.
import { isIP } from 'node:net';
import { TzorpError } from '../errors.ts';
import { handleFd, nativeAvailable, socketAddrsOf } from '../native/index.ts';
import { canonicalAddress } from '../policy/index.ts';
import type { Addr } from '../proxy/core/types.ts';

/** Canonical text of an address literal; anything else (a host name, a link-local address with its
 * zone id) is kept as it is. */
export function canonicalHost(host: string): string {
  return canonicalAddress(host)?.host ?? host;
}

/** The family of an address literal (4 or 6); throws for a name (callers pass socket addresses and
 * resolved targets: a name here is a bug). */
export function familyOf(host: string): 4 | 6 {
  const f = isIP(host);
  if (f === 4 || f === 6) return f;
  throw new TzorpError('INTERNAL', `not an IP address: ${host}`);
}

export function makeAddr(host: string, port: number): Addr {
  const h = canonicalHost(host);
  return { host: h, port, family: familyOf(h) };
}

/** An Addr of an address text the native addon wrote (inet_ntop, IPv4 never as ::ffff:): canonical
 * already, so not parsed again. */
export function addonAddr(host: string, port: number): Addr {
  return { host, port, family: host.includes(':') ? 6 : 4 };
}

/** "1.2.3.4:80" / "[2001:db8::1]:80". */
export function formatAddr(a: { host: string; port: number }): string {
  return a.host.includes(':') ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`;
}

/** Zorp's SockAddr text form, e.g. AF_INET(1.2.3.4:80), for log lines. */
export function zorpAddr(a: Addr | null | undefined): string {
  if (!a) return '(NULL)';
  return `${a.family === 6 ? 'AF_INET6' : 'AF_INET'}(${formatAddr(a)})`;
}

/** Local and remote Addr of a connected socket, or null when the socket has none (closed). With the
 * native addon, one call reads both from the socket's descriptor (canonical text already, not parsed
 * again); without it, or for a socket without a descriptor of its own (TLS), Node's getters. */
export function socketAddrs(sock: {
  localAddress?: string | undefined;
  localPort?: number | undefined;
  remoteAddress?: string | undefined;
  remotePort?: number | undefined;
}): { local: Addr; remote: Addr } | null {
  const fd = handleFd(sock);
  if (fd >= 0 && nativeAvailable()) {
    const a = socketAddrsOf(fd);
    if (a === null) return null;
    if (a !== undefined) return { local: addonAddr(a[0], a[1]), remote: addonAddr(a[2], a[3]) };
  }
  if (
    !sock.localAddress ||
    !sock.remoteAddress ||
    sock.localPort === undefined ||
    sock.remotePort === undefined
  )
    return null;
  return {
    local: makeAddr(sock.localAddress, sock.localPort),
    remote: makeAddr(sock.remoteAddress, sock.remotePort),
  };
}
