// tzorp confirm: keeps the ruleset a `tzorp apply --confirm SECONDS` installed, or the policy a
// `tzorp reload --confirm SECONDS` switched the running daemon to (without it, the previous ruleset or
// policy comes back when the time is up). Exit 1 when nothing waits for a confirmation.
// The hidden --guard form is the process apply --confirm leaves behind: it sleeps, then rolls back
// unless the confirmation it waits for was given (or replaced by a newer apply --confirm).
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { type Command, Option } from 'commander';
import { addControlOption, type ConfirmResult, ControlError, controlRequest } from '../../daemon/index.ts';
import { DEFAULTS } from '../../defaults.ts';
import { TzorpError } from '../../errors.ts';
import { armPending, clearPending, readPending, rollbackTo, saveInstalled } from '../../kernel/index.ts';

/** Where the previous rulesets wait (the unit's RuntimeDirectory by default). */
function runDir(): string {
  return process.env.TZORP_RUN_DIR ?? dirname(DEFAULTS.controlSocketPath);
}

function snapshotFile(id: string): string {
  return join(runDir(), `rollback-${id}.nft`);
}

/** Keeps `snapshot` (null: there was no table) and starts the process that restores it after
 * `seconds` unless `tzorp confirm` comes first. It runs in its own session, so closing the SSH
 * session that ran apply does not stop it. */
export async function armRollback(snapshot: string | null, seconds: number): Promise<string> {
  const id = randomBytes(8).toString('hex');
  mkdirSync(runDir(), { recursive: true, mode: 0o700 });
  // an empty file stands for "no table before"
  writeFileSync(snapshotFile(id), snapshot ?? '', { mode: 0o600 });
  const child = spawn(
    process.execPath,
    [...process.execArgv, process.argv[1]!, 'confirm', '--guard', id, '--after', String(seconds)],
    { detached: true, stdio: 'ignore', env: process.env },
  );
  child.unref();
  await armPending({ id, pid: child.pid! });
  return id;
}

async function guard(id: string, seconds: number): Promise<void> {
  await new Promise((r) => setTimeout(r, seconds * 1000));
  const p = await readPending();
  const file = snapshotFile(id);
  if (p?.id === id) {
    const text = readFileSync(file, 'utf8');
    await rollbackTo(text === '' ? null : text);
    // the model the new ruleset's apply recorded is not what the kernel holds now: the next apply
    // replaces the whole table
    await saveInstalled(null).catch(() => {});
    await clearPending();
  }
  rmSync(file, { force: true });
}

/** Confirms the running daemon's reload --confirm: its generation, or null when no daemon answers or
 * none waits (any other answer is an error). */
async function daemonConfirm(control: string): Promise<ConfirmResult | null> {
  try {
    return await controlRequest<ConfirmResult>(control, { cmd: 'confirm' });
  } catch (e) {
    if (e instanceof ControlError && e.body.code === 'TZ3013') return null;
    if (e instanceof TzorpError && e.code === 'TZ3001') return null;
    throw e;
  }
}

export function register(program: Command): void {
  addControlOption(
    program
      .command('confirm')
      .description(
        "keep the ruleset of the last `tzorp apply --confirm`, or the policy of the daemon's last `tzorp reload --confirm` (otherwise it is rolled back)",
      )
      .option('--json', 'print the result as JSON')
      .addOption(new Option('--guard <id>').hideHelp())
      .addOption(new Option('--after <seconds>').hideHelp()),
  ).action(async (o: { json?: boolean; guard?: string; after?: string; control: string }) => {
    try {
      if (o.guard !== undefined) {
        await guard(o.guard, Number(o.after ?? '0'));
        return;
      }
      const p = await readPending();
      if (p === null) {
        // a running daemon's reload --confirm
        const kept = await daemonConfirm(o.control);
        if (kept === null) {
          process.stderr.write('tzorp confirm: nothing waits for a confirmation\n');
          process.exitCode = 1;
          return;
        }
        if (o.json)
          process.stdout.write(`${JSON.stringify({ confirmed: true, generation: kept.generation })}\n`);
        else process.stdout.write(`confirmed: generation ${kept.generation} stays\n`);
        return;
      }
      await clearPending();
      // the guard would find nothing to do when it wakes; end it now (it is tzorp's own process)
      try {
        process.kill(p.pid, 'SIGTERM');
      } catch {
        // already gone
      }
      rmSync(snapshotFile(p.id), { force: true });
      if (o.json) process.stdout.write(`${JSON.stringify({ confirmed: true, id: p.id })}\n`);
      else process.stdout.write('confirmed: the ruleset stays\n');
    } catch (e) {
      if (!(e instanceof TzorpError)) throw e;
      process.stderr.write(`${e.format()}\n`);
      process.exitCode = 1;
    }
  });
}
