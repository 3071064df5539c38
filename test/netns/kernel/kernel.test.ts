// The compiled ruleset in a real kernel, IPv4 and IPv6: forward (NATed or not), directed DNAT, deny with
// reset / ICMP, unmatched dropped, proxy diversion to a transparent listener (original destination and
// rule id in the mark), fail closed without a listener, management, bypass, user rules with zone sets,
// flush, and reload while connections run.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { applyPolicy, compilePolicy, flushTzorp } from '../../../src/kernel/index.ts';
import type { Policy } from '../../../src/policy/model.ts';
import {
  ADDR,
  createLab,
  type Lab,
  type LabProcess,
  netnsSkipReason,
  REPO_ROOT,
} from '../../harness/netns.ts';
import { makePolicy } from '../../unit/kernel/fixtures.ts';

const skip = netnsSkipReason();
const NET = join(REPO_ROOT, 'test/netns/kernel/net.py');

// client 198.18.1.2 / 2001:db8:1::2 is zone "clients"; a second client address 198.18.1.3 /
// 2001:db8:1::3 is zone "clients.admin"; everything behind the firewall's eth1 is "servers".
const ZONES = {
  clients: { addresses: ['198.18.1.0/24', '2001:db8:1::/64'] },
  'clients.admin': { parent: 'clients', addresses: ['198.18.1.3', '2001:db8:1::3'] },
  servers: { addresses: ['198.18.2.0/24', '2001:db8:2::/64'] },
};
const DIRECTED4 = '198.18.2.77';
const DIRECTED6 = '2001:db8:2::77';

function policy(extra: { userRules?: boolean; variant?: number } = {}): Policy {
  return makePolicy({
    zones: ZONES,
    services: {
      fwd_nat: { type: 'forward' },
      fwd_keep: { type: 'forward', forgeAddr: true },
      directed: {
        type: 'forward',
        directed: [
          { host: ADDR.server4, port: 7001 },
          { host: ADDR.server6, port: 7001 },
        ],
      },
      reset: { type: 'deny', ipv4: 'tcp-reset', ipv6: 'tcp-reset' },
      icmp: { type: 'deny', ipv4: 'icmp-admin-prohibited', ipv6: 'icmp-admin-prohibited' },
      portun: { type: 'deny', ipv4: 'icmp-port-unreachable', ipv6: 'icmp-port-unreachable' },
      proxy: { type: 'proxy', listenPort: 50100 },
      proxy_down: { type: 'proxy', listenPort: 50101 },
    },
    rules: [
      {
        id: 1,
        service: 'fwd_nat',
        proto: [6],
        dstPort: [{ lo: 7001, hi: 7001 }],
        srcZone: ['clients'],
        dstZone: ['servers'],
      },
      // the admin sub-zone is more specific: its connections keep their address
      {
        id: 2,
        service: 'fwd_keep',
        proto: [6],
        dstPort: [{ lo: 7001, hi: 7001 }],
        srcZone: ['clients.admin'],
      },
      {
        id: 3,
        service: 'directed',
        proto: [6],
        dstPort: [{ lo: 9999, hi: 9999 }],
        dstSubnet: [`${DIRECTED4}/32`, `${DIRECTED6}/128`],
      },
      { id: 4, service: 'reset', proto: [6], dstPort: [{ lo: 7002, hi: 7002 }] },
      { id: 5, service: 'icmp', proto: [6], dstPort: [{ lo: 7003, hi: 7003 }] },
      { id: 6, service: 'portun', proto: [6], dstPort: [{ lo: 7004, hi: 7004 }] },
      { id: 42, service: 'proxy', proto: [6], dstPort: [{ lo: 80, hi: 80 }], srcZone: ['clients'] },
      { id: 43, service: 'proxy_down', proto: [6], dstPort: [{ lo: 81, hi: 81 }], srcZone: ['clients'] },
      // reload test: variant 1 adds a rule (service ids of the others do not change)
      ...(extra.variant === 1
        ? [{ id: 50, service: 'reset', proto: [6], dstPort: [{ lo: 7777, hi: 7777 }] }]
        : []),
    ],
    management: [{ proto: [6], dstPort: [{ lo: 2222, hi: 2222 }], srcZone: ['clients.admin'] }],
    bypass: [{ proto: [6], dstPort: [{ lo: 7005, hi: 7005 }] }],
  });
}

const USER_RULES = `
\tchain user_forward {
\t\ttype filter hook forward priority -10; policy accept;
\t\tip saddr @zone_clients.admin_v4 tcp dport 7006 counter drop
\t\tip6 saddr @zone_clients.admin_v6 tcp dport 7006 counter drop
\t}
`;

let lab: Lab;
const fwPrefix = (): string[] => ['ip', 'netns', 'exec', lab.ns.fw];
const servers = new Map<number, LabProcess>();
let tl4: LabProcess;
let tl6: LabProcess;

async function connect(
  src: string,
  host: string,
  port: number,
  timeout = 1.5,
): Promise<{ ok: boolean; error?: string; echo?: string }> {
  // bind the client's source address by running through `ip netns exec` with a small wrapper
  const r = await lab.exec('client', [
    'python3',
    '-c',
    `
import socket, sys, json, errno
fam = socket.AF_INET6 if ':' in ${JSON.stringify(host)} else socket.AF_INET
s = socket.socket(fam, socket.SOCK_STREAM)
s.settimeout(${timeout})
s.bind((${JSON.stringify(src)}, 0))
try:
    s.connect((${JSON.stringify(host)}, ${port}))
    s.sendall(b'ping\\n')
    print(json.dumps({'ok': True, 'echo': s.recv(100).decode().strip()}))
except socket.timeout:
    print(json.dumps({'ok': False, 'error': 'ETIMEDOUT'}))
except OSError as e:
    print(json.dumps({'ok': False, 'error': errno.errorcode.get(e.errno, str(e.errno))}))
`,
  ]);
  return JSON.parse(r.stdout.trim()) as { ok: boolean; error?: string; echo?: string };
}

/** The peer addresses a server (default: port 7001's) has seen. */
function serverPeers(port = 7001): string[] {
  return servers
    .get(port)!
    .stdout()
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { peer?: string })
    .filter((x) => x.peer)
    .map((x) => x.peer!);
}

before(async () => {
  if (skip) return;
  lab = await createLab({ clientAddrs: ['198.18.1.3', '2001:db8:1::3'] });
  for (const p of [7001, 7002, 7003, 7004, 7005, 7006, 80, 81]) {
    const s = lab.spawn('server', ['python3', NET, 'serve', String(p)]);
    await s.waitFor(/listening/);
    servers.set(p, s);
  }
  // the directed router's target address is routed to the server by the firewall
  await lab.sh(
    'fw',
    `ip route add ${DIRECTED4} via ${ADDR.server4}; ip -6 route add ${DIRECTED6} via ${ADDR.server6}`,
  );
  const mgmt = lab.spawn('fw', ['python3', NET, 'serve', '2222']);
  await mgmt.waitFor(/listening/);
  tl4 = lab.spawn('fw', ['python3', NET, 'tlisten', '127.0.0.1', '50100']);
  tl6 = lab.spawn('fw', ['python3', NET, 'tlisten', '::1', '50100']);
  await tl4.waitFor(/listening/);
  await tl6.waitFor(/listening/);
  const r = await applyPolicy(policy(), { prefix: fwPrefix(), fixSysctls: true, userRules: USER_RULES });
  assert.deepEqual(r.wrong, []);
});

after(async () => {
  await lab?.destroy();
});

describe('kernel ruleset in namespaces', { skip }, () => {
  for (const fam of [4, 6] as const) {
    const c = fam === 4 ? ADDR.client4 : ADDR.client6;
    const admin = fam === 4 ? '198.18.1.3' : '2001:db8:1::3';
    const srv = fam === 4 ? ADDR.server4 : ADDR.server6;
    const fwOut = fam === 4 ? ADDR.fwServer4 : ADDR.fwServer6;
    test(`IPv${fam}: forward service passes and is masqueraded; forge_addr keeps the client address`, async () => {
      const before = serverPeers().length;
      assert.deepEqual(await connect(c, srv, 7001), { ok: true, echo: 'ping' });
      assert.deepEqual(await connect(admin, srv, 7001), { ok: true, echo: 'ping' });
      const peers = serverPeers().slice(before);
      assert.deepEqual(peers, [fwOut, admin]);
    });
    test(`IPv${fam}: directed forward service is DNATed to its target`, async () => {
      const before = serverPeers().length;
      const dst = fam === 4 ? DIRECTED4 : DIRECTED6;
      assert.deepEqual(await connect(c, dst, 9999), { ok: true, echo: 'ping' });
      assert.equal(serverPeers().length, before + 1, 'the target server (port 7001) saw the connection');
    });
    test(`IPv${fam}: deny services answer with the configured reset or ICMP`, async () => {
      assert.deepEqual(await connect(c, srv, 7002), { ok: false, error: 'ECONNREFUSED' });
      // ICMP administratively prohibited: EHOSTUNREACH for IPv4, EACCES for IPv6 (Linux's mapping)
      assert.deepEqual(await connect(c, srv, 7003), {
        ok: false,
        error: fam === 4 ? 'EHOSTUNREACH' : 'EACCES',
      });
      assert.deepEqual(await connect(c, srv, 7004), { ok: false, error: 'ECONNREFUSED' });
    });
    test(`IPv${fam}: unmatched traffic is dropped`, async () => {
      assert.deepEqual(await connect(c, srv, 7010, 1), { ok: false, error: 'ETIMEDOUT' });
    });
    test(`IPv${fam}: proxy service reaches the transparent listener with the original destination and rule id`, async () => {
      const tl = fam === 4 ? tl4 : tl6;
      const n = tl.stdout().trim().split('\n').length;
      assert.deepEqual(await connect(c, srv, 80), { ok: true, echo: 'ping' });
      const lines = tl.stdout().trim().split('\n').slice(n);
      const acc = JSON.parse(lines[0]!) as { local: string; lport: number; peer: string; mark: number };
      assert.equal(acc.local, srv);
      assert.equal(acc.lport, 80);
      assert.equal(acc.peer, c);
      assert.equal(acc.mark >>> 0, (0x80000000 | 42) >>> 0); // SO_MARK reads back as a signed int
    });
    test(`IPv${fam}: without a listener a proxy service fails closed (nothing reaches the server)`, async () => {
      assert.deepEqual(await connect(c, srv, 81, 1), { ok: false, error: 'ETIMEDOUT' });
    });
    test(`IPv${fam}: management rules open the firewall's own port only to the named zone`, async () => {
      const fwAddr = fam === 4 ? ADDR.fwClient4 : ADDR.fwClient6;
      assert.deepEqual(await connect(admin, fwAddr, 2222), { ok: true, echo: 'ping' });
      assert.deepEqual(await connect(c, fwAddr, 2222, 1), { ok: false, error: 'ETIMEDOUT' });
    });
    test(`IPv${fam}: bypass traffic passes untouched (not NATed, no rule needed)`, async () => {
      // no rule names port 7005, so only the bypass lets it through; no masquerade either
      const s = serverPeers(7005).length;
      assert.deepEqual(await connect(c, srv, 7005), { ok: true, echo: 'ping' });
      assert.deepEqual(serverPeers(7005).slice(s), [c]);
    });
    test(`IPv${fam}: user rules with the published zone sets apply`, async () => {
      // the user's chain counts and drops admin-zone traffic to 7006 by the published zone set
      const r = await lab.exec('fw', ['nft', 'list', 'chain', 'inet', 'tzorp', 'user_forward']);
      const before = [...r.stdout.matchAll(/packets (\d+)/g)].map((m) => Number(m[1]));
      await connect(admin, srv, 7006, 0.5);
      const r2 = await lab.exec('fw', ['nft', 'list', 'chain', 'inet', 'tzorp', 'user_forward']);
      const afterC = [...r2.stdout.matchAll(/packets (\d+)/g)].map((m) => Number(m[1]));
      const i = fam === 4 ? 0 : 1;
      assert.ok(afterC[i]! > before[i]!, 'the zone-set user rule counted the admin connection');
    });
  }

  test('reload keeps forwarded and proxied connections; a broken ruleset is refused and the old one stays', async () => {
    const fwd = lab.spawn('client', ['python3', NET, 'hold', ADDR.server4, '7001']);
    const prx = lab.spawn('client', ['python3', NET, 'hold', ADDR.server6, '80']);
    await fwd.waitFor(/connected/);
    await prx.waitFor(/connected/);
    await applyPolicy(policy({ variant: 1 }), { prefix: fwPrefix(), userRules: USER_RULES });
    // the new rule is live
    assert.deepEqual(await connect(ADDR.client4, ADDR.server4, 7777), { ok: false, error: 'ECONNREFUSED' });
    fwd.child.stdin!.write('after-reload\n');
    prx.child.stdin!.write('after-reload\n');
    await fwd.waitFor(/"echo": "after-reload"/);
    await prx.waitFor(/"echo": "after-reload"/);
    const before = (await lab.exec('fw', ['nft', 'list', 'table', 'inet', 'tzorp'])).stdout;
    await assert.rejects(
      applyPolicy(policy(), { prefix: fwPrefix(), userRules: 'chain broken { this is not nft }' }),
      /TZ2001|nft -c rejected/,
    );
    const afterList = (await lab.exec('fw', ['nft', 'list', 'table', 'inet', 'tzorp'])).stdout;
    assert.equal(
      afterList.replace(/packets \d+ bytes \d+/g, ''),
      before.replace(/packets \d+ bytes \d+/g, ''),
    );
    fwd.child.stdin!.write('still\n');
    await fwd.waitFor(/"echo": "still"/);
  });

  test('compile output is what apply installs, and flush --open removes exactly what tzorp installed', async () => {
    await lab.exec('fw', ['nft', 'add', 'table', 'inet', 'someone_else']);
    await lab.exec('fw', ['ip', 'rule', 'add', 'pref', '500', 'fwmark', '0x1', 'lookup', '200']);
    const text = compilePolicy(policy(), { userRules: USER_RULES }).text;
    assert.match(text, /^table inet tzorp \{\}$/m);
    const f = await flushTzorp({ prefix: fwPrefix(), open: true });
    assert.equal(f.table, true);
    assert.equal(f.routing, 6);
    const tables = (await lab.exec('fw', ['nft', 'list', 'tables'])).stdout;
    assert.match(tables, /someone_else/);
    assert.doesNotMatch(tables, /tzorp/);
    const rules = (await lab.exec('fw', ['ip', 'rule'])).stdout;
    assert.match(rules, /^500:/m);
    assert.doesNotMatch(rules, /0x80000000/);
    assert.equal((await lab.exec('fw', ['ip', 'route', 'show', 'table', '100'])).stdout.trim(), '');
  });
});
