// Public surface of the http proxy: its module (option parser and core factory) and its reader.
import { OptionProblems, type ProxyModule } from '../core/module.ts';
import { HttpCore } from './core.ts';
import { checkHttpOptions, type HttpOptions } from './options.ts';

export type { HttpOptions, ParsedHttpOptions } from './options.ts';
export { checkHttpOptions, parseHttpOptions } from './options.ts';
export { type Plan, type PlanContext, planRequest, type Refusal, type RequestDecision } from './plan.ts';
export { HttpReader, type ReaderLimits, type ReadItem } from './reader.ts';

export const httpModule: ProxyModule<HttpOptions> = {
  name: 'http',
  parseOptions(raw) {
    const { options, errors } = checkHttpOptions(raw);
    const path = (e: (typeof errors)[number]) => ((e.details?.path as unknown[] | undefined) ?? []).join('.');
    return (
      options ?? new OptionProblems(errors.map((e) => ({ id: e.id, path: path(e), message: e.message })))
    );
  },
  create: (context, options) => new HttpCore(context, options),
};
