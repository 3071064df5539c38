// The plug proxy: relays bytes between client and server (Zorp Plug). Public surface.
import type { ProxyModule } from '../core/module.ts';
import { PlugCore } from './core.ts';
import { checkPlugOptions, type PlugOptions } from './options.ts';

export { PlugCore } from './core.ts';
export { checkPlugOptions, PLUG_OPTION_NAMES, type PlugOptions, parsePlugOptions } from './options.ts';

export const plugModule: ProxyModule<PlugOptions> = {
  name: 'plug',
  parseOptions: checkPlugOptions,
  create: (_context, options) => new PlugCore(options),
};
