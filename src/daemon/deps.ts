// The daemon's real collaborators: the policy loader, the proxy registry (names and option parsers),
// the kernel module (compile, apply, flush) and the native addon (transparent listening sockets).
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { DEFAULTS } from '../defaults.ts';
import { TzorpError } from '../errors.ts';
import {
  abandonStagedApply,
  applyPolicy,
  beginStagedApply,
  type Compiled,
  compilePolicy,
  flushTzorp,
  listenersOf,
  type StagedStart,
  type TableModel,
} from '../kernel/index.ts';
import { closeFd, deferAcks, listenFd, nflogOpen } from '../native/index.ts';
import { type LoadResult, loadPolicyFile, type Policy } from '../policy/index.ts';
import { bindProxies } from '../proxy/index.ts';
import { shedMemory } from './memory.ts';
import type { DaemonDeps } from './primary.ts';

type Loader = (file: string) => Promise<LoadResult>;

/** The policy file as start and reload read it: validity only, no lint (tzorp check shows the
 * warnings). */
export function loadPolicy(file: string): Promise<LoadResult> {
  return loadPolicyFile(file, { lint: false });
}

/** What the loader cannot know: every proxy service names a proxy tzorp has, with valid options
 * (the proxies' own policy step, src/proxy/bind.ts; problems placed at each option's position). */
export function checkProxies(policy: Policy): TzorpError[] {
  return bindProxies(policy).errors;
}

const samePorts = (a: Map<string, number>, b: Map<string, number>): boolean =>
  a.size === b.size && [...a].every(([k, v]) => b.get(k) === v);

/** The user's own nft rules for a policy: `tzorp run --user-rules FILE`, else the policy's
 * settings.user_rules (relative to the policy file), read again at every (re)load, so a reload picks
 * up an edited file; nft checks them in the apply transaction (a bad file refuses the reload). */
function userRulesFor(policy: Policy, cliFile: string | undefined): string | undefined {
  const file =
    cliFile ??
    (policy.settings.userRules ? resolve(dirname(policy.source.file), policy.settings.userRules) : undefined);
  if (file === undefined) return undefined;
  try {
    return readFileSync(file, 'utf8');
  } catch (e) {
    throw new TzorpError('KERNEL_BAD_OPTION', `cannot read the user rules ${file}: ${(e as Error).message}`);
  }
}

export function realDeps(
  load: Loader = loadPolicy,
  userRulesFile?: string,
  opts: { kernel?: boolean } = {},
): DaemonDeps {
  const kernel = opts.kernel ?? true;
  // a reload compiles before it applies: the apply reuses that result and sends the kernel only the
  // differences to the table this daemon installed last (none yet at start: the table is replaced)
  const compiled = new WeakMap<Policy, { ports: Map<string, number>; c: Compiled }>();
  let installed: TableModel | null = null;
  // a staged first apply begun by the compile of `policy`, until its apply takes it (or, when that
  // apply does not come, a refused start, it is taken back before anything else goes to the kernel)
  let pending: { policy: Policy; start: StagedStart } | null = null;
  const dropPending = async (): Promise<void> => {
    const p = pending;
    pending = null;
    if (p) await abandonStagedApply(p.start);
  };
  return {
    load,
    check: checkProxies,
    compile: (policy, listenPorts) => {
      const userRules = userRulesFor(policy, userRulesFile);
      const compileOpts = { listenPorts, ...(userRules !== undefined ? { userRules } : {}) };
      // the first table this daemon installs, of a large policy, into a namespace without one: its
      // zone section loads while this compiles (docs/kernel.md, "Staged first apply")
      const staged =
        kernel && installed === null && pending === null ? beginStagedApply(policy, compileOpts) : null;
      let c: Compiled;
      try {
        c = compilePolicy(policy, compileOpts);
      } catch (e) {
        if (staged) void abandonStagedApply(staged).catch(() => {});
        throw e;
      }
      if (staged) pending = { policy, start: staged };
      compiled.set(policy, { ports: listenPorts, c });
      return c;
    },
    listeners: (policy, listenPorts) => listenersOf(policy, { listenPorts }),
    apply: async (policy, listenPorts) => {
      const done = compiled.get(policy);
      // fixSysctls: tcp_fwmark_accept=1 (rule id on accepted sockets) and the forwarding sysctls the
      // policy needs, set in the daemon's own network namespace.
      const userRules = done ? done.c.model.userRules : (userRulesFor(policy, userRulesFile) ?? null);
      const reuse = done && samePorts(done.ports, listenPorts) ? done : null;
      const stagedStart = reuse && pending?.policy === policy ? pending.start : null;
      if (stagedStart) pending = null;
      else await dropPending();
      const r = await applyPolicy(policy, {
        listenPorts,
        ...(userRules !== null ? { userRules } : {}),
        fixSysctls: true,
        previous: installed,
        ...(reuse ? { compiled: reuse.c } : {}),
        ...(stagedStart ? { stagedStart } : {}),
      });
      installed = r.model;
      return {
        wrong: r.wrong,
        kernel: r.mode === 'incremental' ? 'differences' : r.staged ? 'staged' : 'whole',
        ...(r.fallback ? { fallback: r.fallback } : {}),
      };
    },
    flush: async () => {
      installed = null;
      await dropPending();
      await flushTzorp();
    },
    discardStaged: dropPending,
    listenFd: (host, port, family) =>
      listenFd(host, port, { transparent: true, v6Only: family === 6, backlog: DEFAULTS.listenBacklog }),
    closeFd,
    deferAcks,
    shedMemory,
    kernelLogFd: () => nflogOpen(DEFAULTS.kernelLogGroup, DEFAULTS.kernelLogCopyBytes),
  };
}
