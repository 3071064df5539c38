// Collects errors and warnings with positions. Every problem is reported (the user fixes them all in one
// round), up to DEFAULTS.maxPolicyErrors of each kind: a generated file with a million bad lines gets a
// bounded report plus a count instead of a million-line one.
import { DEFAULTS } from '../defaults.ts';
import { type ErrorId, TzorpError } from '../errors.ts';
import type { Lines } from './syntax.ts';

export class Diagnostics {
  readonly errors: TzorpError[] = [];
  readonly warnings: TzorpError[] = [];
  private droppedErrors = 0;
  private droppedWarnings = 0;

  constructor(
    readonly file: string,
    readonly lines: Lines | null,
  ) {}

  pos(at: number | undefined): { file: string; line: number; col: number } {
    if (at === undefined || this.lines === null) return { file: this.file, line: 1, col: 1 };
    return { file: this.file, ...this.lines.pos(at) };
  }

  error(id: ErrorId, message: string, at?: number, details?: Record<string, unknown>): void {
    if (this.errors.length >= DEFAULTS.maxPolicyErrors) {
      this.droppedErrors++;
      return;
    }
    this.errors.push(new TzorpError(id, message, { pos: this.pos(at), ...(details ? { details } : {}) }));
  }

  warn(id: ErrorId, message: string, at?: number, details?: Record<string, unknown>): void {
    if (this.warnings.length >= DEFAULTS.maxPolicyErrors) {
      this.droppedWarnings++;
      return;
    }
    this.warnings.push(new TzorpError(id, message, { pos: this.pos(at), ...(details ? { details } : {}) }));
  }

  /** A warning at a position the model already carries (lint works on the resolved policy). */
  warnPos(id: ErrorId, message: string, pos: { file: string; line: number; col: number }): void {
    if (this.warnings.length >= DEFAULTS.maxPolicyErrors) {
      this.droppedWarnings++;
      return;
    }
    this.warnings.push(new TzorpError(id, message, { pos }));
  }

  get failed(): boolean {
    return this.errors.length > 0;
  }

  /** Appends the "N more not shown" notes; call once, at the end. */
  finish(): void {
    if (this.droppedErrors > 0) {
      this.errors.push(
        new TzorpError('POLICY_TOO_MANY_ERRORS', `${this.droppedErrors} more errors are not shown`, {
          pos: { file: this.file, line: 1, col: 1 },
        }),
      );
    }
    if (this.droppedWarnings > 0) {
      this.warnings.push(
        new TzorpError('POLICY_TOO_MANY_ERRORS', `${this.droppedWarnings} more warnings are not shown`, {
          pos: { file: this.file, line: 1, col: 1 },
        }),
      );
    }
  }
}

/** Levenshtein distance, bounded: returns max+1 as soon as the distance exceeds max. */
export function editDistance(a: string, b: string, max = 3): number {
  if (Math.abs(a.length - b.length) > max) return max + 1;
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    let rowMin = i;
    for (let j = 1; j <= b.length; j++) {
      const v = Math.min(
        (prev[j] as number) + 1,
        (cur[j - 1] as number) + 1,
        (prev[j - 1] as number) + (a[i - 1] === b[j - 1] ? 0 : 1),
      );
      cur.push(v);
      if (v < rowMin) rowMin = v;
    }
    if (rowMin > max) return max + 1;
    prev = cur;
  }
  return prev[b.length] as number;
}

/** The closest known name within a small edit distance (or a case-insensitive match), if any. */
export function closest(name: string, known: Iterable<string>): string | null {
  let best: string | null = null;
  let bestD = Math.max(1, Math.min(3, Math.floor(name.length / 3)));
  const lower = name.toLowerCase().replaceAll('-', '_');
  for (const k of known) {
    if (k.toLowerCase() === lower) return k;
    const d = editDistance(lower, k.toLowerCase(), bestD);
    if (d <= bestD && (best === null || d < bestD)) {
      best = k;
      bestD = d;
    }
  }
  return best;
}

export function didYouMean(name: string, known: Iterable<string>): string {
  const c = closest(name, known);
  return c === null ? '' : ` (did you mean '${c}'?)`;
}
