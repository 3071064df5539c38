// The handshake settings of an inspect service (TlsEndpoint, carried by `startTls`), made once per
// generation by bind.ts. The CA files are read and checked here, at once, so a missing file, a
// certificate that is no CA, a key that is not its key or not ECDSA P-256 refuses the policy (check,
// run, reload) instead of failing each handshake later. Leaf certificates come from the CA's cache
// (certs.ts leafCacheFor: kept across reloads while the CA stays the same).
import type { KeyObject, X509Certificate } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { DEFAULTS } from '../../defaults.ts';
import { TzorpError } from '../../errors.ts';
import type { TlsPolicy } from '../../policy/model.ts';
import type { TlsEndpoint } from '../core/types.ts';
import type { LeafCache } from './certs.ts';

/** Which of the service's files a problem is about (bind.ts reports it where that file is named). */
export type TlsFile = 'cert' | 'key' | 'serverCaFile';

function fileError(file: TlsFile, message: string): TzorpError {
  return new TzorpError('TLS_CERTIFICATE', message, { details: { file } });
}

function read(path: string, what: string, file: TlsFile): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (e) {
    throw fileError(
      file,
      `${what} ${path} cannot be read: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
    );
  }
}

export function inspectEndpoint(p: TlsPolicy): TlsEndpoint {
  if (!p.ca) throw new TzorpError('TLS_CERTIFICATE', "mode 'inspect' needs a ca");
  const certPem = read(p.ca.cert, 'the CA certificate', 'cert');
  const keyPem = read(p.ca.key, 'the CA key', 'key');
  // (node:crypto when an inspect service is bound, not at every worker's start: bench/README.md,
  // "Start-up memory of the daemon")
  const { createPrivateKey, X509Certificate: X509 } = process.getBuiltinModule('node:crypto');
  let cert: X509Certificate;
  try {
    cert = new X509(certPem);
  } catch (e) {
    throw fileError('cert', `${p.ca.cert} is not a PEM certificate: ${(e as Error).message}`);
  }
  if (!cert.ca) throw fileError('cert', `${p.ca.cert} is not a CA certificate (basicConstraints CA:false)`);
  let key: KeyObject;
  try {
    key = createPrivateKey(keyPem);
  } catch (e) {
    throw fileError('key', `${p.ca.key} is not a PEM private key: ${(e as Error).message}`);
  }
  if (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'prime256v1')
    throw fileError('key', `${p.ca.key} is not an ECDSA P-256 key (tzorp tls ca create makes one)`);
  if (!cert.checkPrivateKey(key)) throw fileError('key', `${p.ca.key} is not the key of ${p.ca.cert}`);
  const caFile = p.serverCaFile ?? (existsSync(DEFAULTS.tlsSystemCaFile) ? DEFAULTS.tlsSystemCaFile : null);
  const serverCa =
    p.serverVerify && caFile !== null ? read(caFile, 'server_ca_file', 'serverCaFile') : undefined;
  let cache: Promise<LeafCache> | null = null;
  return {
    minVersion: p.minVersion,
    verify: p.serverVerify,
    ...(serverCa !== undefined ? { serverCa } : {}),
    leaf(names, nowMs) {
      // certs.ts (with @peculiar/x509) is loaded on the first leaf: about 20 MB of a process's memory
      // that a daemon without inspect traffic never needs
      cache ??= import('./certs.ts').then(({ loadCa, leafCacheFor }) =>
        loadCa({ certPem, keyPem }).then(leafCacheFor),
      );
      return cache.then((c) => c.get(names, nowMs));
    },
  };
}
