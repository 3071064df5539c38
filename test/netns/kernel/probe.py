#!/usr/bin/env python3
# Sends crafted first packets ("probes") out of given interfaces with AF_PACKET, so a test controls every
# field the kernel decision looks at: source and destination address, protocol, ports, ICMP type/code,
# incoming interface. Each probe carries a tag in the IPv4 identification or the IPv6 flow label, which an
# observer chain in the firewall records together with the conntrack mark.
# stdin: one JSON object per line {iface, dmac, family, src, dst, proto, sport, dport, itype, icode, tag}
import json, socket, struct, sys, time

def csum(data: bytes) -> int:
    if len(data) % 2:
        data += b'\0'
    s = sum(struct.unpack('!%dH' % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xffff) + (s >> 16)
    return (~s) & 0xffff

def l4(p, pseudo):
    proto = p['proto']
    if proto == 6:
        h = struct.pack('!HHIIBBHHH', p['sport'], p['dport'], 1000, 0, 5 << 4, 0x02, 64240, 0, 0)
        c = csum(pseudo(len(h)) + h)
        return h[:16] + struct.pack('!H', c) + h[18:]
    if proto == 17:
        payload = b'probe'
        h = struct.pack('!HHHH', p['sport'], p['dport'], 8 + len(payload), 0) + payload
        c = csum(pseudo(len(h)) + h) or 0xffff
        return h[:6] + struct.pack('!H', c) + h[8:]
    if proto in (1, 58):
        h = struct.pack('!BBHHH', p['itype'], p['icode'], 0, p['tag'] & 0xffff, 1) + b'probe'
        c = csum((pseudo(len(h)) if proto == 58 else b'') + h)
        return h[:2] + struct.pack('!H', c) + h[4:]
    return b'probe-payload'

def frame(p, smac):
    dmac = bytes.fromhex(p['dmac'].replace(':', ''))
    proto = p['proto']
    if p['family'] == 4:
        s, d = socket.inet_pton(socket.AF_INET, p['src']), socket.inet_pton(socket.AF_INET, p['dst'])
        pseudo = lambda n: s + d + struct.pack('!BBH', 0, proto, n)
        body = l4(p, pseudo)
        hdr = struct.pack('!BBHHHBBH4s4s', 0x45, 0, 20 + len(body), p['tag'] & 0xffff, 0, 64, proto, 0, s, d)
        hdr = hdr[:10] + struct.pack('!H', csum(hdr)) + hdr[12:]
        return dmac + smac + b'\x08\x00' + hdr + body
    s, d = socket.inet_pton(socket.AF_INET6, p['src']), socket.inet_pton(socket.AF_INET6, p['dst'])
    pseudo = lambda n: s + d + struct.pack('!I3xB', n, proto)
    body = l4(p, pseudo)
    hdr = struct.pack('!IHBB16s16s', (6 << 28) | (p['tag'] & 0xfffff), len(body), proto, 64, s, d)
    return dmac + smac + b'\x86\xdd' + hdr + body

socks = {}
n = 0
for line in sys.stdin:
    if not line.strip():
        continue
    p = json.loads(line)
    if p['iface'] not in socks:
        so = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
        so.bind((p['iface'], 0))
        socks[p['iface']] = (so, so.getsockname()[4])
    so, smac = socks[p['iface']]
    so.send(frame(p, smac))
    n += 1
    if n % 50 == 0:
        time.sleep(0.01)  # veth queues are deep, but let the firewall's softirq keep up
print(f'sent {n}', flush=True)
