// The proxy registry: proxy name (the policy's `proxy:` field) -> its module (option parser and core
// factory). Each proxy module adds its own line.
import type { ProxyModule } from './core/module.ts';
import { ftpModule } from './ftp/index.ts';
import { httpModule } from './http/index.ts';
import { plugModule } from './plug/index.ts';

export const PROXIES: ReadonlyMap<string, ProxyModule<unknown>> = new Map<string, ProxyModule<unknown>>(
  [plugModule, ftpModule, httpModule].map((m) => [m.name, m as ProxyModule<unknown>]),
);

/** The module for a proxy name, or undefined when tzorp has no such proxy. */
export function proxyModule(name: string): ProxyModule<unknown> | undefined {
  return PROXIES.get(name);
}
