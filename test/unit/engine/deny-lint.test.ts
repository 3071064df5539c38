// TZ1525: a deny rule that a more specific rule of another service beats for some traffic, found by
// deciding a witness connection with the engine (src/engine/deny-lint.ts).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Engine, outrankedDenies } from '../../../src/engine/index.ts';
import { loadPolicyText } from '../../../src/policy/index.ts';

function warnings(rules: string): string[] {
  const r = loadPolicyText(
    `zones:
  internet: { addresses: [0.0.0.0/0, "::/0"] }
  lan: { addresses: [198.18.10.0/24] }
  dmz: { addresses: [198.18.20.0/24, "2001:db8:20::/64"] }
services:
  web: { type: proxy, proxy: http }
  out: { type: forward }
  reject_all: { type: deny }
  drop_all: { type: deny, ipv4: drop, ipv6: drop }
rules:
${rules}`,
    'p.yaml',
    undefined,
    { lint: false },
  );
  assert.deepEqual(r.errors, []);
  return outrankedDenies(new Engine(r.policy!)).map((e) => `${e.code}:${e.pos?.line} ${e.message}`);
}

describe('outrankedDenies (TZ1525)', () => {
  it('a blocklist-style deny rule loses the port an allow rule names: warned, with the witness', () => {
    const w = warnings(`  - { id: 10, service: web, proto: tcp, dst_port: 80, dst_zone: dmz }
  - { id: 90, service: reject_all, src_subnet: 203.0.113.66 }
`);
    assert.equal(w.length, 1);
    assert.match(
      w[0]!,
      /^TZ1525:12 deny rule 90 .* rule 10 \(service web\) wins tcp 203\.0\.113\.66 -> 198\.18\.20\.\d+ port 80/,
    );
  });

  it('a deny address inside the allow rule zone is found (the deny side taken for the witness)', () => {
    const w = warnings(`  - { id: 10, service: out, proto: tcp, dst_port: 443, src_zone: lan }
  - { id: 90, service: drop_all, src_subnet: 198.18.10.66 }
`);
    assert.equal(w.length, 1);
    assert.match(w[0]!, /rule 10 \(service out\) wins tcp 198\.18\.10\.66 -> .* port 443/);
  });

  it('no warning when the deny rule is at least as specific where they overlap, or they never overlap', () => {
    assert.deepEqual(
      warnings(`  - { id: 10, service: web, proto: tcp, dst_port: 80, dst_zone: dmz }
  - { id: 90, service: reject_all, proto: tcp, dst_port: 80, src_subnet: 203.0.113.66 }
  - { id: 91, service: reject_all, proto: tcp, dst_port: 25 }
  - { id: 92, service: reject_all, src_zone: lan, dst_zone: internet }
  - { id: 11, service: out, src_zone: lan, dst_zone: dmz }
`),
      [],
    );
  });
});
