import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { formatLogSpec, globMatch, LogLevels, parseLogSpec } from '../../../src/daemon/log-spec.ts';
import { TzorpError } from '../../../src/errors.ts';

test('parseLogSpec reads category globs and levels, and formats back', () => {
  const e = parseLogSpec(' core.*:5, http.request:6 ,,plug.?ebug:0');
  assert.deepEqual(e, [
    { glob: 'core.*', level: 5 },
    { glob: 'http.request', level: 6 },
    { glob: 'plug.?ebug', level: 0 },
  ]);
  assert.equal(formatLogSpec(e), 'core.*:5,http.request:6,plug.?ebug:0');
  assert.deepEqual(parseLogSpec(''), []);
});

test('parseLogSpec refuses bad entries with LOG_SPEC', () => {
  for (const bad of ['core', 'core:', ':3', 'core:11', 'core:-1', 'co re:3', 'core:x', 'a:3:']) {
    assert.throws(
      () => parseLogSpec(bad),
      (e: unknown) => e instanceof TzorpError && e.id === 'LOG_SPEC',
      bad,
    );
  }
});

test('globMatch: * spans any run (dots too), ? one character', () => {
  assert.ok(globMatch('core.*', 'core.session'));
  assert.ok(globMatch('*', 'http.request'));
  assert.ok(globMatch('*.error', 'core.error'));
  assert.ok(globMatch('c*e.s?ssion', 'core.session'));
  assert.ok(!globMatch('core.*', 'http.request'));
  assert.ok(!globMatch('core.session', 'core.sessions'));
  assert.ok(!globMatch('core.?', 'core.ab'));
  assert.ok(globMatch('core.*x', 'core.axbx'));
});

test('globMatch agrees with a regular-expression translation', () => {
  const arb = fc.string({ unit: fc.constantFrom('a', 'b', '.', '*', '?'), maxLength: 8 });
  const txt = fc.string({ unit: fc.constantFrom('a', 'b', '.'), maxLength: 10 });
  fc.assert(
    fc.property(arb, txt, (g, t) => {
      const re = new RegExp(`^${g.replace(/\./g, '\\.').replace(/\*/g, '.*').replace(/\?/g, '.')}$`, 's');
      return globMatch(g, t) === re.test(t);
    }),
  );
});

test('LogLevels: the last matching entry wins, otherwise the verbosity', () => {
  const l = new LogLevels(3, 'core.*:5,core.summary:1,http.*:6,*.debug:2');
  assert.equal(l.levelFor('core.session'), 5);
  assert.equal(l.levelFor('core.summary'), 1);
  assert.equal(l.levelFor('http.request'), 6);
  assert.equal(l.levelFor('http.debug'), 2); // later *.debug wins over http.*
  assert.equal(l.levelFor('ftp.request'), 3);
  assert.ok(l.enabled('core.session', 5));
  assert.ok(!l.enabled('core.session', 6));
  assert.ok(!l.enabled('core.summary', 4));
});

test('LogLevels: verbosity changes (SIGUSR1/2) are clamped and clear the cache', () => {
  const l = new LogLevels(3, 'core.*:5');
  assert.equal(l.levelFor('ftp.x'), 3);
  l.adjustVerbosity(+1);
  assert.equal(l.levelFor('ftp.x'), 4);
  assert.equal(l.levelFor('core.x'), 5); // the spec still wins
  l.setVerbosity(42);
  assert.equal(l.verbosity, 10);
  l.adjustVerbosity(-20);
  assert.equal(l.verbosity, 0);
  l.setSpec('ftp.*:7');
  assert.equal(l.levelFor('ftp.x'), 7);
  assert.equal(l.levelFor('core.x'), 0);
  assert.equal(l.spec, 'ftp.*:7');
});
