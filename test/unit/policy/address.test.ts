// Strict address parsing: what is accepted, its canonical form, and what is refused.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { formatAddress, parseAddress, parseCidr, parseEndpoint } from '../../../src/policy/address.ts';

describe('parseCidr', () => {
  const ok: [string, string, boolean][] = [
    ['198.18.10.0/23', '198.18.10.0/23', false],
    ['198.18.21.1', '198.18.21.1/32', false],
    ['0.0.0.0/0', '0.0.0.0/0', false],
    ['198.18.11.7/23', '198.18.10.0/23', true],
    ['2001:db8:10::/48', '2001:db8:10::/48', false],
    ['2001:DB8:0:0:0:0:0:1', '2001:db8::1/128', false],
    ['2001:db8:0:0:1:0:0:1/128', '2001:db8::1:0:0:1/128', false],
    ['2001:0:0:1:0:0:0:1', '2001:0:0:1::1/128', false],
    ['::/0', '::/0', false],
    ['::', '::/128', false],
    ['::1', '::1/128', false],
    ['::ffff:198.18.1.1', '198.18.1.1/32', false],
    ['::ffff:198.18.1.0/120', '198.18.1.0/24', false],
    ['::ffff:c612:101', '198.18.1.1/32', false],
    ['64:ff9b::198.18.1.1', '64:ff9b::c612:101/128', false],
    ['1:2:3:4:5:6:7:8', '1:2:3:4:5:6:7:8/128', false],
    ['1:0:0:2:0:0:0:3', '1:0:0:2::3/128', false],
    ['2001:db8::1/64', '2001:db8::/64', true],
  ];
  for (const [input, text, hostBits] of ok) {
    it(`accepts ${input} as ${text}`, () => {
      const r = parseCidr(input);
      assert.ok(r.ok, input);
      assert.equal(r.cidr.text, text);
      assert.equal(r.hostBits, hostBits);
    });
  }
  const bad = [
    '010.1.1.1',
    '1.2.3.4/33',
    '1.2.3',
    '1.2.3.4.5',
    '256.1.1.1',
    '1.2.3.4/',
    '1.2.3.4/08',
    '1.2.3.4/-1',
    ' 1.2.3.4',
    '0x1.2.3.4',
    '1.2.3.4 /24',
    '2001:db8::1::2',
    '2001:db8:::1',
    '12345::',
    '1:2:3:4:5:6:7:8:9',
    '1:2:3:4:5:6:7',
    'fe80::1%eth0',
    '::/129',
    '::ffff:1.2.3.4/95',
    '::ffff:1.2.3.256',
    '',
    'clients',
  ];
  for (const input of bad) {
    it(`refuses ${JSON.stringify(input)}`, () => {
      const r = parseCidr(input);
      assert.equal(r.ok, false);
    });
  }
  it('keeps the masked network as a bigint with its family and prefix', () => {
    const r = parseCidr('198.18.11.7/23');
    assert.ok(r.ok);
    assert.deepEqual(r.cidr, { family: 4, addr: 0xc6120a00n, prefix: 23, text: '198.18.10.0/23' });
  });
});

describe('formatAddress (RFC 5952)', () => {
  it('compresses the longest run of zeros, the first of equal runs, never a single group', () => {
    const v6 = (s: string) => {
      const a = parseAddress(s);
      assert.ok(a && a.family === 6);
      return formatAddress(6, a.addr);
    };
    assert.equal(v6('2001:db8:0:0:1:0:0:0'), '2001:db8:0:0:1::');
    assert.equal(v6('2001:db8:0:1:0:0:1:1'), '2001:db8:0:1::1:1');
    assert.equal(v6('2001:db8:0:1:1:1:1:1'), '2001:db8:0:1:1:1:1:1');
    assert.equal(v6('0:0:0:0:0:0:0:0'), '::');
  });
  it('round-trips through parseAddress, and agrees with node:net on IPv6 (random addresses, edges)', () => {
    const rnd = (bits: number): bigint => {
      let x = 0n;
      for (let i = 0; i < bits; i += 16) x = (x << 16n) | BigInt(Math.floor(Math.random() * 65536));
      return x & ((1n << BigInt(bits)) - 1n);
    };
    const v4 = [0n, 1n, 255n, 256n, 0xffffffffn, 0x7fffffffn, 0x80000000n, 0xc6120a01n];
    for (let i = 0; i < 500; i++) v4.push(rnd(32));
    for (const a of v4) {
      const text = formatAddress(4, a);
      assert.equal(text, [24n, 16n, 8n, 0n].map((s) => String((a >> s) & 255n)).join('.'));
      assert.equal(parseAddress(text)?.addr, a);
    }
    const v6 = [0n, 1n, (1n << 128n) - 1n, 1n << 127n, 0x20010db8n << 96n];
    // zero groups in random places, so that runs of every length are compressed
    for (let i = 0; i < 500; i++) v6.push(rnd(128) & rnd(128) & rnd(128));
    for (const a of v6) {
      const text = formatAddress(6, a);
      assert.equal(parseAddress(text)?.addr, a, text);
      // node's own canonical form of the same address (RFC 5952, as the URL parser writes it)
      assert.equal(`[${text}]`, new URL(`http://[${text}]/`).hostname, text);
    }
  });
});

describe('parseEndpoint', () => {
  it('accepts address:port and [v6]:port', () => {
    assert.deepEqual(parseEndpoint('198.18.20.10:80'), {
      ok: true,
      family: 4,
      host: '198.18.20.10',
      port: 80,
    });
    assert.deepEqual(parseEndpoint('[2001:DB8::1]:443'), {
      ok: true,
      family: 6,
      host: '2001:db8::1',
      port: 443,
    });
  });
  for (const bad of [
    '198.18.20.10',
    '198.18.20.10:0',
    '198.18.20.10:65536',
    '2001:db8::1:80',
    '[2001:db8::1]80',
    'host:80',
    '1.2.3.4:08',
  ]) {
    it(`refuses ${bad}`, () => assert.equal(parseEndpoint(bad).ok, false));
  }
});
