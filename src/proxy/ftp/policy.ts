// The FTP policy: what happens to each command, each reply and each FEAT feature. Zorp's three hashes
// (zorp:`pylib/Zorp/Ftp.py` request/response/features, `modules/ftp/ftppolicy.cc`) as plain data.
//
// - request[verb]: accept | reject (code, text) | abort | a list of conditional entries (Zorp's
//   FTP_REQ_POLICY callback as data: the first entry whose `param` regex matches decides). Lookup:
//   the verb, then "*"; no entry at all = reject.
// - response[verb][code]: accept | reject (code, text) | abort. Lookup in Zorp's dimhash order
//   (zorp:`lib/dimhash.cc`): (verb,"550"), (verb,"55"), (verb,"5"), (verb,"*"), ("*","550"), ("*","55"),
//   ("*","5"), ("*","*"). No entry = accept. The greeting is looked up as verb "Null" as in Zorp.
// - features[name]: accept | drop | insert (FTP_FEATURE_*). Lookup: the name, then "*"; none = accept.

export type Verdict =
  | { action: 'accept' }
  | { action: 'reject'; code: number; text: string }
  | { action: 'abort'; code: number; text: string };

export interface ConditionalVerdict {
  /** Matched against the command's parameter; absent = always matches. */
  param?: RegExp;
  verdict: Verdict;
}

export type RequestRule = Verdict | { action: 'match'; cases: ConditionalVerdict[] };
export type FeatureAction = 'accept' | 'drop' | 'insert';

export interface FtpPolicy {
  request: Map<string, RequestRule>;
  /** verb (upper case, "Null" for the greeting, "*") -> code key ("550", "55", "5", "*") -> verdict */
  response: Map<string, Map<string, Verdict>>;
  /** feature name (upper case) or "*" */
  features: Map<string, FeatureAction>;
  permitUnknownCommand: boolean;
}

export const ACCEPT: Verdict = { action: 'accept' };

export function reject(code: number, text: string): Verdict {
  return { action: 'reject', code, text };
}

export function defaultRejectFor(verb: string): Verdict {
  return reject(500, `${verb || 'Command'} not allowed by policy`);
}

/** Zorp's FTP_RSP_REJECT without a message answers "500 Error parsing answer"; ours says why. */
export const DEFAULT_RESPONSE_REJECT: Verdict = reject(500, 'Reply rejected by policy');
export const DEFAULT_ABORT: Verdict = { action: 'abort', code: 421, text: 'Logoff' };

export function lookupRequest(policy: FtpPolicy, verb: string, param: string): Verdict {
  const rule = policy.request.get(verb) ?? policy.request.get('*');
  if (!rule) return defaultRejectFor(verb);
  if (rule.action !== 'match') return rule;
  for (const c of rule.cases) {
    if (!c.param || c.param.test(param)) return c.verdict;
  }
  return defaultRejectFor(verb);
}

export function lookupResponse(policy: FtpPolicy, verb: string, code: string): Verdict {
  const keys = [code, code.slice(0, 2), code.slice(0, 1), '*'];
  for (const v of [verb, '*']) {
    const m = policy.response.get(v);
    if (!m) continue;
    for (const k of keys) {
      const r = m.get(k);
      if (r) return r;
    }
  }
  return ACCEPT;
}

export function lookupFeature(policy: FtpPolicy, name: string): FeatureAction {
  return policy.features.get(name.toUpperCase()) ?? policy.features.get('*') ?? 'accept';
}

// ---------------------------------------------------------------------------------------------
// Ready-made sets (Zorp's FtpProxy, FtpProxyRO, FtpProxyAnonRO, FtpProxyRW, FtpProxyAnonRW,
// FtpProxyMinimal).

export const POLICY_SETS = [
  'permissive',
  'minimal',
  'read_only',
  'anon_read_only',
  'read_write',
  'anon_read_write',
] as const;
export type PolicySetName = (typeof POLICY_SETS)[number];

/** Zorp's loadMinimalCommands (zorp:`pylib/Zorp/Ftp.py`), plus OPTS as the reference lists it. AUTH
 * is left out on purpose: tzorp does not terminate TLS on the control channel, and a client that got
 * "234" from the server would then speak TLS that no proxy in the middle can read (docs/ftp.md). */
const MINIMAL_ACCEPTED = [
  'ABOR', 'ACCT', 'CDUP', 'CWD', 'EPRT', 'EPSV', 'FEAT', 'LIST', 'MODE', 'MDTM', 'MLST', 'MLSD', 'NLST',
  'NOOP', 'OPTS', 'PASV', 'PASS', 'PBSZ', 'PORT', 'PROT', 'PWD', 'QUIT', 'REST', 'RETR', 'SIZE', 'STAT',
  'STRU', 'SYST', 'TYPE',
]; // biome-ignore format: a word list
const MINIMAL_REJECTED = ['CLNT', 'XPWD', 'MACB'];
const WRITE_COMMANDS = ['APPE', 'DELE', 'MKD', 'RMD', 'RNFR', 'RNTO', 'STOR', 'STOU', 'ALLO'];

/** Zorp's loadAnswers: the replies RFC 959 §5.4 (and its extensions) allow per command. Zorp lists
 * FEAT with 221; RFC 2389 §3.2 says 211, so both are here. */
const ANSWERS: Record<string, string[]> = {
  Null: ['120', '220'],
  ABOR: ['225', '226', '501', '502'],
  ACCT: ['202', '230', '501', '503', '530'],
  ALLO: ['200', '202', '501', '504', '530'],
  APPE: ['110', '125', '150', '226', '250', '425', '426', '450', '451', '452', '501', '502', '530', '532', '534', '535', '550', '551', '552', '553'],
  AUTH: ['234', '334', '431', '501', '502', '504', '534'],
  CDUP: ['200', '250', '501', '502', '530', '550'],
  CWD: ['250', '501', '502', '530', '550'],
  DELE: ['250', '450', '501', '502', '530', '550'],
  EPRT: ['200', '501', '522'],
  EPSV: ['229', '501'],
  FEAT: ['211', '221', '502'],
  HELP: ['211', '214', '501', '502'],
  LIST: ['125', '150', '226', '250', '425', '426', '450', '451', '501', '502', '530', '534', '535'],
  MDTM: ['213', '501', '550'],
  MKD: ['257', '501', '502', '530', '550'],
  MLST: ['250', '425', '426', '450', '451', '501', '502', '530', '534', '535', '550'],
  MLSD: ['125', '150', '226', '250', '425', '426', '450', '451', '501', '502', '530', '534', '535'],
  MODE: ['200', '501', '504', '530'],
  NLST: ['125', '150', '226', '250', '425', '426', '450', '451', '501', '502', '530', '534', '535', '550'],
  NOOP: ['200'],
  OPTS: ['200', '451', '501', '502', '504'],
  PASS: ['202', '230', '332', '501', '503', '530'],
  PASV: ['227', '501', '502', '530'],
  PBSZ: ['200', '501', '503', '530'],
  PORT: ['200', '501', '530'],
  PROT: ['200', '431', '501', '503', '504', '530', '534', '536'],
  PWD: ['257', '501', '502', '550'],
  QUIT: ['221'],
  REIN: ['120', '220', '502'],
  REST: ['350', '501', '502', '530'],
  RETR: ['110', '125', '150', '226', '250', '425', '426', '450', '451', '452', '501', '530', '532', '534', '535', '550', '553'],
  RMD: ['250', '501', '502', '530', '550'],
  RNFR: ['350', '450', '501', '502', '530', '550'],
  RNTO: ['250', '501', '502', '530', '532', '553'],
  SITE: ['200', '202', '501', '530'],
  SIZE: ['213', '550'],
  SMNT: ['202', '250', '501', '502', '530', '550'],
  STAT: ['211', '212', '213', '450', '501', '502', '530'],
  STOR: ['110', '125', '150', '226', '250', '425', '426', '450', '451', '452', '501', '530', '532', '534', '535', '550', '551', '552', '553'],
  STOU: ['110', '125', '150', '226', '250', '425', '426', '450', '451', '452', '501', '530', '532', '534', '535', '551', '552', '553'],
  STRU: ['200', '501', '504', '530'],
  SYST: ['215', '501', '502'],
  TYPE: ['200', '501', '504', '530'],
  USER: ['230', '232', '331', '332', '336', '501', '530'],
}; // biome-ignore format: tables

const ANON_USER: RequestRule = {
  action: 'match',
  cases: [
    { param: /^(ftp|anonymous)$/i, verdict: ACCEPT },
    { verdict: reject(530, 'Only anonymous users are allowed') },
  ],
};

function strictBase(accepted: string[]): FtpPolicy {
  const request = new Map<string, RequestRule>();
  for (const c of accepted) request.set(c, ACCEPT);
  for (const c of MINIMAL_REJECTED) request.set(c, defaultRejectFor(c));
  request.set('AUTH', reject(504, 'TLS on the control connection is not supported by the proxy'));
  request.set('*', reject(500, 'Command not allowed by policy'));
  const response = new Map<string, Map<string, Verdict>>();
  for (const [verb, codes] of Object.entries(ANSWERS)) {
    response.set(verb, new Map(codes.map((c) => [c, ACCEPT])));
  }
  response.set(
    '*',
    new Map([
      ['421', DEFAULT_ABORT],
      ['500', ACCEPT],
      ['*', DEFAULT_RESPONSE_REJECT],
    ]),
  );
  return { request, response, features: new Map([['*', 'accept']]), permitUnknownCommand: false };
}

/** Features that only make sense with TLS on the control channel, which tzorp does not terminate. */
const TLS_FEATURES = ['AUTH', 'PBSZ', 'PROT', 'CCC'];

export function policySet(name: PolicySetName): FtpPolicy {
  let p: FtpPolicy;
  switch (name) {
    case 'permissive': {
      // Zorp FtpProxy: everything passes, a 421 ends the session.
      p = {
        request: new Map<string, RequestRule>([
          ['*', ACCEPT],
          ['AUTH', reject(504, 'TLS on the control connection is not supported by the proxy')],
        ]),
        response: new Map([
          [
            '*',
            new Map<string, Verdict>([
              ['421', DEFAULT_ABORT],
              ['*', ACCEPT],
            ]),
          ],
        ]),
        features: new Map([['*', 'accept']]),
        permitUnknownCommand: true,
      };
      break;
    }
    case 'minimal': // Zorp's FtpProxyMinimal is an alias of FtpProxyRO
    case 'read_only':
      p = strictBase([...MINIMAL_ACCEPTED, 'USER']);
      break;
    case 'anon_read_only':
      p = strictBase(MINIMAL_ACCEPTED);
      p.request.set('USER', ANON_USER);
      break;
    case 'read_write':
      p = strictBase([...MINIMAL_ACCEPTED, ...WRITE_COMMANDS, 'USER']);
      break;
    case 'anon_read_write':
      p = strictBase([...MINIMAL_ACCEPTED, ...WRITE_COMMANDS]);
      p.request.set('USER', ANON_USER);
      break;
  }
  for (const f of TLS_FEATURES) p.features.set(f, 'drop');
  return p;
}
