// Entry point of the lab's server process (started by `tzorp lab up` inside the server namespace):
// `node --import tsx src/lab/servers-main.ts '<LabServersConfig as JSON>'`.
import { type LabServersConfig, startLabServers } from './servers.ts';

const cfg = JSON.parse(process.argv[2] ?? '{}') as LabServersConfig;
startLabServers(cfg).catch((e: unknown) => {
  process.stderr.write(`tzorp lab servers: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1);
});
process.on('SIGTERM', () => process.exit(0));
