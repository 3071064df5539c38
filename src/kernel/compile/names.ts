// Zone names become parts of nft identifiers (`zone_<ident>_v4`). Zone names may contain dots and other
// characters; the mapping keeps [A-Za-z0-9.] and writes every other character, `_` included, as `_`
// followed by its code point in lower-case hex and a `_` (so "dmz_a" → "dmz_5f_a", "büro" → "b_fc_ro").
// It is injective (an escape always starts with `_`, and a literal `_` is always escaped) and the same
// name always gives the same identifier. docs/kernel.md documents it.

export function zoneIdent(name: string): string {
  let out = '';
  for (const ch of name) {
    if (/[A-Za-z0-9.]/.test(ch)) out += ch;
    else out += `_${ch.codePointAt(0)!.toString(16)}_`;
  }
  return out;
}

export function zoneSetName(name: string, tree: boolean, family: 4 | 6): string {
  return `zone_${zoneIdent(name)}${tree ? '_tree' : ''}_v${family}`;
}

/** The zone set names a text refers to (`@zone_<ident>[_tree]_v4|6`), as zone identifiers. An escape is
 * `_<hex>_` and neither `tree` nor `v4`/`v6` is hex, so where an identifier ends is unambiguous. */
export function referencedZoneIdents(text: string): Set<string> {
  const out = new Set<string>();
  for (const m of text.matchAll(/@zone_((?:[A-Za-z0-9.]|_[0-9a-f]+_)+?)(?:_tree)?_v[46]\b/g)) out.add(m[1]!);
  return out;
}
