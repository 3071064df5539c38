// The FTP command vocabulary tzorp knows. Commands outside it are "unknown": refused with 500 unless
// `permit_unknown_command` (Zorp's attribute of the same name) allows them through.

/** RFC 959 §4.1, RFC 775 (X*), RFC 2228 (security), RFC 2389 (FEAT/OPTS), RFC 2428 (EPRT/EPSV),
 * RFC 2640 (LANG), RFC 3659 (MDTM, SIZE, REST STREAM, MLST/MLSD), common extensions (CLNT, MACB,
 * HOST from RFC 7151). */
export const KNOWN_COMMANDS: ReadonlySet<string> = new Set([
  'ABOR', 'ACCT', 'ADAT', 'ALLO', 'APPE', 'AUTH', 'CCC', 'CDUP', 'CLNT', 'CONF', 'CWD', 'DELE', 'ENC',
  'EPRT', 'EPSV', 'FEAT', 'HELP', 'HOST', 'LANG', 'LIST', 'MACB', 'MDTM', 'MIC', 'MKD', 'MLSD', 'MLST',
  'MODE', 'NLST', 'NOOP', 'OPTS', 'PASS', 'PASV', 'PBSZ', 'PORT', 'PROT', 'PWD', 'QUIT', 'REIN', 'REST',
  'RETR', 'RMD', 'RNFR', 'RNTO', 'SITE', 'SIZE', 'SMNT', 'STAT', 'STOR', 'STOU', 'STRU', 'SYST', 'TYPE',
  'USER', 'XCUP', 'XCWD', 'XMKD', 'XPWD', 'XRMD',
]); // biome-ignore format: a word list

export type Direction = 'download' | 'upload';

/** Commands that move data over the data connection (RFC 959 §4.1.3, RFC 3659 §7 MLSD). */
export const TRANSFER_COMMANDS: ReadonlyMap<string, Direction> = new Map([
  ['RETR', 'download'],
  ['LIST', 'download'],
  ['NLST', 'download'],
  ['MLSD', 'download'],
  ['STOR', 'upload'],
  ['STOU', 'upload'],
  ['APPE', 'upload'],
]);

/** Commands that set up the data connection; tzorp answers them itself after setting up the server side. */
export const DATA_SETUP_COMMANDS: ReadonlySet<string> = new Set(['PORT', 'EPRT', 'PASV', 'EPSV']);
