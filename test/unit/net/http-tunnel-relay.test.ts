// The driver running the real HTTP core over loopback: after a permitted Upgrade (101) the tunnel's
// bytes are copied by the native relay when it is on (relayStarted, then relayEnded with the byte
// counts), and in JavaScript when it is off; both ways give the same bytes, half-close and accounting.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import net from 'node:net';
import { after, test } from 'node:test';
import { loopbackHttpProxy, RELAY_IO_MODES, until } from './helpers.ts';

const cleanups: (() => Promise<void> | void)[] = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

/** A server that answers an Upgrade with 101, then reads the tunnel to its end and answers with the
 * length and sha256 of what came through. */
async function upgradeServer(): Promise<number> {
  const srv = net.createServer({ allowHalfOpen: true }, (s) => {
    s.on('error', () => {});
    let head = Buffer.alloc(0);
    let upgraded = false;
    const h = createHash('sha256');
    let n = 0;
    s.on('data', (d: Buffer) => {
      let rest = d;
      if (!upgraded) {
        head = Buffer.concat([head, d]);
        const i = head.indexOf('\r\n\r\n');
        if (i < 0) return;
        upgraded = true;
        s.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n');
        rest = head.subarray(i + 4);
      }
      n += rest.length;
      h.update(rest);
    });
    s.on('end', () => s.end(`${n} ${h.digest('hex')}`));
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  cleanups.push(() => new Promise<void>((r) => srv.close(() => r())));
  return (srv.address() as net.AddressInfo).port;
}

/** Upgrade through the proxy on `port`, send `payload` and half-close; what came back after the 101. */
function tunnel(port: number, payload: Buffer): Promise<{ head: string; reply: string }> {
  return new Promise((resolve, reject) => {
    const c = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
    let buf = Buffer.alloc(0);
    let head: string | null = null;
    c.on('error', reject);
    c.on('connect', () =>
      c.write(
        'GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n',
      ),
    );
    c.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      if (head !== null) return;
      const i = buf.indexOf('\r\n\r\n');
      if (i < 0) return;
      head = buf.subarray(0, i).toString('latin1');
      buf = buf.subarray(i + 4);
      // the bytes after the 101, in two writes, then the FIN
      c.write(payload.subarray(0, 1000));
      setTimeout(() => {
        c.write(payload.subarray(1000));
        c.end();
      }, 20);
    });
    c.on('end', () => {
      c.end();
      resolve({ head: head ?? '', reply: buf.toString('latin1') });
    });
  });
}

for (const { nativeRelay, nativeIo, mode } of RELAY_IO_MODES) {
  test(`an upgraded connection's bytes through the HTTP proxy (${mode})`, async () => {
    const serverPort = await upgradeServer();
    const events: string[] = [];
    const p = await loopbackHttpProxy(
      serverPort,
      { permit_upgrade: ['websocket'] },
      nativeRelay,
      (ev) => {
        if (ev.type === 'relayStarted' || ev.type === 'relayEnded') events.push(ev.type);
      },
      nativeIo,
    );
    cleanups.push(p.close);
    const { lines } = p;
    const payload = randomBytes(2 * 1024 * 1024 + 3);
    const r = await tunnel(p.port, payload);
    assert.match(r.head, /^HTTP\/1\.1 101 /);
    assert.equal(r.reply, `${payload.length} ${createHash('sha256').update(payload).digest('hex')}`);
    await until(() => p.summaries.length === 1, 'the summary');
    const s = p.summaries[0]!;
    assert.equal(s.verdict, 'ACCEPTED');
    assert.deepEqual(events, nativeRelay ? ['relayStarted', 'relayEnded'] : []);
    assert.equal(lines.length, 1, JSON.stringify(lines));
    assert.equal(lines[0]!.bytes_to_server, payload.length);
    assert.equal(lines[0]!.bytes_to_client, Buffer.byteLength(r.reply));
    assert.equal(lines[0]!.status, 101);
  });
}
