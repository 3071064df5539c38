// tzorp tls ca create DIR [--name NAME] [--days N] [--force]: a local CA for the TLS layer
// (docs/tls.md): DIR/ca.crt (0644) and DIR/ca.key (0600, written before anything can read it), ECDSA
// P-256. An existing CA is never overwritten without --force: clients trust it.
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import type { Command } from 'commander';
import { DEFAULTS } from '../../defaults.ts';
import { TzorpError } from '../../errors.ts';
import { createCa } from '../../proxy/tls/certs.ts';

export function register(program: Command): void {
  const tls = program.command('tls').description('certificates for the TLS layer of proxy services');
  const ca = tls.command('ca').description('the local certificate authority');
  ca.command('create')
    .description('create a CA: DIR/ca.crt and DIR/ca.key (ECDSA P-256, key mode 0600)')
    .argument('<dir>', 'directory to write ca.crt and ca.key to (created if missing)')
    .option('--name <name>', 'the CA certificate subject common name', 'tzorp local CA')
    .option('--days <n>', 'validity in days', String(DEFAULTS.tlsCaValidityDays))
    .option('--force', 'replace an existing ca.crt / ca.key')
    .action(async (dir: string, o: { name: string; days: string; force?: boolean }) => {
      try {
        const days = Number(o.days);
        if (!Number.isInteger(days) || days < 1 || days > 36500) {
          throw new TzorpError(
            'CLI_USAGE',
            `--days must be a whole number of days from 1 to 36500, not '${o.days}'`,
          );
        }
        if (o.name.trim() === '') throw new TzorpError('CLI_USAGE', '--name must not be empty');
        const certFile = join(dir, 'ca.crt');
        const keyFile = join(dir, 'ca.key');
        for (const f of [certFile, keyFile]) {
          if (existsSync(f) && !o.force) {
            throw new TzorpError(
              'TLS_CERTIFICATE',
              `${f} exists: clients may trust that CA; pass --force to replace it`,
            );
          }
        }
        const made = await createCa({ name: o.name, days });
        mkdirSync(dir, { recursive: true, mode: 0o755 });
        // Without --force the files are created exclusively ('wx'): a CA written by someone else between
        // the check above and now is never overwritten either. With --force each is written to a new
        // file and renamed over the old name, so the key never goes into an existing file (one readable
        // by others, a hard link, or a symbolic link to somewhere else) and never exists half-written.
        try {
          if (o.force) {
            replaceFile(keyFile, made.keyPem, 0o600);
            replaceFile(certFile, made.certPem, 0o644);
          } else {
            writeFileSync(keyFile, made.keyPem, { mode: 0o600, flag: 'wx' });
            writeFileSync(certFile, made.certPem, { mode: 0o644, flag: 'wx' });
          }
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
          throw new TzorpError(
            'TLS_CERTIFICATE',
            `${(e as NodeJS.ErrnoException).path} appeared meanwhile; pass --force to replace it`,
          );
        }
        process.stdout.write(`wrote ${certFile} and ${keyFile} (ECDSA P-256, ${days} days, CN=${o.name})\n`);
      } catch (e) {
        if (!(e instanceof TzorpError)) throw e;
        process.stderr.write(`${e.format()}\n`);
        process.exitCode = e.id === 'CLI_USAGE' ? 2 : 1;
      }
    });
}

/** Write `data` to a new file beside `path` (created exclusively, with `mode`) and rename it over
 * `path`: an existing file, or link, at `path` is replaced, never written into. */
function replaceFile(path: string, data: string, mode: number): void {
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(6).toString('hex')}`);
  try {
    writeFileSync(tmp, data, { mode, flag: 'wx' });
    chmodSync(tmp, mode); // (the umask may have taken bits a certificate needs; never adds any to a key)
    renameSync(tmp, path);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  }
}
