// Zorp's per-category log levels (zorp-semantics.md 7.3, zorp:doc/man/zorp.8.xml): a log spec is a
// comma list of `category-glob:level`; for a category the LAST matching entry gives its maximum level,
// otherwise the global verbosity applies; a message is written when its level <= that maximum.
// Categories are `module.kind` (core.session, http.request, ...). Levels are 0..10 as in Zorp.
import { TzorpError } from '../errors.ts';

export const MIN_LOG_LEVEL = 0;
export const MAX_LOG_LEVEL = 10;

export interface LogSpecEntry {
  glob: string;
  level: number;
}

const GLOB_RE = /^[A-Za-z0-9_.*?-]+$/;

/** Parse "core.*:5,http.request:6". Empty text = no entries. Throws TzorpError LOG_SPEC on bad input. */
export function parseLogSpec(text: string): LogSpecEntry[] {
  const out: LogSpecEntry[] = [];
  for (const raw of text.split(',')) {
    const item = raw.trim();
    if (item === '') continue;
    const colon = item.lastIndexOf(':');
    const glob = colon < 0 ? '' : item.slice(0, colon).trim();
    const levelText = colon < 0 ? '' : item.slice(colon + 1).trim();
    if (!GLOB_RE.test(glob) || !/^\d{1,2}$/.test(levelText)) {
      throw new TzorpError(
        'LOG_SPEC',
        `bad log spec entry '${item}': expected category-glob:level (e.g. core.*:5)`,
        {
          details: { entry: item },
        },
      );
    }
    const level = Number(levelText);
    if (level > MAX_LOG_LEVEL) {
      throw new TzorpError(
        'LOG_SPEC',
        `bad log spec entry '${item}': level must be ${MIN_LOG_LEVEL}..${MAX_LOG_LEVEL}`,
        {
          details: { entry: item },
        },
      );
    }
    out.push({ glob, level });
  }
  return out;
}

export function formatLogSpec(entries: readonly LogSpecEntry[]): string {
  return entries.map((e) => `${e.glob}:${e.level}`).join(',');
}

/** Glob match as Zorp's log spec uses it: `*` any run of characters (dots included), `?` one. */
export function globMatch(glob: string, text: string): boolean {
  // Iterative wildcard matching with one backtrack point: linear enough for short category names.
  let g = 0;
  let t = 0;
  let starG = -1;
  let starT = 0;
  while (t < text.length) {
    const c = glob[g];
    if (c === '*') {
      starG = g++;
      starT = t;
    } else if (c !== undefined && (c === '?' || c === text[t])) {
      g++;
      t++;
    } else if (starG >= 0) {
      g = starG + 1;
      t = ++starT;
    } else return false;
  }
  while (glob[g] === '*') g++;
  return g === glob.length;
}

export function clampLevel(n: number): number {
  return Math.max(MIN_LOG_LEVEL, Math.min(MAX_LOG_LEVEL, Math.trunc(n)));
}

/** The verbosity and the spec, with a per-category cache (categories are few, messages many). */
export class LogLevels {
  private entries: LogSpecEntry[];
  private verbosityValue: number;
  private readonly cache = new Map<string, number>();

  constructor(verbosity: number, spec: LogSpecEntry[] | string = []) {
    this.verbosityValue = clampLevel(verbosity);
    this.entries = typeof spec === 'string' ? parseLogSpec(spec) : [...spec];
  }

  get verbosity(): number {
    return this.verbosityValue;
  }

  get spec(): string {
    return formatLogSpec(this.entries);
  }

  setVerbosity(n: number): void {
    this.verbosityValue = clampLevel(n);
    this.cache.clear();
  }

  /** SIGUSR1 / SIGUSR2 (zorpctl inclog / declog): verbosity +1 / -1, clamped. */
  adjustVerbosity(delta: number): void {
    this.setVerbosity(this.verbosityValue + delta);
  }

  setSpec(spec: string | LogSpecEntry[]): void {
    this.entries = typeof spec === 'string' ? parseLogSpec(spec) : [...spec];
    this.cache.clear();
  }

  /** The maximum level written for a category. */
  levelFor(category: string): number {
    const hit = this.cache.get(category);
    if (hit !== undefined) return hit;
    let level = this.verbosityValue;
    for (const e of this.entries) if (globMatch(e.glob, category)) level = e.level;
    this.cache.set(category, level);
    return level;
  }

  enabled(category: string, level: number): boolean {
    return level <= this.levelFor(category);
  }
}
