// tzorp tls ca create, as an administrator runs it, checked with the openssl CLI.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import {
  linkSync,
  lstatSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';

const dir = mkdtempSync(join(tmpdir(), 'tzorp-tlsca-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const tz = (...args: string[]) => spawnSync(process.execPath, ['bin/tzorp', ...args], { encoding: 'utf8' });

test('tzorp tls ca create DIR --name --days: ca.crt and ca.key (0600), ECDSA P-256, CA:TRUE', () => {
  const out = join(dir, 'ca');
  const r = tz('tls', 'ca', 'create', out, '--name', 'Lab Inspection CA', '--days', '90');
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /wrote .*ca\.crt and .*ca\.key/);
  assert.equal(statSync(join(out, 'ca.key')).mode & 0o777, 0o600);
  const text = execFileSync('openssl', ['x509', '-in', join(out, 'ca.crt'), '-noout', '-text'], {
    encoding: 'utf8',
  });
  assert.match(text, /Subject: CN\s?=\s?Lab Inspection CA/);
  assert.match(text, /ASN1 OID: prime256v1/);
  assert.match(text, /CA:TRUE, pathlen:0/);
  assert.match(text, /Certificate Sign, CRL Sign/);
  const key = execFileSync('openssl', ['pkey', '-in', join(out, 'ca.key'), '-noout', '-text'], {
    encoding: 'utf8',
  });
  assert.match(key, /prime256v1|P-256/);
  const end = execFileSync('openssl', ['x509', '-in', join(out, 'ca.crt'), '-noout', '-enddate'], {
    encoding: 'utf8',
  });
  const days = (new Date(end.replace('notAfter=', '').trim()).getTime() - Date.now()) / 86_400_000;
  assert.ok(days > 89 && days <= 90, `valid ${days} days`);
});

test('an existing CA is not replaced without --force; bad --days is a usage error', () => {
  const out = join(dir, 'keep');
  assert.equal(tz('tls', 'ca', 'create', out).status, 0);
  const before = readFileSync(join(out, 'ca.crt'), 'utf8');
  const again = tz('tls', 'ca', 'create', out);
  assert.equal(again.status, 1);
  assert.match(again.stderr, /TZ4101.*exists.*--force/);
  assert.equal(readFileSync(join(out, 'ca.crt'), 'utf8'), before);
  const forced = tz('tls', 'ca', 'create', out, '--force');
  assert.equal(forced.status, 0, forced.stderr);
  assert.notEqual(readFileSync(join(out, 'ca.crt'), 'utf8'), before);
  const bad = tz('tls', 'ca', 'create', join(dir, 'bad'), '--days', 'soon');
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /TZ3012.*--days/);
});

test('--force replaces ca.key and ca.crt with new files: a link at those names is replaced, never written through', () => {
  const out = join(dir, 'forced');
  assert.equal(tz('tls', 'ca', 'create', out).status, 0);
  // ca.key a symbolic link to a file of someone else's, ca.crt a hard link (another name of the same file)
  const victim = join(dir, 'victim.txt');
  writeFileSync(victim, 'not a key\n', { mode: 0o644 });
  rmSync(join(out, 'ca.key'));
  symlinkSync(victim, join(out, 'ca.key'));
  const otherName = join(dir, 'crt-other-name.pem');
  linkSync(join(out, 'ca.crt'), otherName);
  const oldCert = readFileSync(otherName, 'utf8');
  const r = tz('tls', 'ca', 'create', out, '--force', '--name', 'Replaced CA');
  assert.equal(r.status, 0, r.stderr);
  assert.equal(readFileSync(victim, 'utf8'), 'not a key\n');
  assert.equal(readFileSync(otherName, 'utf8'), oldCert);
  const key = lstatSync(join(out, 'ca.key'));
  assert.ok(key.isFile() && !key.isSymbolicLink());
  assert.equal(key.mode & 0o777, 0o600);
  assert.match(readFileSync(join(out, 'ca.key'), 'utf8'), /BEGIN PRIVATE KEY/);
  assert.notEqual(readFileSync(join(out, 'ca.crt'), 'utf8'), oldCert);
  const text = execFileSync('openssl', ['x509', '-in', join(out, 'ca.crt'), '-noout', '-subject'], {
    encoding: 'utf8',
  });
  assert.match(text, /CN\s?=\s?Replaced CA/);
  // nothing left behind but the two files
  assert.deepEqual(readdirSync(out).sort(), ['ca.crt', 'ca.key']);
});
