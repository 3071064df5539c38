// Without CAP_NET_ADMIN the kernel refuses nft and ip with EPERM: tzorp says so with KERNEL_NOT_ROOT
// instead of a generic nft/ip failure. The real nft runs as nobody (setpriv); `nft -c` only checks,
// so nothing on the host changes.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { test } from 'node:test';
import { TzorpError } from '../../../src/errors.ts';
import { nftCheck } from '../../../src/kernel/index.ts';

function canDropToNobody(): string | false {
  if (process.getuid?.() !== 0) return 'needs root to run nft as nobody';
  try {
    execFileSync('setpriv', ['--version'], { stdio: 'ignore' });
    execFileSync('nft', ['--version'], { stdio: 'ignore' });
  } catch {
    return 'setpriv or nft missing';
  }
  return false;
}

const AS_NOBODY = ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups'];

test('nft without CAP_NET_ADMIN: KERNEL_NOT_ROOT (TZ2005), not a rejected ruleset', {
  skip: canDropToNobody(),
}, async () => {
  await assert.rejects(
    nftCheck('table inet tzorp_not_root_probe {\n}\n', AS_NOBODY),
    (e: unknown) =>
      e instanceof TzorpError && e.code === 'TZ2005' && /Operation not permitted/.test(e.message),
  );
});

test('a ruleset nft refuses as root is still KERNEL_NFT_CHECK', { skip: canDropToNobody() }, async () => {
  await assert.rejects(
    nftCheck('table inet tzorp_not_root_probe {\n  chain c {\n    no such thing\n  }\n}\n'),
    (e: unknown) => e instanceof TzorpError && e.code === 'TZ2001',
  );
});
