// checkHttpOptions: defaults, and clear errors (with the option's path) for bad options.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DEFAULTS } from '../../../../src/defaults.ts';
import type { TzorpError } from '../../../../src/errors.ts';
import { checkHttpOptions, parseHttpOptions } from '../../../../src/proxy/http/index.ts';

function errorsOf(o: unknown): string[] {
  const r = checkHttpOptions(o);
  assert.equal(r.options, null);
  return r.errors.map((e) => `${e.code} ${e.message}`);
}

test('defaults follow Zorp HttpProxy', () => {
  const r = checkHttpOptions(undefined);
  assert.deepEqual(r.errors, []);
  const o = r.options!;
  assert.equal(o.transparentMode, true);
  assert.deepEqual([...o.request.keys()].sort(), ['GET', 'HEAD', 'POST']);
  assert.equal(o.limits.maxLineLength, DEFAULTS.httpMaxLineLengthBytes);
  assert.equal(o.limits.maxHeaderLines, 50);
  assert.deepEqual(o.targetPortRange, [
    { lo: 80, hi: 80 },
    { lo: 443, hi: 443 },
  ]);
  assert.equal(o.requestTimeoutMs, 10_000);
  const explicit = checkHttpOptions({ transparent_mode: false }).options!;
  assert.ok(explicit.request.has('CONNECT'));
});

test('a complete, valid option set parses', () => {
  const r = checkHttpOptions({
    transparent_mode: false,
    target_port_range: ['80', 443, '8000-8100'],
    parent_proxy: '[2001:db8::1]:8080',
    permit_upgrade: true,
    max_body_length: 1000,
    timeout: 5000,
    request: { GET: 'accept', POST: { action: 'reject', status: 403, text: 'read only' } },
    request_header: { '*': 'drop', Accept: 'accept' },
    response: { '*': { '5': 'deny' } },
    url_filter: { rules: [{ host: '*.test', path: '/x*', action: 'reject' }], default: 'accept' },
  });
  assert.deepEqual(r.errors, []);
  assert.deepEqual(r.options!.parentProxy, { host: '2001:db8::1', port: 8080 });
  assert.deepEqual(r.options!.targetPortRange[2], { lo: 8000, hi: 8100 });
  assert.ok(r.options!.permitUpgrade.has('*'));
});

test('unknown options, wrong types and bad actions are reported with their path', () => {
  const errs = errorsOf({
    max_line_lenght: 10,
    timeout: 'soon',
    request: { GET: 'allow', PUT: { action: 'reject', status: 200 } },
    request_header: {
      '*': { action: 'insert', value: 'x' },
      'Content-Length': 'drop',
      'X-A': { action: 'change_name' },
    },
    response: { GET: { '6': 'deny' } },
    target_port_range: '80,0,70000,9-1',
    parent_proxy: 'not a host',
    url_filter: { rules: [{ action: 'maybe' }] },
  });
  const text = errs.join('\n');
  for (const want of [
    /TZ1011 http option max_line_lenght: unknown option/,
    /TZ1010 http option timeout: must be an integer/,
    /http option request\.GET: unknown action 'allow'/,
    /http option request\.PUT\.status: must be an error status/,
    /http option request_header\.\*: the '\*' default can only accept, drop or abort/,
    /http option request_header\.Content-Length: this header is managed by the proxy/,
    /http option request_header\.X-A\.name: needs a valid header name/,
    /http option response\.GET\.6: status key must be/,
    /http option target_port_range: '0' is not a port/,
    /'70000' is not a port/,
    /'9-1' is not a port/,
    /http option parent_proxy: 'not a host'/,
    /http option url_filter\.rules\.0: must be/,
  ]) {
    assert.match(text, want);
  }
  const r = checkHttpOptions({ request: { GET: 'allow' } });
  assert.deepEqual(r.errors[0]!.details, { path: ['request', 'GET'] });
});

test('max_header_bytes must hold the longest start line the other limits allow', () => {
  const errs = errorsOf({ max_header_bytes: 1000 });
  assert.match(errs.join('\n'), /max_header_bytes: must be at least 4162/);
});

test('options that are not a mapping', () => {
  assert.match(errorsOf([1, 2]).join(''), /must be a mapping/);
});

test('parseHttpOptions (the registry entry) throws one user error listing every problem', () => {
  assert.equal(parseHttpOptions({ timeout: 5 }).idleTimeoutMs, 5);
  assert.throws(
    () => parseHttpOptions({ timeout: 'x', request: { GET: 'allow' } }),
    (e: TzorpError) =>
      e.kind === 'user' &&
      /invalid http options: http option timeout: must be an integer; http option request\.GET: unknown action/.test(
        e.message,
      ) &&
      (e.details!.problems as unknown[]).length === 2,
  );
});
