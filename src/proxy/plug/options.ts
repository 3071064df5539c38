// Plug proxy options (zorp-semantics.md 6.1, zorp:pylib/Zorp/Plug.py), Zorp's names as written in the
// policy. Only what tzorp implements is accepted: an unknown option is an error, not silently ignored.
import { DEFAULTS } from '../../defaults.ts';
import { TzorpError } from '../../errors.ts';

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

/**
 * Validate the policy's plug options. Throws TzorpError (POLICY_UNKNOWN_FIELD, POLICY_TYPE,
 * POLICY_BAD_VALUE) naming the option; the daemon reports it with the service's position.
 */
export function parsePlugOptions(raw: Record<string, unknown> | null | undefined): PlugOptions {
  const o = raw ?? {};
  if (typeof o !== 'object' || Array.isArray(o)) {
    throw new TzorpError('POLICY_TYPE', 'plug options must be a mapping');
  }
  for (const k of Object.keys(o)) {
    if (!(PLUG_OPTION_NAMES as readonly string[]).includes(k)) {
      throw new TzorpError(
        'POLICY_UNKNOWN_FIELD',
        `unknown plug option '${k}' (known: ${PLUG_OPTION_NAMES.join(', ')})`,
        { details: { option: k } },
      );
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
      throw new TzorpError(
        'POLICY_TYPE',
        `plug option 'timeout' must be an integer (milliseconds), not ${show(t)}`,
        {
          details: { option: 'timeout' },
        },
      );
    }
    if (t < 1 || t > MAX_TIMEOUT_MS) {
      throw new TzorpError(
        'POLICY_BAD_VALUE',
        `plug option 'timeout' must be 1..${MAX_TIMEOUT_MS} ms, not ${t}`,
        {
          details: { option: 'timeout' },
        },
      );
    }
    out.timeoutMs = t;
  }
  for (const [name, key] of [
    ['copy_to_server', 'copyToServer'],
    ['copy_to_client', 'copyToClient'],
  ] as const) {
    const v = o[name];
    if (v === undefined) continue;
    if (typeof v !== 'boolean') {
      throw new TzorpError('POLICY_TYPE', `plug option '${name}' must be true or false, not ${show(v)}`, {
        details: { option: name },
      });
    }
    out[key] = v;
  }
  return out;
}

function show(v: unknown): string {
  return typeof v === 'string' ? `'${v}'` : (JSON.stringify(v) ?? String(v));
}
