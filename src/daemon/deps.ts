// The daemon's real collaborators: the policy loader, the proxy registry (names and option parsers),
// the kernel module (compile, apply, flush) and the native addon (transparent listening sockets).
import { DEFAULTS } from '../defaults.ts';
import type { TzorpError } from '../errors.ts';
import { applyPolicy, type Compiled, compilePolicy, flushTzorp, type TableModel } from '../kernel/index.ts';
import { closeFd, listenFd } from '../native/index.ts';
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

export function realDeps(load: Loader = loadPolicy): DaemonDeps {
  // a reload compiles before it applies: the apply reuses that result and sends the kernel only the
  // differences to the table this daemon installed last (none yet at start: the table is replaced)
  const compiled = new WeakMap<Policy, { ports: Map<string, number>; c: Compiled }>();
  let installed: TableModel | null = null;
  return {
    load,
    check: checkProxies,
    compile: (policy, listenPorts) => {
      const c = compilePolicy(policy, { listenPorts });
      compiled.set(policy, { ports: listenPorts, c });
      return c;
    },
    apply: async (policy, listenPorts) => {
      const done = compiled.get(policy);
      // fixSysctls: tcp_fwmark_accept=1 (rule id on accepted sockets) and the forwarding sysctls the
      // policy needs, set in the daemon's own network namespace.
      const r = await applyPolicy(policy, {
        listenPorts,
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
  };
}
