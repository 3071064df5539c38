// Shared pieces of the fail-safe namespace tests (issue 10): `tzorp run` in the lab's firewall, the
// tzorp CLI there, and a TCP probe from the client that tells "answered" from "refused or dropped".
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Lab, LabProcess } from '../../harness/netns.ts';

export const TZ = [process.execPath, 'bin/tzorp'];

export interface Daemon {
  proc: LabProcess;
  control: string;
  policy: string;
}

export function tempDir(tag: string): { dir: string; remove(): void } {
  const dir = mkdtempSync(join(tmpdir(), `tzorp-${tag}-`));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

export function tz(lab: Lab, args: string[], env?: Record<string, string>) {
  return lab.exec('fw', [...TZ, ...args], { allowFail: true, timeoutMs: 120_000, ...(env ? { env } : {}) });
}

export async function startDaemon(
  lab: Lab,
  dir: string,
  text: string,
  extra: string[] = [],
): Promise<Daemon> {
  const policy = join(dir, `${lab.id}.yaml`);
  writeFileSync(policy, text);
  const control = join(dir, `${lab.id}.sock`);
  const proc = lab.spawn('fw', [...TZ, 'run', policy, '--control', control, '--workers', '1', ...extra]);
  await proc.waitFor(/tzorp running/, 120_000);
  return { proc, control, policy };
}

/** A TCP connection from the client: what it read ('' when refused, reset or timed out). */
export async function tcpRead(lab: Lab, host: string, port: number, timeoutS = 3): Promise<string> {
  const url = host.includes(':') ? `telnet://[${host}]:${port}` : `telnet://${host}:${port}`;
  const r = await lab.exec('client', ['curl', '-s', '--max-time', String(timeoutS), url], {
    allowFail: true,
    timeoutMs: (timeoutS + 10) * 1000,
  });
  return r.stdout;
}

export async function waitUntil(what: string, f: () => Promise<boolean>, tries = 150): Promise<void> {
  for (let i = 0; i < tries; i++) {
    if (await f()) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`gave up waiting for ${what}`);
}
