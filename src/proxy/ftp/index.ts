// The FTP proxy: a sans-IO core (Zorp's FtpProxy) and its option parser.

import { OptionProblems, type ProxyModule } from '../core/module.ts';
import { FtpCore } from './core.ts';
import { checkFtpOptions, type FtpOptions } from './options.ts';

export { type CommandItem, CommandReader, type FtpCommand } from './command-reader.ts';
export { FtpCore } from './core.ts';
export {
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

export const ftpModule: ProxyModule<FtpOptions> = {
  name: 'ftp',
  parseOptions(raw) {
    const { options, problems } = checkFtpOptions(raw);
    // The FTP parser's problems are all values it cannot use (unknown keys included, as Zorp's).
    return (
      options ??
      new OptionProblems(problems.map((p) => ({ id: 'POLICY_BAD_VALUE', path: p.key, message: p.message })))
    );
  },
  create: (context, options) => new FtpCore(context, options),
};
