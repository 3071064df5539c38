// A tiny relay daemon for the namespace tests (runs in the lab's firewall namespace): the plug core
// through the real driver, transparent listeners and routers/chainers from src/net. No daemon, no
// policy file: the services come as JSON in argv[2].
//   [{ "name": "...", "port": 50080, "router": Router, "chainer": Chainer }]
//   optional per service: "limitTargetZonesTo": [...], "maxSessions": n
// argv[3] (optional): zones as JSON [{ "name", "parent", "cidrs": [...] }] for limit_target_zones_to.
// Prints "READY" when every listener is open, "ESTABLISHED <service>" when a server connection is up,
// and one "SUMMARY <json>" line per finished session.
import ipaddr from 'ipaddr.js';
import { openListener, runSession, ServiceUpstream, type ZoneLookup } from '../../../src/net/index.ts';
import type { Chainer, Router } from '../../../src/policy/model.ts';
import { bindCore } from '../../../src/proxy/index.ts';
import { plugModule } from '../../../src/proxy/plug/index.ts';

interface ServiceSpec {
  name: string;
  port: number;
  router: Router;
  chainer: Chainer;
  options?: Record<string, unknown>;
  limitTargetZonesTo?: string[];
  maxSessions?: number;
}

interface ZoneSpec {
  name: string;
  parent: string | null;
  cidrs: string[];
}

const zoneSpecs = JSON.parse(process.argv[3] ?? '[]') as ZoneSpec[];
/** Longest-prefix match over the zones' networks (the engine does this for the daemon). */
const zones: ZoneLookup = {
  zones: new Map(zoneSpecs.map((z) => [z.name, { parent: z.parent }])),
  zoneOf(host) {
    const a = ipaddr.parse(host);
    let best: { name: string; len: number } | null = null;
    for (const z of zoneSpecs) {
      for (const c of z.cidrs) {
        const [net, len] = ipaddr.parseCIDR(c);
        if (net.kind() === a.kind() && a.match([net, len]) && (!best || len > best.len))
          best = { name: z.name, len };
      }
    }
    return best ? { name: best.name } : null;
  },
};

const specs = JSON.parse(process.argv[2] ?? '[]') as ServiceSpec[];
let n = 0;
for (const spec of specs) {
  const upstream = new ServiceUpstream(
    {
      name: spec.name,
      router: spec.router,
      chainer: spec.chainer,
      limitTargetZonesTo: spec.limitTargetZonesTo ?? [],
      maxSessions: spec.maxSessions ?? 0,
    },
    { zones },
  );
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
          createCore: bindCore(plugModule, spec.options ?? {}),
          upstream,
          log: (cat, level, msg, fields) => {
            if (msg === 'Server connection established') process.stdout.write(`ESTABLISHED ${spec.name}\n`);
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
