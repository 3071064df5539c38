// The TLS layer's I/O (node:tls) is loaded on first use: a worker whose policy has no TLS service does
// not load it. Checked in a child process (node's list of the built-in modules it loaded).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { test } from 'node:test';

test('the driver loads node:tls only when the TLS layer is first asked for', () => {
  const script = `
    const d = await import('./src/net/driver.ts');
    const has = () => process.moduleLoadList.includes('NativeModule tls');
    const before = has();
    const m = await d.tlsLayer();
    console.log(JSON.stringify({ before, after: has(), api: typeof m.originateServer, same: (await d.tlsLayer()) === m }));`;
  const out = execFileSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
    encoding: 'utf8',
  });
  assert.deepEqual(JSON.parse(out.trim().split('\n').at(-1)!), {
    before: false,
    after: true,
    api: 'function',
    same: true,
  });
});
