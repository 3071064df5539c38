// The option parser and the policy tables (Zorp's ready-made sets, dimhash order).

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { TzorpError } from '../../../../src/errors.ts';
import { checkFtpOptions, parseFtpOptions, policySet } from '../../../../src/proxy/ftp/index.ts';
import { lookupFeature, lookupRequest, lookupResponse } from '../../../../src/proxy/ftp/policy.ts';

describe('parseFtpOptions', () => {
  it('defaults are Zorp`s', () => {
    const o = parseFtpOptions({});
    assert.equal(o.policySet, 'permissive');
    assert.equal(o.maxLineLength, 255);
    assert.equal(o.maxUsernameLength, 32);
    assert.equal(o.maxPasswordLength, 64);
    assert.equal(o.maxHostnameLength, 128);
    assert.equal(o.maxContinuousLine, 100);
    assert.equal(o.dataPortMin, 40000);
    assert.equal(o.dataPortMax, 41000);
    assert.equal(o.dataMode, 'keep');
    assert.equal(o.activeConnectionMode, 'minus_one');
    assert.equal(o.strictPortChecking, true);
    assert.equal(o.transparentMode, true);
    assert.deepEqual(o.targetPortRange, [{ lo: 21, hi: 21 }]);
  });

  it('accepts every documented key, and Zorp`s numeric constants', () => {
    const o = parseFtpOptions({
      policy_set: 'read_only',
      data_mode: 1,
      active_connection_mode: 'twenty',
      data_port_min: 50000,
      data_port_max: 50010,
      masq_address_client: '2001:DB8::7',
      target_port_range: '21,2121-2122',
      timeout: 1000,
      data_timeout: 500,
      valid_chars_username: 'a-z',
    });
    assert.equal(o.dataMode, 'passive');
    assert.equal(o.masqAddressClient, '2001:db8::7');
    assert.deepEqual(o.targetPortRange, [
      { lo: 21, hi: 21 },
      { lo: 2121, hi: 2122 },
    ]);
    assert.ok(o.validCharsUsername?.test('abc'));
    assert.ok(!o.validCharsUsername?.test('ABC'));
  });

  it('reports every problem at once, with the option named', () => {
    const { options, problems } = checkFtpOptions({
      policy_set: 'read_mostly',
      data_port_min: 80,
      data_mode: 'sideways',
      max_line_length: 'long',
      colour: 'blue',
      request: { STOR: 'maybe', 'TOO-LONG': 'accept' },
      response: { RETR: { '6': 'accept', '550': { action: 'reject', code: 1000 } } },
      features: { MDTM: 'keep' },
      masq_address_server: 'not-an-ip',
    });
    assert.equal(options, null);
    const keys = problems.map((p) => p.key);
    for (const k of [
      'policy_set',
      'data_port_min',
      'data_mode',
      'max_line_length',
      'colour',
      'request.STOR',
      'request.TOO-LONG',
      'response.RETR.6',
      'response.RETR.550',
      'features.MDTM',
      'masq_address_server',
    ]) {
      assert.ok(keys.includes(k), `${k} in ${keys.join(', ')}`);
    }
    assert.throws(
      () => parseFtpOptions({ colour: 'blue' }),
      (e: unknown) => e instanceof TzorpError && /colour/.test(e.message),
    );
  });

  it('a bad regular expression in a conditional entry is a clear error', () => {
    const { problems } = checkFtpOptions({ request: { USER: [{ param: '(', action: 'accept' }] } });
    assert.match(problems[0]!.message, /regular expression/);
  });
});

describe('policy tables', () => {
  it('read_only: reading accepted, writing rejected, unknown rejected', () => {
    const p = policySet('read_only');
    for (const c of ['USER', 'PASS', 'RETR', 'LIST', 'EPSV', 'PORT', 'FEAT', 'QUIT']) {
      assert.equal(lookupRequest(p, c, '').action, 'accept', c);
    }
    for (const c of ['STOR', 'DELE', 'MKD', 'RNFR', 'SITE', 'XPWD', 'AUTH']) {
      assert.equal(lookupRequest(p, c, '').action, 'reject', c);
    }
    assert.equal(p.permitUnknownCommand, false);
  });

  it('read_write adds the writing commands', () => {
    const p = policySet('read_write');
    for (const c of ['STOR', 'STOU', 'APPE', 'DELE', 'MKD', 'RMD', 'RNFR', 'RNTO', 'ALLO']) {
      assert.equal(lookupRequest(p, c, '').action, 'accept', c);
    }
  });

  it('dimhash order for replies', () => {
    const p = policySet('read_only');
    assert.equal(lookupResponse(p, 'RETR', '226').action, 'accept');
    assert.equal(lookupResponse(p, 'RETR', '227').action, 'reject');
    assert.equal(lookupResponse(p, 'RETR', '421').action, 'abort');
    assert.equal(lookupResponse(p, 'NOOP', '500').action, 'accept', '(*,500) accepted');
    assert.equal(lookupResponse(p, 'Null', '220').action, 'accept', 'greeting');
  });

  it('features: TLS ones dropped by every set, others accepted', () => {
    for (const name of ['permissive', 'read_only', 'anon_read_write'] as const) {
      const p = policySet(name);
      assert.equal(lookupFeature(p, 'AUTH'), 'drop');
      assert.equal(lookupFeature(p, 'mdtm'), 'accept');
    }
  });
});
