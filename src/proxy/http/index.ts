// Public surface of the http proxy: the core factory and the option parser the policy loader calls.
import { TzorpError } from '../../errors.ts';
import type { CoreFactory } from '../core/types.ts';
import { HttpCore } from './core.ts';
import { checkHttpOptions, type HttpOptions } from './options.ts';

export type { HttpOptions, ParsedHttpOptions } from './options.ts';
export { checkHttpOptions, parseHttpOptions } from './options.ts';
export { HttpReader, type ReaderLimits, type ReadItem } from './reader.ts';

/** Parsed options per options object: a service's sessions share one parse. */
const parsed = new WeakMap<object, HttpOptions>();

export const createHttpCore: CoreFactory = (ctx) => {
  let opts = parsed.get(ctx.options);
  if (!opts) {
    const r = checkHttpOptions(ctx.options);
    if (!r.options) {
      // The loader validates options first; reaching this is a bug in the caller.
      throw new TzorpError('INTERNAL', `invalid http options: ${r.errors.map((e) => e.message).join('; ')}`);
    }
    opts = r.options;
    parsed.set(ctx.options, opts);
  }
  return new HttpCore(ctx, opts);
};
