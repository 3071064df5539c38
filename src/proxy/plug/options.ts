// Plug proxy options (zorp-semantics.md 6.1, zorp:pylib/Zorp/Plug.py), Zorp's names as written in the
// policy. Only what tzorp implements is accepted: an unknown option is an error, not silently ignored.
import { DEFAULTS } from '../../defaults.ts';
import { TzorpError } from '../../errors.ts';
import { type OptionProblem, OptionProblems } from '../core/module.ts';

export interface PlugOptions {
  /** Idle timeout: no data either way for this long ends the session (ms). Zorp `timeout`. */
  timeoutMs: number;
  /** false = bytes from the client are read and dropped (Zorp `copy_to_server`). */
  copyToServer: boolean;
  /** false = bytes from the server are read and dropped (Zorp `copy_to_client`). */
  copyToClient: boolean;
}

export const PLUG_OPTION_NAMES = ['timeout', 'copy_to_server', 'copy_to_client'] as const;

/** Largest accepted idle timeout (ms): setTimeout's limit (2^31-1 ms, about 24.8 days). */
const MAX_TIMEOUT_MS = 2 ** 31 - 1;

/** Validate the policy's plug options: the options, or every problem (each naming its option). */
export function checkPlugOptions(raw: unknown): PlugOptions | OptionProblems {
  const problems: OptionProblem[] = [];
  const bad = (id: OptionProblem['id'], path: string, message: string) =>
    problems.push({ id, path, message });
  const o = (raw ?? {}) as Record<string, unknown>;
  if (typeof o !== 'object' || Array.isArray(o)) {
    return new OptionProblems([{ id: 'POLICY_TYPE', path: '', message: 'plug options must be a mapping' }]);
  }
  for (const k of Object.keys(o)) {
    if (!(PLUG_OPTION_NAMES as readonly string[]).includes(k)) {
      bad('POLICY_UNKNOWN_FIELD', k, `unknown plug option '${k}' (known: ${PLUG_OPTION_NAMES.join(', ')})`);
    }
  }
  const out: PlugOptions = {
    timeoutMs: DEFAULTS.idleTimeoutMs,
    copyToServer: true,
    copyToClient: true,
  };
  if (o.timeout !== undefined) {
    const t = o.timeout;
    if (typeof t !== 'number' || !Number.isInteger(t)) {
      bad(
        'POLICY_TYPE',
        'timeout',
        `plug option 'timeout' must be an integer (milliseconds), not ${show(t)}`,
      );
    } else if (t < 1 || t > MAX_TIMEOUT_MS) {
      bad('POLICY_BAD_VALUE', 'timeout', `plug option 'timeout' must be 1..${MAX_TIMEOUT_MS} ms, not ${t}`);
    } else out.timeoutMs = t;
  }
  for (const [name, key] of [
    ['copy_to_server', 'copyToServer'],
    ['copy_to_client', 'copyToClient'],
  ] as const) {
    const v = o[name];
    if (v === undefined) continue;
    if (typeof v !== 'boolean') {
      bad('POLICY_TYPE', name, `plug option '${name}' must be true or false, not ${show(v)}`);
    } else out[key] = v;
  }
  return problems.length > 0 ? new OptionProblems(problems) : out;
}

/** checkPlugOptions for callers that want an exception: the first problem as a TzorpError (kind
 * 'user', POLICY_UNKNOWN_FIELD / POLICY_TYPE / POLICY_BAD_VALUE) naming the option. */
export function parsePlugOptions(raw: unknown): PlugOptions {
  const r = checkPlugOptions(raw);
  if (!(r instanceof OptionProblems)) return r;
  const p = r.problems[0]!;
  throw new TzorpError(p.id, p.message, { details: { option: p.path } });
}

function show(v: unknown): string {
  return typeof v === 'string' ? `'${v}'` : (JSON.stringify(v) ?? String(v));
}
