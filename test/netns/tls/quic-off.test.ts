// QUIC off (docs/tls.md, "QUIC"): a policy that filters HTTPS on TCP denies UDP/443 with a
// port-unreachable, so browsers fall back to TCP at once instead of reaching the sites past every TLS
// rule. Through `tzorp run` in namespaces, IPv4 and IPv6: a datagram to udp/443 is answered by the
// firewall with ICMP port unreachable (the client's connected UDP socket gets ECONNREFUSED) and never
// reaches the server, which does listen there; TCP/443 still goes through the TLS service.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { ADDR, createLab, type Lab, type LabProcess, netnsSkipReason } from '../../harness/netns.ts';
import { testCa, testLeaf } from './test-ca.ts';
import { LAB_ZONES, runTzorp } from './tls-lab.ts';

const skip = netnsSkipReason();
const dir = mkdtempSync(join(tmpdir(), 'tzorp-quic-off-'));
after(() => rmSync(dir, { recursive: true, force: true }));

let lab: Lab;
let https: LabProcess;
let udp: LabProcess;
let ca: { cert: string; key: string };

// A UDP listener on [::]:443 (both families) that prints every datagram it gets.
const UDP_SERVER = `
import socket, sys
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
s.bind(('::', 443))
print('ready', flush=True)
while True:
    d, a = s.recvfrom(2048)
    print('got', d.decode(errors='replace'), flush=True)
`;

// A client: a connected UDP socket sends three datagrams; ECONNREFUSED (the ICMP port unreachable
// turned into an error on the socket) or silence.
const udpClient = (host: string) => `
import socket, time
fam = socket.AF_INET6 if ':' in '${host}' else socket.AF_INET
s = socket.socket(fam, socket.SOCK_DGRAM)
s.settimeout(2)
s.connect(('${host}', 443))
out = 'silence'
for i in range(3):
    try:
        s.send(b'quic initial %d' % i)
        s.recv(100)
        out = 'answered'
        break
    except ConnectionRefusedError:
        out = 'refused'
        break
    except socket.timeout:
        pass
print(out)
`;

before(async () => {
  if (skip) return;
  ca = testCa(dir, 'quic-ca');
  const leaf = testLeaf(
    dir,
    'quic',
    ca,
    'www.example.org',
    `DNS:www.example.org,IP:${ADDR.server4},IP:${ADDR.server6}`,
  );
  lab = await createLab();
  https = lab.spawnTs('server', 'test/netns/tls/inspect-server.ts', [`443:${leaf.cert}:${leaf.key}`]);
  await https.waitFor(/ready/);
  writeFileSync(join(dir, 'udp-server.py'), UDP_SERVER);
  udp = lab.spawn('server', ['python3', join(dir, 'udp-server.py')]);
  await udp.waitFor(/ready/);
  const policy = join(dir, `${lab.id}.yaml`);
  writeFileSync(
    policy,
    `${LAB_ZONES}services:
  web_sni_only:
    type: proxy
    proxy: plug
    tls:
      mode: passthrough
      sni: { allow: [www.example.org] }
  quic_off:
    type: deny
    ipv4: icmp-port-unreachable
    ipv6: icmp-port-unreachable
rules:
  - { id: 1, service: web_sni_only, proto: tcp, dst_port: 443, src_zone: clients, dst_zone: servers }
  - { id: 2, service: quic_off, proto: udp, dst_port: 443, src_zone: clients, dst_zone: servers }
management:
  - { proto: tcp, dst_port: 22, src_zone: clients }
`,
  );
  await runTzorp(lab, policy, join(dir, `${lab.id}.sock`));
});

after(async () => {
  if (skip) return;
  await lab?.destroy();
});

for (const family of [4, 6] as const) {
  const server = family === 4 ? ADDR.server4 : ADDR.server6;
  test(`IPv${family}: udp/443 is refused by the firewall (port unreachable) and never reaches the server; tcp/443 goes through`, {
    skip,
    timeout: 60_000,
  }, async () => {
    writeFileSync(join(dir, `udp-client-${family}.py`), udpClient(server));
    const r = await lab.exec('client', ['python3', join(dir, `udp-client-${family}.py`)], {
      allowFail: true,
      timeoutMs: 30_000,
    });
    assert.equal(r.stdout.trim(), 'refused', r.stdout + r.stderr);
    assert.doesNotMatch(udp.stdout(), /got /, 'no datagram reached the server');
    const t = await lab.exec(
      'client',
      [
        'curl',
        '-sS',
        '--max-time',
        '20',
        '--http1.1', // (the test server lists h2 in its ALPN but speaks HTTP/1.1 only)
        '--cacert',
        ca.cert,
        '--resolve',
        `www.example.org:443:${family === 4 ? server : `[${server}]`}`,
        'https://www.example.org/',
      ],
      { allowFail: true, timeoutMs: 40_000 },
    );
    assert.equal(t.code, 0, t.stderr);
    assert.match(t.stdout, /^hello from www\.example\.org/);
  });
}
