// What a proxy is to the rest of tzorp: a name, an option parser and a core factory. Options are parsed
// once, when a policy generation is built (src/proxy/bind.ts), and every session of that generation
// gets the same typed, frozen-by-convention options: no core parses options, and nothing caches them.
import { type ErrorId, TzorpError } from '../../errors.ts';
import type { CoreContext, CoreFactory, ProxyCore } from './types.ts';

/** One problem with a service's proxy options. `path` is the option's dotted path as written in the
 * policy ('' = the options mapping itself), so the policy step can place it at file:line:col. */
export interface OptionProblem {
  id: ErrorId;
  path: string;
  message: string;
}

/** What parseOptions returns when the options cannot be used: every problem, not only the first. */
export class OptionProblems {
  constructor(readonly problems: readonly OptionProblem[]) {}
}

/** The policy's router types (`router: { type }`). */
export type RouterType = 'transparent' | 'directed' | 'inband';

export interface ProxyModule<O> {
  /** The policy's `proxy:` value. */
  readonly name: string;
  parseOptions(raw: unknown): O | OptionProblems;
  /** Whether the service's router can serve this proxy with these options: null when it can, else the
   * problem (every connection of the service would fail), placed at `path` (an option, or '' for the
   * service). Optional: a proxy that works with every router leaves it out. */
  routerProblem?(router: RouterType, options: O): OptionProblem | null;
  /** One session's core, with the options parseOptions returned. */
  create(context: CoreContext, options: O): ProxyCore;
}

/** Parse once and bind: the CoreFactory every session of one service uses. Throws one TzorpError
 * (kind 'user') listing every problem, for callers without a policy to place them in (tests, tools). */
export function bindCore<O>(module: ProxyModule<O>, raw: unknown): CoreFactory {
  const options = module.parseOptions(raw);
  if (options instanceof OptionProblems) {
    const first = options.problems[0];
    throw new TzorpError(
      first?.id ?? 'POLICY_BAD_VALUE',
      `invalid ${module.name} options: ${options.problems.map((p) => p.message).join('; ')}`,
      { details: { problems: options.problems } },
    );
  }
  return (context) => module.create(context, options);
}
