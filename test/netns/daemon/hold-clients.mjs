// Opens n connections to host:port one after another (runs in the lab's client namespace) and holds
// those that get through. A connection counts as held when the peer server's "peer <address>" line
// arrives through the proxy, as refused when it is reset or closed without it, as stuck when neither
// happened within 20 s (a proxy that neither serves nor refuses). Prints "held H refused R stuck S"
// and keeps the held ones open until killed.
//   node hold-clients.mjs <host> <port> <n>
import net from 'node:net';

const [host, port, n] = [process.argv[2], Number(process.argv[3]), Number(process.argv[4])];
const held = [];
let refused = 0;
let stuck = 0;
const one = () =>
  new Promise((resolve) => {
    const s = net.connect({ host, port });
    let done = false;
    const end = (what) => {
      if (done) return;
      done = true;
      clearTimeout(t);
      if (what === 'held') held.push(s);
      else if (what === 'refused') refused++;
      else {
        stuck++;
        s.destroy();
      }
      resolve();
    };
    const t = setTimeout(() => end('stuck'), 20_000);
    s.on('data', (d) => (/^peer /.test(d.toString()) ? end('held') : undefined));
    s.on('error', () => end('refused'));
    s.on('close', () => end('refused'));
  });
for (let i = 0; i < n; i++) await one();
process.stdout.write(`held ${held.length} refused ${refused} stuck ${stuck}\n`);
setInterval(() => {}, 1 << 30);
