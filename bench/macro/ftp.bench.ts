// FTP download throughput through the FTP proxy against a direct (kernel-forwarded) transfer, side by
// side in one run, in network namespaces (client -- fw -- server, vsftpd, curl). Needs root.
//
//   node --import tsx bench/macro/ftp.bench.ts [--mib 256] [--runs 3] [--json]
//
// Both paths run under `tzorp run` (its kernel ruleset, workers): server address .2 is a forward
// service (the direct baseline: routed by the kernel, every port, both directions, so active and
// passive FTP work without a conntrack helper); .3 is the FTP proxy with data_mode keep. Reported:
// median MB/s per path and client mode, and the ratio proxy/direct. Numbers are for comparison within
// one run only.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { prepareVsftpd } from '../../src/lab/vsftpd.ts';
import { createLab, netnsSkipReason } from '../../test/harness/netns.ts';

const arg = (name: string, dflt: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const MIB = arg('mib', 256);
const RUNS = arg('runs', 3);
const JSON_OUT = process.argv.includes('--json');

const skip = netnsSkipReason();
if (skip) {
  console.error(`ftp bench skipped: ${skip}`);
  process.exit(0);
}

const POLICY = `zones:
  clients:
    addresses: [198.18.1.0/24]
  servers:
    addresses: [198.18.2.0/24]
services:
  direct:
    type: forward
    router: { type: transparent, forge_addr: true }  # no SNAT: vsftpd checks PORT against its peer
  ftp:
    type: proxy
    proxy: ftp
rules:
  - { id: 1, service: direct, proto: tcp, src_zone: clients, dst_subnet: [198.18.2.2] }
  - { id: 2, service: direct, proto: tcp, src_subnet: [198.18.2.2], dst_zone: clients }
  - { id: 3, service: ftp, proto: tcp, dst_port: 21, src_zone: clients, dst_subnet: [198.18.2.3] }
`;

const dir = mkdtempSync(join(tmpdir(), 'tzorp-ftpbench-'));
const lab = await createLab({ serverAddrs: ['198.18.2.3'] });
try {
  const vs = prepareVsftpd(join(dir, 'vsftpd'), 21);
  writeFileSync(join(vs.paths.root, 'pub', 'bench.bin'), Buffer.alloc(MIB * 1024 * 1024, 0x5a));
  lab.spawn('server', ['vsftpd', vs.config]);
  for (let i = 0; i < 50; i++) {
    const r = await lab.exec('server', ['sh', '-c', 'ss -ltn | grep -q ":21 "'], { allowFail: true });
    if (r.code === 0) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  const policy = join(dir, 'policy.yaml');
  writeFileSync(policy, POLICY);
  const control = join(dir, 'control.sock');
  const daemon = lab.spawn('fw', [
    process.execPath,
    'bin/tzorp',
    'run',
    policy,
    '--control',
    control,
    '--verbose',
    '3',
  ]);
  await daemon.waitFor(/tzorp running/, 120_000);

  const speed = async (host: string, mode: string[]): Promise<number> => {
    const t0 = Date.now();
    const r = await lab.exec(
      'client',
      [
        'curl',
        '-sS',
        '--max-time',
        '600',
        ...mode,
        '-o',
        '/dev/null',
        '-w',
        '%{speed_download}',
        `ftp://${host}/pub/bench.bin`,
      ],
      { timeoutMs: 650_000, allowFail: true },
    );
    if (r.code !== 0)
      throw new Error(`curl ${host} ${mode.join(' ')} failed after ${Date.now() - t0} ms: ${r.stderr}`);
    return Number(r.stdout) / 1e6;
  };
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const rows: { mode: string; directMBps: number; proxyMBps: number; ratio: number }[] = [];
  for (const [mode, flags] of [
    ['passive (EPSV)', []],
    ['active (EPRT)', ['-P', '-']],
  ] as const) {
    const direct: number[] = [];
    const proxied: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      // interleaved, so drift on a shared machine hits both paths alike
      direct.push(await speed('198.18.2.2', [...flags]));
      proxied.push(await speed('198.18.2.3', [...flags]));
    }
    const d = median(direct);
    const p = median(proxied);
    rows.push({ mode, directMBps: d, proxyMBps: p, ratio: p / d });
  }
  if (JSON_OUT) console.log(JSON.stringify({ bench: 'ftp-download', mib: MIB, runs: RUNS, rows }));
  else {
    console.log(`FTP download of ${MIB} MiB, median of ${RUNS} runs (vsftpd -> curl)`);
    console.log('mode              direct MB/s   via tzorp MB/s   ratio');
    for (const r of rows) {
      console.log(
        `${r.mode.padEnd(18)}${r.directMBps.toFixed(0).padStart(11)}${r.proxyMBps.toFixed(0).padStart(17)}${r.ratio.toFixed(2).padStart(8)}`,
      );
    }
  }
} finally {
  await lab.destroy();
  rmSync(dir, { recursive: true, force: true });
}
