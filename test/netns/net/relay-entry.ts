// A tiny relay daemon for the namespace tests (runs in the lab's firewall namespace): the plug core
// through the real driver, transparent listeners and routers/chainers from src/net. No daemon, no
// policy file: the services come as JSON in argv[2].
//   [{ "name": "...", "port": 50080, "router": Router, "chainer": Chainer }]
// Prints "READY" when every listener is open and one "SUMMARY <json>" line per finished session.
import { openListener, runSession, ServiceUpstream } from '../../../src/net/index.ts';
import type { Chainer, Router } from '../../../src/policy/model.ts';
import { createPlugCore } from '../../../src/proxy/plug/index.ts';

interface ServiceSpec {
  name: string;
  port: number;
  router: Router;
  chainer: Chainer;
  options?: Record<string, unknown>;
}

const specs = JSON.parse(process.argv[2] ?? '[]') as ServiceSpec[];
let n = 0;
for (const spec of specs) {
  const upstream = new ServiceUpstream({
    name: spec.name,
    router: spec.router,
    chainer: spec.chainer,
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
          createCore: createPlugCore,
          options: spec.options ?? {},
          upstream,
          log: (cat, level, msg, fields) => {
            if (level === 'error' || level === 'warn')
              process.stderr.write(`${cat} ${level} ${msg} ${JSON.stringify(fields)}\n`);
          },
          onEnd: (s) => process.stdout.write(`SUMMARY ${JSON.stringify(s)}\n`),
        });
      },
    });
  }
}
process.stdout.write('READY\n');
