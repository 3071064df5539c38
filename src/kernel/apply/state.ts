// What `tzorp apply` installed last, kept between runs so the next apply can send only the differences
// (docs/kernel.md, "Incremental apply"). One file per network namespace (and per command prefix that
// runs the tools elsewhere). The file is a hint, never trusted: the incremental transaction itself
// checks the table's digest, and any doubt (no file, unreadable, another table) means a full replace.
import { mkdir, readFile, readlink, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { DEFAULTS } from '../../defaults.ts';
import type { TableModel } from '../compile/render.ts';

async function statePath(prefix: string[], dir: string): Promise<string> {
  let ns = 'net';
  try {
    ns = (await readlink('/proc/self/ns/net')).replace(/[^0-9]/g, '');
  } catch {}
  const where = prefix.length > 0 ? `-${prefix.join('_').replace(/[^A-Za-z0-9_.-]/g, '_')}` : '';
  return join(dir, `applied-${ns}${where}.json`);
}

function isModel(x: unknown): x is TableModel {
  const m = x as TableModel;
  return (
    typeof m === 'object' &&
    m !== null &&
    Array.isArray(m.objects) &&
    typeof m.generation === 'string' &&
    (m.userRules === null || typeof m.userRules === 'string')
  );
}

/** The model of the last apply in this namespace, or null when there is none or it is unreadable. */
export async function loadInstalled(
  prefix: string[] = [],
  dir: string = DEFAULTS.kernelStateDir,
): Promise<TableModel | null> {
  try {
    const x: unknown = JSON.parse(await readFile(await statePath(prefix, dir), 'utf8'));
    return isModel(x) ? x : null;
  } catch {
    return null;
  }
}

/** Records the installed model (written aside and renamed: a crash leaves the old file or the new). */
export async function saveInstalled(
  model: TableModel | null,
  prefix: string[] = [],
  dir: string = DEFAULTS.kernelStateDir,
): Promise<void> {
  const file = await statePath(prefix, dir);
  if (model === null) {
    await rm(file, { force: true });
    return;
  }
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, JSON.stringify(model), { mode: 0o600 });
  await rename(tmp, file);
}
