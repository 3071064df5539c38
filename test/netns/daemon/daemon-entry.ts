// `tzorp run` with the JSON policy loader of json-policy.ts (see there): the daemon, the kernel
// module, the engine, the proxies and the workers are all the real ones.
//   daemon-entry.ts POLICY.json CONTROL_PATH WORKERS [--no-kernel]
import { realDeps } from '../../../src/daemon/deps.ts';
import { ZorpLog } from '../../../src/daemon/log.ts';
import { LogLevels } from '../../../src/daemon/log-spec.ts';
import { Daemon } from '../../../src/daemon/primary.ts';
import { loadJsonPolicy } from './json-policy.ts';

const [file, control, workers, ...rest] = process.argv.slice(2);
const log = new ZorpLog({ format: 'text', levels: new LogLevels(3, 'core.summary:4') });
const daemon = new Daemon(
  {
    policyFile: file!,
    controlPath: control!,
    workers: Number(workers ?? 2),
    log: { format: 'text', verbosity: 3, spec: 'core.summary:4' },
    kernel: !rest.includes('--no-kernel'),
    metrics: null,
    stopTimeoutMs: 5000,
  },
  realDeps(loadJsonPolicy),
  log,
);
try {
  await daemon.start();
} catch (e) {
  process.stderr.write(
    `start failed: ${(e as Error).message}\n${JSON.stringify((e as { details?: unknown }).details)}\n`,
  );
  await daemon.abandon();
  process.exit(1);
}
process.exit(await daemon.exited);
