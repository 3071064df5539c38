// FTP download throughput through the FTP proxy against a direct (kernel-forwarded) transfer, side by
// side in one run, in network namespaces (client -- fw -- server, vsftpd, curl). Needs root.
//
//   node --import tsx bench/macro/ftp.bench.ts [--mib 256] [--runs 3] [--json]
//
// Server address .2 is forwarded by the kernel (the direct baseline: forward chain accepts, no
// conntrack helper needed for passive mode); .3 is diverted to the FTP proxy (the core through the real
// session driver, test/netns/ftp/relay-entry.ts) with data_mode keep. Reported: median MB/s per path
// and client mode, and the ratio proxy/direct. Numbers are for comparison within one run only.
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
const MARK = '0x80000000';

const skip = netnsSkipReason();
if (skip) {
  console.error(`ftp bench skipped: ${skip}`);
  process.exit(0);
}

const ruleset = `table inet tzorp_ftpbench {
  chain prerouting {
    type filter hook prerouting priority mangle; policy accept;
    tcp flags & (fin|syn|rst|ack) == syn jump divert
    socket transparent 1 meta mark set meta mark | ${MARK} accept
    jump divert
  }
  chain divert {
    ip daddr 198.18.2.3 tcp dport 21 tproxy ip to 127.0.0.1:50021 meta mark set meta mark | ${MARK} accept
  }
  chain input {
    type filter hook input priority filter; policy drop;
    iif lo accept
    meta mark & ${MARK} == ${MARK} accept
    meta l4proto { icmp, ipv6-icmp } accept
  }
  chain forward {
    type filter hook forward priority filter; policy accept;
  }
}
`;

const dir = mkdtempSync(join(tmpdir(), 'tzorp-ftpbench-'));
const lab = await createLab({ serverAddrs: ['198.18.2.3'] });
try {
  await lab.exec('fw', ['nft', '-f', '-'], { input: ruleset });
  await lab.sh(
    'fw',
    `ip rule add fwmark ${MARK}/${MARK} lookup 100 && ip route add local 0.0.0.0/0 dev lo table 100`,
  );
  const vs = prepareVsftpd(join(dir, 'vsftpd'), 21);
  writeFileSync(join(vs.paths.root, 'pub', 'bench.bin'), Buffer.alloc(MIB * 1024 * 1024, 0x5a));
  lab.spawn('server', ['vsftpd', vs.config]);
  for (let i = 0; i < 50; i++) {
    const r = await lab.exec('server', ['sh', '-c', 'ss -ltn | grep -q ":21 "'], { allowFail: true });
    if (r.code === 0) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  const relay = lab.spawnTs('fw', 'test/netns/ftp/relay-entry.ts', [
    JSON.stringify([{ name: 'ftp_bench', port: 50021, options: { data_mode: 'keep' } }]),
  ]);
  await relay.waitFor(/READY/);

  const speed = async (host: string, mode: string[]): Promise<number> => {
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
      { timeoutMs: 650_000 },
    );
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
