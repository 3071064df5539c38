// Routers (zorp-semantics.md 5.1, zorp:pylib/Zorp/Router.py): which server(s) a session connects to
// and how the server-side socket is bound (forge_addr, forge_port). Pure functions.

import { isIP } from 'node:net';
import { type ErrorId, TzorpError } from '../errors.ts';
import type { ForgePort, Router } from '../policy/model.ts';
import type { Addr } from '../proxy/core/types.ts';
import type { LocalBind } from './upstream.ts';

export interface RouteInput {
  /** The client's address (source of the diverted connection). */
  client: Addr;
  /** The address the client dialled (with TPROXY: the original destination). */
  clientLocal: Addr;
  /** Target named by the protocol for an inband router (HTTP URL/Host, FTP USER user@host). */
  inband?: { host: string; port: number };
}

/** A target before name resolution: inband targets may be host names. */
export interface RouteTarget {
  host: string;
  port: number;
  /** Set when `host` is already a canonical address literal of this family (the transparent
   * router's original destination): no parse needed. */
  family?: 4 | 6;
}

/** No route for the session: the server connection fails (CONNECT_FAILED), or a core asked for an
 * inband route without naming a target (INTERNAL). */
export class RouteError extends TzorpError {
  constructor(message: string, id: ErrorId = 'CONNECT_FAILED') {
    super(id, message);
  }
}

/**
 * The targets a router names for one session, in the router's order. Transparent: the original
 * destination, its port replaced by `forced_port`. Directed: the configured list (port 0 = the port
 * the client dialled, as Zorp's ConnectChainer). Inband: what the proxy read from the protocol
 * (`default_port` when it gave none).
 */
export function routeTargets(router: Router, input: RouteInput): RouteTarget[] {
  switch (router.type) {
    case 'transparent':
      return [
        {
          host: input.clientLocal.host,
          port: router.forcedPort || input.clientLocal.port,
          family: input.clientLocal.family,
        },
      ];
    case 'directed':
      if (router.targets.length === 0) throw new RouteError('directed router without targets');
      return router.targets.map((t) => ({ host: t.host, port: t.port || input.clientLocal.port }));
    case 'inband': {
      if (!input.inband) throw new RouteError('inband router, but the proxy supplied no target', 'INTERNAL');
      const port = input.inband.port || router.defaultPort || input.clientLocal.port;
      return [{ host: input.inband.host, port }];
    }
  }
}

/**
 * How to bind the server-side socket toward `target` (Zorp Router.py): the client's address when
 * forge_addr (transparent bind of a foreign address); the source port by forge_port (any: kernel's
 * choice; exact: the client's port; random; a number). Without forge_addr, a requested port is bound
 * on the wildcard address, and without a port nothing is bound. Deviation: Zorp keeps the client's
 * port for a numeric forge_port without forge_addr (a quirk); tzorp uses the number.
 * Throws RouteError when the client's address cannot be forged toward a server of the other family.
 */
export function localBindFor(
  router: { forgeAddr: boolean; forgePort: ForgePort },
  client: Addr,
  target: Addr,
): LocalBind | null {
  const port: number | 'random' =
    router.forgePort === 'any'
      ? 0
      : router.forgePort === 'exact'
        ? client.port
        : router.forgePort === 'random'
          ? 'random'
          : router.forgePort;
  if (router.forgeAddr) {
    if (client.family !== target.family) {
      throw new RouteError(
        `forge_addr: cannot use the IPv${client.family} client address ${client.host} toward an IPv${target.family} server`,
      );
    }
    return { host: client.host, port, transparent: true };
  }
  if (port === 0) return null;
  return { host: null, port, transparent: false };
}

/** True when `host` is an address literal (no resolution needed). */
export function isAddressLiteral(host: string): boolean {
  return isIP(host) !== 0;
}
