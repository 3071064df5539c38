// tzorp check POLICY [--json]: loads and lints a policy and reports every error and warning at once
// (`file:line:col: CODE message`), then a one-line summary. Exit 0 valid (warnings allowed), 1 invalid,
// 2 usage (main.ts maps commander's errors).
import type { Command } from 'commander';
import { loadChecks } from '../../daemon/index.ts';
import { Engine, outrankedDenies } from '../../engine/index.ts';
import type { TzorpError } from '../../errors.ts';
import { byPosition, type LoadResult, loadPolicyFile } from '../../policy/index.ts';

/** The loader plus what only the proxy modules know: proxy names and their options (the same check
 * `tzorp run` makes), each option problem already placed at the option's own file:line:col. */
export async function checkPolicyFile(file: string): Promise<LoadResult> {
  const r = await loadPolicyFile(file);
  // an invalid policy's services that did resolve are checked too: every error in one pass
  const checked = r.policy ?? r.partial;
  if (!checked) return r;
  const { checkProxies } = await loadChecks();
  const errors = checkProxies(checked);
  // deny rules that a more specific rule beats for some traffic: the engine decides a witness
  const warnings = r.policy
    ? byPosition([...r.warnings, ...outrankedDenies(new Engine(r.policy))])
    : r.warnings;
  if (errors.length === 0) return { ...r, warnings };
  return { policy: null, errors: byPosition([...r.errors, ...errors]), warnings };
}

export interface CheckSummary {
  zones: number;
  services: number;
  rules: number;
  management: number;
  bypass: number;
  errors: number;
  warnings: number;
}

function diag(e: TzorpError) {
  return {
    code: e.code,
    message: e.message,
    file: e.pos?.file ?? null,
    line: e.pos?.line ?? null,
    col: e.pos?.col ?? null,
  };
}

export function summarize(r: LoadResult): CheckSummary {
  const p = r.policy;
  return {
    zones: p?.zones.size ?? 0,
    services: p?.services.size ?? 0,
    rules: p?.rules.length ?? 0,
    management: p?.management.length ?? 0,
    bypass: p?.bypass.length ?? 0,
    errors: r.errors.length,
    warnings: r.warnings.length,
  };
}

/** The --json document (a stable interface: scripts and editors read it). */
export function checkJson(r: LoadResult) {
  return {
    valid: r.errors.length === 0,
    errors: r.errors.map(diag),
    warnings: r.warnings.map(diag),
    summary: summarize(r),
  };
}

export function checkText(file: string, r: LoadResult): string {
  const out: string[] = [];
  for (const e of r.errors) out.push(e.format());
  for (const w of r.warnings) {
    const where = w.pos ? `${w.pos.file}:${w.pos.line}:${w.pos.col}: ` : '';
    out.push(`${where}warning: ${w.code} ${w.message}`);
  }
  const s = summarize(r);
  const plural = (n: number, w: string) => `${n} ${w}${n === 1 ? '' : 's'}`;
  if (r.errors.length > 0) {
    out.push(`${file}: invalid: ${plural(s.errors, 'error')}, ${plural(s.warnings, 'warning')}`);
  } else {
    out.push(
      `${file}: valid: ${plural(s.zones, 'zone')}, ${plural(s.services, 'service')}, ${plural(s.rules, 'rule')}` +
        (s.management ? `, ${plural(s.management, 'management rule')}` : '') +
        (s.bypass ? `, ${plural(s.bypass, 'bypass rule')}` : '') +
        `; ${plural(s.warnings, 'warning')}`,
    );
  }
  return `${out.join('\n')}\n`;
}

export function register(program: Command): void {
  program
    .command('check')
    .description('check a policy: every error and warning with file:line:col, and a summary')
    .argument('<policy>', 'policy file (YAML or JSON)')
    .option('--json', 'print {"valid", "errors", "warnings", "summary"} as JSON')
    .action(async (file: string, o: { json?: boolean }) => {
      const r = await checkPolicyFile(file);
      if (o.json) process.stdout.write(`${JSON.stringify(checkJson(r), null, 2)}\n`);
      else process.stdout.write(checkText(file, r));
      process.exitCode = r.errors.length === 0 ? 0 : 1;
    });
}
