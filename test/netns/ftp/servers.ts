// The FTP servers of the namespace tests: vsftpd on port 21 (the lab's configuration from
// src/lab/vsftpd.ts: anonymous, download from /pub, upload into /incoming) and pyftpdlib on 2121
// (anonymous, read-write), both with the same pseudo-random payload in pub/big.bin.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { prepareVsftpd } from '../../../src/lab/vsftpd.ts';
import type { Lab } from '../../harness/netns.ts';

export const PY = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';

export const sha = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

export interface FtpServers {
  vsRoot: string;
  pyRoot: string;
  /** vsftpd's protocol log (every command and reply, with the peer address). */
  vsLog: string;
  big: Buffer;
  bigSha: string;
  /** A file to upload: a prefix of `big`, an odd size. */
  upload: string;
  uploadSha: string;
}

export async function startFtpServers(lab: Lab, dir: string, bigBytes: number): Promise<FtpServers> {
  const big = Buffer.alloc(bigBytes);
  let x = 12345;
  for (let i = 0; i < big.length; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    big[i] = x >>> 24;
  }
  const vs = prepareVsftpd(join(dir, 'vsftpd'), 21);
  writeFileSync(join(vs.paths.root, 'pub', 'big.bin'), big);
  const pyRoot = join(dir, 'py');
  mkdirSync(join(pyRoot, 'pub'), { recursive: true });
  mkdirSync(join(pyRoot, 'incoming'), { recursive: true });
  writeFileSync(join(pyRoot, 'pub', 'big.bin'), big);
  const upBytes = big.subarray(0, Math.min(big.length, 5 * 1024 * 1024 + 7));
  const upload = join(dir, 'up.bin');
  writeFileSync(upload, upBytes);

  lab.spawn('server', ['vsftpd', vs.config]);
  const py = lab.spawn('server', [PY, 'test/netns/ftp/pyftpd.py', pyRoot, '2121']);
  await py.waitFor(/READY/);
  // vsftpd prints nothing when ready: wait until it listens.
  for (let i = 0; i < 100; i++) {
    const r = await lab.exec('server', ['sh', '-c', 'ss -ltn | grep -q ":21 "'], { allowFail: true });
    if (r.code === 0) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    vsRoot: vs.paths.root,
    pyRoot,
    vsLog: vs.paths.log,
    big,
    bigSha: sha(big),
    upload,
    uploadSha: sha(upBytes),
  };
}

/** The mode flags curl needs for each client-side data set-up command. */
export const CURL_MODE: Record<string, string[]> = {
  EPSV: [],
  PASV: ['--disable-epsv'],
  EPRT: ['-P', '-'],
  PORT: ['-P', '-', '--disable-eprt'],
};

export const ftpUrl = (host: string, port: number, path: string) =>
  `ftp://${host.includes(':') ? `[${host}]` : host}${port === 21 ? '' : `:${port}`}${path}`;

/** curl in the client namespace; stdout piped through sha256sum. */
export async function curlSha(lab: Lab, args: string[]): Promise<string> {
  const r = await lab.exec(
    'client',
    ['sh', '-c', `curl -sS --max-time 120 ${args.map((a) => `'${a}'`).join(' ')} | sha256sum`],
    { timeoutMs: 150_000 },
  );
  return r.stdout.split(' ')[0]!;
}

/** lftp `cls -1 pub` through `url` (passive or active data connections). */
export async function lftpList(lab: Lab, url: string, passive: boolean): Promise<string> {
  const r = await lab.exec(
    'client',
    [
      'lftp',
      '-c',
      `set net:max-retries 1; set net:timeout 20; set ftp:passive-mode ${passive ? 'on' : 'off'}; set ftp:ssl-allow no; open ${url}; cls -1 pub`,
    ],
    { timeoutMs: 60_000 },
  );
  return r.stdout;
}

/** Log in anonymously with Python's ftplib and send PORT/EPRT naming a third host: "REFUSED <reply>"
 * or "REPLY <reply>". */
export async function bounceAttempt(lab: Lab, server: string, fam: 4 | 6): Promise<string> {
  const cmd = fam === 4 ? 'PORT 198,18,2,9,0,80' : 'EPRT |2|2001:db8:2::9|80|';
  const script = [
    'import ftplib',
    `f = ftplib.FTP(timeout=20); f.connect(${JSON.stringify(server)}, 21); f.login()`,
    'try:',
    `    print("REPLY", f.sendcmd(${JSON.stringify(cmd)}))`,
    'except ftplib.error_perm as e:',
    '    print("REFUSED", e)',
    'f.quit()',
  ].join('\n');
  const r = await lab.exec('client', [PY, '-c', script], { timeoutMs: 30_000 });
  return r.stdout;
}
