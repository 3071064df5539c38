// loadPolicyText: text -> syntax tree (JSON or YAML reader) -> resolved Policy -> lint.
// Pure (no I/O): file.ts reads files. Never throws for bad input: every problem is an error in the
// result, with file:line:column.
import { DEFAULTS } from '../defaults.ts';
import { TzorpError } from '../errors.ts';
import { Diagnostics } from './diagnostics.ts';
import { readJson } from './json-reader.ts';
import { lintPolicy } from './lint.ts';
import type { Policy } from './model.ts';
import { Resolver } from './resolve.ts';
import { safetyLint } from './safety-lint.ts';
import { Lines, type PNode } from './syntax.ts';
import { readYaml } from './yaml-reader.ts';

export interface LoadResult {
  /** null iff errors is non-empty. */
  policy: Policy | null;
  errors: TzorpError[];
  warnings: TzorpError[];
  /** When the policy is invalid but its structure was read: the zones, services and rules that did
   * resolve (the others left out), so that `tzorp check` reports proxy-option errors beside the
   * structural ones. Never a policy to run. */
  partial?: Policy;
}

function mib(n: number): string {
  return `${(n / (1024 * 1024)).toFixed(n % (1024 * 1024) === 0 ? 0 : 1)} MiB`;
}

function tooLarge(file: string, bytes: number): LoadResult {
  return {
    policy: null,
    errors: [
      new TzorpError(
        'POLICY_TOO_LARGE',
        `the policy is ${mib(bytes)}; at most ${mib(DEFAULTS.maxPolicyBytes)} are accepted`,
        { pos: { file, line: 1, col: 1 } },
      ),
    ],
    warnings: [],
  };
}

/** Refuses oversized input before any parsing: bounded memory whatever the file holds. */
export function checkPolicySize(file: string, bytes: number): LoadResult | null {
  return bytes > DEFAULTS.maxPolicyBytes ? tooLarge(file, bytes) : null;
}

/** How much work a load does beyond validation. */
export interface LoadOptions {
  /** Run the lint (shadowed/tied rules, unused names) and report its warnings. Default true. It is
   * the costly part on large policies (pairs of rules), so the daemon's start and reload, compile and
   * explain skip it; `tzorp check` runs it. */
  lint?: boolean;
}

export function loadPolicyText(
  text: string,
  file: string,
  sha256?: string,
  opts: LoadOptions = {},
): LoadResult {
  const bytes = Buffer.byteLength(text, 'utf8');
  const big = checkPolicySize(file, bytes);
  if (big) return big;
  const lines = new Lines(text);
  const d = new Diagnostics(file, lines);
  const root = readSyntax(text, bytes, d);
  let policy: Policy | null = null;
  let partial: Policy | null = null;
  if (root !== null) {
    const r = new Resolver(d);
    // (node:crypto on first use, as in file.ts: not loaded by the workers that import this module)
    const hash =
      sha256 ??
      process.getBuiltinModule('node:crypto').createHash('sha256').update(text, 'utf8').digest('hex');
    policy = r.resolve(root, { file, sha256: hash });
    if (policy !== null && opts.lint !== false) {
      lintPolicy(policy, d, r.usedZones);
      safetyLint(policy, d, { managementAt: r.managementAt, topAt: r.topAt });
    } else if (r.partial !== null && opts.lint !== false) {
      // with errors, the warnings that each look at one service or rule still hold (lockout, UDP to
      // a proxy, ...); the pairwise lint (shadowed, tied, unused) would judge a policy with parts
      // missing, so it waits for a valid one
      safetyLint(r.partial, d, { managementAt: r.managementAt, topAt: r.topAt });
      partial = r.partial;
    }
  }
  d.finish();
  if (d.errors.length > 0) policy = null;
  return {
    policy,
    errors: byPosition(d.errors),
    warnings: byPosition(d.warnings),
    ...(partial && policy === null ? { partial } : {}),
  };
}

function readSyntax(text: string, bytes: number, d: Diagnostics): PNode | null {
  // JSON (what programs write, and the only form for large files) starts with '{'; a YAML flow mapping
  // does too, so when the JSON reader fails a small file is given to the YAML reader.
  const body = text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
  const offset = text.length - body.length;
  const first = /\S/.exec(body);
  if (first && first[0] === '{') {
    const j = readJson(body);
    if (j.ok) return j.root;
    // Too deep for the JSON reader is too deep for YAML too (whose parser would only report a stack
    // overflow): say what the limit is.
    if (bytes > DEFAULTS.maxYamlPolicyBytes || j.message.startsWith('nesting deeper than')) {
      d.error('POLICY_SYNTAX', `JSON syntax error: ${j.message}`, j.at + offset);
      return null;
    }
  }
  if (bytes > DEFAULTS.maxYamlPolicyBytes) {
    d.error(
      'POLICY_TOO_LARGE',
      `a YAML policy of ${mib(bytes)} is too large (at most ${mib(DEFAULTS.maxYamlPolicyBytes)}: the YAML parser needs about 100 bytes of memory per byte); write large policies as JSON (up to ${mib(DEFAULTS.maxPolicyBytes)})`,
      0,
    );
    return null;
  }
  const y = readYaml(text);
  if (!y.ok) {
    for (const e of y.errors) d.error('POLICY_SYNTAX', `YAML syntax error: ${e.message}`, e.at);
    return null;
  }
  return y.root;
}

/** In file order (stable: problems at one position keep the order they were found in). */
export function byPosition(list: TzorpError[]): TzorpError[] {
  const line = (e: TzorpError) => e.pos?.line ?? 0;
  const col = (e: TzorpError) => e.pos?.col ?? 0;
  const notes = list.filter((e) => e.id === 'POLICY_TOO_MANY_ERRORS');
  const sorted = list
    .filter((e) => e.id !== 'POLICY_TOO_MANY_ERRORS')
    .map((e, i) => ({ e, i }))
    .sort((a, b) => line(a.e) - line(b.e) || col(a.e) - col(b.e) || a.i - b.i)
    .map((x) => x.e);
  return [...sorted, ...notes];
}
