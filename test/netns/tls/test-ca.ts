// Certificates for the TLS namespace tests, made with the openssl CLI (an independent implementation:
// tzorp's own CA code is what the tests check): a CA, and a server certificate it signs.
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface PemFiles {
  cert: string;
  key: string;
}

const ossl = (args: string[]) => execFileSync('openssl', args, { stdio: 'pipe' });

/** A self-signed ECDSA P-256 CA named `name`, valid two days, written under `dir`. */
export function testCa(dir: string, name: string): PemFiles {
  const file = name.replace(/[^A-Za-z0-9.-]/g, '-');
  const cert = join(dir, `${file}.crt`);
  const key = join(dir, `${file}.key`);
  ossl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', key]);
  ossl(['req', '-x509', '-new', '-key', key, '-subj', `/CN=${name}`, '-days', '2', '-out', cert]);
  return { cert, key };
}

/** A certificate for `cn` with the subjectAltName `san` ("DNS:a,IP:198.18.2.2"), signed by `signer`. */
export function testLeaf(dir: string, name: string, signer: PemFiles, cn: string, san: string): PemFiles {
  const cert = join(dir, `${name}.crt`);
  const key = join(dir, `${name}.key`);
  const csr = join(dir, `${name}.csr`);
  const ext = join(dir, `${name}.ext`);
  ossl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', key]);
  ossl(['req', '-new', '-key', key, '-subj', `/CN=${cn}`, '-out', csr]);
  writeFileSync(ext, `subjectAltName=${san}\n`);
  ossl(
    ['x509', '-req', '-in', csr, '-CA', signer.cert, '-CAkey', signer.key, '-CAcreateserial'].concat([
      '-days',
      '2',
      '-extfile',
      ext,
      '-out',
      cert,
    ]),
  );
  return { cert, key };
}
