// `nft -j list table inet tzorp` normalised, so that two tables that decide alike compare equal as
// text, whatever order their objects were made in (kernel tests: differential, staged apply).
import type { TableModel } from '../../src/kernel/index.ts';

/** `nft -j list table inet tzorp` (through `nftJson`, which runs `nft -j ARGS` where the table is),
 * normalised: no handles, no counter values, objects by name, elements sorted; rules keep their order. Two tables that decide alike list alike. nft 1.0.6 aborts
 * when it lists some concatenated interval maps (an assertion in its element sort); then each object
 * is listed alone, and one that still cannot be listed is compared by its presence only: `unlisted`
 * counts those, and the engine comparison covers their elements. */
export async function listedTable(
  nftJson: (args: string[]) => Promise<{ code: number; stdout: string }>,
  model: TableModel,
  unlisted: { n: number } = { n: 0 },
): Promise<string> {
  const items: Record<string, Record<string, unknown>>[] = [];
  const list = async (args: string[]): Promise<boolean> => {
    const r = await nftJson(args);
    if (r.code !== 0) return false;
    items.push(...(JSON.parse(r.stdout) as { nftables: Record<string, Record<string, unknown>>[] }).nftables);
    return true;
  };
  if (!(await list(['list', 'table', 'inet', 'tzorp']))) {
    // the names come from the model; what the kernel holds must list the same either way
    for (const o of model.objects) {
      if (await list(['list', o.kind, 'inet', 'tzorp', o.name])) continue;
      unlisted.n++;
      items.push({ [o.kind]: { name: o.name, unlisted: true } });
    }
  }
  const strip = (x: unknown): unknown => {
    if (Array.isArray(x)) return x.map(strip);
    if (x && typeof x === 'object') {
      const o: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(x)) {
        if (k === 'handle') continue;
        if (k === 'counter' && v && typeof v === 'object') o[k] = {};
        else o[k] = strip(v);
      }
      return o;
    }
    return x;
  };
  const objs: string[] = [];
  const rules = new Map<string, string[]>();
  for (const it of items) {
    const [kind, v] = Object.entries(it)[0]!;
    if (kind === 'metainfo' || kind === 'table') continue;
    const x = strip(v) as Record<string, unknown>;
    if (kind === 'rule') {
      const l = rules.get(x.chain as string) ?? [];
      l.push(JSON.stringify(x));
      rules.set(x.chain as string, l);
      continue;
    }
    if (Array.isArray(x.elem)) x.elem = x.elem.map((e) => JSON.stringify(e)).sort();
    objs.push(`${kind} ${JSON.stringify(x)}`);
  }
  objs.sort();
  for (const [c, l] of [...rules].sort((a, b) => (a[0] < b[0] ? -1 : 1)))
    objs.push(`rules ${c}: ${l.join('\n')}`);
  return objs.join('\n');
}
