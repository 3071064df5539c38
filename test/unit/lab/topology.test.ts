// The lab's topology as data: every node configured, links created inside the lab's namespaces (never
// in the host's), addresses from the documentation ranges only, names that cannot escape.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import ipaddr from 'ipaddr.js';
import { checkLabName } from '../../../src/lab/state.ts';
import {
  LAB_ADDR,
  LAB_LINKS,
  LAB_NODES,
  linkArgs,
  linksUpScript,
  NODE_ROLES,
  nodeNamespace,
  nodeScript,
} from '../../../src/lab/topology.ts';

const v4 = ipaddr.parseCIDR('198.18.0.0/15');
const v6 = ipaddr.parseCIDR('2001:db8::/32');
function inLabRanges(a: string): boolean {
  const addr = ipaddr.parse(a.split('/')[0] as string);
  return addr.kind() === 'ipv4' ? addr.match(v4) : addr.match(v6);
}

describe('lab topology', () => {
  it('uses only 198.18.0.0/15 and 2001:db8::/32', () => {
    const all = [
      ...Object.values(LAB_ADDR),
      ...LAB_NODES.flatMap((n) => [
        ...n.ifaces.flatMap((i) => i.addrs),
        ...n.anyip,
        ...n.routes.map((r) => r.via),
      ]),
    ];
    for (const a of all) assert.ok(inLabRanges(a), a);
  });

  it('has one node per role and links each non-firewall node to the firewall', () => {
    assert.deepEqual(LAB_NODES.map((n) => n.role).sort(), [...NODE_ROLES].sort());
    for (const r of NODE_ROLES.filter((x) => x !== 'fw')) {
      assert.ok(
        LAB_LINKS.some((l) => l.a.role === r && l.b.role === 'fw'),
        r,
      );
    }
    const fwIfaces = LAB_LINKS.map((l) => l.b.iface);
    assert.equal(new Set(fwIfaces).size, fwIfaces.length, 'firewall interface names are distinct');
  });

  it('creates both ends of every link inside named lab namespaces', () => {
    for (const l of LAB_LINKS) {
      const args = linkArgs('demo', l);
      const netns = args.flatMap((a, i) => (a === 'netns' ? [args[i + 1]] : []));
      assert.deepEqual(netns, [nodeNamespace('demo', l.a.role), nodeNamespace('demo', l.b.role)]);
    }
  });

  it('configures every interface address, route and AnyIP range, and forwarding on the firewall only', () => {
    for (const n of LAB_NODES) {
      const s = nodeScript(n).join('\n');
      for (const i of n.ifaces) {
        for (const a of i.addrs) assert.ok(s.includes(` ${a} dev ${i.name}`), `${n.role}: ${a}`);
        assert.ok(s.includes(`ip link set ${i.name} up`));
      }
      for (const r of n.anyip) assert.ok(s.includes(`route add local ${r} dev lo`), r);
      for (const r of n.routes)
        assert.ok(s.includes(`route add ${r.dst} via ${r.via}`), `${r.dst} via ${r.via}`);
      assert.equal(s.includes('ip_forward=1'), n.role === 'fw');
    }
  });

  it('waits for every interface of a node to be up for the kernel', () => {
    for (const n of LAB_NODES) {
      const s = linksUpScript(n.ifaces.map((i) => i.name));
      for (const i of n.ifaces)
        assert.ok(s.includes(`/sys/class/net/${i.name}/operstate`), `${n.role} ${i.name}`);
    }
  });

  it('gives every node a default route for both families except the firewall', () => {
    for (const n of LAB_NODES.filter((x) => x.role !== 'fw')) {
      const defaults = n.routes.filter((r) => r.dst === 'default').map((r) => (r.via.includes(':') ? 6 : 4));
      assert.deepEqual(defaults.sort(), [4, 6], n.role);
    }
  });

  it('accepts plain lab names and refuses ones that could escape a path or a namespace name', () => {
    for (const ok of ['lab', 'demo-1', 'a_b', '0'.repeat(20)]) assert.equal(checkLabName(ok), null, ok);
    for (const bad of ['', '../x', 'a/b', 'Lab', '-x', 'x'.repeat(21), 'a b', 'a.b']) {
      assert.notEqual(checkLabName(bad), null, bad);
    }
  });
});
