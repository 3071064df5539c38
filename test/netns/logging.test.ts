// Issue 10 item 5, as the administrator meets it: `logging: true` on forward and deny services through
// `tzorp run`. Each forwarded and each denied connection (TCP and UDP, IPv4 and IPv6) gives one log line
// from the kernel's log, "Starting forwarded session" / "Session denied", with the addresses, ports,
// zones, rule id and service; a service with `logging: false` gives none; metrics count them.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { ADDR, createLab, netnsSkipReason } from '../harness/netns.ts';

const skip = netnsSkipReason();
const TZ = [process.execPath, 'bin/tzorp'];
const dir = mkdtempSync(join(tmpdir(), 'tzorp-logging-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const POLICY = `zones:
  lan:
    addresses: [198.18.1.0/24, "2001:db8:1::/64"]
  servers:
    addresses: [198.18.2.0/24, "2001:db8:2::/64"]
services:
  out: { type: forward }
  quiet: { type: forward, logging: false }
  refuse: { type: deny, ipv4: tcp-reset, ipv6: tcp-reset }
rules:
  - { id: 7, service: out, proto: [tcp, udp], dst_port: 5000, src_zone: lan, dst_zone: servers }
  - { id: 8, service: quiet, proto: tcp, dst_port: 5001, src_zone: lan, dst_zone: servers }
  - { id: 9, service: refuse, proto: [tcp, udp], dst_port: 5002, src_zone: lan, dst_zone: servers }
management:
  - { proto: tcp, dst_port: 22, src_zone: lan }
`;

interface Line {
  msg: string;
  [k: string]: unknown;
}

test('logging: one kernel log line per forwarded and per denied connection, none with logging off', {
  skip,
  timeout: 300_000,
}, async () => {
  const lab = await createLab();
  try {
    const policy = join(dir, `${lab.id}.yaml`);
    writeFileSync(policy, POLICY);
    const control = join(dir, `${lab.id}.sock`);
    const d = lab.spawn('fw', [
      ...TZ,
      'run',
      policy,
      '--control',
      control,
      '--workers',
      '1',
      '--log-format',
      'json',
      '--metrics',
      '127.0.0.1:0',
    ]);
    await d.waitFor(/tzorp running/, 120_000);
    const send = async (proto: 'tcp' | 'udp', host: string, port: number) => {
      const args = proto === 'udp' ? ['-u', '-w', '1', host, String(port)] : ['-w', '2', host, String(port)];
      await lab.exec('client', ['nc', ...args], { input: 'x', allowFail: true, timeoutMs: 20_000 });
    };
    for (const host of [ADDR.server4, ADDR.server6]) {
      await send('tcp', host, 5000);
      await send('udp', host, 5000);
      await send('tcp', host, 5001);
      await send('tcp', host, 5002);
      await send('udp', host, 5002);
    }
    const lines = (): Line[] =>
      d
        .stderr()
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as Line)
        .filter((l) => l.msg === 'Starting forwarded session' || l.msg === 'Session denied');
    for (let i = 0; i < 100 && lines().length < 8; i++) await new Promise((r) => setTimeout(r, 100));
    const got = lines()
      .map(
        (l) =>
          `${l.msg}|${l.proto}|${l.client_address}|${l.client_zone}|${l.server_address}:${l.server_port}|${l.server_zone}|${l.rule_id}|${l.service}`,
      )
      .sort();
    const want: string[] = [];
    for (const [c, s] of [
      [ADDR.client4, ADDR.server4],
      [ADDR.client6, ADDR.server6],
    ] as const) {
      for (const p of ['tcp', 'udp']) {
        want.push(`Starting forwarded session|${p}|${c}|lan|${s}:5000|servers|7|out`);
        want.push(`Session denied|${p}|${c}|lan|${s}:5002|servers|9|refuse`);
      }
    }
    assert.deepEqual(got, want.sort());
    // a quiet service's connections passed but were not logged (the count above is exact); the
    // metrics count each line
    const address = /"address":"(127\.0\.0\.1:\d+)","msg":"Metrics listener ready"/.exec(d.stderr())?.[1];
    assert.ok(address, 'the metrics listener logged its address');
    const metrics = (await lab.exec('fw', ['curl', '-s', `http://${address}/metrics`])).stdout;
    assert.match(metrics, /tzorp_kernel_sessions_logged_total\{verdict="FORWARDED"\} 4\n/);
    assert.match(metrics, /tzorp_kernel_sessions_logged_total\{verdict="DENIED"\} 4\n/);
    d.kill('SIGTERM');
    await d.exited();
  } finally {
    await lab.destroy();
  }
});
