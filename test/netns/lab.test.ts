// `tzorp lab` end to end, through the command line as a user runs it: up, every server answering from
// the client namespaces (IPv4 and IPv6, HTTP, FTP active and passive, the banner service), status,
// exec, and down leaving nothing behind (namespaces, processes, state, tzorp tables).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { after, describe, it } from 'node:test';
import { Engine } from '../../src/engine/index.ts';
import { applyPolicy } from '../../src/kernel/index.ts';
import { runLiveDemo } from '../../src/lab/demo.ts';
import type { LabStatus, ServerRecord } from '../../src/lab/index.ts';
import {
  FTP_FILES,
  LAB_ADDR,
  LAB_PORTS,
  labDown,
  labStatus,
  labUp,
  NODE_ROLES,
  nodeNamespace,
} from '../../src/lab/index.ts';
import {
  type RowResult,
  runScenario,
  SCENARIOS,
  type Scenario,
  type ScenarioDecision,
} from '../../src/lab/scenarios.ts';
import { readLabState } from '../../src/lab/state.ts';
import { listNamespaces } from '../../src/lab/system.ts';
import { serverRecords as parseRecords } from '../../src/lab/traffic.ts';
import type { Policy } from '../../src/policy/model.ts';
import { proxyModule } from '../../src/proxy/index.ts';
import { netnsSkipReason, REPO_ROOT } from '../harness/netns.ts';
import { makePolicy } from '../unit/kernel/fixtures.ts';
import { docBlocks } from '../unit/lab/docs-blocks.ts';

/** What the engine decides for a scenario's connection (the demo asks the same way). */
function scenarioDecider(policy: Policy): (s: Scenario) => ScenarioDecision {
  const engine = new Engine(policy);
  return (s) => {
    const d = engine.decide({ proto: 6, src: s.src, dst: s.dst, srcPort: 40000, dstPort: s.port });
    return {
      rule: d.rule?.id ?? null,
      service: d.service,
      clientZone: d.clientZone,
      serverZone: d.serverZone,
    };
  };
}

const skip = netnsSkipReason();
const NAME = `lt${process.pid}`;

function tzorp(args: string[], input?: string) {
  const r = spawnSync(process.execPath, [join(REPO_ROOT, 'bin/tzorp'), ...args], {
    encoding: 'utf8',
    input: input ?? '',
    timeout: 120_000,
  });
  return { code: r.status ?? -1, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
}

/** Runs a command in a lab node through `tzorp lab exec`, as the docs tell users to. */
function inNode(node: string, argv: string[], input?: string) {
  return tzorp(['lab', 'exec', node, '--name', NAME, '--', ...argv], input);
}

function status(): LabStatus {
  const r = tzorp(['lab', 'status', '--name', NAME, '--json']);
  return JSON.parse(r.stdout) as LabStatus;
}

function serverRecords(file: string): ServerRecord[] {
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as ServerRecord);
}

/** Alive and not a zombie (a killed process stays in /proc until its new parent, init, reaps it). */
function running(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

function labNamespacesLeft(): string[] {
  try {
    return readdirSync('/run/netns').filter((n) => n.startsWith(`tzl-${NAME}-`));
  } catch {
    return [];
  }
}

describe('tzorp lab (network and servers, no tzorp)', { skip }, () => {
  let pids: number[] = [];
  after(() => {
    // also when a test failed half-way
    tzorp(['lab', 'down', '--name', NAME]);
  });

  it('comes up and reports every node, address and process in status', () => {
    const up = tzorp(['lab', 'up', '--name', NAME, '--no-tzorp']);
    assert.equal(up.code, 0, up.stderr);
    const s = status();
    assert.equal(s.up, true);
    assert.deepEqual(s.problems, []);
    assert.deepEqual(
      s.nodes.map((n) => [n.role, n.namespace, n.exists]),
      NODE_ROLES.map((r) => [r, nodeNamespace(NAME, r), true]),
    );
    const addrs = Object.fromEntries(s.nodes.map((n) => [n.role, n.addresses]));
    assert.ok(addrs.client?.includes(`${LAB_ADDR.client4}/24`));
    assert.ok(addrs.client?.includes(`${LAB_ADDR.client6}/64`));
    assert.ok(addrs.server?.includes(`${LAB_ADDR.server6}/64`));
    assert.ok(addrs.outside?.includes(`${LAB_ADDR.outside4}/24`));
    assert.ok(s.nodes.find((n) => n.role === 'server')?.anyip.includes(LAB_ADDR.serverChildren4));
    assert.deepEqual(s.processes.map((p) => [p.name, p.alive]).sort(), [
      ['servers', true],
      ['vsftpd', true],
    ]);
    assert.equal(s.firewall.mode, 'none');
    assert.equal(s.firewall.table, false);
    pids = s.processes.map((p) => p.pid);
  });

  it('refuses a second lab of the same name and an unknown node', () => {
    const again = tzorp(['lab', 'up', '--name', NAME, '--no-tzorp']);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /already up/);
    const bad = inNode('router', ['true']);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /unknown node 'router'/);
  });

  it('every HTTP server address answers from the client, IPv4 and IPv6, and sees the client address', () => {
    const targets = [
      [LAB_ADDR.server4, 80],
      [`[${LAB_ADDR.server6}]`, 80],
      ['198.18.21.1', 8080], // a child-zone address (AnyIP)
      ['[2001:db8:20:21::1]', 80],
    ] as const;
    for (const [host, port] of targets) {
      const r = inNode('client', [
        'curl',
        '-sS',
        '--max-time',
        '10',
        '-H',
        'X-Probe: lab-test',
        `http://${host}:${port}/p`,
      ]);
      assert.equal(r.code, 0, `${host}:${port}: ${r.stderr}`);
      const body = JSON.parse(r.stdout) as ServerRecord;
      assert.equal(body.localPort, port);
      assert.equal(body.local, host.replace(/[[\]]/g, ''));
      assert.equal(body.peer, host.includes(':') ? LAB_ADDR.client6 : LAB_ADDR.client4);
      assert.deepEqual(
        body.headers?.find(([n]) => n === 'X-Probe'),
        ['X-Probe', 'lab-test'],
      );
    }
    const out = inNode('outside', ['curl', '-sS', '--max-time', '10', `http://${LAB_ADDR.server4}/`]);
    assert.equal(out.code, 0, out.stderr);
    assert.equal((JSON.parse(out.stdout) as ServerRecord).peer, LAB_ADDR.outside4);
  });

  it('FTP answers passive and active, IPv4 and IPv6, and takes an upload', () => {
    for (const host of [LAB_ADDR.server4, `[${LAB_ADDR.server6}]`]) {
      for (const mode of [[], ['-P', '-']]) {
        const r = inNode('client', [
          'curl',
          '-sS',
          '-g',
          '--max-time',
          '15',
          ...mode,
          `ftp://${host}/${FTP_FILES.hello.path}`,
        ]);
        assert.equal(r.code, 0, `${host} ${mode.join(' ')}: ${r.stderr}`);
        assert.equal(r.stdout, FTP_FILES.hello.text);
      }
    }
    const up = inNode(
      'client',
      ['curl', '-sS', '--max-time', '15', '-T', '-', `ftp://${LAB_ADDR.server4}/incoming/from-test.txt`],
      'uploaded\n',
    );
    assert.equal(up.code, 0, up.stderr);
    const s = status();
    const log = readFileSync(s.logs?.vsftpd ?? '', 'utf8');
    assert.match(log, /"PORT |"EPRT /, 'an active-mode transfer');
    assert.match(log, /"PASV"|"EPSV"/, 'a passive-mode transfer');
    assert.match(log, /OK UPLOAD: Client "[^"]*198\.18\.10\.10", "\/incoming\/from-test\.txt", 9 bytes/);
  });

  it('the banner service and the canaries name the peer they see, and the servers log it', () => {
    const r = inNode(
      'client',
      ['nc', '-q', '1', '-w', '5', LAB_ADDR.server4, String(LAB_PORTS.banner[0])],
      'echo me\n',
    );
    assert.equal(r.code, 0, r.stderr);
    assert.match(
      r.stdout,
      new RegExp(`^tzorp-lab banner: you are ${LAB_ADDR.client4.replaceAll('.', '\\.')} port \\d+`),
    );
    assert.match(r.stdout, /echo me/);
    const c = inNode('client', ['nc', '-s', LAB_ADDR.admin4, '-w', '5', LAB_ADDR.server4, '5555']);
    assert.match(c.stdout, /canary on port 5555: you are 198\.18\.30\.10/);
    const recs = serverRecords(status().logs?.servers ?? '');
    assert.ok(recs.some((x) => x.event === 'banner' && x.peer === LAB_ADDR.client4));
    assert.ok(recs.some((x) => x.event === 'canary' && x.port === 5555 && x.peer === LAB_ADDR.admin4));
  });

  it('exec passes the exit code through', () => {
    assert.equal(inNode('fw', ['sh', '-c', 'exit 7']).code, 7);
    const ip = inNode('fw', ['ip', '-br', 'addr', 'show', 'eth2']);
    assert.match(ip.stdout, /198\.19\.0\.1\/24/);
  });

  it('down leaves nothing behind and is idempotent', () => {
    const stateDir = status().stateDir;
    const d = tzorp(['lab', 'down', '--name', NAME]);
    assert.equal(d.code, 0, d.stderr);
    assert.deepEqual(labNamespacesLeft(), []);
    for (const pid of pids) assert.equal(running(pid), false, `pid ${pid} still runs`);
    assert.equal(existsSync(stateDir), false);
    const again = tzorp(['lab', 'down', '--name', NAME]);
    assert.equal(again.code, 0);
    assert.match(again.stdout, /was not up/);
    assert.equal(tzorp(['lab', 'status', '--name', NAME]).code, 1);
  });
});

describe('tzorp lab scenarios against a ruleset applied in the firewall', { skip }, () => {
  // A policy built by hand (the kernel tests' fixture), so this runs whatever the example policy says:
  // forward with forge_addr on 22, deny with a reset on 5555, nothing else.
  const NAME2 = `ls${process.pid}`;
  after(async () => {
    await labDown(NAME2);
  });

  it('forward keeps the client address, deny resets, unmatched is dropped — as the engine says', async () => {
    const policy = makePolicy({
      zones: {
        clients: { addresses: ['198.18.10.0/23', '2001:db8:10::/48'] },
        servers: { addresses: ['198.18.20.0/23', '2001:db8:20::/48'] },
      },
      services: {
        ssh: { type: 'forward', forgeAddr: true },
        deny: { type: 'deny', ipv4: 'tcp-reset', ipv6: 'tcp-reset' },
      },
      rules: [
        { id: 20, service: 'ssh', proto: [6], dstPort: [{ lo: 22, hi: 22 }], srcZone: ['clients'] },
        { id: 21, service: 'deny', proto: [6], dstPort: [{ lo: 5555, hi: 5555 }], srcZone: ['clients'] },
      ],
    });
    const state = await labUp({ name: NAME2, tzorp: false });
    await applyPolicy(policy, { prefix: ['ip', 'netns', 'exec', state.namespaces.fw], fixSysctls: true });
    // the lab ran no tzorp itself; the scenarios only need to know that a ruleset is in place
    state.firewall.mode = 'apply';
    const decide = scenarioDecider(policy);
    const rows = [];
    for (const id of ['forward', 'deny', 'unmatched']) {
      rows.push(await runScenario({ state, decide }, SCENARIOS.find((s) => s.id === id)!));
    }
    const [fwd, deny, none] = rows as [RowResult, RowResult, RowResult];
    assert.equal(fwd.decisionText, 'rule 20 → ssh (forward)');
    assert.deepEqual([fwd.status, fwd.problems], ['pass', []]);
    assert.match(fwd.server, /^banner from 198\.18\.10\.10/);
    assert.ok(
      fwd.proof.some((l) => /(svc_ssh|rule_20): counter \d+ → \d+/.test(l)),
      fwd.proof.join('\n'),
    );
    assert.deepEqual([deny.status, deny.problems], ['pass', []]);
    assert.match(deny.client, /ECONNREFUSED/);
    assert.equal(deny.server, 'nothing');
    assert.deepEqual([none.status, none.problems], ['pass', []]);
    assert.match(none.client, /timed out/);
    // and the lab's servers agree: the banner saw the client, the canary on 5555 saw nobody
    const recs = parseRecords(readFileSync(state.logs.servers, 'utf8').split('\n').filter(Boolean));
    assert.ok(recs.some((r) => r.event === 'banner' && r.peer === LAB_ADDR.client4));
    assert.ok(!recs.some((r) => r.event === 'canary'));
  });
});

describe('the live demo: tzorp run with examples/policy.yaml, every row checked', { skip }, () => {
  const NAME3 = `ld${process.pid}`;
  const hostState = () => ({
    tables: spawnSync('nft', ['list', 'tables'], { encoding: 'utf8' }).stdout,
    rules4: spawnSync('ip', ['-4', 'rule', 'show'], { encoding: 'utf8' }).stdout,
    rules6: spawnSync('ip', ['-6', 'rule', 'show'], { encoding: 'utf8' }).stdout,
  });
  const hostBefore = hostState();
  let rows: RowResult[] = [];
  let printed = '';
  let pids: number[] = [];
  after(async () => {
    await labDown(NAME3);
  });

  it('every row happens as the policy says, and what the servers saw agrees', async () => {
    const out = new PassThrough();
    out.on('data', (d) => {
      printed += d;
    });
    const r = await runLiveDemo({ name: NAME3, out });
    rows = r.rows;
    assert.equal(rows.length, SCENARIOS.length);
    const state = readLabState(NAME3);
    assert.ok(state);
    pids = state.processes.map((p) => p.pid);
    for (const row of rows) {
      const svc = row.decision.service;
      if (row.status === 'unavailable') {
        // only a row whose proxy (or daemon) is not in the tree may be skipped, and it says so
        assert.ok(svc?.type === 'proxy', `${row.scenario.id} unavailable without a proxy service`);
        assert.ok(
          state.firewall.mode !== 'run' || !proxyModule(svc.proxy),
          `${row.scenario.id}: ${row.client}`,
        );
        assert.match(row.client, /not available yet/);
        continue;
      }
      assert.deepEqual([row.scenario.id, row.status, row.problems], [row.scenario.id, 'pass', []]);
      if (svc?.type === 'proxy') assert.match(row.sessionId ?? '', new RegExp(`^svc/${svc.name}:\\d+$`));
    }
    assert.ok(r.ok);
    // status sees the running daemon, and the daemon counted the proxied rows' sessions
    const st = await labStatus(NAME3);
    assert.deepEqual(st.problems, []);
    assert.equal(st.firewall.table, true);
    assert.deepEqual(st.firewall.policyRouting, { v4: true, v6: true });
    const proxied = rows.filter((x) => x.status === 'pass' && x.decision.service?.type === 'proxy').length;
    assert.ok((st.daemon?.sessionsTotal ?? -1) >= proxied, `daemon counted ${st.daemon?.sessionsTotal}`);
    // the printed table has one numbered row per scenario and the proof section
    for (const [i] of SCENARIOS.entries()) assert.match(printed, new RegExp(`│ ${i + 1} +│`));
    assert.match(printed, /What proves it/);

    // independently of the row checks: the servers' own records
    const recs = parseRecords(readFileSync(state.logs.servers, 'utf8').split('\n').filter(Boolean));
    const header = rows.find((x) => x.scenario.id === 'http-header');
    if (header?.status === 'pass') {
      const rec = recs.find((x) => x.event === 'http' && x.url === '/demo/http-header');
      assert.equal(rec?.headers?.find(([n]) => n.toLowerCase() === 'user-agent')?.[1], 'Forged Browser 1.0');
      assert.equal(rec?.peer, LAB_ADDR.fwServer4, 'the HTTP proxy connects from the firewall');
    }
    const fwd = rows.find((x) => x.scenario.id === 'forward');
    assert.equal(fwd?.status, 'pass');
    assert.ok(
      recs.some((x) => x.event === 'banner' && x.peer === LAB_ADDR.client4),
      'forge_addr kept the client',
    );
    assert.ok(
      !recs.some((x) => x.port === 5555 || x.port === 9999),
      'denied and unmatched never reached a server',
    );
    const ftpLog = readFileSync(state.logs.vsftpd, 'utf8');
    for (const mode of ['ftp-passive', 'ftp-active']) {
      if (rows.find((x) => x.scenario.id === mode)?.status === 'pass')
        assert.match(ftpLog, /OK DOWNLOAD: .*hello\.txt/);
    }
  });

  it("runs the docs' lab examples in this lab", () => {
    const lab = docBlocks(join(REPO_ROOT, 'docs')).filter((b) => b.kind === 'sh-lab');
    assert.ok(lab.length > 0);
    for (const { block } of lab) {
      const r = spawnSync('sh', ['-e', '-c', block.text], {
        encoding: 'utf8',
        timeout: 120_000,
        env: { ...process.env, TZORP_LAB_NAME: NAME3, PATH: `${join(REPO_ROOT, 'bin')}:${process.env.PATH}` },
      });
      assert.equal(r.status, 0, `${block.file}:${block.line} exited ${r.status}:\n${r.stdout}\n${r.stderr}`);
    }
  });

  it('down leaves nothing behind and the host is as it was', async () => {
    await labDown(NAME3);
    assert.deepEqual(
      listNamespaces().filter((n) => n.startsWith(`tzl-${NAME3}-`)),
      [],
    );
    for (const pid of pids) assert.equal(running(pid), false, `pid ${pid} still runs`);
    assert.equal(readLabState(NAME3), null);
    assert.deepEqual(hostState(), hostBefore);
  });
});
