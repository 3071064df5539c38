// The NFLOG reader's parser: netlink datagrams as the kernel sends them for tzorp's log rules, built by
// hand here, and the malformed ones it must skip without throwing.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { nflogPrefix, parseNflogDatagram } from '../../../src/kernel/nflog.ts';

const NFULA_MARK = 2;
const NFULA_PAYLOAD = 9;
const NFULA_PREFIX = 10;

function attr(type: number, data: Buffer): Buffer {
  const len = 4 + data.length;
  const b = Buffer.alloc((len + 3) & ~3);
  b.writeUInt16LE(len, 0);
  b.writeUInt16LE(type, 2);
  data.copy(b, 4);
  return b;
}

function message(type: number, attrs: Buffer[]): Buffer {
  const body = Buffer.concat([Buffer.from([2, 0, 0x10, 0x92]), ...attrs]); // nfgenmsg: AF_INET, v0, group 4242
  const h = Buffer.alloc(16);
  h.writeUInt32LE(16 + body.length, 0);
  h.writeUInt16LE(type, 4);
  return Buffer.concat([h, body]);
}

const PACKET = (4 << 8) | 0;

function ipv4(proto: number, src: number[], dst: number[], sport: number, dport: number): Buffer {
  const b = Buffer.alloc(28);
  b[0] = 0x45;
  b[9] = proto;
  Buffer.from(src).copy(b, 12);
  Buffer.from(dst).copy(b, 16);
  b.writeUInt16BE(sport, 20);
  b.writeUInt16BE(dport, 22);
  return b;
}

function ipv6(proto: number, src: string, dst: string, sport: number, dport: number): Buffer {
  const b = Buffer.alloc(48);
  b[0] = 0x60;
  b[6] = proto;
  Buffer.from(src, 'hex').copy(b, 8);
  Buffer.from(dst, 'hex').copy(b, 24);
  b.writeUInt16BE(sport, 40);
  b.writeUInt16BE(dport, 42);
  return b;
}

const mark = (m: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(m, 0);
  return b;
};
const prefix = (s: string) => Buffer.from(`${s}\0`, 'latin1');

test('nflog: one datagram with a forwarded IPv4 TCP and a denied IPv6 UDP connection', () => {
  const dgram = Buffer.concat([
    message(PACKET, [
      attr(NFULA_PREFIX, prefix(nflogPrefix('forward', 3))),
      attr(NFULA_MARK, mark(0x80000007)),
      attr(NFULA_PAYLOAD, ipv4(6, [198, 18, 1, 2], [198, 18, 2, 2], 40000, 5000)),
    ]),
    message(PACKET, [
      attr(NFULA_PREFIX, prefix(nflogPrefix('deny', 5))),
      attr(NFULA_MARK, mark(9)),
      attr(
        NFULA_PAYLOAD,
        ipv6(17, '20010db8000100000000000000000002', '20010db8000200000000000000000002', 53000, 5002),
      ),
    ]),
  ]);
  assert.deepEqual(parseNflogDatagram(dgram), [
    {
      verdict: 'forward',
      sid: 3,
      mark: 0x80000007,
      family: 4,
      proto: 6,
      src: '198.18.1.2',
      dst: '198.18.2.2',
      srcPort: 40000,
      dstPort: 5000,
    },
    {
      verdict: 'deny',
      sid: 5,
      mark: 9,
      family: 6,
      proto: 17,
      src: '2001:db8:1::2',
      dst: '2001:db8:2::2',
      srcPort: 53000,
      dstPort: 5002,
    },
  ]);
});

test('nflog: ICMP has no ports; a truncated transport header gives ports 0', () => {
  const icmp = ipv4(1, [198, 18, 1, 2], [198, 18, 2, 2], 0x0800, 0);
  const short = ipv4(6, [198, 18, 1, 2], [198, 18, 2, 2], 1, 2).subarray(0, 22);
  const got = parseNflogDatagram(
    Buffer.concat([
      message(PACKET, [attr(NFULA_PREFIX, prefix('tzorp D 1')), attr(NFULA_PAYLOAD, icmp)]),
      message(PACKET, [attr(NFULA_PREFIX, prefix('tzorp F 2')), attr(NFULA_PAYLOAD, short)]),
    ]),
  );
  assert.deepEqual(
    got.map((c) => [c.proto, c.srcPort, c.dstPort, c.mark]),
    [
      [1, 0, 0, 0],
      [6, 0, 0, 0],
    ],
  );
});

test('nflog: other prefixes, other message types, missing payloads and garbage are skipped', () => {
  const good = message(PACKET, [
    attr(NFULA_PREFIX, prefix('tzorp F 1')),
    attr(NFULA_PAYLOAD, ipv4(17, [1, 2, 3, 4], [5, 6, 7, 8], 1, 2)),
  ]);
  const cases: Buffer[] = [
    message(PACKET, [
      attr(NFULA_PREFIX, prefix('other F 1')),
      attr(NFULA_PAYLOAD, ipv4(6, [1, 1, 1, 1], [2, 2, 2, 2], 1, 2)),
    ]),
    message(PACKET, [
      attr(NFULA_PREFIX, prefix('tzorp X 1')),
      attr(NFULA_PAYLOAD, ipv4(6, [1, 1, 1, 1], [2, 2, 2, 2], 1, 2)),
    ]),
    message(PACKET, [attr(NFULA_PREFIX, prefix('tzorp F 1'))]),
    message(PACKET, [
      attr(NFULA_PREFIX, prefix('tzorp F 1')),
      attr(NFULA_PAYLOAD, Buffer.from([0x45, 0, 0])),
    ]),
    message(PACKET, [
      attr(NFULA_PREFIX, prefix('tzorp F 1')),
      attr(NFULA_PAYLOAD, Buffer.from([0x70, 1, 2, 3])),
    ]),
    message((4 << 8) | 1, [attr(NFULA_PREFIX, prefix('tzorp F 1'))]),
  ];
  for (const c of cases) assert.deepEqual(parseNflogDatagram(Buffer.concat([c, good])).length, 1);
  // a header whose length runs past the datagram ends the parse; no throw on any prefix of a good one
  for (let n = 0; n <= good.length; n++) {
    const r = parseNflogDatagram(good.subarray(0, n));
    assert.equal(r.length, n === good.length ? 1 : 0);
  }
  const lying = Buffer.from(good);
  lying.writeUInt16LE(0xfff0, 16 + 4); // first attribute claims more than there is
  assert.deepEqual(parseNflogDatagram(lying), []);
});
