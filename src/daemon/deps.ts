// The daemon's real collaborators: the policy loader, the proxy registry (names and option parsers),
// the kernel module (compile, apply, flush) and the native addon (transparent listening sockets).
import type { TzorpError } from '../errors.ts';
import { applyPolicy, compilePolicy, flushTzorp } from '../kernel/index.ts';
import { closeFd, listenFd } from '../native/index.ts';
import { type LoadResult, loadPolicyFile, type Policy } from '../policy/index.ts';
import { bindProxies } from '../proxy/index.ts';
import type { DaemonDeps } from './primary.ts';

/** listen() backlog of the proxy listeners: room for connection bursts while workers are busy. */
const LISTEN_BACKLOG = 4096;

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

export function realDeps(load: Loader = loadPolicy): DaemonDeps {
  return {
    load,
    check: checkProxies,
    compile: (policy, listenPorts) => compilePolicy(policy, { listenPorts }),
    apply: async (policy, listenPorts) => {
      // fixSysctls: tcp_fwmark_accept=1 (rule id on accepted sockets) and the forwarding sysctls the
      // policy needs, set in the daemon's own network namespace.
      const r = await applyPolicy(policy, { listenPorts, fixSysctls: true });
      return r.wrong;
    },
    flush: async () => {
      await flushTzorp();
    },
    listenFd: (host, port, family) =>
      listenFd(host, port, { transparent: true, v6Only: family === 6, backlog: LISTEN_BACKLOG }),
    closeFd,
  };
}
