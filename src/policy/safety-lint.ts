// Safety lint (issue 10): warnings about valid policies that lock the administrator out or let
// traffic through in ways an administrator does not expect. Codes TZ152x. Pure.
import type { Diagnostics } from './diagnostics.ts';
import type { Policy } from './model.ts';

export interface SafetyFacts {
  /** Offset of the top-level `management:` key, null when absent. */
  managementAt: number | null;
  /** Offset of the policy's top node. */
  topAt: number;
}

export function safetyLint(policy: Policy, d: Diagnostics, facts: SafetyFacts): void {
  // input drops everything that is not management (or diverted to a proxy): without a management
  // entry, applying the policy over SSH cuts the session that applied it
  if (facts.managementAt === null) {
    d.warn(
      'LINT_NO_MANAGEMENT',
      'the policy has no management section: once applied, nothing reaches the firewall itself (SSH included); add e.g. management: [{ proto: tcp, dst_port: 22, src_zone: <admin zone> }]',
      facts.topAt,
    );
  } else if (policy.management.length === 0) {
    d.warn(
      'LINT_EMPTY_MANAGEMENT',
      'management is empty: once applied, nothing reaches the firewall itself (SSH included)',
      facts.managementAt,
    );
  }
}
