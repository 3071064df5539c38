// A software reading of the Ruleset IR: what decide_v4/decide_v6 of the rendered ruleset do, step by step
// (zone ids from the longest-match maps, tiers in order, each lookup's protocol/ICMP/fib guard, then the
// first element whose every key interval holds the packet's value). Unit tests compare it with the
// engine on many random cases without a kernel; the namespace tests then check that nft does the same.

import type { Field } from '../../../src/kernel/compile/variants.ts';
import type { RulesetIR } from '../../../src/kernel/index.ts';
import type { Connection } from '../../../src/policy/model.ts';

function parseAddr(s: string): { family: 4 | 6; v: bigint } {
  if (!s.includes(':')) {
    let v = 0n;
    for (const x of s.split('.')) v = (v << 8n) | BigInt(Number(x));
    return { family: 4, v };
  }
  const [head, tail] = s.includes('::') ? s.split('::') : [s, undefined];
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const words = tail === undefined ? h : [...h, ...Array(8 - h.length - t.length).fill('0'), ...t];
  let v = 0n;
  for (const w of words) v = (v << 16n) | BigInt(Number.parseInt(w || '0', 16));
  return { family: 6, v };
}

export function irDecide(ir: RulesetIR, c: Connection): number | null {
  const src = parseAddr(c.src);
  const dst = parseAddr(c.dst);
  const f = src.family;
  const fam = ir.families[f];
  const zoneOf = (v: bigint): number => {
    for (const r of fam.zoneRanges) if (r.lo <= v && v <= r.hi) return r.zone;
    return 0;
  };
  const ported = c.proto === 6 || c.proto === 17;
  const icmp = f === 4 ? 1 : 58;
  const value = (field: Field): bigint | null => {
    switch (field) {
      case 'iifname': {
        const i = c.iface === undefined ? -1 : ir.ifnames.indexOf(c.iface);
        return i < 0 ? null : BigInt(i);
      }
      case 'iifgroup':
        return c.iface === undefined ? null : BigInt(c.ifgroup ?? 0);
      case 'reqid':
        return c.reqids?.length ? BigInt(c.reqids[c.reqids.length - 1]!) : null;
      case 'l4proto':
        return BigInt(c.proto);
      case 'icmptype':
        return c.proto === icmp && c.icmpType !== undefined ? BigInt(c.icmpType) : null;
      case 'icmpcode':
        return c.proto === icmp && c.icmpCode !== undefined ? BigInt(c.icmpCode) : null;
      case 'sport':
        return BigInt(c.srcPort ?? 0);
      case 'dport':
        return BigInt(c.dstPort ?? 0);
      case 'saddr':
        return src.v;
      case 'szone':
        return BigInt(zoneOf(src.v));
      case 'daddr':
        return dst.v;
      case 'dzone':
        return BigInt(zoneOf(dst.v));
    }
  };
  for (const t of fam.tiers) {
    for (const l of t.lookups) {
      if (l.l4 === 'ported' && !ported) continue;
      if (l.l4 === 'portless' && ported) continue;
      if (l.icmp && c.proto !== icmp) continue;
      if (l.fibLocal && !c.dstLocal) continue;
      const vals = l.fields.map(value);
      if (vals.some((v) => v === null)) continue;
      for (const e of l.elements) {
        if (e.key.every((iv, i) => iv[0] <= vals[i]! && vals[i]! <= iv[1])) return e.ruleId;
      }
    }
  }
  return null;
}
