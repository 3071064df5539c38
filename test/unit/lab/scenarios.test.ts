// The pure parts of the demo rows: which header value the policy promises, and finding a session's
// lines in tzorp's log by the client's address and port.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { expectedUserAgent, sessionLines } from '../../../src/lab/scenarios.ts';

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
