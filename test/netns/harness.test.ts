// The lab itself: addresses, forwarding and clean-up (no tzorp involved).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { test } from 'node:test';
import { ADDR, createLab, netnsSkipReason, withLab } from '../harness/netns.ts';

const skip = netnsSkipReason();

test('client reaches server through the firewall over IPv4 and IPv6', { skip }, async () => {
  await withLab(
    { clientAddrs: ['198.18.10.5'], serverAddrs: ['198.18.20.7', '2001:db8:20::7'] },
    async (lab) => {
      await lab.exec('client', ['ping', '-c1', '-W2', ADDR.server4]);
      await lab.exec('client', ['ping', '-c1', '-W2', ADDR.server6]);
      await lab.exec('client', ['ping', '-c1', '-W2', '-I', '198.18.10.5', '198.18.20.7']);
      await lab.exec('client', ['ping', '-c1', '-W2', '2001:db8:20::7']);
      const srv = lab.spawn('server', [
        'python3',
        '-c',
        [
          'import socket',
          's=socket.socket(socket.AF_INET6); s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)',
          "s.bind(('::', 8080)); s.listen(); print('ready', flush=True)",
          "c,a=s.accept(); c.sendall(('peer %s' % a[0]).encode()); c.close()",
        ].join('\n'),
      ]);
      await srv.waitFor(/ready/);
      const r = await lab.exec('client', ['curl', '-s', '--max-time', '5', `telnet://${ADDR.server4}:8080`], {
        allowFail: true,
      });
      assert.match(r.stdout, /peer ::ffff:198\.18\.1\.2/);
    },
  );
});

test('destroy removes the namespaces and kills what the lab started', { skip }, async () => {
  const lab = await createLab();
  const p = lab.spawn('server', ['sleep', '300']);
  await lab.destroy();
  const code = await p.exited();
  assert.notEqual(code, 0);
  const left = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' });
  for (const n of Object.values(lab.ns)) assert.ok(!left.includes(n), `${n} still exists`);
});
