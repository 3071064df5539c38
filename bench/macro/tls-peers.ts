// Helper for tls.bench.ts, run inside the lab's firewall namespace:
//   tls-peers.ts inspect <port> <ca.crt> <ca.key> <server-ca.pem>
// tzorp's HTTP proxy behind the TLS inspect gate, as a service with `tls: { mode: inspect, ca,
// server_ca_file }` runs it (real driver, startTls on both sides, server verification on), on
// transparent listeners on 127.0.0.1 and ::1, transparent router, no logging; prints READY.
import type { TlsPolicy } from '../../src/policy/model.ts';
import { load } from '../code.ts';
import { profileOnSignals } from './profile-hook.ts';
import { serveProxy } from './serve-proxy.ts';

const { httpModule } = await load<typeof import('../../src/proxy/http/index.ts')>('proxy/http/index');
const { bindCore } = await load<typeof import('../../src/proxy/index.ts')>('proxy/index');
const { compileTls, inspectEndpoint, TlsInspectGate } =
  await load<typeof import('../../src/proxy/tls/index.ts')>('proxy/tls/index');

const [mode, port, caCert, caKey, serverCa] = process.argv.slice(2);
if (mode !== 'inspect' || !serverCa) {
  process.stderr.write('usage: tls-peers.ts inspect <port> <ca.crt> <ca.key> <server-ca.pem>\n');
  process.exit(2);
}
const policy: TlsPolicy = {
  mode: 'inspect',
  ca: { cert: caCert!, key: caKey! },
  serverVerify: true,
  serverCaFile: serverCa,
  sni: { allow: [], deny: [], missing: 'accept' },
  minVersion: 'TLSv1.2',
  pos: { file: 'bench', line: 1, col: 1 },
};
const tls = compileTls(policy);
const endpoint = inspectEndpoint(policy);
const http = bindCore(httpModule, {});
await serveProxy(
  Number(port),
  (ctx) => new TlsInspectGate(tls, http({ ...ctx, tls: true }), endpoint, ['http/1.1']),
);
process.stdout.write('READY\n');
profileOnSignals(); // TZORP_PROFILE_OUT: see tls.bench.ts --profile
