// End to end in namespaces: `tzorp run` in the lab's firewall with the real policy loader, kernel
// ruleset, workers and plug proxy; real clients (curl, nc) in the client namespace and a test server
// (peer-server.py, python http.server) in the server namespace. IPv4 and IPv6.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { ControlError, controlRequest } from '../../../src/daemon/control-client.ts';
import type { ReloadResult, SessionInfo, StatusResult } from '../../../src/daemon/control-protocol.ts';
import { ADDR, createLab, type Lab, type LabProcess, netnsSkipReason } from '../../harness/netns.ts';

const skip = netnsSkipReason();
const HERE = 'test/netns/daemon';
const TZ = [process.execPath, 'bin/tzorp'];
const dir = mkdtempSync(join(tmpdir(), 'tzorp-daemon-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const ZONES = `zones:
  clients:
    addresses: [198.18.1.0/24, "2001:db8:1::/64"]
  servers:
    addresses: [198.18.2.0/24, "2001:db8:2::/64"]
`;

/** Policy A: one plug service for 80, 8080, 8081 (rules 1-3). */
const POLICY_A = `${ZONES}services:
  plug:
    type: proxy
    proxy: plug
rules:
  - { id: 1, service: plug, proto: tcp, src_zone: clients, dst_zone: servers, dst_port: 8080 }
  - { id: 2, service: plug, proto: tcp, src_zone: clients, dst_zone: servers, dst_port: 8081 }
  - { id: 3, service: plug, proto: tcp, src_zone: clients, dst_zone: servers, dst_port: 80 }
`;

/** Policy B: A plus a service that sorts before 'plug' (its id shifts) with a rule of its own. */
const POLICY_B = `${ZONES}services:
  echo_extra:
    type: proxy
    proxy: plug
  plug:
    type: proxy
    proxy: plug
rules:
  - { id: 1, service: plug, proto: tcp, src_zone: clients, dst_zone: servers, dst_port: 8080 }
  - { id: 2, service: plug, proto: tcp, src_zone: clients, dst_zone: servers, dst_port: 8081 }
  - { id: 3, service: plug, proto: tcp, src_zone: clients, dst_zone: servers, dst_port: 80 }
  - { id: 9, service: echo_extra, proto: tcp, src_zone: clients, dst_port: 9090 }
`;

/** Broken: a rule names a zone that does not exist (line 9). */
const POLICY_BROKEN = `${ZONES}services:
  plug:
    type: proxy
    proxy: plug
rules:
  - { id: 1, service: plug, proto: tcp, src_zone: nowhere, dst_port: 8080 }
`;

interface Daemon {
  proc: LabProcess;
  control: string;
  policy: string;
}

function tz(lab: Lab, args: string[]) {
  return lab.exec('fw', [...TZ, ...args], { allowFail: true, timeoutMs: 120_000 });
}

async function startDaemon(
  lab: Lab,
  text: string,
  extra: string[] = [],
  opts: { pollStatus?: boolean } = {},
): Promise<Daemon> {
  const policy = join(dir, `${lab.id}.yaml`);
  writeFileSync(policy, text);
  const control = join(dir, `${lab.id}.sock`);
  const proc = lab.spawn('fw', [...TZ, 'run', policy, '--control', control, '--workers', '2', ...extra]);
  if (opts.pollStatus) {
    // status asked all through the start: no answer (no socket yet), then `starting` (the control
    // socket opens first, workers may not be initialised), then `running`; the daemon never falls over
    const seen: string[] = [];
    await waitUntil(
      'state running',
      async () => {
        const r = await tz(lab, ['status', '--json', '--control', control]);
        if (r.code !== 0) return false;
        const st = JSON.parse(r.stdout) as StatusResult;
        if (seen.at(-1) !== st.state) seen.push(st.state);
        return st.state === 'running';
      },
      600,
    );
    assert.ok(['starting,running', 'running'].includes(seen.join()), seen.join());
    await proc.waitFor(/tzorp running/, 120_000);
    assert.doesNotMatch(proc.stdout() + proc.stderr(), /Worker exited unexpectedly/);
  } else await proc.waitFor(/tzorp running/, 120_000);
  return { proc, control, policy };
}

async function startServer(lab: Lab): Promise<LabProcess> {
  const srv = lab.spawn('server', ['python3', `${HERE}/peer-server.py`]);
  await srv.waitFor(/ready/);
  return srv;
}

/** A test with a lab, the peer server and a daemon running `policy`; the lab goes afterwards. */
function daemonTest(
  name: string,
  policy: string,
  body: (lab: Lab, d: Daemon) => Promise<void>,
  args: string[] = [],
  opts: { pollStatus?: boolean } = {},
): void {
  test(name, { skip, timeout: 300_000 }, async () => {
    const lab = await createLab();
    try {
      await startServer(lab);
      await body(lab, await startDaemon(lab, policy, args, opts));
    } finally {
      await lab.destroy();
    }
  });
}

async function status(lab: Lab, d: Daemon): Promise<StatusResult> {
  const r = await tz(lab, ['status', '--json', '--control', d.control]);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as StatusResult;
}

async function sessions(lab: Lab, d: Daemon): Promise<SessionInfo[]> {
  const r = await tz(lab, ['sessions', '--json', '--control', d.control]);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as SessionInfo[];
}

function peer(lab: Lab, host: string, port: number) {
  const url = host.includes(':') ? `telnet://[${host}]:${port}` : `telnet://${host}:${port}`;
  return lab.exec('client', ['curl', '-s', '--max-time', '5', url], { allowFail: true });
}

async function waitUntil(what: string, f: () => Promise<boolean>, tries = 100): Promise<void> {
  for (let i = 0; i < tries; i++) {
    if (await f()) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`gave up waiting for ${what}`);
}

// Three times: plug sessions accepted, connected and relayed by the addon, the relay on the worker's
// event loop (the default); the same with the relay on a thread of its own (--relay-thread); and every
// byte through JavaScript's sockets (--no-native-relay).
for (const [how, flags] of [
  ['native accept and relay', []],
  ['--relay-thread', ['--relay-thread']],
  ['--no-native-relay', ['--no-native-relay']],
] as const)
  daemonTest(
    `plug relays IPv4 and IPv6; status and sessions show the live session; summary; stop cleans up (${how})`,
    POLICY_A,
    async (lab, d) => {
      // each worker says where its relay runs
      const where = flags.length === 0 ? 'loop' : flags[0] === '--relay-thread' ? 'thread' : 'off';
      const started = (d.proc.stdout() + d.proc.stderr()).match(/Worker started.*/g) ?? [];
      assert.equal(started.length, 2, started.join('\n'));
      for (const l of started) assert.match(l, new RegExp(`native_relay='?${where}`));
      const res = (await status(lab, d)).workerResources ?? [];
      assert.deepEqual(
        res.map((w) => w.nativeRelay),
        [where, where],
        'tzorp status --json: where each worker relays',
      );
      // the server sees the firewall's address (transparent router, no forge_addr)
      const r4 = await peer(lab, ADDR.server4, 8080);
      assert.match(r4.stdout, /^peer ::ffff:198\.18\.2\.1$/m);
      const r6 = await peer(lab, ADDR.server6, 8080);
      assert.match(r6.stdout, /^peer 2001:db8:2::1$/m);

      // live sessions, several at once so that both workers get some
      const held: LabProcess[] = [];
      for (let i = 0; i < 12; i++) {
        const host = i % 2 === 0 ? ADDR.server4 : ADDR.server6;
        const p = lab.spawn('client', ['nc', host, '8081']);
        held.push(p);
      }
      for (const p of held) await p.waitFor(/^peer /m);
      const list = await sessions(lab, d);
      const mine = list.filter((s) => s.clientLocal.port === 8081);
      assert.equal(mine.length, 12, JSON.stringify(list));
      for (const s of mine) {
        assert.match(s.id, /^svc\/plug:\d+$/);
        assert.equal(s.service, 'plug');
        assert.equal(s.rule, 2);
        assert.equal(s.decision, 'kernel'); // the rule id came from the accepted socket's mark
        assert.equal(s.client.zone, 'clients');
        assert.ok(s.client.address === ADDR.client4 || s.client.address === ADDR.client6);
        assert.equal(s.server?.zone, 'servers');
        assert.ok(s.server?.address === ADDR.server4 || s.server?.address === ADDR.server6);
        assert.equal(s.server?.port, 8081);
        assert.equal(
          s.bytesToClient,
          s.client.address.includes(':') ? 'peer 2001:db8:2::1\n'.length : 'peer ::ffff:198.18.2.1\n'.length,
        );
        assert.equal(s.generation, 1);
      }
      assert.equal(new Set(mine.map((s) => s.id)).size, 12, 'ids are unique across workers');
      assert.equal(
        new Set(mine.map((s) => s.worker)).size,
        2,
        `both workers accept: ${JSON.stringify(mine.map((s) => s.worker))}`,
      );
      const text = await tz(lab, ['sessions', '--control', d.control]);
      assert.ok(text.stdout.includes(mine[0]!.id));

      const st = await status(lab, d);
      const sha = createHash('sha256').update(POLICY_A).digest('hex');
      assert.equal(st.state, 'running');
      // the effective configuration: the defaults with this run's command line
      assert.equal(st.config.workers, 2);
      assert.equal(st.config.controlSocketPath, d.control);
      assert.equal(st.config.connectTimeoutMs, 30_000);
      assert.equal(st.config.policyFile, d.policy);
      assert.equal(st.policy.sha256, sha);
      assert.equal(st.generation, 1);
      assert.equal(st.workers, 2);
      assert.equal(st.workersAlive, 2);
      const plug = st.services.find((s) => s.name === 'plug')!;
      assert.equal(plug.sessionsRunning, 12);
      assert.equal(plug.sessionsTotal, 14);
      assert.ok(plug.lastStarted);
      const stText = await tz(lab, ['status', '--control', d.control]);
      assert.match(stText.stdout, new RegExp(`sha256=${sha}`));
      assert.match(stText.stdout, /^state: running$/m);

      // run-time log levels
      const lg = await tz(lab, ['log', '--spec', 'core.*:6,plug.*:7', '--control', d.control]);
      assert.equal(lg.code, 0, lg.stderr);
      assert.match(lg.stdout, /spec 'core\.\*:6,plug\.\*:7'/);
      assert.equal((await status(lab, d)).log.spec, 'core.*:6,plug.*:7');
      const badSpec = await tz(lab, ['log', '--spec', 'core:99', '--control', d.control]);
      assert.equal(badSpec.code, 2);
      await tz(lab, ['log', '--spec', 'core.summary:4', '--control', d.control]);

      // Prometheus metrics from both workers, summed by the primary
      const [, maddr] = (await d.proc.waitFor(/Metrics listener ready; address='([^']+)'/)) as unknown as [
        string,
        string,
      ];
      const m = await lab.exec('fw', ['curl', '-s', `http://${maddr}/metrics`]);
      assert.match(m.stdout, /^tzorp_generation 1$/m);
      assert.match(m.stdout, /^tzorp_sessions_total\{service="plug",verdict="ACCEPTED"\} 2$/m);
      assert.match(m.stdout, /^tzorp_sessions_running\{service="plug"\} 12$/m);

      for (const p of held) p.kill('SIGTERM');
      // the summary of a finished session, with Zorp's fields and the verdict
      await d.proc.waitFor(
        /core\.summary\(4\): \(svc\/plug:\d+\): Connection summary; rule_id='1', .*client_address='AF_INET\(198\.18\.1\.2:\d+\)', client_zone='clients', .*server_address='AF_INET\(198\.18\.2\.2:8080\)', server_zone='servers', .*verdict='ACCEPTED'/,
      );
      await d.proc.waitFor(/client_address='AF_INET6\(\[2001:db8:1::2\]:\d+\)'.*verdict='ACCEPTED'/);

      // a worker that dies is started again and gets the listeners and the generation. Status and
      // sessions are asked for all the while (as a monitoring system would): a worker that is starting
      // is left out of the answers until it runs the current generation, and is never asked before.
      const before = await status(lab, d);
      const logText = () => d.proc.stdout() + d.proc.stderr();
      const exitsBefore = logText().split('Worker exited unexpectedly').length;
      process.kill(before.workerPids[0]!, 'SIGKILL');
      let asking = true;
      const asker = (async () => {
        while (asking) {
          await controlRequest<StatusResult>(d.control, { cmd: 'status' });
          await controlRequest<SessionInfo[]>(d.control, { cmd: 'sessions' });
        }
      })();
      try {
        await waitUntil('the worker restart', async () => {
          const s = await controlRequest<StatusResult>(d.control, { cmd: 'status' });
          return s.workersAlive === 2 && !s.workerPids.includes(before.workerPids[0]!);
        });
      } finally {
        asking = false;
        await asker;
      }
      await d.proc.waitFor(/Worker started again; worker='0'/);
      assert.equal(
        logText().split('Worker exited unexpectedly').length - exitsBefore,
        1,
        `one exit (the kill), no crash of the restarted worker:\n${logText().slice(-4000)}`,
      );
      assert.ok(!logText().includes('Worker restart failed'), logText().slice(-4000));
      for (let i = 0; i < 6; i++)
        assert.match((await peer(lab, i % 2 ? ADDR.server6 : ADDR.server4, 8080)).stdout, /^peer /m);

      // stop with a session still running: the daemon drains (status says so) until the session ends
      const last = lab.spawn('client', ['nc', ADDR.server4, '8081']);
      await last.waitFor(/^peer /m);
      const stopping = lab.spawn('fw', [...TZ, 'stop', '--timeout', '120000', '--control', d.control]);
      await waitUntil('the draining state', async () => (await status(lab, d)).state === 'draining');
      const refusedReload = await tz(lab, ['reload', '--control', d.control]);
      assert.equal(refusedReload.code, 1);
      assert.match(refusedReload.stderr, /TZ3008/);
      last.kill('SIGTERM');
      assert.equal(await stopping.exited(), 0, stopping.stderr());
      assert.match(stopping.stdout(), /stopped/);
      assert.equal(await d.proc.exited(), 0);
      const table = await lab.exec('fw', ['nft', 'list', 'table', 'inet', 'tzorp'], { allowFail: true });
      // tzorp stop leaves the closed table (docs/operations.md): no decision, nothing forwarded
      assert.equal(table.code, 0, 'tzorp stop leaves the closed table');
      assert.doesNotMatch(table.stdout, /chain prerouting/, 'no decision, no diversion');
      assert.match(table.stdout, /tzorp is stopped: nothing is forwarded/);
      const rules = await lab.exec('fw', ['ip', 'rule', 'show']);
      assert.ok(!/fwmark 0x80000000/.test(rules.stdout), rules.stdout);
      // no daemon: exit 1 and TZ3001 with the socket path
      const gone = await tz(lab, ['status', '--control', d.control]);
      assert.equal(gone.code, 1);
      assert.ok(gone.stderr.includes('TZ3001') && gone.stderr.includes(d.control), gone.stderr);
    },
    ['--metrics', '127.0.0.1:0', ...flags],
    { pollStatus: true },
  );

daemonTest(
  'reloads: a worker keeps the zones a reload did not change, and sees the zones one changed (client_zone)',
  POLICY_A,
  async (lab, d) => {
    const logText = () => d.proc.stdout() + d.proc.stderr();
    // the zone each new session's client was found in, by the worker (its engine's zone lookup)
    const zoneOfNewSession = async (host: string): Promise<string> => {
      const before = logText().split('Starting proxy session').length;
      const r = await peer(lab, host, 8080);
      assert.match(r.stdout, /^peer /m, r.stderr);
      await waitUntil(
        'the session log line',
        async () => logText().split('Starting proxy session').length > before,
      );
      const line = logText().split('Starting proxy session').at(-1)!;
      return /client_zone='([^']*)'/.exec(line)![1]!;
    };
    let gen = 1;
    const reload = async (text: string) => {
      writeFileSync(d.policy, text);
      const r = await tz(lab, ['reload', '--control', d.control]);
      assert.equal(r.code, 0, r.stderr);
      gen++;
      await d.proc.waitFor(new RegExp(`Policy reloaded; generation='${gen}'`));
    };
    // After the start, the primary and each worker gave back what loading the policy left in their heap
    // (core.info level 4): one line each, the heap no bigger after, and smaller in at least one
    const shed = () =>
      [...logText().matchAll(/Memory given back; heap_before_kib='(\d+)', heap_after_kib='(\d+)'/g)].map(
        (m) => [Number(m[1]), Number(m[2])] as const,
      );
    await waitUntil('three Memory given back lines', async () => shed().length >= 3);
    const atStart = shed();
    assert.equal(atStart.length, 3, logText());
    for (const [before, after] of atStart) assert.ok(after <= before, `${before} -> ${after} KiB`);
    assert.ok(
      atStart.some(([before, after]) => after < before),
      atStart.join(' '),
    );
    // the primary's comes before it says it runs (its memory from then on is what it keeps)
    const primaryPid = /tzorp running; pid='(\d+)'/.exec(logText())![1]!;
    const primaryShed = logText().indexOf(
      `tzorp[${primaryPid}]: core.info(4): (nosession): Memory given back`,
    );
    assert.ok(primaryShed >= 0 && primaryShed < logText().indexOf('tzorp running'), logText());
    assert.equal(await zoneOfNewSession(ADDR.server4), 'clients');
    // the same zones (a rule changed): the workers are sent the policy without them
    await reload(POLICY_A.replace('dst_port: 80 }', 'dst_port: 8088 }'));
    assert.equal(await zoneOfNewSession(ADDR.server4), 'clients');
    assert.equal(await zoneOfNewSession(ADDR.server6), 'clients');
    // a zone below 'clients' now holds the client's networks (rules on 'clients' still match it)
    const split = POLICY_A.replace(
      'servers:\n',
      'clients.lab:\n    parent: clients\n    addresses: [198.18.1.0/25, "2001:db8:1::/65"]\n  servers:\n',
    );
    assert.notEqual(split, POLICY_A);
    await reload(split);
    assert.equal(await zoneOfNewSession(ADDR.server4), 'clients.lab');
    assert.equal(await zoneOfNewSession(ADDR.server6), 'clients.lab');
    // the same again (kept), then back to the first zones (sent whole again)
    await reload(`${split}# a comment\n`);
    assert.equal(await zoneOfNewSession(ADDR.server4), 'clients.lab');
    await reload(POLICY_A);
    assert.equal(await zoneOfNewSession(ADDR.server4), 'clients');
    assert.equal(await zoneOfNewSession(ADDR.server6), 'clients');
    assert.doesNotMatch(logText(), /Worker exited unexpectedly/);
    // each reload: the primary gives back its compile's garbage too (and idle workers theirs)
    await waitUntil('a Memory given back line per reload', async () => shed().length >= 3 + 4);
    d.proc.kill('SIGTERM');
    await d.proc.exited();
  },
  ['--log-spec', 'core.summary:4,core.info:4'],
);

test('a policy with errors: tzorp run refuses to start (exit 1, file:line:col), nothing installed', {
  skip,
  timeout: 120_000,
}, async () => {
  const lab = await createLab();
  try {
    const policy = join(dir, `${lab.id}-broken.yaml`);
    writeFileSync(policy, POLICY_BROKEN);
    const r = await lab.exec('fw', [...TZ, 'run', policy, '--control', join(dir, `${lab.id}-b.sock`)], {
      allowFail: true,
    });
    assert.equal(r.code, 1);
    assert.match(r.stderr, new RegExp(`${policy.replace(/[.]/g, '\\.')}:\\d+:\\d+: TZ1031`));
    const table = await lab.exec('fw', ['nft', 'list', 'tables']);
    assert.equal(table.stdout.trim(), '');
  } finally {
    await lab.destroy();
  }
});

test('reload under load: 20 reloads (valid and broken) during a long transfer and a stream of new connections', {
  skip,
  timeout: 600_000,
}, async (ctx) => {
  const lab = await createLab();
  try {
    await startServer(lab);
    const BIG = randomBytes(24 * 1024 * 1024);
    const root = mkdtempSync(join(dir, `${lab.id}-root-`));
    writeFileSync(join(root, 'big'), BIG);
    const want = createHash('sha256').update(BIG).digest('hex');
    const http = lab.spawn('server', [
      'python3',
      '-m',
      'http.server',
      '80',
      '--bind',
      '::',
      '--directory',
      root,
    ]);
    await http.waitFor(/Serving HTTP/);
    const d = await startDaemon(lab, POLICY_A);
    const plugListeners = (await status(lab, d)).services.find((s) => s.name === 'plug')?.listeners;
    const stopFile = join(dir, `${lab.id}.stop`);
    const countFile = join(dir, `${lab.id}.count`);

    // the long transfer: rate-limited so that it spans many reloads
    let transferDone = false;
    const transfer = lab
      .sh('client', `curl -sS --limit-rate 1M http://${ADDR.server4}/big | sha256sum`, {
        timeoutMs: 300_000,
        allowFail: true,
      })
      .finally(() => {
        transferDone = true;
      });
    // the stream of new connections (IPv4 and IPv6, alternating) until the reloads are over
    const stream = lab.sh(
      'client',
      `ok=0; fail=0
       while [ ! -e ${stopFile} ]; do
         for h in ${ADDR.server4} '[${ADDR.server6}]'; do
           if curl -s --max-time 5 "telnet://$h:8080" | grep -q '^peer '; then ok=$((ok+1)); else fail=$((fail+1)); echo "FAIL $h $(date +%T.%N)"; fi
         done
         echo $((ok+fail)) > ${countFile}.tmp && mv ${countFile}.tmp ${countFile}
       done
       echo "ok=$ok fail=$fail"`,
      { timeoutMs: 300_000, allowFail: true },
    );

    // Most reloads go straight to the control socket (a UNIX socket path: reachable from the test
    // process) because each CLI start takes seconds on a busy machine; reloads 19 and 20 use the CLI,
    // reload 7 is a SIGHUP.
    let expectGen = 1;
    let reloadsWhileTransferring = 0;
    let extra: LabProcess | null = null;
    let extraGen = 0;
    // Each reload comes after the stream made new connections since the last one: reloads take tens of
    // milliseconds on a quiet machine, and without this the 20 could be over before the stream's first
    // connections (a retransmitted SYN alone takes a second).
    let attempts = 0;
    const streamMoved = async () => {
      for (let t = 0; t < 600; t++) {
        const n = Number(existsSync(countFile) ? readFileSync(countFile, 'utf8') : 0);
        if (n > attempts) {
          attempts = n;
          return;
        }
        await new Promise((r) => setTimeout(r, 50));
      }
      throw new Error(`the stream of new connections made none in 30 s (${attempts} so far)`);
    };
    for (let i = 1; i <= 20; i++) {
      await streamMoved();
      const broken = i % 4 === 2 || i === 19;
      writeFileSync(d.policy, broken ? POLICY_BROKEN : i % 2 === 0 ? POLICY_A : POLICY_B);
      if (i === 7) {
        d.proc.kill('SIGHUP'); // the process group: the primary reloads, workers ignore it
        expectGen++;
        await d.proc.waitFor(new RegExp(`Policy reloaded; generation='${expectGen}'`));
      } else if (i >= 19) {
        const r = await tz(lab, ['reload', '--control', d.control]);
        if (broken) {
          assert.equal(r.code, 1, `reload ${i} of a broken policy must fail: ${r.stdout}`);
          assert.match(r.stderr, /TZ3002/);
          assert.match(r.stderr, /\.yaml:\d+:\d+: TZ1031/);
        } else {
          expectGen++;
          assert.equal(r.code, 0, `reload ${i}: ${r.stderr}`);
          assert.match(r.stdout, new RegExp(`generation ${expectGen}\\b`));
        }
      } else if (broken) {
        await assert.rejects(controlRequest(d.control, { cmd: 'reload' }), (e: unknown) => {
          assert.ok(e instanceof ControlError);
          assert.equal(e.body.code, 'TZ3002');
          assert.match(e.body.errors?.join('\n') ?? '', /\.yaml:\d+:\d+: TZ1031/);
          return true;
        });
      } else {
        expectGen++;
        const r = await controlRequest<ReloadResult>(d.control, { cmd: 'reload' });
        assert.equal(r.generation, expectGen);
        if (i === 1) {
          // a long session of echo_extra, which the next valid reload removes: the reloads must not
          // wait for it, and it must go on, on its own generation
          assert.deepEqual(r.servicesAdded, ['echo_extra']);
          extraGen = r.generation;
          extra = lab.spawn('client', ['nc', ADDR.server4, '9090']);
          await extra.waitFor(/^peer /m);
        }
      }
      if (!transferDone) reloadsWhileTransferring++;
    }
    writeFileSync(stopFile, '');
    const streamOut = (await stream).stdout;
    const [, ok, fail] = /ok=(\d+) fail=(\d+)/.exec(streamOut) ?? [];
    assert.equal(fail, '0', streamOut);
    assert.ok(Number(ok) >= 20, streamOut);
    const t = await transfer;
    assert.equal(t.stdout.split(/\s/)[0], want, `transfer intact: ${t.stdout} ${t.stderr}`);
    assert.ok(reloadsWhileTransferring >= 5, `the transfer spanned ${reloadsWhileTransferring} reloads`);
    ctx.diagnostic(
      `new connections ok=${ok} fail=${fail}; reloads during the transfer: ${reloadsWhileTransferring}`,
    );
    const st = await status(lab, d);
    assert.equal(st.generation, expectGen);
    const live = (await sessions(lab, d)).filter((x) => x.service === 'echo_extra');
    assert.equal(live.length, 1, 'the echo_extra session outlived its service');
    assert.equal(live[0]!.generation, extraGen);
    assert.deepEqual(st.oldGenerations, [{ generation: extraGen, sessions: 1 }]);
    // and it still relays
    extra?.child.stdin?.write('still there\n');
    await waitUntil('bytes through the old session', async () =>
      (await sessions(lab, d)).some((x) => x.service === 'echo_extra' && x.bytesFromClient === 12),
    );
    extra?.kill('SIGTERM');
    // the listener of the service that stayed kept its port (and socket) throughout
    assert.deepEqual(st.services.find((s) => s.name === 'plug')?.listeners, plugListeners);
    await tz(lab, ['stop', '--control', d.control]);
    assert.equal(await d.proc.exited(), 0);
  } finally {
    await lab.destroy();
  }
});

/** max_sessions 1 on the held port (8081): counted over both workers by the primary. */
const POLICY_LIMIT = `${ZONES}services:
  plug:
    type: proxy
    proxy: plug
  limited:
    type: proxy
    proxy: plug
    max_sessions: 1
rules:
  - { id: 1, service: plug, proto: tcp, src_zone: clients, dst_port: 8080 }
  - { id: 2, service: limited, proto: tcp, src_zone: clients, dst_port: 8081 }
`;

daemonTest(
  'max_sessions is daemon-wide: over the limit refused with DENIED_BY_LIMIT',
  POLICY_LIMIT,
  async (lab, d) => {
    const first = lab.spawn('client', ['nc', ADDR.server4, '8081']);
    await first.waitFor(/^peer /m);
    // several more attempts: whichever worker accepts them, the one slot is taken
    for (let i = 0; i < 4; i++) {
      const r = await peer(lab, i % 2 ? ADDR.server6 : ADDR.server4, 8081);
      assert.ok(!/peer/.test(r.stdout), `attempt ${i} over the limit got through: ${r.stdout}`);
    }
    await d.proc.waitFor(
      /core\.summary\(4\): \(svc\/limited:\d+\): Connection summary; rule_id='2', .*verdict='DENIED_BY_LIMIT'/,
    );
    const st = await status(lab, d);
    const lim = st.services.find((s) => s.name === 'limited')!;
    assert.equal(lim.sessionsRunning, 1);
    assert.equal(lim.sessionsRefused, 4);
    // the slot comes back when the session ends
    // a second daemon on the same control socket refuses to start and changes nothing
    const twin = await lab.exec('fw', [...TZ, 'run', d.policy, '--control', d.control], { allowFail: true });
    assert.equal(twin.code, 1);
    assert.match(twin.stderr, /TZ3006/);
    assert.equal((await status(lab, d)).services.find((s) => s.name === 'limited')!.sessionsRunning, 1);
    first.kill('SIGTERM');
    await waitUntil('the slot to be free', async () =>
      /^peer /m.test((await peer(lab, ADDR.server4, 8081)).stdout),
    );

    // stop drains with a timeout: a session still running after it is ended
    // (curl, unlike nc, exits when the other side closes)
    const held = lab.exec('client', ['curl', '-s', '--max-time', '100', `telnet://[${ADDR.server6}]:8081`], {
      allowFail: true,
      timeoutMs: 120_000,
    });
    await waitUntil(
      'the held session',
      async () => (await status(lab, d)).services.find((s) => s.name === 'limited')?.sessionsRunning === 1,
    );
    const stop = await tz(lab, ['stop', '--timeout', '1500', '--control', d.control]);
    assert.equal(stop.code, 0, stop.stderr);
    assert.match(stop.stdout, /1 sessions aborted after the timeout; kernel ruleset and routing removed/);
    const h = await held;
    assert.equal(h.code, 0, 'the session was closed by the daemon, not by curl --max-time');
    assert.match(h.stdout, /^peer 2001:db8:2::1$/m);
    assert.equal(await d.proc.exited(), 0);
  },
);

daemonTest(
  'max_sessions from slots leased to the workers: exact over both workers, and a reload that lowers it holds',
  POLICY_LIMIT.replace('max_sessions: 1', 'max_sessions: 3'),
  async (lab, d) => {
    const limited = async () => (await status(lab, d)).services.find((s) => s.name === 'limited')!;
    const hold = async (n: number) => {
      const held: LabProcess[] = [];
      for (let i = 0; i < n; i++) {
        const p = lab.spawn('client', ['nc', i % 2 ? ADDR.server6 : ADDR.server4, '8081']);
        await p.waitFor(/^peer /m);
        held.push(p);
      }
      return held;
    };
    const refusedNow = async (tries: number) => {
      for (let i = 0; i < tries; i++) {
        const r = await peer(lab, i % 2 ? ADDR.server6 : ADDR.server4, 8081);
        if (!/peer/.test(r.stdout)) continue;
        // (seen once in CI, not since: what the daemon ran and logged, for whoever sees it next)
        const running = await sessions(lab, d).catch((e: Error) => e.message);
        const log = (d.proc.stdout() + d.proc.stderr())
          .split('\n')
          .filter((l) => /svc\/limited|Policy reloaded|core\.error/.test(l))
          .slice(-40)
          .join('\n');
        assert.fail(
          `attempt ${i} over the limit got through: ${r.stdout}\nsessions: ${JSON.stringify(running)}\nlog:\n${log}`,
        );
      }
    };
    // twice over: the second round runs on slots the workers kept from the first
    for (const round of [1, 2]) {
      const held = await hold(3);
      assert.equal((await limited()).sessionsRunning, 3, `round ${round}`);
      await refusedNow(6);
      for (const p of held) p.kill('SIGTERM');
      await waitUntil('the sessions to end', async () => (await limited()).sessionsRunning === 0);
    }
    assert.equal((await limited()).sessionsRefused, 12);
    // the workers keep free slots leased under max 3; the reload makes it 1
    writeFileSync(d.policy, POLICY_LIMIT);
    const r = await tz(lab, ['reload', '--control', d.control]);
    assert.equal(r.code, 0, r.stderr);
    const [one] = await hold(1);
    await refusedNow(6);
    one!.kill('SIGTERM');
    await waitUntil('the slot to be free', async () =>
      /^peer /m.test((await peer(lab, ADDR.server6, 8081)).stdout),
    );
    d.proc.kill('SIGTERM');
    await d.proc.exited();
  },
);

test('kill -9 the daemon: connections to proxy services fail (fail closed); tzorp flush cleans up', {
  skip,
  timeout: 300_000,
}, async () => {
  const lab = await createLab();
  try {
    const srv = await startServer(lab);
    const d = await startDaemon(lab, POLICY_A, ['--log-format', 'json']);
    assert.match((await peer(lab, ADDR.server4, 8080)).stdout, /^peer /m);
    // (this daemon logs JSON: the same summary as one pino record)
    const [line] = await d.proc.waitFor(/^\{.*"class":"core\.summary".*\}$/m);
    const rec = JSON.parse(line);
    assert.match(rec.session_id, /^svc\/plug:\d+$/);
    assert.equal(rec.zlevel, 4);
    assert.equal(rec.verdict, 'ACCEPTED');
    assert.equal(rec.rule_id, 1);
    assert.equal(rec.client_zone, 'clients');
    assert.equal(rec.msg, 'Connection summary');
    const { pid } = await status(lab, d);
    process.kill(pid, 'SIGKILL');
    await d.proc.exited();
    // the workers notice the primary is gone and exit, closing their copies of the listeners
    await waitUntil('workers to exit', async () => {
      // asked from outside the namespace (an `ip netns exec fw ...` would count itself)
      const pids = execFileSync('ip', ['netns', 'pids', lab.ns.fw], { encoding: 'utf8' })
        .split(/\s+/)
        .filter(Boolean);
      return pids.length === 0;
    });
    const accepted = (srv.stdout().match(/^accept /gm) ?? []).length;
    const f4 = await peer(lab, ADDR.server4, 8080);
    const f6 = await peer(lab, ADDR.server6, 8080);
    assert.ok(!/peer/.test(f4.stdout) && f4.code !== 0, `IPv4 must fail closed: ${f4.stdout}`);
    assert.ok(!/peer/.test(f6.stdout) && f6.code !== 0, `IPv6 must fail closed: ${f6.stdout}`);
    assert.equal((srv.stdout().match(/^accept /gm) ?? []).length, accepted, 'nothing reached the server');
    // the ruleset is still there (that is what fails closed) until tzorp flush --open removes it
    assert.equal(
      (await lab.exec('fw', ['nft', 'list', 'table', 'inet', 'tzorp'], { allowFail: true })).code,
      0,
    );
    const fl = await tz(lab, ['flush', '--open']);
    assert.equal(fl.code, 0, fl.stderr);
    assert.notEqual(
      (await lab.exec('fw', ['nft', 'list', 'table', 'inet', 'tzorp'], { allowFail: true })).code,
      0,
    );
    for (const fam of ['-4', '-6']) {
      const rules = await lab.exec('fw', ['ip', fam, 'rule', 'show']);
      assert.ok(!/fwmark 0x80000000/.test(rules.stdout), rules.stdout);
    }
  } finally {
    await lab.destroy();
  }
});

test('descriptor limit: the daemon raises its soft limit, logs the capacity and refuses beyond it cleanly', {
  skip,
  timeout: 300_000,
}, async () => {
  const lab = await createLab();
  try {
    await startServer(lab);
    const policy = join(dir, `${lab.id}-nofile.yaml`);
    writeFileSync(policy, POLICY_A);
    const control = join(dir, `${lab.id}-nofile.sock`);
    // soft 100, hard 200: the daemon raises the soft limit to 200, which leaves (200 - 128) / 2 = 36
    // sessions for its one worker (src/daemon/capacity.ts)
    const proc = lab.spawn('fw', [
      'prlimit',
      '--nofile=100:200',
      ...TZ,
      'run',
      policy,
      '--control',
      control,
      '--workers',
      '1',
    ]);
    await proc.waitFor(/tzorp running/, 120_000);
    const d: Daemon = { proc, control, policy };
    assert.match(
      proc.stdout() + proc.stderr(),
      /Descriptor limit; nofile='200', session_capacity_per_worker='36', session_capacity='36'/,
    );
    const holder = lab.spawn('client', [
      process.execPath,
      `${HERE}/hold-clients.mjs`,
      ADDR.server4,
      '8081',
      '40',
    ]);
    const [line] = await holder.waitFor(/^held \d+ refused \d+ stuck \d+$/m, 240_000);
    assert.equal(line, 'held 36 refused 4 stuck 0');
    const st = await status(lab, d);
    const plug = st.services.find((s) => s.name === 'plug')!;
    assert.equal(plug.sessionsRunning, 36);
    assert.equal(plug.sessionsRefused, 4);
    await proc.waitFor(/Connection refused, descriptor limit reached/);
    // the sessions end with their clients: there is room again, and the daemon never stopped serving
    holder.kill('SIGKILL');
    await waitUntil('a place to be free', async () =>
      /^peer /m.test((await peer(lab, ADDR.server4, 8080)).stdout),
    );
    const stop = await tz(lab, ['stop', '--control', control]);
    assert.equal(stop.code, 0, stop.stderr);
    assert.equal(await proc.exited(), 0);
  } finally {
    await lab.destroy();
  }
});

// A policy whose zones hold 20,000 networks (DEFAULTS.kernelStagedZoneNetworks) besides the lab's.
const manyNetworks = (): string => {
  const a: string[] = [];
  for (let i = 0; i < 20_000; i++) a.push(`198.19.${i >> 8}.${i & 255}`);
  return `  many:\n    addresses: [${a.join(', ')}]\n`;
};

daemonTest(
  'start: a large first table is staged (zone section while compiling); after a stop it is replaced whole, a reload sends differences',
  POLICY_A.replace('services:\n', `${manyNetworks()}services:\n`),
  async (lab, d) => {
    const line = (text: string, what: RegExp) =>
      text
        .split('\n')
        .filter((l) => what.test(l))
        .at(-1) ?? '';
    assert.match(line(d.proc.stdout() + d.proc.stderr(), /tzorp running/), /kernel='staged'/);
    assert.doesNotMatch(line(d.proc.stdout() + d.proc.stderr(), /tzorp running/), /kernel_fallback/);
    assert.match((await peer(lab, ADDR.server4, 8080)).stdout, /^peer /m);
    const r = await tz(lab, ['reload', '--control', d.control]);
    assert.equal(r.code, 0, r.stderr);
    await d.proc.waitFor(/Policy reloaded/);
    assert.match(line(d.proc.stdout() + d.proc.stderr(), /Policy reloaded/), /kernel='differences'/);
    const stop = await tz(lab, ['stop', '--control', d.control]);
    assert.equal(stop.code, 0, stop.stderr);
    assert.equal(await d.proc.exited(), 0);
    // the closed table stays after a stop: the next start replaces it in one transaction
    const again = lab.spawn('fw', [...TZ, 'run', d.policy, '--control', d.control, '--workers', '1']);
    await again.waitFor(/tzorp running/, 120_000);
    assert.match(line(again.stdout() + again.stderr(), /tzorp running/), /kernel='whole'/);
    assert.match((await peer(lab, ADDR.server6, 8080)).stdout, /^peer /m);
    again.kill('SIGTERM');
    assert.equal(await again.exited(), 0);
  },
);
