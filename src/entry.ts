// tzorp runs two ways: compiled (dist/**/*.js under plain node: bin/tzorp, the Debian package) and from
// source (src/**/*.ts through tsx: tests, benchmarks, development). A module that starts another tzorp
// process (a daemon worker, the lab's servers and probes) starts it the way it runs itself, decided by
// its own file name, so a process tree never mixes the two and never needs tsx when compiled.
import { fileURLToPath } from 'node:url';

/** True when `moduleUrl` (the caller's import.meta.url) is a compiled file under dist/. */
export function isCompiled(moduleUrl: string): boolean {
  return moduleUrl.endsWith('.js');
}

/** The sibling module `relative` (a path without extension, e.g. './servers-main') of the caller, as a
 * file path: `.js` when the caller is compiled, `.ts` otherwise. */
export function siblingModule(moduleUrl: string, relative: string): string {
  return fileURLToPath(new URL(`${relative}${isCompiled(moduleUrl) ? '.js' : '.ts'}`, moduleUrl));
}

/** node's arguments to run the sibling entry script `relative`: the file alone when compiled, with
 * tsx's loader before it when running from source. */
export function nodeEntryArgs(moduleUrl: string, relative: string): string[] {
  const file = siblingModule(moduleUrl, relative);
  return isCompiled(moduleUrl) ? [file] : ['--import', 'tsx', file];
}
