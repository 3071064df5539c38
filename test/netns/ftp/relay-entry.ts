// The FTP core through the real session driver, for the namespace tests (runs in the lab's firewall
// namespace). No daemon and no policy file: services come as JSON in argv[2]:
//   [{ "name": "...", "port": 50021, "options": { ...ftp options... } }]
// Each service has a transparent router (unless it names one) and a connect chainer. Prints "READY" once listening, one
// "ACCT <json>" line per ftp.accounting log, "SETUP <json>" per data set-up command sent to a server, "VIOL <json>" per violation, "SUMMARY <json>" per session,
// "NATIVE <json>" per pair of data connections handed to the native relay (TZORP_NATIVE_RELAY=0: none).
import { openListener, runSession, ServiceUpstream } from '../../../src/net/index.ts';
import type { Router } from '../../../src/policy/model.ts';
import { ftpModule } from '../../../src/proxy/ftp/index.ts';
import { bindCore } from '../../../src/proxy/index.ts';

interface ServiceSpec {
  name: string;
  port: number;
  options?: Record<string, unknown>;
  /** Default: transparent. */
  router?: Router;
}

const specs = JSON.parse(process.argv[2] ?? '[]') as ServiceSpec[];
let n = 0;
for (const spec of specs) {
  // Options are parsed once (a bad one fails here, early), as the daemon does per generation.
  const createCore = bindCore(ftpModule, spec.options ?? {});
  const upstream = new ServiceUpstream({
    name: spec.name,
    router: spec.router ?? { type: 'transparent', forcedPort: null, forgeAddr: false, forgePort: 'any' },
    chainer: { type: 'connect', timeoutConnectMs: 5000 },
    limitTargetZonesTo: [],
    maxSessions: 0,
  });
  for (const host of ['127.0.0.1', '::1']) {
    await openListener({
      host,
      port: spec.port,
      transparent: true,
      v6Only: true,
      onConnection: (socket) => {
        runSession({
          id: `svc/${spec.name}:${++n}`,
          service: spec.name,
          socket,
          createCore,
          upstream,
          transparentUpstream: true,
          log: (cat, level, msg, fields) => {
            if (
              cat === 'ftp.request' &&
              msg === 'Command to server' &&
              /^(PORT|EPRT|PASV|EPSV)$/.test(String(fields.command))
            )
              process.stdout.write(
                `SETUP ${JSON.stringify({ service: spec.name, command: fields.command })}\n`,
              );
            else if (cat === 'core.debug' && msg === 'Streams handed to the native relay')
              process.stdout.write(`NATIVE ${JSON.stringify({ service: spec.name, ...fields })}\n`);
            else if (cat === 'ftp.accounting')
              process.stdout.write(`ACCT ${JSON.stringify({ service: spec.name, ...fields })}\n`);
            else if (cat === 'ftp.violation' || cat === 'ftp.policy')
              process.stdout.write(`VIOL ${JSON.stringify({ service: spec.name, cat, msg, ...fields })}\n`);
            else if (level === 'error' || level === 'warn')
              process.stderr.write(`${cat} ${level} ${msg} ${JSON.stringify(fields)}\n`);
          },
          onEnd: (s) => process.stdout.write(`SUMMARY ${JSON.stringify(s)}\n`),
        });
      },
    });
  }
}
process.stdout.write('READY\n');
