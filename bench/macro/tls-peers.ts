// Helper for tls.bench.ts, run inside the lab's firewall namespace:
//   tls-peers.ts inspect <port> <ca.crt> <ca.key> <server-ca.pem>
// tzorp's HTTP proxy behind the TLS inspect gate, as a service with `tls: { mode: inspect, ca,
// server_ca_file }` runs it (real driver, startTls on both sides, server verification on), on
// transparent listeners on 127.0.0.1 and ::1, transparent router, no logging; prints READY.
//   tls-peers.ts floor <port> <ca.crt> <ca.key> <server-ca.pem>
// The same two TLS sessions per connection with nothing between them: the client's terminated and the
// server's originated by tzorp's own TLS layer on node:tls (inspect.ts terminateClient and
// originateServer: the leaf of the service's CA for the server's name, its ticket renewal, the
// server's verification and its kept sessions), the plaintext copied both ways, nothing parsed, no
// ClientHello read first. What node:tls allows per core with inspection's handshakes: the ceiling of
// `tls.mode: inspect` (issue 13 asks handshakes of node:tls).
import type { TlsPolicy } from '../../src/policy/model.ts';
import { load } from '../code.ts';
import { profileOnSignals } from './profile-hook.ts';
import { serveProxy } from './serve-proxy.ts';

const { httpModule } = await load<typeof import('../../src/proxy/http/index.ts')>('proxy/http/index');
const { bindCore } = await load<typeof import('../../src/proxy/index.ts')>('proxy/index');
const { compileTls, inspectEndpoint, TlsInspectGate } =
  await load<typeof import('../../src/proxy/tls/index.ts')>('proxy/tls/index');

const [mode, port, caCert, caKey, serverCa] = process.argv.slice(2);
if ((mode !== 'inspect' && mode !== 'floor') || !serverCa) {
  process.stderr.write('usage: tls-peers.ts inspect|floor <port> <ca.crt> <ca.key> <server-ca.pem>\n');
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
if (mode === 'floor') await serveFloor();
else {
  const http = bindCore(httpModule, {});
  await serveProxy(
    Number(port),
    (ctx) => new TlsInspectGate(tls, http({ ...ctx, tls: true }), endpoint, ['http/1.1']),
  );
}
process.stdout.write('READY\n');
profileOnSignals(); // TZORP_PROFILE_OUT: see tls.bench.ts --profile

/** The floor (see the top): terminate, originate, copy. The name is the bench's (tls.bench.ts NAME):
 * the gate would read it from the ClientHello, which the floor does not read. */
async function serveFloor(): Promise<void> {
  const { terminateClient, originateServer } =
    await load<typeof import('../../src/proxy/tls/inspect.ts')>('proxy/tls/inspect');
  const { openListener } = await load<typeof import('../../src/net/index.ts')>('net/index');
  const { readFileSync } = await import('node:fs');
  const name = 'www.example.org';
  const ca = readFileSync(serverCa!);
  for (const host of ['127.0.0.1', '::1']) {
    await openListener({
      host,
      port: Number(port),
      v6Only: true,
      onConnection: (c) => {
        c.setNoDelay(true);
        // the original destination is the accepted socket's local address (TPROXY)
        const target = { host: c.localAddress!, port: c.localPort! };
        terminateClient(c, { leaf: endpoint.leaf, names: [name], minVersion: 'TLSv1.2', alpn: ['http/1.1'] })
          .then(async (client) => {
            const r = await originateServer(target, {
              sni: name,
              verifyName: name,
              verify: true,
              ca,
              minVersion: 'TLSv1.2',
              alpn: ['http/1.1'],
            });
            if (!r.ok) {
              client.destroy();
              return;
            }
            const server = r.socket;
            server.setNoDelay(true);
            client.pipe(server);
            server.pipe(client);
            client.on('error', () => server.destroy());
            server.on('error', () => client.destroy());
            client.on('close', () => server.destroy());
            server.on('close', () => client.destroy());
          })
          .catch(() => c.destroy());
      },
    });
  }
}
