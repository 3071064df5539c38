// The ftp proxy's options (the `options:` map of a proxy service with `proxy: ftp`), validated with
// clear messages. Keys are snake_case as written in the policy file and, where Zorp has the attribute,
// named like it (zorp:`pylib/Zorp/Ftp.py`). docs/ftp.md lists them all.

import { DEFAULTS } from '../../defaults.ts';
import { TzorpError } from '../../errors.ts';
import { canonicalAddress } from '../../policy/address.ts';
import type { TlsEndpoint } from '../core/types.ts';
import type { CompiledTls } from '../tls/sni-policy.ts';
import {
  ACCEPT,
  type ConditionalVerdict,
  DEFAULT_ABORT,
  DEFAULT_RESPONSE_REJECT,
  defaultRejectFor,
  type FeatureAction,
  type FtpPolicy,
  POLICY_SETS,
  type PolicySetName,
  policySet,
  type RequestRule,
  type Verdict,
} from './policy.ts';

export type DataMode = 'keep' | 'passive' | 'active';
export type ActiveConnectionMode = 'minus_one' | 'twenty' | 'random';

export interface FtpOptions {
  policySet: PolicySetName;
  /** The set's tables with the service's own `request`/`response`/`features` entries on top. */
  policy: FtpPolicy;
  /** false = non-transparent: the proxy greets and reads the server from USER user@host[:port]. */
  transparentMode: boolean;
  maxLineLength: number;
  maxUsernameLength: number;
  maxPasswordLength: number;
  maxHostnameLength: number;
  maxContinuousLine: number;
  /** Characters allowed in USER names (Zorp's valid_chars_username), as a whole-string regex. */
  validCharsUsername: RegExp | null;
  permitEmptyCommand: boolean;
  timeoutMs: number;
  dataTimeoutMs: number;
  dataMode: DataMode;
  activeConnectionMode: ActiveConnectionMode;
  dataPortMin: number;
  dataPortMax: number;
  masqAddressClient: string | null;
  masqAddressServer: string | null;
  permitClientBounceAttack: boolean;
  permitServerBounceAttack: boolean;
  strictPortChecking: boolean;
  /** Non-transparent mode: ports a client may name in USER user@host:port. */
  targetPortRange: Array<{ lo: number; hi: number }>;
  /** Non-transparent mode greeting text (after "220 "). */
  greeting: string;
  /** The service's `tls: { mode: inspect }` (bound by src/proxy/bind.ts, not an `options:` key):
   * AUTH TLS, implicit FTPS and protected data channels are terminated and originated. */
  tls?: FtpTls;
}

export interface FtpTls {
  policy: CompiledTls;
  endpoint: TlsEndpoint;
  /** TLS from the first byte; 'auto': when the client dialled port 990. */
  implicit: boolean | 'auto';
}

export interface OptionProblem {
  key: string;
  message: string;
  /** The catalogue entry (default POLICY_BAD_VALUE: a value the proxy cannot use). */
  id?: 'POLICY_TYPE' | 'POLICY_UNKNOWN_FIELD' | 'POLICY_BAD_VALUE';
}

const KEYS = new Set([
  'policy_set',
  'request',
  'response',
  'features',
  'permit_unknown_command',
  'permit_empty_command',
  'transparent_mode',
  'max_line_length',
  'max_username_length',
  'max_password_length',
  'max_hostname_length',
  'max_continuous_line',
  'valid_chars_username',
  'timeout',
  'data_timeout',
  'data_mode',
  'active_connection_mode',
  'data_port_min',
  'data_port_max',
  'masq_address_client',
  'masq_address_server',
  'permit_client_bounce_attack',
  'permit_server_bounce_attack',
  'strict_port_checking',
  'target_port_range',
  'greeting',
]);

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Validate and resolve; every problem is reported (not only the first). */
export function checkFtpOptions(raw: unknown): { options: FtpOptions | null; problems: OptionProblem[] } {
  const problems: OptionProblem[] = [];
  const bad = (key: string, message: string, id?: OptionProblem['id']) =>
    problems.push(id ? { key, message, id } : { key, message });
  const o: Record<string, unknown> = raw === undefined || raw === null ? {} : isRecord(raw) ? raw : {};
  if (raw !== undefined && raw !== null && !isRecord(raw))
    bad('', 'ftp options must be a map', 'POLICY_TYPE');
  for (const k of Object.keys(o)) {
    if (!KEYS.has(k))
      bad(k, `unknown ftp option '${k}' (known: ${[...KEYS].sort().join(', ')})`, 'POLICY_UNKNOWN_FIELD');
  }

  const bool = (key: string, dflt: boolean): boolean => {
    const v = o[key];
    if (v === undefined) return dflt;
    if (typeof v !== 'boolean') {
      bad(key, `'${key}' must be true or false`);
      return dflt;
    }
    return v;
  };
  const int = (key: string, dflt: number, min: number, max: number, unit: string): number => {
    const v = o[key];
    if (v === undefined) return dflt;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
      bad(key, `'${key}' must be an integer from ${min} to ${max} (${unit})`);
      return dflt;
    }
    return v;
  };
  const oneOf = <T extends string>(key: string, dflt: T, allowed: readonly T[], zorp?: readonly T[]): T => {
    const v = o[key];
    if (v === undefined) return dflt;
    // Zorp's numeric constants (FTP_DATA_KEEP 0, ...) are accepted too.
    if (zorp && typeof v === 'number' && Number.isInteger(v) && zorp[v] !== undefined) return zorp[v]!;
    if (typeof v !== 'string' || !(allowed as readonly string[]).includes(v)) {
      bad(key, `'${key}' must be one of ${allowed.join(', ')}`);
      return dflt;
    }
    return v as T;
  };
  const address = (key: string): string | null => {
    const v = o[key];
    if (v === undefined || v === null || v === '') return null;
    const c = typeof v === 'string' ? canonicalAddress(v) : null;
    if (!c) {
      bad(key, `'${key}' must be an IPv4 or IPv6 address`);
      return null;
    }
    return c.host;
  };

  const setName = oneOf('policy_set', 'permissive', POLICY_SETS);
  const policy = policySet(setName);
  policy.permitUnknownCommand = bool('permit_unknown_command', policy.permitUnknownCommand);
  readRequest(o.request, policy, bad);
  readResponse(o.response, policy, bad);
  readFeatures(o.features, policy, bad);

  const maxUsernameLength = int('max_username_length', DEFAULTS.ftpMaxUsernameBytes, 1, 4096, 'bytes');
  let validCharsUsername: RegExp | null = /^[a-zA-Z0-9._@]*$/;
  if (o.valid_chars_username !== undefined) {
    const v = o.valid_chars_username;
    if (v === null || v === '') validCharsUsername = null;
    else if (typeof v !== 'string' || v.includes(']') || v.includes('\\')) {
      bad(
        'valid_chars_username',
        "'valid_chars_username' must be a character-class body like 'a-zA-Z0-9._@'",
      );
    } else {
      try {
        validCharsUsername = new RegExp(`^[${v}]*$`);
      } catch {
        bad('valid_chars_username', `'valid_chars_username' is not a valid character class: ${v}`);
      }
    }
  }

  const dataPortMin = int('data_port_min', DEFAULTS.ftpDataPortMin, 1024, 65535, 'port');
  const dataPortMax = int('data_port_max', DEFAULTS.ftpDataPortMax, 1024, 65535, 'port');
  if (dataPortMin > dataPortMax) bad('data_port_min', "'data_port_min' must not be above 'data_port_max'");

  const targetPortRange = readPortRange(o.target_port_range, bad);
  const greeting = o.greeting === undefined ? 'tzorp FTP proxy ready' : o.greeting;
  if (typeof greeting !== 'string' || /[\r\n]/.test(greeting) || greeting.length > 200) {
    bad('greeting', "'greeting' must be one line of text (at most 200 characters)");
  }

  const options: FtpOptions = {
    policySet: setName,
    policy,
    transparentMode: bool('transparent_mode', true),
    maxLineLength: int('max_line_length', DEFAULTS.ftpMaxLineBytes, 16, 65536, 'bytes'),
    maxUsernameLength,
    maxPasswordLength: int('max_password_length', DEFAULTS.ftpMaxPasswordBytes, 1, 4096, 'bytes'),
    maxHostnameLength: int('max_hostname_length', DEFAULTS.ftpMaxHostnameBytes, 1, 4096, 'bytes'),
    maxContinuousLine: int('max_continuous_line', DEFAULTS.ftpMaxReplyLines, 2, 100000, 'lines'),
    validCharsUsername,
    permitEmptyCommand: bool('permit_empty_command', true),
    timeoutMs: int('timeout', DEFAULTS.ftpTimeoutMs, 1, 2 ** 31 - 1, 'ms'),
    dataTimeoutMs: int('data_timeout', DEFAULTS.ftpDataTimeoutMs, 1, 2 ** 31 - 1, 'ms'),
    dataMode: oneOf<DataMode>(
      'data_mode',
      'keep',
      ['keep', 'passive', 'active'],
      ['keep', 'passive', 'active'],
    ),
    activeConnectionMode: oneOf<ActiveConnectionMode>(
      'active_connection_mode',
      'minus_one',
      ['minus_one', 'twenty', 'random'],
      ['minus_one', 'twenty', 'random'],
    ),
    dataPortMin,
    dataPortMax,
    masqAddressClient: address('masq_address_client'),
    masqAddressServer: address('masq_address_server'),
    permitClientBounceAttack: bool('permit_client_bounce_attack', false),
    permitServerBounceAttack: bool('permit_server_bounce_attack', false),
    strictPortChecking: bool('strict_port_checking', true),
    targetPortRange,
    greeting: typeof greeting === 'string' ? greeting : 'tzorp FTP proxy ready',
  };
  return { options: problems.length ? null : options, problems };
}

/** Validate and resolve, or throw one TzorpError (POLICY_BAD_VALUE) naming every problem. */
export function parseFtpOptions(raw: unknown): FtpOptions {
  const { options, problems } = checkFtpOptions(raw);
  if (!options) {
    throw new TzorpError(
      'POLICY_BAD_VALUE',
      `invalid ftp options: ${problems.map((p) => p.message).join('; ')}`,
      {
        details: { problems },
      },
    );
  }
  return options;
}

type Bad = (key: string, message: string) => void;

function readVerdict(where: string, v: unknown, bad: Bad, kind: 'request' | 'response'): Verdict | null {
  const verb = where.split('.')[1] ?? '';
  const dflt = (a: string): Verdict | null =>
    a === 'accept'
      ? ACCEPT
      : a === 'reject'
        ? kind === 'request'
          ? defaultRejectFor(verb === '*' ? '' : verb)
          : DEFAULT_RESPONSE_REJECT
        : a === 'abort'
          ? DEFAULT_ABORT
          : null;
  if (typeof v === 'string') {
    const r = dflt(v);
    if (!r) bad(where, `'${where}' must be accept, reject or abort (got '${v}')`);
    return r;
  }
  if (!isRecord(v)) {
    bad(where, `'${where}' must be accept | reject | abort or a map { action, code, text }`);
    return null;
  }
  for (const k of Object.keys(v)) {
    if (!['action', 'code', 'text', 'param'].includes(k)) bad(where, `'${where}': unknown field '${k}'`);
  }
  const base = typeof v.action === 'string' ? dflt(v.action) : null;
  if (!base) {
    bad(where, `'${where}.action' must be accept, reject or abort`);
    return null;
  }
  if (base.action === 'accept') {
    if (v.code !== undefined || v.text !== undefined) bad(where, `'${where}': accept takes no code or text`);
    return base;
  }
  let code = base.code;
  let text = base.text;
  if (v.code !== undefined) {
    if (typeof v.code !== 'number' || !Number.isInteger(v.code) || v.code < 100 || v.code > 599) {
      bad(where, `'${where}.code' must be an FTP reply code from 100 to 599`);
    } else code = v.code;
  }
  if (v.text !== undefined) {
    if (typeof v.text !== 'string' || /[\r\n]/.test(v.text) || v.text.length > 200) {
      bad(where, `'${where}.text' must be one line of text (at most 200 characters)`);
    } else text = v.text;
  }
  return { action: base.action, code, text };
}

function readRequest(raw: unknown, policy: FtpPolicy, bad: Bad): void {
  if (raw === undefined) return;
  if (!isRecord(raw)) {
    bad('request', "'request' must be a map from command (or '*') to a verdict");
    return;
  }
  for (const [key, v] of Object.entries(raw)) {
    const verb = key === '*' ? '*' : key.toUpperCase();
    const where = `request.${key}`;
    if (verb !== '*' && !/^[A-Z]{3,4}$/.test(verb)) {
      bad(where, `'${where}': '${key}' is not an FTP command (3-4 letters) or '*'`);
      continue;
    }
    if (Array.isArray(v)) {
      // A custom rule: the first entry whose `param` regex matches the parameter decides.
      const cases: ConditionalVerdict[] = [];
      v.forEach((item, i) => {
        const w = `${where}[${i}]`;
        const verdict = readVerdict(`request.${verb}`, item, bad, 'request');
        let param: RegExp | undefined;
        if (isRecord(item) && item.param !== undefined) {
          if (typeof item.param !== 'string') bad(w, `'${w}.param' must be a regular expression (text)`);
          else {
            try {
              param = new RegExp(item.param);
            } catch (e) {
              bad(w, `'${w}.param' is not a valid regular expression: ${(e as Error).message}`);
            }
          }
        }
        if (verdict) cases.push(param ? { param, verdict } : { verdict });
      });
      if (cases.length === 0) bad(where, `'${where}' must list at least one entry`);
      policy.request.set(verb, { action: 'match', cases } satisfies RequestRule);
      continue;
    }
    if (isRecord(v) && v.param !== undefined) {
      bad(where, `'${where}': 'param' is only allowed in a list of conditional entries`);
      continue;
    }
    const verdict = readVerdict(`request.${verb}`, v, bad, 'request');
    if (verdict) policy.request.set(verb, verdict);
  }
}

function readResponse(raw: unknown, policy: FtpPolicy, bad: Bad): void {
  if (raw === undefined) return;
  if (!isRecord(raw)) {
    bad('response', "'response' must be a map command -> { code -> verdict }");
    return;
  }
  for (const [key, codes] of Object.entries(raw)) {
    const verb = key === '*' ? '*' : key.toLowerCase() === 'null' ? 'Null' : key.toUpperCase();
    if (verb !== '*' && verb !== 'Null' && !/^[A-Z]{3,4}$/.test(verb)) {
      bad(`response.${key}`, `'response.${key}': not an FTP command, 'Null' (greeting) or '*'`);
      continue;
    }
    if (!isRecord(codes)) {
      bad(
        `response.${key}`,
        `'response.${key}' must be a map from reply code ('550', '55', '5' or '*') to a verdict`,
      );
      continue;
    }
    let m = policy.response.get(verb);
    if (!m) {
      m = new Map();
      policy.response.set(verb, m);
    }
    for (const [code, v] of Object.entries(codes)) {
      const where = `response.${key}.${code}`;
      if (code !== '*' && !/^[1-5]([0-5][0-9]?)?$/.test(code)) {
        bad(where, `'${where}': '${code}' must be a reply code or its first one or two digits, or '*'`);
        continue;
      }
      const verdict = readVerdict(where, v, bad, 'response');
      if (verdict) m.set(code, verdict);
    }
  }
}

function readFeatures(raw: unknown, policy: FtpPolicy, bad: Bad): void {
  if (raw === undefined) return;
  if (!isRecord(raw)) {
    bad('features', "'features' must be a map from feature name (or '*') to accept | drop | insert");
    return;
  }
  for (const [key, v] of Object.entries(raw)) {
    const where = `features.${key}`;
    if (key !== '*' && !/^[A-Za-z0-9][\x21-\x7e]*$/.test(key)) {
      bad(where, `'${where}': not a feature name`);
      continue;
    }
    if (v !== 'accept' && v !== 'drop' && v !== 'insert') {
      bad(where, `'${where}' must be accept, drop or insert`);
      continue;
    }
    if (key === '*' && v === 'insert') {
      bad(where, `'${where}': '*' cannot be inserted`);
      continue;
    }
    policy.features.set(key === '*' ? '*' : key.toUpperCase(), v as FeatureAction);
  }
}

function readPortRange(v: unknown, bad: Bad): Array<{ lo: number; hi: number }> {
  const dflt = [{ lo: DEFAULTS.ftpDefaultPort, hi: DEFAULTS.ftpDefaultPort }];
  if (v === undefined) return dflt;
  const text = typeof v === 'number' ? String(v) : v;
  if (typeof text !== 'string') {
    bad('target_port_range', '\'target_port_range\' must be text like "21,2121,10000-10010"');
    return dflt;
  }
  const out: Array<{ lo: number; hi: number }> = [];
  for (const part of text.split(',')) {
    const m = /^\s*(\d{1,5})\s*(?:-\s*(\d{1,5})\s*)?$/.exec(part);
    const lo = m ? Number(m[1]) : Number.NaN;
    const hi = m ? Number(m[2] ?? m[1]) : Number.NaN;
    if (!m || lo < 1 || hi > 65535 || lo > hi) {
      bad('target_port_range', `'target_port_range': '${part.trim()}' is not a port or a range lo-hi`);
      continue;
    }
    out.push({ lo, hi });
  }
  return out.length ? out : dflt;
}
