// The daemon's real collaborators: the policy loader, the proxy registry (names and option parsers),
// the kernel module (compile, apply, flush) and the native addon (transparent listening sockets).
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { DEFAULTS } from '../defaults.ts';
import { TzorpError } from '../errors.ts';
import {
  applyPolicy,
  type Compiled,
  compilePolicy,
  flushTzorp,
  listenersOf,
  type TableModel,
} from '../kernel/index.ts';
import { closeFd, listenFd, nflogOpen } from '../native/index.ts';
import { type LoadResult, loadPolicyFile, type Policy } from '../policy/index.ts';
import { bindProxies } from '../proxy/index.ts';
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

export function realDeps(load: Loader = loadPolicy, userRulesFile?: string): DaemonDeps {
  // a reload compiles before it applies: the apply reuses that result and sends the kernel only the
  // differences to the table this daemon installed last (none yet at start: the table is replaced)
  const compiled = new WeakMap<Policy, { ports: Map<string, number>; c: Compiled }>();
  let installed: TableModel | null = null;
  return {
    load,
    check: checkProxies,
    compile: (policy, listenPorts) => {
      const userRules = userRulesFor(policy, userRulesFile);
      const c = compilePolicy(policy, { listenPorts, ...(userRules !== undefined ? { userRules } : {}) });
      compiled.set(policy, { ports: listenPorts, c });
      return c;
    },
    listeners: (policy, listenPorts) => listenersOf(policy, { listenPorts }),
    apply: async (policy, listenPorts) => {
      const done = compiled.get(policy);
      // fixSysctls: tcp_fwmark_accept=1 (rule id on accepted sockets) and the forwarding sysctls the
      // policy needs, set in the daemon's own network namespace.
      const userRules = done ? done.c.model.userRules : (userRulesFor(policy, userRulesFile) ?? null);
      const r = await applyPolicy(policy, {
        listenPorts,
        ...(userRules !== null ? { userRules } : {}),
        fixSysctls: true,
        previous: installed,
        ...(done && samePorts(done.ports, listenPorts) ? { compiled: done.c } : {}),
      });
      installed = r.model;
      return r.wrong;
    },
    flush: async () => {
      installed = null;
      await flushTzorp();
    },
    listenFd: (host, port, family) =>
      listenFd(host, port, { transparent: true, v6Only: family === 6, backlog: DEFAULTS.listenBacklog }),
    closeFd,
    kernelLogFd: () => nflogOpen(DEFAULTS.kernelLogGroup, DEFAULTS.kernelLogCopyBytes),
  };
}
