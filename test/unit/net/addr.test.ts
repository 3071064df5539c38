import assert from 'node:assert/strict';
import { test } from 'node:test';
import { canonicalHost, formatAddr, makeAddr, zorpAddr } from '../../../src/net/index.ts';

test('canonical addresses: IPv4-mapped becomes IPv4, IPv6 in RFC 5952 form, names untouched', () => {
  assert.equal(canonicalHost('::ffff:198.18.1.2'), '198.18.1.2');
  assert.equal(canonicalHost('2001:0DB8:0:0:0:0:0:1'), '2001:db8::1');
  assert.equal(canonicalHost('198.18.1.2'), '198.18.1.2');
  assert.equal(canonicalHost('example.org'), 'example.org');
  assert.deepEqual(makeAddr('::ffff:10.0.0.1', 80), { host: '10.0.0.1', port: 80, family: 4 });
  assert.equal(formatAddr(makeAddr('2001:db8::1', 443)), '[2001:db8::1]:443');
  assert.equal(zorpAddr(makeAddr('2001:db8::1', 443)), 'AF_INET6([2001:db8::1]:443)');
  assert.equal(zorpAddr(null), '(NULL)');
});
