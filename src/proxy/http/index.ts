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
  // explicit mode: clients connect to the proxy itself and name the server in the request; only an
  // inband router connects there (a transparent one would connect back to the proxy's own address)
  routerProblem: (router, options) =>
    !options.transparentMode && router !== 'inband'
      ? {
          id: 'POLICY_BAD_SERVICE',
          path: 'transparent_mode',
          message: `transparent_mode: false (an explicit proxy) needs router: { type: inband }: with the ${router} router every request would go to ${router === 'transparent' ? 'the address the client connected to, the proxy itself' : 'the directed targets whatever URL it names'}`,
        }
      : null,
  create: (context, options) => new HttpCore(context, options),
};
