// End to end in network namespaces: the plug core through the real driver, transparent listeners,
// routers and chainers, with real clients (nc, curl) and a hand-written nft TPROXY ruleset in the
// firewall namespace (not the kernel compiler's: this tests the net module alone). IPv4 and IPv6.
//
// Lab: client 198.18.1.2 / 2001:db8:1::2 -- fw -- server 198.18.2.2 (+ .3) / 2001:db8:2::2 (+ ::3).
// The input chain has no `ct state established` rule: replies to our upstream sockets are accepted
// only because those sockets are transparent (they match `socket transparent 1`), which is the
// choice docs/native.md describes.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ADDR, createLab, type Lab, type LabProcess, netnsSkipReason } from '../../harness/netns.ts';
import { tproxyRuleset, tproxyTo } from '../../harness/tproxy-ruleset.ts';

const skip = netnsSkipReason();
const HERE = 'test/netns/net';
const MARK = '0x80000000';
const BIG_BYTES = 24 * 1024 * 1024;

const S4 = '198.18.2.2';
const S4b = '198.18.2.3';
const S6 = '2001:db8:2::2';
const S6b = '2001:db8:2::3';
const ep = (host: string, port: number) => ({ host, port, family: host.includes(':') ? 6 : 4 });
const connectChainer = { type: 'connect', timeoutConnectMs: 5000 } as const;
const transparentRouter = {
  type: 'transparent',
  forcedPort: null,
  forgeAddr: false,
  forgePort: 'any',
} as const;

/** Destination port -> relay service. */
const ZONES = [
  { name: 'inside', parent: null, cidrs: [] },
  { name: 'servers', parent: 'inside', cidrs: ['198.18.2.0/24', '2001:db8:2::/64'] },
  { name: 'dmz', parent: null, cidrs: ['198.18.9.0/24'] },
  { name: 'clients', parent: null, cidrs: ['198.18.1.0/24', '2001:db8:1::/64'] },
];

const SERVICES: {
  dport: number;
  name: string;
  port: number;
  router: unknown;
  chainer: unknown;
  maxSessions?: number;
  limitTargetZonesTo?: string[];
}[] = [
  {
    dport: 80,
    name: 'transparent',
    port: 50080,
    router: { type: 'transparent', forcedPort: null, forgeAddr: false, forgePort: 'any' },
    chainer: connectChainer,
  },
  {
    dport: 81,
    name: 'forged',
    port: 50081,
    router: { type: 'transparent', forcedPort: null, forgeAddr: true, forgePort: 'any' },
    chainer: connectChainer,
  },
  {
    dport: 82,
    name: 'forged_port',
    port: 50082,
    router: { type: 'transparent', forcedPort: null, forgeAddr: true, forgePort: 'exact' },
    chainer: connectChainer,
  },
  {
    dport: 83,
    name: 'directed',
    port: 50083,
    router: { type: 'directed', targets: [ep(S4, 8080), ep(S6, 8080)], forgeAddr: true, forgePort: 'any' },
    chainer: connectChainer,
  },
  // primary: an address of the server where nothing listens on 8081 (refused); backup: IPv6
  {
    dport: 84,
    name: 'failover',
    port: 50084,
    router: { type: 'directed', targets: [ep(S4b, 8081), ep(S6, 8080)], forgeAddr: false, forgePort: 'any' },
    chainer: { type: 'failover', timeoutConnectMs: 5000, timeoutStateMs: 60_000 },
  },
  {
    dport: 85,
    name: 'round_robin',
    port: 50085,
    router: {
      type: 'directed',
      targets: [ep(S4, 8080), ep(S6, 8080), ep(S4b, 8080)],
      forgeAddr: false,
      forgePort: 'any',
    },
    chainer: { type: 'round_robin', timeoutConnectMs: 5000, timeoutStateMs: 60_000 },
  },
  {
    dport: 86,
    name: 'limited',
    port: 50086,
    maxSessions: 1,
    router: transparentRouter,
    chainer: connectChainer,
  },
  // the server's zone is 'servers' (parent 'inside'): 87 allows only 'dmz', 88 the ancestor 'inside'
  {
    dport: 87,
    name: 'zone_denied',
    port: 50087,
    limitTargetZonesTo: ['dmz'],
    router: transparentRouter,
    chainer: connectChainer,
  },
  {
    dport: 88,
    name: 'zone_allowed',
    port: 50088,
    limitTargetZonesTo: ['inside'],
    router: transparentRouter,
    chainer: connectChainer,
  },
  {
    dport: 8000,
    name: 'download',
    port: 58000,
    router: { type: 'transparent', forcedPort: null, forgeAddr: false, forgePort: 'any' },
    chainer: connectChainer,
  },
];

function ruleset(): string {
  return tproxyRuleset({
    table: 'tzorp_nettest',
    divert: SERVICES.flatMap((s) => [
      tproxyTo(`meta nfproto ipv4 tcp dport ${s.dport}`, 4, s.port),
      tproxyTo(`meta nfproto ipv6 tcp dport ${s.dport}`, 6, s.port),
    ]),
  });
}

interface Seen {
  peer: string;
  port: number;
  local: string;
  bytes: number;
  sha256: string;
}

function parseSeen(out: string): Seen {
  const m = /peer=(\S+) port=(\d+) local=(\S+) bytes=(\d+) sha256=([0-9a-f]+)/.exec(out);
  assert.ok(m, `no server line in ${JSON.stringify(out)}`);
  return { peer: m[1]!, port: Number(m[2]), local: m[3]!, bytes: Number(m[4]), sha256: m[5]! };
}

const sha = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');
const bracket = (h: string) => (h.includes(':') ? `[${h}]` : h);

describe('plug relay in namespaces (TPROXY, IPv4 and IPv6)', { skip }, () => {
  let lab: Lab;
  let relay: LabProcess;
  let bigSha = '';
  let dir = '';

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tzorp-nettest-'));
    lab = await createLab({ serverAddrs: [S4b, S6b] });
    await lab.exec('fw', ['nft', '-f', '-'], { input: ruleset() });
    await lab.sh(
      'fw',
      [
        `ip rule add fwmark ${MARK}/${MARK} lookup 100`,
        'ip route add local 0.0.0.0/0 dev lo table 100',
        `ip -6 rule add fwmark ${MARK}/${MARK} lookup 100`,
        'ip -6 route add local ::/0 dev lo table 100',
      ].join(' && '),
    );
    const server = lab.spawnTs('server', `${HERE}/peer-server.ts`, [
      '80,81,82,86,88,8080',
      '8000',
      String(BIG_BYTES),
    ]);
    bigSha = (await server.waitFor(/BIGSHA ([0-9a-f]+)/, 90_000))[1]!;
    await server.waitFor(/READY/, 90_000);
    const specs = SERVICES.map(({ dport: _d, ...spec }) => spec);
    relay = lab.spawnTs('fw', `${HERE}/relay-entry.ts`, [JSON.stringify(specs), JSON.stringify(ZONES)]);
    await relay.waitFor(/READY/, 90_000);
  });

  after(async () => {
    if (process.env.TZORP_TEST_DEBUG)
      process.stderr.write(`relay stdout:\n${relay?.stdout()}\nrelay stderr:\n${relay?.stderr()}\n`);
    await lab?.destroy();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** `nc -N`: send stdin, shut our write side (half-close), print the server's answer. */
  async function nc(host: string, port: number, input: string | Buffer, extra: string[] = []): Promise<Seen> {
    const r = await lab.exec('client', ['nc', '-N', '-w', '20', ...extra, host, String(port)], {
      input,
      timeoutMs: 60_000,
    });
    return parseSeen(r.stdout);
  }

  for (const fam of [4, 6] as const) {
    const server = fam === 4 ? S4 : S6;
    const client = fam === 4 ? ADDR.client4 : ADDR.client6;
    const fwAddr = fam === 4 ? ADDR.fwServer4 : ADDR.fwServer6;

    test(`IPv${fam}: transparent relay, half-close: the server sees the firewall's address`, async () => {
      const seen = await nc(server, 80, 'hello relay');
      assert.equal(seen.peer, fwAddr);
      assert.equal(seen.local, `${server}:80`);
      assert.equal(seen.bytes, 11);
      assert.equal(seen.sha256, sha('hello relay'));
    });

    test(`IPv${fam}: forge_addr: the server sees the client's address`, async () => {
      const seen = await nc(server, 81, 'forged');
      assert.equal(seen.peer, client);
      assert.equal(seen.sha256, sha('forged'));
    });

    test(`IPv${fam}: forge_port exact: the server sees the client's address and port`, async () => {
      const port = fam === 4 ? 40082 : 40083;
      const seen = await nc(server, 82, 'port', ['-p', String(port)]);
      assert.equal(seen.peer, client);
      assert.equal(seen.port, port);
    });

    test(`IPv${fam}: directed router picks the target of the client's family when forging`, async () => {
      const seen = await nc(server, 83, 'directed');
      assert.equal(seen.local, `${server}:8080`);
      assert.equal(seen.peer, client);
    });

    test(`IPv${fam}: large upload keeps its sha256 through the relay`, async () => {
      const file = join(dir, `up${fam}`);
      const data = randomBytes(BIG_BYTES);
      writeFileSync(file, data);
      const r = await lab.sh('client', `nc -N -w 30 ${server} 80 < ${file}`, { timeoutMs: 120_000 });
      const seen = parseSeen(r.stdout);
      assert.equal(seen.bytes, data.length);
      assert.equal(seen.sha256, sha(data));
    });

    test(`IPv${fam}: large download (curl) keeps its sha256 through the relay`, async () => {
      const r = await lab.sh(
        'client',
        `curl -sS -g --max-time 60 http://${bracket(server)}:8000/big | sha256sum`,
        {
          timeoutMs: 90_000,
        },
      );
      assert.equal(r.stdout.split(' ')[0], bigSha);
    });
  }

  test('failover: the primary is refused, the backup (IPv6) serves, for IPv4 and IPv6 clients', async () => {
    for (const host of [S4, S6, S4]) {
      const seen = await nc(host, 84, 'fo');
      assert.equal(seen.local, `${S6}:8080`);
      assert.equal(seen.peer, ADDR.fwServer6);
    }
    const failover = await summariesOf('failover', 3);
    assert.equal(failover.length, 3);
    for (const s of failover) assert.equal(s.verdict, 'ACCEPTED');
  });

  test('round robin spreads sessions over every target in turn', async () => {
    const counts = new Map<string, number>();
    for (let i = 0; i < 6; i++) {
      const seen = await nc(i % 2 ? S6 : S4, 85, `rr${i}`);
      counts.set(seen.local, (counts.get(seen.local) ?? 0) + 1);
    }
    assert.deepEqual(
      [...counts].sort(),
      [
        [`${S6}:8080`, 2],
        [`${S4}:8080`, 2],
        [`${S4b}:8080`, 2],
      ].sort(),
    );
  });

  function summaries(
    service: string,
  ): { verdict: string; serverZone: string | null; clientZone: string | null }[] {
    return relay
      .stdout()
      .split('\n')
      .filter((l) => l.startsWith('SUMMARY '))
      .map((l) => JSON.parse(l.slice(8)))
      .filter((s) => s.service === service);
  }

  /** The summaries of `service` once there are `n`: the client has its answer before the relay writes
   * the session's summary, so a test that counts them right after its last exchange waits for them. */
  async function summariesOf(service: string, n: number): Promise<ReturnType<typeof summaries>> {
    let found = summaries(service);
    for (let i = 0; i < 300 && found.length < n; i++) {
      await new Promise((r) => setTimeout(r, 100));
      found = summaries(service);
    }
    return found;
  }

  /** The client's view of a refused connection: nc exits without any answer. */
  async function refused(host: string, port: number): Promise<void> {
    const r = await lab.exec('client', ['nc', '-N', '-w', '10', host, String(port)], {
      input: 'x',
      allowFail: true,
      timeoutMs: 30_000,
    });
    assert.equal(r.stdout, '');
  }

  test('limit_target_zones_to: a server zone outside the list is refused (DENIED_BY_POLICY), an ancestor allows', async () => {
    for (const host of [S4, S6]) {
      await refused(host, 87);
      const seen = await nc(host, 88, 'zone ok');
      assert.equal(seen.sha256, sha('zone ok'));
    }
    await relay.waitFor(/"service":"zone_denied"[^\n]*\n[\s\S]*"service":"zone_denied"/, 60_000);
    const denied = summaries('zone_denied');
    assert.equal(denied.length, 2);
    for (const s of denied) {
      assert.equal(s.verdict, 'DENIED_BY_POLICY');
      assert.equal(s.serverZone, 'servers');
      assert.equal(s.clientZone, 'clients');
    }
    assert.deepEqual(
      (await summariesOf('zone_allowed', 2)).map((s) => s.verdict),
      ['ACCEPTED', 'ACCEPTED'],
    );
  });

  test('max_sessions: a second concurrent session is refused (DENIED_BY_LIMIT), a later one is served', async () => {
    const holder = lab.spawn('client', ['nc', S4, '86']); // stdin stays open: the session stays up
    await relay.waitFor(/ESTABLISHED limited/, 60_000);
    await refused(S6, 86);
    await relay.waitFor(/"service":"limited"[^\n]*"verdict":"DENIED_BY_LIMIT"/, 60_000);
    holder.kill('SIGKILL'); // its connection goes away (RST/FIN), freeing the slot
    await relay.waitFor(/"service":"limited"[^\n]*"verdict":"ACCEPTED"/, 60_000);
    const seen = await nc(S6, 86, 'after');
    assert.equal(seen.sha256, sha('after'));
    assert.deepEqual(
      (await summariesOf('limited', 3)).map((s) => s.verdict),
      ['DENIED_BY_LIMIT', 'ACCEPTED', 'ACCEPTED'],
    );
  });

  test('session summaries carry addresses, bytes and the ACCEPTED verdict', async () => {
    const seen = await nc(S4, 80, 'summary please');
    const line = await relay.waitFor(
      /SUMMARY (\{[^\n]*"client":\{"host":"198\.18\.1\.2","port":(\d+)[^\n]*"bytes":\{"fromClient":14,[^\n]*)\n/,
      60_000,
    );
    const s = JSON.parse(line[1]!);
    assert.equal(s.verdict, 'ACCEPTED');
    assert.equal(s.service, 'transparent');
    assert.deepEqual(s.clientLocal, { host: S4, port: 80, family: 4 });
    assert.deepEqual(s.server, { host: S4, port: 80, family: 4 });
    assert.equal(s.serverLocal.host, seen.peer);
    assert.equal(s.bytes.toServer, 14);
    assert.ok(s.bytes.fromServer > 0 && s.bytes.fromServer === s.bytes.toClient);
  });
});
