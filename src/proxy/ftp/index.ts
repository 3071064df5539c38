// The FTP proxy: a sans-IO core (Zorp's FtpProxy) and its option parser.

import { OptionProblems, type ProxyModule } from '../core/module.ts';
import { FtpCore } from './core.ts';
import { checkFtpOptions, type FtpOptions } from './options.ts';

export { type CommandItem, CommandReader, type FtpCommand } from './command-reader.ts';
export { FtpCore } from './core.ts';
export { DataChannel, type DataChannelHost, type DataChannelState } from './data-channel.ts';
// the PORT/EPRT/227/229 codecs, every one of them
export * from './endpoints.ts';
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
    const id = (p: (typeof problems)[number]) => p.id ?? 'POLICY_BAD_VALUE';
    return (
      options ?? new OptionProblems(problems.map((p) => ({ id: id(p), path: p.key, message: p.message })))
    );
  },
  create: (context, options) => new FtpCore(context, options),
};
