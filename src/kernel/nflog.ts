// The kernel's log of decided connections (issue 10, item 5): the nft rules tzorp compiles for
// services with `logging: true` send each new forwarded or denied connection's first packet to an
// NFLOG group with the prefix `tzorp <F|D> <service id>`; the daemon reads that group's netlink
// socket (src/native/tzorp_nflog.c). This file parses what the socket delivers. Pure, sans-IO: a
// datagram in, the logged connections out; malformed parts are skipped, never thrown.
import { formatAddress } from '../policy/address.ts';

/** The prefix tzorp's log rules carry: `tzorp F 3` (forward service 3), `tzorp D 5` (deny). */
export function nflogPrefix(kind: 'forward' | 'deny', sid: number): string {
  return `tzorp ${kind === 'forward' ? 'F' : 'D'} ${sid}`;
}

export interface LoggedConnection {
  verdict: 'forward' | 'deny';
  /** The service id in the prefix (the generation's service ids). */
  sid: number;
  /** The packet mark when it was logged: tproxy mark | rule id. */
  mark: number;
  family: 4 | 6;
  proto: number;
  src: string;
  dst: string;
  /** 0 for protocols without ports. */
  srcPort: number;
  dstPort: number;
}

const NFULNL_MSG_PACKET = (4 << 8) | 0; // NFNL_SUBSYS_ULOG, NFULNL_MSG_PACKET
const NFULA_MARK = 2;
const NFULA_PAYLOAD = 9;
const NFULA_PREFIX = 10;
const PREFIX = /^tzorp ([FD]) (\d{1,5})$/;

const align4 = (n: number): number => (n + 3) & ~3;

/** Every tzorp-logged connection in one netlink datagram (others' groups and prefixes ignored). */
export function parseNflogDatagram(buf: Uint8Array): LoggedConnection[] {
  const out: LoggedConnection[] = [];
  const v = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  let off = 0;
  while (off + 16 <= buf.length) {
    const len = v.getUint32(off, true);
    const type = v.getUint16(off + 4, true);
    if (len < 16 || off + len > buf.length) break;
    if (type === NFULNL_MSG_PACKET) {
      const c = parsePacketMessage(buf.subarray(off + 16, off + len));
      if (c) out.push(c);
    }
    off += align4(len);
  }
  return out;
}

function parsePacketMessage(body: Uint8Array): LoggedConnection | null {
  // struct nfgenmsg (4 bytes), then attributes
  const v = new DataView(body.buffer, body.byteOffset, body.byteLength);
  let prefix: string | null = null;
  let mark = 0;
  let payload: Uint8Array | null = null;
  let off = 4;
  while (off + 4 <= body.length) {
    const alen = v.getUint16(off, true);
    const atype = v.getUint16(off + 2, true) & 0x3fff;
    if (alen < 4 || off + alen > body.length) break;
    const data = body.subarray(off + 4, off + alen);
    if (atype === NFULA_PREFIX) {
      const end = data.indexOf(0);
      prefix = Buffer.from(data.subarray(0, end < 0 ? data.length : end)).toString('latin1');
    } else if (atype === NFULA_MARK && data.length >= 4) {
      mark = new DataView(data.buffer, data.byteOffset, 4).getUint32(0, false);
    } else if (atype === NFULA_PAYLOAD) {
      payload = data;
    }
    off += align4(alen);
  }
  const m = prefix === null ? null : PREFIX.exec(prefix.trim());
  if (!m || payload === null) return null;
  const ip = parseIpHeader(payload);
  if (!ip) return null;
  return { verdict: m[1] === 'F' ? 'forward' : 'deny', sid: Number(m[2]), mark, ...ip };
}

function parseIpHeader(
  p: Uint8Array,
): Pick<LoggedConnection, 'family' | 'proto' | 'src' | 'dst' | 'srcPort' | 'dstPort'> | null {
  if (p.length < 1) return null;
  const version = p[0]! >> 4;
  let family: 4 | 6;
  let proto: number;
  let l4: number;
  let src: string;
  let dst: string;
  if (version === 4) {
    const ihl = (p[0]! & 0x0f) * 4;
    if (p.length < 20 || ihl < 20) return null;
    family = 4;
    proto = p[9]!;
    src = formatAddress(4, BigInt(Buffer.from(p.subarray(12, 16)).readUInt32BE(0)));
    dst = formatAddress(4, BigInt(Buffer.from(p.subarray(16, 20)).readUInt32BE(0)));
    l4 = ihl;
  } else if (version === 6) {
    if (p.length < 40) return null;
    family = 6;
    proto = p[6]!;
    src = formatAddress(6, BigInt(`0x${Buffer.from(p.subarray(8, 24)).toString('hex')}`));
    dst = formatAddress(6, BigInt(`0x${Buffer.from(p.subarray(24, 40)).toString('hex')}`));
    l4 = 40;
  } else {
    return null;
  }
  const ported = proto === 6 || proto === 17 || proto === 132;
  const havePorts = ported && p.length >= l4 + 4;
  return {
    family,
    proto,
    src,
    dst,
    srcPort: havePorts ? (p[l4]! << 8) | p[l4 + 1]! : 0,
    dstPort: havePorts ? (p[l4 + 2]! << 8) | p[l4 + 3]! : 0,
  };
}
