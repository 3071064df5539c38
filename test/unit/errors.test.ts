import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { E, type ErrorId, idOfCode, TzorpError } from '../../src/errors.ts';

test('error codes are unique and well formed', () => {
  const codes = Object.values(E).map((e) => e.code);
  assert.equal(new Set(codes).size, codes.length);
  for (const c of codes) assert.match(c, /^TZ\d{4}$/);
});

test('TzorpError formats file:line:col and code', () => {
  const err = new TzorpError('POLICY_UNKNOWN_ZONE', "unknown zone 'x'", {
    pos: { file: 'p.yaml', line: 3, col: 7 },
  });
  assert.equal(err.format(), "p.yaml:3:7: TZ1031 unknown zone 'x'");
  assert.equal(err.kind, 'user');
});

// ---- every error through the catalogue -----------------------------------------------------------

function sources(dir: string, out: string[] = []): string[] {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) sources(p, out);
    else if (e.name.endsWith('.ts')) out.push(p);
  }
  return out;
}

const SRC = sources('src').map((file) => ({ file, text: readFileSync(file, 'utf8') }));

/** Plain errors that may stay, by file and exact line. Empty: every failure has a catalogue code
 * (a broken invariant of ours is `throw bug(...)`, INTERNAL). Never add to it lightly. */
const BARE_ALLOWED: Record<string, string[]> = {};

test('no bare Error in src/: user, peer, env and internal failures carry a catalogue code', () => {
  const bare = /\bnew (Error|TypeError|RangeError|SyntaxError)\(|\bextends Error\b/;
  const found: string[] = [];
  for (const { file, text } of SRC) {
    if (file === join('src', 'errors.ts')) continue; // TzorpError itself extends Error
    text.split('\n').forEach((line, i) => {
      const allowed = BARE_ALLOWED[file]?.includes(line.trim()) ?? false;
      if (bare.test(line) && !line.trimStart().startsWith('//') && !allowed) {
        found.push(`${file}:${i + 1}: ${line.trim()}`);
      }
    });
  }
  assert.deepEqual(found, [], 'throw new TzorpError(ID, ...) instead (src/errors.ts)');
});

test('every code in the catalogue is raised somewhere in src/', () => {
  const never: string[] = [];
  for (const id of Object.keys(E) as ErrorId[]) {
    const uses = new RegExp(`'${id}'|\\bE\\.${id}\\b`);
    const raised = SRC.some(({ file, text }) =>
      uses.test(
        file === join('src', 'errors.ts') ? text.replace(new RegExp(`^ {2}${id}: entry\\(`, 'm'), '') : text,
      ),
    );
    if (!raised) never.push(id);
  }
  assert.deepEqual(never, [], 'a code nobody raises: use it where that failure happens, or remove it');
});

test('idOfCode finds the id of a code, INTERNAL for an unknown one', () => {
  assert.equal(idOfCode('TZ3003'), 'DAEMON_LISTEN');
  assert.equal(idOfCode('TZ0000'), 'INTERNAL');
});
