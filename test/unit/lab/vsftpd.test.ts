// The generated vsftpd configuration: private paths only, both data-connection modes, no system users.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { vsftpdConfig } from '../../../src/lab/vsftpd.ts';

describe('vsftpd configuration', () => {
  const text = vsftpdConfig({ root: '/s/root', empty: '/s/empty', log: '/s/l', xferLog: '/s/x', port: 21 });
  const kv = new Map(
    text
      .split('\n')
      .filter((l) => l && !l.startsWith('#'))
      .map((l) => l.split('=') as [string, string]),
  );

  it('has one value per key', () => {
    const keys = text
      .split('\n')
      .filter((l) => l && !l.startsWith('#'))
      .map((l) => l.split('=')[0]);
    assert.equal(new Set(keys).size, keys.length);
  });

  it('serves anonymous users from the lab directory and has no local users', () => {
    assert.equal(kv.get('anon_root'), '/s/root');
    assert.equal(kv.get('anonymous_enable'), 'YES');
    assert.equal(kv.get('local_enable'), 'NO');
    assert.equal(kv.get('secure_chroot_dir'), '/s/empty');
  });

  it('allows active and passive data connections on a dual-stack listener in the foreground', () => {
    assert.equal(kv.get('pasv_enable'), 'YES');
    assert.equal(kv.get('port_enable'), 'YES');
    assert.equal(kv.get('listen_ipv6'), 'YES');
    assert.equal(kv.get('listen'), 'NO');
    assert.equal(kv.get('background'), 'NO');
    assert.equal(kv.get('listen_port'), '21');
  });

  it('logs the protocol into the lab directory', () => {
    assert.equal(kv.get('vsftpd_log_file'), '/s/l');
    assert.equal(kv.get('log_ftp_protocol'), 'YES');
  });
});
