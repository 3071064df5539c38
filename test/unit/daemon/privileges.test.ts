// --user resolution and the kept capability set (the drop itself runs in
// test/netns/daemon/privileges.test.ts, where a daemon really becomes another user).
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { KEPT_CAPABILITY_MASK, resolveRunAs, runAsToEnv } from '../../../src/daemon/privileges.ts';
import { TzorpError } from '../../../src/errors.ts';

describe('tzorp run --user', () => {
  test('keeps CAP_NET_ADMIN (12), CAP_NET_RAW (13) and CAP_NET_BIND_SERVICE (10): CapEff 3400', () => {
    assert.equal(KEPT_CAPABILITY_MASK, '0000000000003400');
  });

  test('an unknown user and root are refused with TZ3030', () => {
    for (const [user, re] of [
      ['no-such-user-tzorp-test', /no user 'no-such-user-tzorp-test'/],
      ['root', /is root/],
    ] as const) {
      assert.throws(
        () => resolveRunAs(user),
        (e: unknown) => e instanceof TzorpError && e.code === 'TZ3030' && re.test(e.message),
      );
    }
  });

  test('a system user resolves to its uid, gid and groups, passed to workers as uid:gid:groups', () => {
    const r = resolveRunAs('nobody');
    assert.ok(r.uid > 0);
    assert.ok(r.groups.includes(r.gid));
    assert.equal(runAsToEnv(r), `${r.uid}:${r.gid}:${r.groups.join(',')}`);
  });
});
