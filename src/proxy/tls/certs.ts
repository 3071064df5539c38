// Certificates for the TLS layer: the local CA (`tzorp tls ca create`) and the short-lived certificates
// made for each server name, signed by it (docs/tls.md). ECDSA P-256 throughout (small, fast to sign,
// accepted by every current client). X.509 encoding is @peculiar/x509's (no hand-rolled ASN.1); keys and
// signatures are node:crypto's WebCrypto.
import 'reflect-metadata'; // @peculiar/x509 uses tsyringe, which needs the Reflect metadata polyfill
import { X509Certificate as NodeX509, randomBytes, webcrypto } from 'node:crypto';

type CryptoKey = webcrypto.CryptoKey;
type CryptoKeyPair = webcrypto.CryptoKeyPair;

import * as x509 from '@peculiar/x509';
import { DEFAULTS } from '../../defaults.ts';
import { TzorpError } from '../../errors.ts';

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

const ALG = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
/** Milliseconds in a day (a unit, not a tunable). */
const DAY = 86_400_000;

export interface PemPair {
  certPem: string;
  keyPem: string;
}

function pem(label: string, der: ArrayBuffer): string {
  const b64 = Buffer.from(der).toString('base64');
  return `-----BEGIN ${label}-----\n${b64.replace(/.{1,64}/g, '$&\n')}-----END ${label}-----\n`;
}

function derOf(text: string, label: string): Buffer {
  const m = new RegExp(`-----BEGIN ${label}-----([^-]+)-----END ${label}-----`).exec(text);
  if (!m) throw new TzorpError('TLS_CERTIFICATE', `no ${label} in PEM text`);
  return Buffer.from(m[1]!.replace(/\s+/g, ''), 'base64');
}

function serial(): string {
  const b = randomBytes(16);
  b[0]! &= 0x7f; // a positive INTEGER
  return b.toString('hex');
}

/** A new CA: self-signed, CA:true with path length 0 (it signs leaf certificates only). */
export async function createCa(opts: { name: string; days?: number; now?: Date }): Promise<PemPair> {
  const now = opts.now ?? new Date();
  const days = opts.days ?? DEFAULTS.tlsCaValidityDays;
  const keys = (await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify'])) as CryptoKeyPair;
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: `CN=${escapeDn(opts.name)}`,
    notBefore: now,
    notAfter: new Date(now.getTime() + days * DAY),
    keys,
    signingAlgorithm: ALG,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  const key = await webcrypto.subtle.exportKey('pkcs8', keys.privateKey);
  return { certPem: cert.toString('pem'), keyPem: pem('PRIVATE KEY', key) };
}

/** A CA ready to sign: its certificate and private key, checked to belong together. */
export interface SigningCa {
  cert: x509.X509Certificate;
  key: CryptoKey;
  /** SHA-256 of the CA certificate: leaf caches are kept while it stays the same. */
  fingerprint: string;
}

export async function loadCa(pair: PemPair): Promise<SigningCa> {
  let cert: x509.X509Certificate;
  try {
    cert = new x509.X509Certificate(pair.certPem);
  } catch (e) {
    throw new TzorpError('TLS_CERTIFICATE', `the CA certificate cannot be read: ${(e as Error).message}`);
  }
  const bc = cert.getExtension(x509.BasicConstraintsExtension);
  if (!bc?.ca)
    throw new TzorpError('TLS_CERTIFICATE', 'the CA certificate is not a CA (basicConstraints CA:false)');
  let key: CryptoKey;
  try {
    key = await webcrypto.subtle.importKey('pkcs8', derOf(pair.keyPem, 'PRIVATE KEY'), ALG, false, ['sign']);
  } catch (e) {
    throw new TzorpError(
      'TLS_CERTIFICATE',
      `the CA key cannot be read as a PKCS#8 ECDSA P-256 key: ${(e as Error).message}`,
    );
  }
  // The key must sign what the certificate's public key verifies.
  const probe = Buffer.from('tzorp ca check');
  const sig = await webcrypto.subtle.sign(ALG, key, probe);
  const pub = await cert.publicKey.export(ALG, ['verify']);
  if (!(await webcrypto.subtle.verify(ALG, pub, sig, probe))) {
    throw new TzorpError('TLS_CERTIFICATE', 'the CA key does not belong to the CA certificate');
  }
  const fingerprint = new NodeX509(pair.certPem).fingerprint256;
  return { cert, key, fingerprint };
}

/** A certificate for `names` (DNS names or IP addresses; the first is the subject CN), signed by `ca`. */
export async function issueLeaf(
  ca: SigningCa,
  names: readonly string[],
  opts: { days?: number; now?: Date } = {},
): Promise<PemPair> {
  if (names.length === 0) throw new TzorpError('TLS_CERTIFICATE', 'a certificate needs at least one name');
  const now = opts.now ?? new Date();
  const days = opts.days ?? DEFAULTS.tlsLeafValidityDays;
  const keys = (await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify'])) as CryptoKeyPair;
  const san = names.map((n) =>
    isIp(n) ? { type: 'ip' as const, value: n } : { type: 'dns' as const, value: n },
  );
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject: `CN=${escapeDn(names[0]!)}`,
    issuer: ca.cert.subject,
    notBefore: new Date(now.getTime() - DEFAULTS.tlsLeafBackdateMs),
    notAfter: new Date(now.getTime() + days * DAY),
    publicKey: keys.publicKey,
    signingKey: ca.key,
    signingAlgorithm: ALG,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
      new x509.SubjectAlternativeNameExtension(san),
      await x509.AuthorityKeyIdentifierExtension.create(ca.cert),
    ],
  });
  const key = await webcrypto.subtle.exportKey('pkcs8', keys.privateKey);
  return { certPem: cert.toString('pem'), keyPem: pem('PRIVATE KEY', key) };
}

/**
 * Certificates made per set of names, kept (bounded, least recently used out) and made again when they
 * are within a day of expiring. One cache belongs to one CA: a generation whose CA changed starts a new
 * one, any other reload keeps it (docs/tls.md).
 */
export class LeafCache {
  private readonly entries = new Map<string, { made: Promise<PemPair>; expiresMs: number }>();

  constructor(
    readonly ca: SigningCa,
    private readonly maxEntries: number = DEFAULTS.tlsLeafCacheEntries,
    private readonly days: number = DEFAULTS.tlsLeafValidityDays,
  ) {}

  get size(): number {
    return this.entries.size;
  }

  get(names: readonly string[], nowMs: number): Promise<PemPair> {
    const k = names.join(',');
    const hit = this.entries.get(k);
    if (hit && hit.expiresMs - nowMs > DAY) {
      this.entries.delete(k); // re-insert: most recently used last
      this.entries.set(k, hit);
      return hit.made;
    }
    const made = issueLeaf(this.ca, names, { days: this.days, now: new Date(nowMs) });
    // A failed issue is not kept: the next session tries again.
    made.catch(() => this.entries.get(k)?.made === made && this.entries.delete(k));
    this.entries.set(k, { made, expiresMs: nowMs + this.days * DAY });
    while (this.entries.size > this.maxEntries) this.entries.delete(this.entries.keys().next().value!);
    return made;
  }
}

/** The leaf caches of the process, one per CA by its fingerprint. Every generation (a reload) loads
 * its CA files again and asks here: the same CA finds its cache and every certificate in it, a changed
 * CA gets a new one, so certificates are made again across reloads only when the CA changes. At most
 * DEFAULTS.tlsLeafCaches CAs are kept (the oldest goes first: a reload that swaps CAs drops them). */
const CACHES = new Map<string, LeafCache>();

export function leafCacheFor(ca: SigningCa): LeafCache {
  const have = CACHES.get(ca.fingerprint);
  if (have) return have;
  const made = new LeafCache(ca);
  CACHES.set(ca.fingerprint, made);
  while (CACHES.size > DEFAULTS.tlsLeafCaches) CACHES.delete(CACHES.keys().next().value!);
  return made;
}

function isIp(s: string): boolean {
  return /^[0-9.]+$/.test(s) || s.includes(':');
}

/** RFC 4514 escaping for a CN value. */
function escapeDn(v: string): string {
  return v.replace(/[,+"\\<>;=]/g, '\\$&').replace(/^[ #]|[ ]$/g, '\\$&');
}
