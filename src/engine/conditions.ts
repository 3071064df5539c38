// Which management or bypass entry (if any) matches a connection. These are plain matches in the
// kernel (the first entry that matches accepts), not a best match, so any matching entry is the
// answer; the entries are evaluated by the engine's own rule matcher (same zones, dimensions and
// interface semantics as the rules) through a policy whose rules are the entries. Pure: no I/O.
import type { Conditions, Connection, Policy, Rule, Service } from '../policy/model.ts';
import { Engine } from './engine.ts';

const ENTRY_SERVICE = '(entry)';

export class ConditionsMatcher {
  private readonly engine: Engine | null;

  constructor(policy: Policy, entries: readonly (Conditions & { pos: Rule['pos'] })[]) {
    if (entries.length === 0) {
      this.engine = null;
      return;
    }
    const service: Service = {
      type: 'deny',
      name: ENTRY_SERVICE,
      id: 1,
      ipv4: 'drop',
      ipv6: 'drop',
      logging: false,
      pos: entries[0]!.pos,
    };
    this.engine = new Engine({
      ...policy,
      services: new Map([[ENTRY_SERVICE, service]]),
      // rule id = entry number (1-based): the lowest matching entry wins the tie, as the first
      // matching nft rule does
      rules: entries.map((e, i) => ({ ...e, id: i + 1, service: ENTRY_SERVICE })),
    });
  }

  /** 1-based number of the first entry matching the connection, or null. */
  first(conn: Connection): number | null {
    if (this.engine === null) return null;
    const ex = this.engine.explain(conn);
    const hits = ex.candidates.filter((c) => c.matched).map((c) => c.rule);
    return hits.length === 0 ? null : Math.min(...hits);
  }
}
