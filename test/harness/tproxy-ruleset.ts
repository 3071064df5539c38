// The minimal hand-written TPROXY ruleset (linux-tproxy.md, "Exact configuration that worked") for tests
// and benchmarks that drive a relay without tzorp's own compiler: pure SYNs to the divert chain first,
// packets of transparent sockets marked and accepted, input and forward at policy drop.

/** The mark bit that sends diverted packets to the local routing table (Zorp's). */
export const TPROXY_MARK = '0x80000000';

/** A divert-chain rule: `<match> tproxy ... to <listener> meta mark set ... accept`. */
export function tproxyTo(
  match: string,
  family: 4 | 6,
  port: number,
  host = family === 4 ? '127.0.0.1' : '::1',
): string {
  const to = family === 4 ? `ip to ${host}:${port}` : `ip6 to [${host}]:${port}`;
  return `${match} tproxy ${to} meta mark set meta mark | ${TPROXY_MARK} accept`;
}

export interface TproxyRulesetOptions {
  /** Name of the table (`table inet <table>`): distinct per test so rulesets never collide. */
  table: string;
  /** Rules of the divert chain, usually made with tproxyTo. */
  divert: string[];
  /** Extra input rules, after the mark rule (e.g. `ct state established,related accept` for a
   * relay whose upstream sockets are not transparent). */
  input?: string[];
  /** Forward rules (the chain's policy is drop). */
  forward?: string[];
}

export function tproxyRuleset(o: TproxyRulesetOptions): string {
  const lines = (l: string[] = []) => l.map((r) => `    ${r}\n`).join('');
  return `table inet ${o.table} {
  chain prerouting {
    type filter hook prerouting priority mangle; policy accept;
    tcp flags & (fin|syn|rst|ack) == syn jump divert
    socket transparent 1 meta mark set meta mark | ${TPROXY_MARK} accept
    jump divert
  }
  chain divert {
${lines(o.divert)}  }
  chain input {
    type filter hook input priority filter; policy drop;
    iif lo accept
    meta mark & ${TPROXY_MARK} == ${TPROXY_MARK} accept
${lines(o.input)}    meta l4proto { icmp, ipv6-icmp } accept
  }
  chain forward {
    type filter hook forward priority filter; policy drop;
${lines(o.forward)}  }
}
`;
}
