// A full disk for logs (issue 16): `tzorp run` writes its log to a 16 KiB tmpfs in a private mount
// namespace (the host's mounts are not touched), the log fills up, and sessions still get their
// answers; the daemon keeps running; once there is room again, logging resumes.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { controlRequest } from '../../../src/daemon/control-client.ts';
import type { StatusResult } from '../../../src/daemon/control-protocol.ts';
import { ADDR, createLab, netnsSkipReason } from '../../harness/netns.ts';

const skip = netnsSkipReason();
const dir = mkdtempSync(join(tmpdir(), 'tzorp-fulldisk-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const POLICY = `zones:
  clients:
    addresses: [198.18.1.0/24, "2001:db8:1::/64"]
  servers:
    addresses: [198.18.2.0/24, "2001:db8:2::/64"]
services:
  web:
    type: proxy
    proxy: http
rules:
  - { id: 1, service: web, proto: tcp, src_zone: clients, dst_zone: servers, dst_port: 80 }
`;

test('a full disk for logs: sessions are answered, the daemon runs on, logging resumes', {
  skip,
  timeout: 300_000,
}, async () => {
  const lab = await createLab();
  try {
    const www = join(dir, 'www');
    mkdirSync(www);
    writeFileSync(join(www, 'f'), 'file\n');
    const srv = lab.spawn('server', [
      'python3',
      '-m',
      'http.server',
      '80',
      '--bind',
      '::',
      '--directory',
      www,
    ]);
    await srv.waitFor(/Serving HTTP/);
    const policy = join(dir, 'policy.yaml');
    writeFileSync(policy, POLICY);
    const control = join(dir, 'control.sock');
    const mnt = join(dir, 'logs');
    mkdirSync(mnt);
    const d = lab.spawn('fw', [
      'unshare',
      '-m',
      'sh',
      '-c',
      `mount -t tmpfs -o size=16k tmpfs ${mnt} && exec ${process.execPath} bin/tzorp run ${policy} --control ${control} --workers 2 --log-spec 'core.*:5,http.*:6' >>${mnt}/out 2>>${mnt}/log`,
    ]);
    let st: StatusResult | null = null;
    for (let i = 0; i < 600 && st?.state !== 'running'; i++) {
      st = await controlRequest<StatusResult>(control, { cmd: 'status' }).catch(() => null);
      if (st?.state !== 'running') await new Promise((r) => setTimeout(r, 200));
    }
    assert.equal(st?.state, 'running');
    const inNs = (cmd: string) =>
      lab.exec('fw', ['nsenter', `--mount=/proc/${d.child.pid}/ns/mnt`, 'sh', '-c', cmd], {
        allowFail: true,
      });
    const r = await lab.exec('client', [
      process.execPath,
      '--import',
      'tsx',
      'test/netns/abuse/fault-client.ts',
      ADDR.server4,
      '80',
      '400',
      'normal',
      '10',
    ]);
    assert.deepEqual(JSON.parse(r.stdout).statuses, { '200': 400 }, 'every session got its answer');
    const df = await inNs(`df -k ${mnt} | tail -1; wc -c < ${mnt}/log`);
    assert.match(df.stdout, /100%/, `the log filled its disk:\n${df.stdout}`);
    st = await controlRequest<StatusResult>(control, { cmd: 'status' });
    assert.equal(st.workersAlive, 2, 'no worker died');
    assert.equal(st.services.find((s) => s.name === 'web')!.sessionsTotal, 400);
    // room again: sessions and their log lines go on (the note of how many lines were lost is checked
    // in test/unit/daemon/log-full-disk.test.ts)
    await inNs(`: > ${mnt}/log`);
    const again = await lab.exec('client', ['curl', '-s', '--max-time', '10', `http://${ADDR.server4}/f`]);
    assert.equal(again.stdout, 'file\n');
    let text = '';
    for (let i = 0; i < 50 && !/Starting proxy session/.test(text); i++) {
      await new Promise((r) => setTimeout(r, 100));
      text = (await inNs(`cat ${mnt}/log`)).stdout;
    }
    assert.match(text, /Starting proxy session/);
    d.kill('SIGTERM');
    await d.exited();
  } finally {
    await lab.destroy();
  }
});
