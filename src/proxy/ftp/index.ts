// The FTP proxy: a sans-IO core (Zorp's FtpProxy) and its option parser.

import type { CoreFactory, ProxyCore } from '../core/index.ts';
import { FtpCore } from './core.ts';
import { type FtpOptions, parseFtpOptions } from './options.ts';

export { type CommandItem, CommandReader, type FtpCommand } from './command-reader.ts';
export { FtpCore } from './core.ts';
export {
  canonicalHost,
  format227,
  format229,
  formatEprt,
  formatHostPort,
  parse227,
  parse229,
  parseEprt,
  parseHostPort,
} from './endpoints.ts';
export {
  type ActiveConnectionMode,
  checkFtpOptions,
  type DataMode,
  type FtpOptions,
  type OptionProblem,
  parseFtpOptions,
} from './options.ts';
export { type FtpPolicy, POLICY_SETS, type PolicySetName, policySet } from './policy.ts';
export { type FtpReply, ReplyReader } from './reply-reader.ts';

// Options are parsed once per options object (one per service and policy generation), not per session.
const parsed = new WeakMap<object, FtpOptions>();

export const createFtpCore: CoreFactory = (ctx): ProxyCore => {
  const raw = ctx.options ?? {};
  let opts = parsed.get(raw);
  if (!opts) {
    opts = parseFtpOptions(raw);
    parsed.set(raw, opts);
  }
  return new FtpCore(ctx, opts);
};
