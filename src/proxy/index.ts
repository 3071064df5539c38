// The proxy registry: proxy name (the policy's `proxy:` field) -> its core factory and option parser.
// Each proxy module adds its own line.
import type { CoreFactory } from './core/types.ts';
import { createFtpCore, parseFtpOptions } from './ftp/index.ts';
import { createHttpCore, parseHttpOptions } from './http/index.ts';
import { createPlugCore, parsePlugOptions } from './plug/index.ts';

export interface ProxyModule {
  /** Builds one session's core. */
  factory: CoreFactory;
  /** Validates the policy's options for this proxy; throws a TzorpError (kind 'user') naming the
   * option. The daemon calls it when it builds a generation, so a bad option refuses the policy. */
  parseOptions: (raw: Record<string, unknown>) => unknown;
}

export const PROXIES: ReadonlyMap<string, ProxyModule> = new Map<string, ProxyModule>([
  ['plug', { factory: createPlugCore, parseOptions: parsePlugOptions }],
  ['ftp', { factory: createFtpCore, parseOptions: parseFtpOptions }],
  ['http', { factory: createHttpCore, parseOptions: parseHttpOptions }],
]);

/** The module for a proxy name, or undefined when tzorp has no such proxy. */
export function proxyModule(name: string): ProxyModule | undefined {
  return PROXIES.get(name);
}
