// Per-client limits end to end (issue 16): `tzorp run` in the lab's firewall, real clients (nc, curl)
// in the client namespace, peer-server.py in the server namespace. A refused connection is refused by
// tzorp before any server connection (the server never sees it), logged, and counted in status; far
// beyond the limits the kernel drops new connections before they reach tzorp (nft counters).
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import type { StatusResult } from '../../../src/daemon/control-protocol.ts';
import { ADDR, createLab, type Lab, type LabProcess, netnsSkipReason } from '../../harness/netns.ts';

const skip = netnsSkipReason();
const TZ = [process.execPath, 'bin/tzorp'];
const dir = mkdtempSync(join(tmpdir(), 'tzorp-limits-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const POLICY = `zones:
  clients:
    addresses: [198.18.1.0/24, "2001:db8:1::/64"]
  servers:
    addresses: [198.18.2.0/24, "2001:db8:2::/64"]
services:
  held:
    type: proxy
    proxy: plug
    max_sessions_per_client: 2
  rated:
    type: proxy
    proxy: plug
    new_sessions_per_client: { rate: 2, per_seconds: 3600 }
rules:
  - { id: 1, service: held, proto: tcp, src_zone: clients, dst_zone: servers, dst_port: 8081 }
  - { id: 2, service: rated, proto: tcp, src_zone: clients, dst_zone: servers, dst_port: 8080 }
`;

async function status(lab: Lab, control: string): Promise<StatusResult> {
  const r = await lab.exec('fw', [...TZ, 'status', '--json', '--control', control], { timeoutMs: 60_000 });
  return JSON.parse(r.stdout) as StatusResult;
}

function count(text: string, re: RegExp): number {
  return [...text.matchAll(new RegExp(re.source, `${re.flags}g`))].length;
}

test('max_sessions_per_client and new_sessions_per_client through tzorp run, IPv4 and IPv6', {
  skip,
  timeout: 300_000,
}, async () => {
  const lab = await createLab();
  try {
    const srv = lab.spawn('server', ['python3', 'test/netns/daemon/peer-server.py']);
    await srv.waitFor(/ready/);
    const policy = join(dir, `${lab.id}.yaml`);
    writeFileSync(policy, POLICY);
    const control = join(dir, `${lab.id}.sock`);
    const d = lab.spawn('fw', [...TZ, 'run', policy, '--control', control, '--workers', '2']);
    await d.waitFor(/tzorp running/, 120_000);

    // --- max_sessions_per_client: 2 held sessions from 198.18.1.2; the third is refused by tzorp
    const held: LabProcess[] = [];
    for (let i = 0; i < 2; i++) {
      const p = lab.spawn('client', ['nc', ADDR.server4, '8081']);
      await p.waitFor(/^peer /m);
      held.push(p);
    }
    const third = await lab.exec(
      'client',
      ['curl', '-s', '--max-time', '5', `telnet://${ADDR.server4}:8081`],
      {
        allowFail: true,
      },
    );
    assert.notEqual(third.code, 0, 'the third session is refused');
    assert.doesNotMatch(third.stdout, /peer/);
    await d.waitFor(
      /Connection refused, too many sessions from this client; .*limit='max_sessions_per_client'/,
    );
    await d.waitFor(/verdict='DENIED_BY_LIMIT'.*|DENIED_BY_LIMIT/);
    // Another client address (IPv6) still gets its own two.
    const v6 = lab.spawn('client', ['nc', ADDR.server6, '8081']);
    await v6.waitFor(/^peer /m);
    held.push(v6);
    assert.equal(count(srv.stdout(), /^accept 8081 /m), 3, 'the refused connection never reached the server');
    // A slot comes back when a session ends.
    held[0]!.kill('SIGTERM');
    let again: Awaited<ReturnType<Lab['exec']>> | null = null;
    for (let i = 0; i < 50; i++) {
      again = await lab.exec('client', ['curl', '-s', '--max-time', '2', `telnet://${ADDR.server4}:8081`], {
        allowFail: true,
      });
      if (/peer/.test(again.stdout)) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    assert.match(again!.stdout, /peer/);
    for (const p of held) p.kill('SIGTERM');

    // --- new_sessions_per_client: 2 per hour. Sessions 1-2 pass, 3-4 are refused by tzorp (logged),
    // and beyond twice the limit the kernel drops the SYNs before they reach tzorp.
    const outcomes: string[] = [];
    for (let i = 0; i < 7; i++) {
      const r = await lab.exec(
        'client',
        ['curl', '-s', '--connect-timeout', '1', '--max-time', '3', `telnet://${ADDR.server4}:8080`],
        { allowFail: true },
      );
      outcomes.push(/peer/.test(r.stdout) ? 'served' : r.code === 28 ? 'dropped' : 'refused');
    }
    assert.deepEqual(outcomes.slice(0, 2), ['served', 'served']);
    assert.deepEqual(outcomes.slice(2, 4), ['refused', 'refused'], outcomes.join(' '));
    assert.deepEqual(outcomes.slice(4), ['dropped', 'dropped', 'dropped'], outcomes.join(' '));
    await d.waitFor(/Connection refused, client starts sessions too fast; .*limit='new_sessions_per_client'/);
    assert.equal(count(srv.stdout(), /^accept 8080 /m), 2);
    // IPv6 is another client: its own bucket.
    const r6 = await lab.exec(
      'client',
      ['curl', '-s', '--max-time', '5', `telnet://[${ADDR.server6}]:8080`],
      {
        allowFail: true,
      },
    );
    assert.match(r6.stdout, /peer/);

    const st = await status(lab, control);
    const byName = new Map(st.services.map((s) => [s.name, s]));
    assert.equal(byName.get('held')!.sessionsRefusedBy.max_sessions_per_client, 1);
    assert.equal(byName.get('rated')!.sessionsRefusedBy.new_sessions_per_client, 2);
    assert.equal(byName.get('rated')!.sessionsRefused, 2, 'kernel drops never reached tzorp');
    const nft = await lab.exec('fw', ['nft', 'list', 'chain', 'inet', 'tzorp', 'svc_rated']);
    const m = /new_sessions_per_client backstop/.test(nft.stdout)
      ? /limit rate over 4\/hour burst 4 packets \} counter packets (\d+)/.exec(nft.stdout)
      : null;
    assert.ok(m && Number(m[1]) >= 3, nft.stdout);
    d.kill('SIGTERM');
    await d.exited();
  } finally {
    await lab.destroy();
  }
});
