// Which code the macro benchmarks' proxies run: the compiled tree (dist/), as `tzorp run` does. The
// peers are TypeScript run by tsx, and tsx's transform of src/ adds what the build does not (esbuild's
// keepNames: a `__name` call for every function made at run time, about 9 % of the HTTP core's time
// per request), so importing src/ would measure slower code than ships. A dist/ older than src/ is
// refused (scripts/bench.mjs rebuilds it first). TZORP_BENCH_FROM_SOURCE=1 runs the sources instead.
//
// Every tzorp module a peer uses must come through here: a class from src/ and its twin from dist/
// are different classes (instanceof, private fields), so the two trees are never mixed in one peer.
import { fileURLToPath } from 'node:url';

const ROOT = new URL('../', import.meta.url);
let checked = false;

/** The module src/<rel>.ts: compiled (dist/<rel>.js), or the source under TZORP_BENCH_FROM_SOURCE=1.
 * Typed as the source module: `load<typeof import('../src/x.ts')>('x')`. */
export async function load<T>(rel: string): Promise<T> {
  if (process.env.TZORP_BENCH_FROM_SOURCE === '1')
    return (await import(new URL(`src/${rel}.ts`, ROOT).href)) as T;
  if (!checked) {
    const { distState } = await import(new URL('scripts/dist-state.mjs', ROOT).href);
    const state = distState(fileURLToPath(ROOT));
    if (state !== 'fresh')
      throw new Error(
        `dist/ is ${state === 'missing' ? 'not built' : 'older than src/'}: run \`npm run build\` (or set TZORP_BENCH_FROM_SOURCE=1)`,
      );
    checked = true;
  }
  return (await import(new URL(`dist/${rel}.js`, ROOT).href)) as T;
}
