// The plug proxy: relays bytes between client and server (Zorp Plug). Public surface.
import type { ProxyModule } from '../core/module.ts';
import { PlugCore } from './core.ts';
import { checkPlugOptions, type PlugOptions } from './options.ts';

export { PlugCore } from './core.ts';
export { checkPlugOptions, PLUG_OPTION_NAMES, type PlugOptions, parsePlugOptions } from './options.ts';

export const plugModule: ProxyModule<PlugOptions> = {
  name: 'plug',
  parseOptions: checkPlugOptions,
  // plug reads no protocol, so nothing names a target for an inband router
  routerProblem: (router) =>
    router === 'inband'
      ? {
          id: 'POLICY_BAD_SERVICE',
          path: '',
          message:
            'a plug proxy cannot use an inband router: plug reads no protocol that names the server (every connection would fail); use router: transparent or directed',
        }
      : null,
  create: (_context, options) => new PlugCore(options),
};
