// loadPolicyFile: the only part of the policy module that does I/O (reading one file). The size is
// checked before the file is read, so a huge file costs nothing.
import { open } from 'node:fs/promises';
import { TzorpError } from '../errors.ts';
import { checkPolicySize, type LoadOptions, type LoadResult, loadPolicyText } from './load.ts';

function readError(path: string, why: string, cause?: unknown): TzorpError {
  return new TzorpError('POLICY_READ', `cannot read the policy: ${why}`, {
    pos: { file: path, line: 1, col: 1 },
    cause,
  });
}

export async function loadPolicyFile(path: string, opts: LoadOptions = {}): Promise<LoadResult> {
  let bytes: Buffer;
  try {
    const fh = await open(path, 'r');
    try {
      const st = await fh.stat();
      if (!st.isFile()) {
        return { policy: null, errors: [readError(path, 'not a regular file')], warnings: [] };
      }
      const big = checkPolicySize(path, st.size);
      if (big) return big;
      bytes = await fh.readFile();
    } finally {
      await fh.close();
    }
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const why =
      code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : (e as Error).message;
    return { policy: null, errors: [readError(path, why, e)], warnings: [] };
  }
  // the file may have grown between stat and read
  const big = checkPolicySize(path, bytes.length);
  if (big) return big;
  const text = new TextDecoder('utf-8', { fatal: false }).decode(bytes);
  if (text.includes('\ufffd') && !bytes.includes(Buffer.from('\ufffd', 'utf8'))) {
    return {
      policy: null,
      errors: [
        new TzorpError('POLICY_SYNTAX', 'the policy is not valid UTF-8', {
          pos: { file: path, line: 1, col: 1 },
        }),
      ],
      warnings: [],
    };
  }
  // (node:crypto when a file is loaded: the daemon's workers import this module but never load files,
  // and loading node:crypto costs each of them about 0.5 MB; bench/README.md, start-up memory)
  const { createHash } = process.getBuiltinModule('node:crypto');
  return loadPolicyText(text, path, createHash('sha256').update(bytes).digest('hex'), opts);
}
