// Issue 10 item 4, as the administrator meets it, through `tzorp run`: an explicit HTTP proxy on the
// firewall whose URL filter rejects *.facebook.com refuses `CONNECT www.facebook.com:443` just as it
// refuses `GET http://www.facebook.com/`, and still tunnels to hosts no rule rejects.
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { ADDR, createLab, netnsSkipReason } from '../../harness/netns.ts';
import { startDaemon, tempDir, tz } from './lab.ts';

const skip = netnsSkipReason();
const tmp = tempDir('connect');
after(() => tmp.remove());

const POLICY = `zones:
  clients:
    addresses: [198.18.1.0/24, "2001:db8:1::/64"]
  servers:
    addresses: [198.18.2.0/24, "2001:db8:2::/64"]
services:
  web_proxy:
    type: proxy
    proxy: http
    router: { type: inband }
    options:
      transparent_mode: false
      target_port_range: "443,8443"
      url_filter:
        rules:
          - { host: "*.facebook.com", action: reject }
rules:
  - { id: 1, service: web_proxy, proto: tcp, dst_port: 3128, src_zone: clients, dst_subnet: [198.18.1.1, "2001:db8:1::1"] }
management:
  - { proto: tcp, dst_port: 22, src_zone: clients }
`;

test('CONNECT to a host the URL filter rejects is refused (tzorp run, curl)', {
  skip,
  timeout: 300_000,
}, async () => {
  const lab = await createLab();
  try {
    const web = lab.spawn('server', ['python3', '-m', 'http.server', '8443', '--bind', '::']);
    await web.waitFor(/Serving HTTP/);
    const d = await startDaemon(lab, tmp.dir, POLICY);
    for (const proxy of [`http://${ADDR.fwClient4}:3128`, `http://[${ADDR.fwClient6}]:3128`]) {
      const curl = (args: string[]) =>
        lab.exec('client', ['curl', '-sS', '--max-time', '20', '-x', proxy, ...args], {
          allowFail: true,
          timeoutMs: 40_000,
        });
      // the plain request was refused before this issue too
      const get = await curl(['-o', '/dev/null', '-w', '%{http_code}', 'http://www.facebook.com/']);
      assert.equal(get.stdout, '403', `GET through ${proxy}: ${get.stderr}`);
      // the tunnel to the same host is refused as well (no name resolution needed: refused first)
      const tunnel = await curl(['-p', '-o', '/dev/null', 'https://www.facebook.com/']);
      assert.notEqual(tunnel.code, 0);
      assert.match(tunnel.stderr, /CONNECT tunnel failed, response 403/, tunnel.stderr);
      // a host no rule rejects is tunnelled
      const ok = await curl(['-p', '-o', '/dev/null', '-w', '%{http_code}', `http://${ADDR.server4}:8443/`]);
      assert.equal(ok.stdout, '200', `tunnel through ${proxy}: ${ok.stderr}`);
    }
    await d.proc.waitFor(/URL rejected by the URL filter/);
    await tz(lab, ['stop', '--control', d.control, '--timeout', '1000']);
  } finally {
    await lab.destroy();
  }
});
