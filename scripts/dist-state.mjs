// Is dist/ the compiled form of the src/ beside it? Shared by bin/tzorp (which runs dist/ only when it
// is), scripts/build.mjs (which writes the stamp) and scripts/test.mjs. Plain Node, no dependencies,
// cheap enough for every start-up (one stat per source file, ~2 ms).
//
// The fingerprint covers every file under src/ by path, size and mtime, plus the built native addon
// (dist/ carries a copy). Any edit, added, removed or renamed file, or a file put back with an older
// mtime changes it; nothing short of editing a file and forging its old mtime and size hides a change.
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';

export const STAMP = '.build-stamp.json';
export const ADDON_REL = 'native/build/Release/tzorp_native.node';

// Paths are joined as strings, not with node:path: bin/tzorp runs this before every command, and a few
// hundred path.join/relative calls are enough for V8 to optimize node's path code, which costs the process
// about 4 MB of memory (the optimizing compiler's own code and data) for the rest of its life.
function walk(src, rel, out) {
  for (const e of readdirSync(src + rel, { withFileTypes: true })) {
    const r = `${rel}/${e.name}`;
    if (e.isDirectory()) {
      // node-gyp's output is not source; the addon itself is added below.
      if (r !== '/native/build') walk(src, r, out);
    } else {
      const s = statSync(src + r);
      out.push(`src${r}\0${s.size}\0${s.mtimeMs}`);
    }
  }
  return out;
}

/** The fingerprint of src/ in checkout `root`. */
export function sourceFingerprint(root) {
  const items = walk(join(root, 'src'), '', []).sort();
  const addon = join(root, 'src', ADDON_REL);
  if (existsSync(addon)) {
    const s = statSync(addon);
    items.push(`addon\0${s.size}\0${s.mtimeMs}`);
  }
  return createHash('sha256').update(items.join('\n')).digest('hex');
}

/**
 * 'fresh' when dist/ was built from src/ as it is now; 'missing' when there is no dist/; 'stale' when
 * src/ changed since (or dist/ has no stamp); 'installed' when there is no src/ (a package: dist/ is
 * all there is).
 */
export function distState(root) {
  if (!existsSync(join(root, 'src'))) return existsSync(join(root, 'dist')) ? 'installed' : 'missing';
  let stamp;
  try {
    stamp = JSON.parse(readFileSync(join(root, 'dist', STAMP), 'utf8'));
  } catch {
    return existsSync(join(root, 'dist')) ? 'stale' : 'missing';
  }
  return stamp.fingerprint === sourceFingerprint(root) ? 'fresh' : 'stale';
}
