// The kernel's backstop for per-client limits: dynamic per-source sets in the proxy service's chain.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { kernelClientLimits } from '../../../src/kernel/compile/build.ts';
import { compilePolicy } from '../../../src/kernel/index.ts';
import { loadPolicyText } from '../../../src/policy/index.ts';

const policy = (extra: string) =>
  `services:\n  web:\n    type: proxy\n    proxy: http\n${extra}  free:\n    type: proxy\n    proxy: plug\nrules:\n  - { id: 1, service: web, proto: tcp, dst_port: 80 }\n  - { id: 2, service: free, proto: tcp, dst_port: 81 }\n`;

function compile(extra: string): string {
  const r = loadPolicyText(policy(extra), 'p.yaml');
  assert.deepEqual(
    r.errors.map((e) => e.message),
    [],
  );
  return compilePolicy(r.policy!).text;
}

test('no per-client limits, no sets', () => {
  assert.doesNotMatch(compile(''), /client_(conn|rate)_/);
});

test('max_sessions_per_client: a ct count set per family, at twice the limit, in the service chain', () => {
  const t = compile('    max_sessions_per_client: 10\n');
  assert.match(t, /set client_conn_web_v4 \{\n\t\ttype ipv4_addr\n\t\tsize 65535\n\t\tflags dynamic\n\t\}/);
  assert.match(t, /set client_conn_web_v6 \{\n\t\ttype ipv6_addr\n\t\tsize 65535\n\t\tflags dynamic\n\t\}/);
  assert.match(
    t,
    /meta nfproto ipv4 tcp flags & \(syn \| ack\) == syn add @client_conn_web_v4 \{ ip saddr ct count over 20 \} counter drop/,
  );
  assert.match(t, /add @client_conn_web_v6 \{ ip6 saddr ct count over 20 \} counter drop/);
  assert.doesNotMatch(t, /client_conn_free/);
  // before the tproxy statement of its own service chain
  const chain = t.slice(t.indexOf('chain svc_web {'), t.indexOf('chain svc_web {') + 2000);
  assert.ok(chain.indexOf('ct count over') < chain.indexOf('tproxy ip to'));
});

test('new_sessions_per_client: a limit rate set per family', () => {
  const t = compile('    new_sessions_per_client: { rate: 5, per_seconds: 1 }\n');
  assert.match(
    t,
    /set client_rate_web_v4 \{\n\t\ttype ipv4_addr\n\t\tsize 65535\n\t\tflags dynamic,timeout\n\t\ttimeout 60s\n\t\}/,
  );
  assert.match(
    t,
    /update @client_rate_web_v4 \{ ip saddr limit rate over 10\/second burst 10 packets \} counter drop/,
  );
  assert.match(t, /update @client_rate_web_v6 \{ ip6 saddr limit rate over 10\/second burst 10 packets \}/);
});

test('rates become whole numbers per second, minute or hour, never stricter than the policy', () => {
  assert.deepEqual(kernelClientLimits({ newSessionsPerClient: { rate: 3, perSeconds: 1 } })?.rate, {
    n: 6,
    unit: 'second',
    burst: 6,
    timeoutS: 60,
  });
  assert.deepEqual(kernelClientLimits({ newSessionsPerClient: { rate: 1, perSeconds: 10 } })?.rate, {
    n: 12,
    unit: 'minute',
    burst: 2,
    timeoutS: 60,
  });
  assert.deepEqual(kernelClientLimits({ newSessionsPerClient: { rate: 1, perSeconds: 7 } })?.rate, {
    n: Math.ceil((2 * 3600) / 7),
    unit: 'hour',
    burst: 2,
    timeoutS: 60,
  });
  assert.equal(kernelClientLimits({ maxSessionsPerClient: 0, newSessionsPerClient: null }), null);
});
