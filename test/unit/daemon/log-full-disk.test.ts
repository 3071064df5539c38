// A log destination that fails (a full disk: ENOSPC) must not throw at the session that logs; the
// lines are counted, and the first line that can be written again is followed by how many were lost.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ZorpLog } from '../../../src/daemon/log.ts';
import { LogLevels } from '../../../src/daemon/log-spec.ts';

for (const format of ['text', 'json'] as const) {
  test(`${format}: ENOSPC is counted, not thrown; the loss is reported once space is back`, () => {
    const lines: string[] = [];
    let full = false;
    const log = new ZorpLog({
      format,
      levels: new LogLevels(5),
      destination: {
        write: (l: string) => {
          if (full)
            throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
          lines.push(l);
          return true;
        },
      },
    });
    log.log('core.info', 3, 'svc/web:1', 'before', {});
    full = true;
    for (let i = 0; i < 5; i++)
      assert.doesNotThrow(() => log.log('core.summary', 4, 'svc/web:2', 'lost', {}));
    assert.equal(log.lostTotal, 5);
    full = false;
    log.log('core.info', 3, 'svc/web:3', 'after', {});
    assert.equal(lines.length, 3, lines.join(''));
    assert.match(lines[1]!, /after/);
    assert.match(lines[2]!, /Log lines were lost/);
    assert.match(lines[2]!, format === 'json' ? /"lines":5/ : /lines='5'/);
    assert.match(lines[2]!, /ENOSPC/);
    log.log('core.info', 3, null, 'again', {});
    assert.equal(lines.length, 4, 'the note is written once');
  });
}
