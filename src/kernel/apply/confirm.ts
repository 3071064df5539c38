// `tzorp apply --confirm SECONDS` and `tzorp confirm` (as iptables-apply and firewall-cmd --timeout):
// the previous ruleset comes back unless the new one is confirmed in time. The pending confirmation
// lives in the kernel of the same network namespace, as the comment of `table inet tzorp_pending`
// (id and the pid of the process that rolls back), so it is never mistaken for another namespace's;
// the previous table's text is in a file named by the id.
import { TzorpError } from '../../errors.ts';
import { TABLE } from '../compile/render.ts';
import { run } from './exec.ts';
import { removeRouting } from './routing.ts';

export const PENDING_TABLE = 'tzorp_pending';

export interface Pending {
  id: string;
  pid: number;
}

/** The live `table inet tzorp` as nft text (what `nft -f` takes back), or null when there is none. */
export async function snapshotTable(prefix: string[] = []): Promise<string | null> {
  const r = await run('nft', ['list', 'table', 'inet', TABLE], undefined, prefix);
  return r.code === 0 ? r.stdout : null;
}

export async function readPending(prefix: string[] = []): Promise<Pending | null> {
  const r = await run('nft', ['list', 'table', 'inet', PENDING_TABLE], undefined, prefix);
  if (r.code !== 0) return null;
  const m = /comment "id=([0-9a-f]+) pid=(\d+)"/.exec(r.stdout);
  return m ? { id: m[1]!, pid: Number(m[2]) } : null;
}

export async function armPending(p: Pending, prefix: string[] = []): Promise<void> {
  const t = `inet ${PENDING_TABLE}`;
  const text = `table ${t} {}\ndelete table ${t}\ntable ${t} {\n\tcomment "id=${p.id} pid=${p.pid}"\n}\n`;
  const r = await run('nft', ['-f', '-'], text, prefix);
  if (r.code !== 0)
    throw new TzorpError('KERNEL_NFT_APPLY', `cannot record the pending confirmation: ${r.stderr.trim()}`);
}

export async function clearPending(prefix: string[] = []): Promise<void> {
  await run('nft', ['delete', 'table', 'inet', PENDING_TABLE], undefined, prefix);
}

/** Puts the previous table back in one transaction (none before: the table and policy routing go). */
export async function rollbackTo(snapshot: string | null, prefix: string[] = []): Promise<void> {
  if (snapshot === null) {
    await run('nft', ['delete', 'table', 'inet', TABLE], undefined, prefix);
    await removeRouting(prefix);
    return;
  }
  const text = `table inet ${TABLE} {}\ndelete table inet ${TABLE}\n${snapshot}`;
  const r = await run('nft', ['-f', '-'], text, prefix);
  if (r.code !== 0) {
    throw new TzorpError(
      'KERNEL_NFT_APPLY',
      `rollback: nft refused the previous ruleset: ${r.stderr.trim()}`,
    );
  }
}
