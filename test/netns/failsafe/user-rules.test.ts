// Issue 10 item 7, as the administrator meets it: the policy's settings.user_rules under `tzorp run`,
// with a user rule that names a service by its define ($tzorp_service_web) instead of a number. A
// reload that adds a service whose name sorts first renumbers the services; the user rule still acts
// on web's connections (and not on the service that now has web's old number). A user-rules file nft
// refuses makes the reload fail and leaves the running ruleset as it was.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { ADDR, createLab, netnsSkipReason } from '../../harness/netns.ts';
import { startDaemon, tcpRead, tempDir, tz } from './lab.ts';

const skip = netnsSkipReason();
const tmp = tempDir('user-rules');
after(() => tmp.remove());

const policy = (extra: string) => `zones:
  lan:
    addresses: [198.18.1.0/24, "2001:db8:1::/64"]
  servers:
    addresses: [198.18.2.0/24, "2001:db8:2::/64"]
services:
${extra}  other: { type: forward }
  web: { type: forward }
rules:
  - { id: 1, service: web, proto: tcp, dst_port: 22, src_zone: lan, dst_zone: servers }
  - { id: 2, service: other, proto: tcp, dst_port: 8081, src_zone: lan, dst_zone: servers }
management:
  - { proto: tcp, dst_port: 22, src_zone: lan }
settings:
  user_rules: user.nft
`;

const USER = `chain user_forward {
\ttype filter hook forward priority -5; policy accept;
\tct mark & $tzorp_service_mask == $tzorp_service_web counter drop comment "no web today"
}
`;

test('settings.user_rules under tzorp run: a service named in a user rule survives renumbering; a bad file refuses the reload', {
  skip,
  timeout: 300_000,
}, async () => {
  const lab = await createLab();
  try {
    for (const port of ['22', '8081']) {
      const b = lab.spawn('server', ['python3', 'test/netns/failsafe/banner.py', port]);
      await b.waitFor(/ready/);
    }
    writeFileSync(join(tmp.dir, 'user.nft'), USER);
    const d = await startDaemon(lab, tmp.dir, policy(''));
    const web = async () => tcpRead(lab, ADDR.server4, 22, 2);
    const other = async () => tcpRead(lab, ADDR.server6, 8081, 2);
    assert.equal(await web(), '', 'the user rule drops web (service 2 of 2)');
    assert.match(await other(), /^SSH-2\.0/, 'other passes');

    // aaa sorts first: other becomes 2 (web's old mark), web 3
    writeFileSync(d.policy, policy('  aaa: { type: forward }\n'));
    const r = await tz(lab, ['reload', '--control', d.control]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(await web(), '', 'the user rule still drops web after the renumbering');
    assert.match(await other(), /^SSH-2\.0/, "and not other, which now has web's old mark");
    const list = await lab.exec('fw', ['nft', 'list', 'chain', 'inet', 'tzorp', 'user_forward']);
    assert.match(list.stdout, /ct mark & 0x0000ffff == 0x00000003 counter packets [1-9]/);

    // a user-rules file nft refuses: the reload is refused, the ruleset stays
    writeFileSync(join(tmp.dir, 'user.nft'), 'this is not nft\n');
    const bad = await tz(lab, ['reload', '--control', d.control]);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /TZ3002|TZ2001/);
    assert.equal(await web(), '', 'the running ruleset (with the good user rules) stays');
    assert.match(await other(), /^SSH-2\.0/);
    await tz(lab, ['stop', '--control', d.control, '--timeout', '1000']);
  } finally {
    await lab.destroy();
  }
});
