// The pure parts of the demo rows: which header value the policy promises, and finding a session's
// lines in tzorp's log by the client's address and port.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { expectedUserAgent, runScenario, SCENARIOS, sessionLines } from '../../../src/lab/scenarios.ts';
import type { LabState } from '../../../src/lab/state.ts';
import type { Service } from '../../../src/policy/model.ts';

describe('demo rows', () => {
  it('reads the User-Agent the HTTP proxy should send from the options as written', () => {
    const sent = 'curl/8';
    assert.equal(expectedUserAgent({}, sent), sent);
    assert.equal(
      expectedUserAgent(
        { request_header: { 'User-Agent': { action: 'change_value', value: 'F 1.0' } } },
        sent,
      ),
      'F 1.0',
    );
    assert.equal(expectedUserAgent({ request_header: { 'user-agent': ['replace', 'R'] } }, sent), 'R');
    assert.equal(expectedUserAgent({ request_header: { 'User-Agent': 'drop' } }, sent), '(none)');
    assert.equal(expectedUserAgent({ request_header: { Accept: ['change_value', 'x'] } }, sent), sent);
  });

  it("finds a session's own lines by the client end, IPv4 and IPv6", () => {
    const log = [
      "t tzorp[1]: core.session(3): (svc/web:7): Starting proxy session; client_address='AF_INET(198.18.10.10:40000)'",
      "t tzorp[1]: core.session(3): (svc/web:8): Starting proxy session; client_address='AF_INET(198.18.10.10:40001)'",
      "t tzorp[1]: core.session(3): (svc/web:7): Server connection established; server_address='AF_INET(198.18.20.10:80)'",
      't tzorp[1]: http.request(5): (svc/web:70): GET',
      "t tzorp[1]: core.summary(4): (svc/web:7): Connection summary; rule_id='1'",
      "t tzorp[1]: core.session(3): (svc/v6:1): Starting proxy session; client_address='AF_INET6([2001:db8:10::10]:5000)'",
    ];
    const s = sessionLines(log, '198.18.10.10', 40000);
    assert.equal(s.id, 'svc/web:7');
    assert.deepEqual(s.lines, [log[0], log[2], log[4]]);
    assert.equal(sessionLines(log, '2001:db8:10::10', 5000).id, 'svc/v6:1');
    assert.equal(sessionLines(log, '198.18.10.10', 4000).id, null);
  });
});

describe('demo rows that cannot run', () => {
  const state = {
    version: 1,
    name: 'x',
    createdAt: '',
    stateDir: '/nonexistent',
    policy: null,
    namespaces: { client: 'c', fw: 'f', server: 's', outside: 'o' },
    processes: [],
    firewall: { mode: 'apply', detail: '', controlSocket: null },
    logs: { servers: '/nonexistent', vsftpd: '/nonexistent', tzorp: null },
  } as const satisfies LabState;
  const proxy = (name: string): Service => ({
    name,
    id: 1,
    pos: { file: 'p', line: 1, col: 1 },
    logging: true,
    type: 'proxy',
    proxy: name,
    router: { type: 'transparent', forcedPort: null, forgeAddr: false, forgePort: 'any' },
    chainer: { type: 'connect', timeoutConnectMs: 1000 },
    options: {},
    limitTargetZonesTo: [],
    maxSessions: 0,
    listenPort: null,
  });
  const s = SCENARIOS[0]!;

  it('say "not available yet" for a proxy row without the daemon, and drive no traffic', async () => {
    const r = await runScenario(
      {
        state: { ...state },
        decide: () => ({ rule: 1, service: proxy('http'), clientZone: null, serverZone: null }),
      },
      s,
    );
    assert.equal(r.status, 'unavailable');
    assert.match(r.client, /not available yet: tzorp run/);
  });

  it('say "not available yet" for a proxy this tree does not have', async () => {
    const running = { ...state, firewall: { ...state.firewall, mode: 'run' as const } };
    const r = await runScenario(
      {
        state: running,
        decide: () => ({ rule: 1, service: proxy('smtp'), clientZone: null, serverZone: null }),
      },
      s,
    );
    assert.equal(r.status, 'unavailable');
    assert.match(r.client, /the smtp proxy is not in this tree/);
  });
});
