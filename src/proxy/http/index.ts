// Public surface of the http proxy: its module (option parser and core factory) and its reader.
import { OptionProblems, type ProxyModule } from '../core/module.ts';
import { HttpCore } from './core.ts';
import { checkHttpOptions, type HttpOptions } from './options.ts';

export type { HttpOptions, ParsedHttpOptions } from './options.ts';
export { checkHttpOptions, parseHttpOptions } from './options.ts';
export { HttpReader, type ReaderLimits, type ReadItem } from './reader.ts';

export const httpModule: ProxyModule<HttpOptions> = {
  name: 'http',
  parseOptions(raw) {
    const r = checkHttpOptions(raw);
    if (r.options) return r.options;
    return new OptionProblems(
      r.errors.map((e) => ({
        id: e.id,
        path: ((e.details?.path as (string | number)[] | undefined) ?? []).join('.'),
        message: e.message,
      })),
    );
  },
  create: (context, options) => new HttpCore(context, options),
};
