// The smuggling/malformed corpus against the core with scripted events. A fake server parses what the
// proxy sends it (with a reader of its own) and answers every complete request it sees.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { HttpReader } from '../../../../src/proxy/http/index.ts';
import type { Step } from '../playbook.ts';
import { CORPUS, type CorpusCase, DEFAULT_RESPONSE } from './corpus.ts';
import { Script } from './script.ts';

const SERVER_LIMITS = {
  maxLineLength: 1 << 20,
  maxUrlLength: 1 << 20,
  maxHostnameLength: 1024,
  maxHeaderLines: 10_000,
  maxHeaderBytes: 4 << 20,
  maxBodyLength: 0,
  maxChunkLength: 0,
  maxChunkExtensionBytes: 1 << 20,
};

export function runCase(c: CorpusCase): { s: Script; serverRequests: number } {
  const s = new Script(c.options ?? {}, { inband: c.options?.transparent_mode === false });
  let server = new HttpReader('request', SERVER_LIMITS);
  let serverRequests = 0;
  let seen = 0;
  const queue: (() => Step)[] = [() => s.start(), () => s.client(c.input)];
  if (c.eof) queue.push(() => s.end('client'));
  let connected = false;
  for (let steps = 0; steps < 1000; steps++) {
    const step = queue.shift();
    if (!step) break;
    const cmds = step().commands;
    for (const cmd of cmds) {
      if (cmd.type === 'connect') {
        server = new HttpReader('request', SERVER_LIMITS);
        connected = true;
        queue.unshift(() => s.connected());
      } else if (cmd.type === 'close' && cmd.stream === 'server' && connected) {
        connected = false;
        queue.push(() => s.closed('server'));
      } else if (cmd.type === 'send' && cmd.stream === 'server') {
        server.push(cmd.data);
        for (;;) {
          let item: ReturnType<HttpReader['read']>;
          try {
            item = server.read();
          } catch {
            break; // what the fake server cannot parse is not a complete request
          }
          if (item.type === 'need' || item.type === 'eof') break;
          if (item.type === 'end') {
            serverRequests++;
            queue.push(() => s.server(c.response ?? DEFAULT_RESPONSE));
          }
        }
      }
    }
    seen += cmds.length;
  }
  assert.ok(seen > 0);
  return { s, serverRequests };
}

test(`corpus has at least 60 cases (${CORPUS.length})`, () => {
  assert.ok(CORPUS.length >= 60);
  assert.equal(new Set(CORPUS.map((c) => c.name)).size, CORPUS.length, 'case names are unique');
});

for (const c of CORPUS) {
  test(`corpus: ${c.name}`, () => {
    const { s, serverRequests } = runCase(c);
    assert.deepEqual(s.statuses(), c.statuses, `client got:\n${s.all.sent('client').slice(0, 400)}`);
    const toServer = s.all.sent('server');
    if (!c.serverMaySee) assert.equal(toServer, '', 'the server must see nothing');
    if (c.serverRequests !== undefined)
      assert.equal(serverRequests, c.serverRequests, `server got:\n${toServer.slice(0, 400)}`);
    if (c.serverHas) assert.ok(toServer.includes(c.serverHas), `server got:\n${toServer}`);
    if (c.serverLacks)
      assert.ok(!toServer.toLowerCase().includes(c.serverLacks.toLowerCase()), `server got:\n${toServer}`);
    // A refusal of a malformed message closes the connection and ends the session.
    if (c.statuses.some((x) => x >= 400)) {
      assert.ok(s.done(), 'session ended');
      assert.ok(s.logs('http.violation').length > 0, 'a violation was logged');
      assert.notEqual(s.done()!.verdict, 'ACCEPTED');
    }
    // The same when the client half-closes right after sending (as the end-to-end client does):
    // pipelined requests are still answered, and then the session ends.
    const half = runCase({ ...c, eof: true }).s;
    assert.deepEqual(half.statuses(), c.statuses, 'with a half-close after the input');
    assert.ok(half.done(), 'the session ends after a half-close');
  });
}
