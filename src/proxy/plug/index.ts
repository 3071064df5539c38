// The plug proxy: relays bytes between client and server (Zorp Plug). Public surface.
export { createPlugCore, PlugCore } from './core.ts';
export { PLUG_OPTION_NAMES, type PlugOptions, parsePlugOptions } from './options.ts';
