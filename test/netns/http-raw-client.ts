// Raw HTTP client for the end-to-end corpus (runs in the lab's client namespace). stdin lines
// "ID HOST PORT BASE64INPUT": connect, send the bytes, half-close, read until the connection closes
// (or 10 s), print "result ID BASE64RESPONSE".
import net from 'node:net';
import { createInterface } from 'node:readline';

createInterface({ input: process.stdin }).on('line', (line) => {
  const [id, host, port, b64] = line.split(' ') as [string, string, string, string];
  const chunks: Buffer[] = [];
  let done = false;
  const finish = () => {
    if (done) return;
    done = true;
    clearTimeout(t);
    process.stdout.write(`result ${id} ${Buffer.concat(chunks).toString('base64')}\n`);
  };
  const t = setTimeout(() => {
    sock.destroy();
    finish();
  }, 10_000);
  const sock = net.connect({ host, port: Number(port) }, () => {
    sock.write(Buffer.from(b64, 'base64'));
    sock.end();
  });
  sock.on('data', (d) => chunks.push(d));
  sock.on('error', finish);
  sock.on('close', finish);
});
process.stdout.write('ready\n');
