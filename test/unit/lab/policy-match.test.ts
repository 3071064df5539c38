// The lab's addresses and the demo's rows against examples/policy.yaml, through the decision engine:
// each node is in the zone the policy means for it, and each demo row gets the kind of service its
// title promises. If the example policy changes, this says which row no longer shows what it claims.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { Engine } from '../../../src/engine/index.ts';
import { SCENARIOS, type Scenario } from '../../../src/lab/scenarios.ts';
import { LAB_ADDR } from '../../../src/lab/topology.ts';
import { loadPolicyFile } from '../../../src/policy/index.ts';
import { REPO_ROOT } from '../../harness/netns.ts';

const loaded = await loadPolicyFile(join(REPO_ROOT, 'examples/policy.yaml'));
const policy = loaded.policy;

describe('lab vs examples/policy.yaml', () => {
  it('the example policy loads', () => {
    assert.deepEqual(
      loaded.errors.map((e) => e.message),
      [],
    );
  });
  const engine = policy ? new Engine(policy) : null;

  it('puts every lab address in the zone the policy means for it', () => {
    const zone = (a: string) => engine?.zoneOf(a)?.name ?? null;
    assert.equal(zone(LAB_ADDR.client4), 'clients');
    assert.equal(zone(LAB_ADDR.client6), 'clients');
    assert.equal(zone(LAB_ADDR.admin4), 'admin');
    assert.equal(zone(LAB_ADDR.admin6), 'admin');
    assert.equal(zone(LAB_ADDR.server4), 'servers');
    assert.equal(zone(LAB_ADDR.server6), 'servers');
    assert.equal(zone('198.18.21.25'), 'servers.http_header_replace');
    assert.equal(zone('2001:db8:20:21::1'), 'servers.audit');
    assert.equal(zone(LAB_ADDR.outside4), 'internet');
    assert.equal(zone(LAB_ADDR.outside6), 'internet');
    // every servers.* child address is answered by the lab's server (its AnyIP ranges)
    for (const z of policy?.zones.values() ?? []) {
      if (z.parent !== 'servers') continue;
      for (const c of z.addresses) {
        assert.ok(
          c.family === 4 ? c.text.startsWith('198.18.21.') : c.text.startsWith('2001:db8:20:21::'),
          `${z.name} ${c.text} is outside the server's ranges`,
        );
      }
    }
  });

  const decide = (s: Scenario) =>
    engine?.decide({ proto: 6, src: s.src, dst: s.dst, srcPort: 40000, dstPort: s.port, iface: 'eth0' });
  const want: Record<string, (d: ReturnType<typeof decide>) => boolean> = {
    'http-header': (d) =>
      d?.service?.type === 'proxy' &&
      d.service.proxy === 'http' &&
      JSON.stringify(d.service.options).includes('change_value'),
    'http-v6': (d) => d?.service?.type === 'proxy' && d.service.proxy === 'http',
    'ftp-passive': (d) => d?.service?.type === 'proxy' && d.service.proxy === 'ftp',
    'ftp-active': (d) => d?.service?.type === 'proxy' && d.service.proxy === 'ftp',
    plug: (d) => d?.service?.type === 'proxy' && d.service.proxy === 'plug',
    forward: (d) => d?.service?.type === 'forward' && d.service.router.forgeAddr,
    deny: (d) => d?.service?.type === 'deny' && d.service.ipv4 === 'tcp-reset',
    'deny-v6': (d) => d?.service?.type === 'deny' && d.service.ipv6 !== 'drop',
    'internet-deny': (d) => d?.service?.type === 'deny' && d.clientZone === 'internet',
    unmatched: (d) => d !== undefined && d.rule === null,
  };
  for (const s of SCENARIOS) {
    it(`demo row '${s.title}' gets what its title says`, () => {
      const check = want[s.id];
      assert.ok(check, `no expectation for row ${s.id}`);
      const d = decide(s);
      assert.ok(check(d), `${s.id}: rule ${d?.rule?.id ?? '-'} service ${d?.service?.name ?? '-'}`);
    });
  }
});
