// Sends one control request and prints the JSON answer (for tests that must not depend on the rest of
// the CLI): ctl.ts CONTROL_PATH CMD [JSON-FIELDS]
import { ControlError, controlRequest } from '../../../src/daemon/control-client.ts';

const [path, cmd, fields] = process.argv.slice(2);
try {
  const r = await controlRequest(path!, { cmd, ...(fields ? JSON.parse(fields) : {}) } as never, {
    timeoutMs: 120_000,
  });
  process.stdout.write(`${JSON.stringify(r)}\n`);
} catch (e) {
  process.stdout.write(
    `${JSON.stringify({ error: e instanceof ControlError ? e.body : { message: (e as Error).message } })}\n`,
  );
  process.exitCode = 1;
}
