// How tzorp's sockets acknowledge (issue 14): an HTTP service's listener delays its ACKs, so a
// request is acknowledged by the reply that follows it, and the server connection of an HTTP request
// lets its handshake's last ACK ride on the request, as HAProxy does on HTTP frontends. A plug
// service's listener keeps the kernel's default; a reload that changes a listener's proxy changes it.
// Read from the running daemon's own sockets (listener-acks.py) and on the wire (tcpdump).
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { ADDR, createLab, type Lab, netnsSkipReason } from '../../harness/netns.ts';

const skip = netnsSkipReason();
const TZ = [process.execPath, 'bin/tzorp'];
const dir = mkdtempSync(join(tmpdir(), 'tzorp-acks-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function policy(web: string, raw: string): string {
  return `zones:
  clients:
    addresses: [198.18.1.0/24, "2001:db8:1::/64"]
  servers:
    addresses: [198.18.2.0/24, "2001:db8:2::/64"]
services:
  web: { type: proxy, proxy: ${web}, listen_port: 50080 }
  raw: { type: proxy, proxy: ${raw}, listen_port: 50081 }
rules:
  - { id: 1, service: web, proto: tcp, src_zone: clients, dst_zone: servers, dst_port: 8000 }
  - { id: 2, service: raw, proto: tcp, src_zone: clients, dst_zone: servers, dst_port: 8001 }
`;
}

/** "<port> <family>" -> TCP_QUICKACK of the daemon's listening sockets on 50080 and 50081. */
async function quickAcks(lab: Lab): Promise<Record<string, number>> {
  const r = await lab.exec('fw', ['python3', 'test/netns/daemon/listener-acks.py', '50080', '50081']);
  const got: Record<string, number> = {};
  for (const line of r.stdout.trim().split('\n')) {
    const [port, family, v] = line.split(' ');
    got[`${port} ${family}`] = Number(v);
  }
  return got;
}

test('HTTP listeners delay their ACKs, plug listeners do not, a reload changes them; the server connection sends its ACK with the request', {
  skip,
  timeout: 300_000,
}, async () => {
  const lab = await createLab();
  try {
    const web = lab.spawn('server', ['python3', '-m', 'http.server', '--bind', '::', '8000']);
    await web.waitFor(/Serving HTTP/);
    const file = join(dir, `${lab.id}.yaml`);
    writeFileSync(file, policy('http', 'plug'));
    const control = join(dir, `${lab.id}.sock`);
    const d = lab.spawn('fw', [...TZ, 'run', file, '--control', control, '--workers', '1']);
    await d.waitFor(/tzorp running/, 120_000);
    // 0: delayed (TCP_QUICKACK off), 1: the kernel's default
    assert.deepEqual(await quickAcks(lab), { '50080 4': 0, '50080 6': 0, '50081 4': 1, '50081 6': 1 });

    // On the wire, fw -> server: SYN, then the request carrying the handshake's last ACK (no bare ACK).
    const dump = lab.spawn('server', ['tcpdump', '-i', 'any', '-nn', '-l', 'tcp port 8000']);
    await dump.waitFor(/listening on/);
    for (const url of [`http://${ADDR.server4}:8000/`, `http://[${ADDR.server6}]:8000/`]) {
      const r = await lab.exec('client', ['curl', '-so', '/dev/null', '-w', '%{http_code}', '-m', '10', url]);
      assert.equal(r.stdout, '200');
    }
    // (the last packets of the second connection: its FIN exchange follows the reply at once)
    await new Promise((r) => setTimeout(r, 500));
    dump.kill('SIGINT');
    await dump.exited();
    const fromFw = dump
      .stdout()
      .split('\n')
      .filter((l) => l.includes(` ${ADDR.fwServer4}.`) || l.includes(` ${ADDR.fwServer6}.`))
      .map((l) => / > [0-9a-f.:]+\.8000: Flags \[([^\]]+)\].* length (\d+)/.exec(l))
      .filter((m): m is RegExpExecArray => m !== null)
      .map((m) => `${m[1]} ${m[2] === '0' ? 'empty' : 'data'}`);
    // two connections: each SYN is followed by the request, which carries the ACK
    assert.deepEqual(fromFw.slice(0, 2), ['S empty', 'P. data'], dump.stdout());
    assert.equal(fromFw.filter((f) => f === 'S empty').length, 2, dump.stdout());
    for (let i = 0; i < fromFw.length; i++)
      if (fromFw[i] === 'S empty') assert.equal(fromFw[i + 1], 'P. data', dump.stdout());

    // A reload that swaps the proxies swaps the listeners' settings.
    writeFileSync(file, policy('plug', 'http'));
    const r = await lab.exec('fw', [...TZ, 'reload', '--control', control], { timeoutMs: 120_000 });
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(await quickAcks(lab), { '50080 4': 1, '50080 6': 1, '50081 4': 0, '50081 6': 0 });
    assert.doesNotMatch(d.stdout(), /Cannot set how a listener acknowledges/);
  } finally {
    await lab.destroy();
  }
});
