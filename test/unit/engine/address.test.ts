import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formatAddress, parseAddress } from '../../../src/engine/index.ts';

test('strict IPv4: four decimal parts, no leading zeros, 0..255', () => {
  assert.equal(parseAddress('198.18.10.5')?.w0, 0xc6120a05);
  assert.equal(parseAddress('0.0.0.0')?.w0, 0);
  assert.equal(parseAddress('255.255.255.255')?.w0, 0xffffffff);
  for (const bad of [
    '010.1.1.1',
    '1.2.3',
    '1.2.3.4.5',
    '256.1.1.1',
    '1.2.3.4/33',
    '1.2.3.',
    '.1.2.3',
    '1..2.3',
    '',
    ' 1.2.3.4',
    '1.2.3.4 ',
    'a.b.c.d',
    '1.2.3.0x4',
  ]) {
    assert.equal(parseAddress(bad), null, bad);
  }
});

test('IPv6 text forms (RFC 4291 §2.2) and canonical output (RFC 5952)', () => {
  const cases: [string, string][] = [
    ['2001:db8::1', '2001:db8::1'],
    ['2001:DB8:0:0:0:0:0:1', '2001:db8::1'],
    ['::', '::'],
    ['::1', '::1'],
    ['1::', '1::'],
    ['1:2:3:4:5:6:7:8', '1:2:3:4:5:6:7:8'],
    ['2001:db8:0:1:0:0:0:1', '2001:db8:0:1::1'],
    ['::1.2.3.4', '::102:304'],
    ['64:ff9b::192.0.2.1', '64:ff9b::c000:201'],
  ];
  for (const [i, o] of cases) {
    const p = parseAddress(i);
    assert.ok(p, i);
    assert.equal(p.family, 6, i);
    assert.equal(p.toString(), o, i);
  }
  for (const bad of [
    ':',
    ':::',
    '1:2:3:4:5:6:7:8:9',
    '1::2::3',
    '12345::',
    'fe80::1%eth0',
    '1:2:3:4:5:6:7::8',
    '::ffff:1.2.3',
    '1:',
    ':1',
    '2001:db8::/32',
    'g::1',
  ]) {
    assert.equal(parseAddress(bad), null, bad);
  }
});

test('IPv4-mapped IPv6 addresses are IPv4', () => {
  const p = parseAddress('::ffff:198.18.0.1')!;
  assert.equal(p.family, 4);
  assert.equal(p.toString(), '198.18.0.1');
  assert.equal(parseAddress('::ffff:c612:1')!.family, 4);
  assert.equal(formatAddress(4, 0xc6120001n), '198.18.0.1');
});
