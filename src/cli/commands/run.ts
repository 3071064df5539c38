// tzorp run POLICY: the daemon. Loads and checks the policy (refuses to start on errors), installs
// the kernel ruleset and policy routing, opens one transparent listener per proxy service and family,
// and serves sessions on N worker processes. Controlled through its control socket (tzorp status,
// sessions, reload, stop, log) and signals (HUP reload, TERM/INT stop, USR1/USR2 verbosity +/-1).
// `tzorp run [POLICY] --print-config` prints the effective configuration (every tunable with this
// command line applied, as JSON) and exits without starting anything.
import { availableParallelism } from 'node:os';
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { InvalidArgumentError, Option } from 'commander';
import type { RunAs } from '../../daemon/index.ts';
import {
  type EffectiveConfig,
  effectiveConfig,
  LogLevels,
  levelArg,
  loadDaemon,
  logSpecArg,
} from '../../daemon/index.ts';
import { DEFAULTS } from '../../defaults.ts';
import { TzorpError } from '../../errors.ts';

function positiveInt(v: string): number {
  if (!/^\d+$/.test(v) || Number(v) < 1 || Number(v) > 1024)
    throw new InvalidArgumentError('must be 1..1024');
  return Number(v);
}

function ms(v: string): number {
  if (!/^\d+$/.test(v)) throw new InvalidArgumentError('must be milliseconds (an integer >= 0)');
  return Number(v);
}

function hostPort(v: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(v);
  const port = m ? Number(m[3]) : -1;
  if (!m || port > 65535) throw new InvalidArgumentError('must be HOST:PORT ([v6addr]:PORT for IPv6)');
  return { host: (m[1] ?? m[2])!, port };
}

interface RunOptions {
  control: string;
  workers: number;
  logFormat: 'json' | 'text';
  logSpec: string;
  verbose: number;
  kernel: boolean;
  nativeRelay: boolean;
  nativeIo: boolean;
  relayLoop?: boolean;
  relayThread?: boolean;
  metrics?: { host: string; port: number };
  stopTimeout: number;
  user?: string;
  printConfig?: boolean;
  userRules?: string;
}

/** Where the workers' native relay runs, if a flag says (--relay-loop is the default made explicit;
 * commander refuses both at once). */
function relayModeOf(opts: RunOptions): { relayMode?: 'loop' | 'thread' } {
  return opts.relayThread ? { relayMode: 'thread' } : opts.relayLoop ? { relayMode: 'loop' } : {};
}

/** The configuration this command line asks for: the defaults, with its options applied. */
function configOf(policyArg: string | undefined, opts: RunOptions): EffectiveConfig {
  return effectiveConfig(
    {
      policyFile: policyArg === undefined ? null : resolve(policyArg),
      workers: opts.workers,
      kernel: opts.kernel,
      metrics: opts.metrics
        ? opts.metrics.host.includes(':')
          ? `[${opts.metrics.host}]:${opts.metrics.port}`
          : `${opts.metrics.host}:${opts.metrics.port}`
        : null,
      user: opts.user ?? null,
    },
    {
      controlSocketPath: resolve(opts.control),
      logFormat: opts.logFormat,
      logSpec: opts.logSpec,
      logVerbosity: opts.verbose,
      stopDrainTimeoutMs: opts.stopTimeout,
    },
  );
}

export function register(program: Command): void {
  program
    .command('run')
    .description('run the daemon: kernel ruleset, transparent listeners, proxy sessions on every core')
    .argument('[policy]', 'policy file (required, except with --print-config)')
    .option('--control <path>', 'control socket', DEFAULTS.controlSocketPath)
    .option(
      '--workers <n>',
      'worker processes (default: the number of cores)',
      positiveInt,
      availableParallelism(),
    )
    .addOption(
      new Option('--log-format <format>', 'log line format')
        .choices(['json', 'text'])
        .default(DEFAULTS.logFormat),
    )
    .option(
      '--log-spec <spec>',
      "per-category log levels, e.g. 'core.*:5,http.*:6' (last match wins)",
      logSpecArg,
      DEFAULTS.logSpec,
    )
    .option(
      '--verbose <n>',
      'log level of categories no spec entry matches (0..10, Zorp --verbose)',
      levelArg,
      DEFAULTS.logVerbosity,
    )
    .option('--no-kernel', 'do not install the nftables ruleset and policy routing (someone else does)')
    .option(
      '--user-rules <file>',
      'your own nft chains/sets, placed inside table inet tzorp at start and every reload (read again each time; overrides settings.user_rules)',
    )
    .option(
      '--no-native-relay',
      'copy every byte in JavaScript: no native splice relay (also per service: native_relay: false)',
    )
    .addOption(
      new Option(
        '--relay-thread',
        'run the native relay on an epoll thread of its own in each worker instead of the worker\'s event loop (docs/native.md, "Where the relay runs")',
      ).conflicts('relayLoop'),
    )
    .option('--relay-loop', "run the native relay on the worker's event loop (the default)")
    .option(
      '--no-native-io',
      'run HTTP sessions on Node sockets: no native socket I/O (docs/native.md, "Native socket I/O")',
    )
    .option('--metrics <host:port>', 'serve Prometheus metrics on this address', hostPort)
    .option(
      '--stop-timeout <ms>',
      'how long stop/SIGTERM lets sessions finish',
      ms,
      DEFAULTS.stopDrainTimeoutMs,
    )
    .option(
      '--user <name>',
      'after installing the ruleset and opening the listeners as root, run as this user keeping only CAP_NET_ADMIN, CAP_NET_RAW and CAP_NET_BIND_SERVICE',
    )
    .option('--print-config', 'print the effective configuration as JSON and exit (starts nothing)')
    .action(async (policyArg: string | undefined, opts: RunOptions, cmd: Command) => {
      const config = configOf(policyArg, opts);
      if (opts.printConfig) {
        process.stdout.write(`${JSON.stringify(config, null, 2)}\n`);
        return;
      }
      if (policyArg === undefined) {
        cmd.error("error: missing required argument 'policy'", {
          exitCode: 2,
          code: 'commander.missingArgument',
        });
      }
      const policyFile = resolve(policyArg);
      const { Daemon, ZorpLog, checkProxies, loadPolicy, realDeps, privileges } = await loadDaemon();
      const { dropTo, KEPT_CAPABILITIES, RUN_AS_ENV, resolveRunAs, runAsToEnv, shareControlSocket } =
        privileges;
      let runAs: RunAs | null = null;
      if (opts.user !== undefined) {
        try {
          runAs = resolveRunAs(opts.user);
          const me = process.getuid?.();
          if (me !== 0 && me !== runAs.uid) {
            throw new TzorpError(
              'DAEMON_USER',
              `--user ${opts.user}: tzorp run must start as root to drop to it`,
              {
                details: { user: opts.user },
              },
            );
          }
        } catch (e) {
          process.stderr.write(`tzorp run: ${e instanceof TzorpError ? e.format() : (e as Error).message}\n`);
          process.exitCode = 1;
          return;
        }
        // the workers start as root (before the first generation) and drop at once: they read this
        process.env[RUN_AS_ENV] = runAsToEnv(runAs);
      }
      const log = new ZorpLog({ format: opts.logFormat, levels: new LogLevels(opts.verbose, opts.logSpec) });
      // Refuse to start on a policy with errors, before anything is started or changed.
      const loaded = await loadPolicy(policyFile).catch((e: unknown) => {
        process.stderr.write(`tzorp run: ${e instanceof TzorpError ? e.format() : (e as Error).message}\n`);
        return null;
      });
      if (!loaded) {
        process.exitCode = 1;
        return;
      }
      const errors = loaded.policy ? [...loaded.errors, ...checkProxies(loaded.policy)] : loaded.errors;
      for (const w of loaded.warnings) process.stderr.write(`${w.format()}\n`);
      if (errors.length > 0 || !loaded.policy) {
        for (const e of errors) process.stderr.write(`${e.format()}\n`);
        process.stderr.write(`tzorp run: the policy has ${errors.length} error(s); not starting\n`);
        process.exitCode = 1;
        return;
      }
      const daemon = new Daemon(
        {
          policyFile,
          controlPath: resolve(opts.control),
          workers: opts.workers,
          log: { format: opts.logFormat, verbosity: opts.verbose, spec: opts.logSpec },
          kernel: opts.kernel,
          nativeRelay: opts.nativeRelay,
          nativeIo: opts.nativeIo,
          ...relayModeOf(opts),
          metrics: opts.metrics ?? null,
          stopTimeoutMs: opts.stopTimeout,
          config,
        },
        realDeps(undefined, opts.userRules ? resolve(opts.userRules) : undefined, { kernel: opts.kernel }),
        log,
      );
      try {
        await daemon.start();
      } catch (e) {
        const lines =
          e instanceof TzorpError
            ? [e.format(), ...((e.details as { errors?: string[] } | undefined)?.errors ?? [])]
            : [(e as Error).stack ?? String(e)];
        for (const l of lines) process.stderr.write(`tzorp run: ${l}\n`);
        await daemon.abandon();
        process.exit(1);
      }
      if (runAs) {
        try {
          shareControlSocket(resolve(opts.control), runAs.gid);
          const now = dropTo(runAs);
          log.write('core.info', 3, null, 'Running as an unprivileged user', {
            user: runAs.user,
            uid: now.uid,
            gid: now.gid,
            capabilities: Object.keys(KEPT_CAPABILITIES).join(',').toLowerCase(),
          });
        } catch (e) {
          // the ruleset is installed by now: stop properly (removes it), never run on as root
          process.stderr.write(`tzorp run: ${e instanceof TzorpError ? e.format() : (e as Error).message}\n`);
          await daemon.stop(0);
          process.exit(1);
        }
      }
      process.exit(await daemon.exited);
    });
}
