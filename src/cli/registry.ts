// Every tzorp subcommand, listed here by hand: the compiled CLI (dist/) must not depend on listing a
// directory at run time, and a static import() per command lets the build see every module. Each entry
// loads one module under commands/ that exports `register(program)`; main.ts loads only the named
// command's module (start-up time) and all of them for help. test/unit/cli/registry.test.ts checks that
// every file under commands/ is listed.
import type { Command } from 'commander';

export type Register = (program: Command) => void;
export type CommandModule = { register: Register };

export const COMMANDS: Readonly<Record<string, () => Promise<CommandModule>>> = {
  apply: () => import('./commands/apply.ts'),
  check: () => import('./commands/check.ts'),
  compile: () => import('./commands/compile.ts'),
  confirm: () => import('./commands/confirm.ts'),
  demo: () => import('./commands/demo.ts'),
  explain: () => import('./commands/explain.ts'),
  flush: () => import('./commands/flush.ts'),
  lab: () => import('./commands/lab.ts'),
  log: () => import('./commands/log.ts'),
  reload: () => import('./commands/reload.ts'),
  run: () => import('./commands/run.ts'),
  sessions: () => import('./commands/sessions.ts'),
  status: () => import('./commands/status.ts'),
  stop: () => import('./commands/stop.ts'),
  tls: () => import('./commands/tls.ts'),
};
