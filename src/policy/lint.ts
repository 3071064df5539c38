// Lint: warnings about a valid policy (codes TZ15xx). Filled in below.
import type { Diagnostics } from './diagnostics.ts';
import type { Policy } from './model.ts';

export function lintPolicy(policy: Policy, d: Diagnostics, usedZones: Set<string>): void {
  void policy;
  void d;
  void usedZones;
}
