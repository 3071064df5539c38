// The daemon's effective configuration: every tunable in src/defaults.ts with what the command line of
// `tzorp run` changed, plus the run's own settings. `tzorp run --print-config` prints it without
// starting anything; the running daemon reports the one it runs with in `tzorp status --json` (field
// `config`). Deep-frozen, as DEFAULTS is.
import { DEFAULTS, type Defaults, deepFreeze } from '../defaults.ts';
import { bug } from '../errors.ts';

type Widen<T> = T extends string ? string : T extends number ? number : T extends boolean ? boolean : T;

/** The tunables, as values the command line may have changed. */
export type Tunables = { readonly [K in keyof Defaults]: Widen<Defaults[K]> };

/** What only a run has: no default in DEFAULTS. */
export interface RunSettings {
  /** The policy file (absolute); null when none was named (`--print-config` alone). */
  readonly policyFile: string | null;
  readonly workers: number;
  /** false: --no-kernel (someone else installs the ruleset). */
  readonly kernel: boolean;
  /** --metrics HOST:PORT; null when off. */
  readonly metrics: string | null;
  /** --user; null when the daemon keeps running as the user that started it. */
  readonly user: string | null;
}

export type EffectiveConfig = Tunables & RunSettings;

export function effectiveConfig(run: RunSettings, overrides: Partial<Tunables> = {}): EffectiveConfig {
  for (const k of Object.keys(overrides)) {
    if (!Object.hasOwn(DEFAULTS, k)) throw bug(`effectiveConfig: ${k} is not a tunable in src/defaults.ts`);
  }
  return deepFreeze({ ...DEFAULTS, ...overrides, ...run });
}
