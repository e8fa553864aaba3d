/**
 * @module bench/udp/load — a UDP DNS load generator, run as its own process so its CPU is not
 * the proxy's.
 *
 *   node dist/bench/udp/load.js PORT SOCKETS SECONDS [RATE]
 *
 * SOCKETS client sockets (each its own source port, so each is one session in a proxy) send
 * A queries for `svc.test`. Without RATE, each socket runs a closed loop: the next query goes when
 * the previous one is answered (or after {@link LOST_AFTER_MS}, counted lost). With RATE, queries
 * go out at RATE per second spread over the sockets whatever comes back (open loop), and a query
 * not answered {@link LOST_AFTER_MS} after the end counts as lost. Prints one JSON line:
 * `{ sent, received, lost, seconds, rate }`.
 */
import dgram from 'node:dgram';
import { once } from 'node:events';

/** A query unanswered this long is lost. */
const LOST_AFTER_MS = 1_000;
/** Open loop: queries are sent in batches this often. */
const TICK_MS = 5;

function query(id: number): Buffer {
  const q = Buffer.from('0000010000010000000000000373766304746573740000010001', 'hex');
  q.writeUInt16BE(id & 0xffff, 0);
  return q;
}

async function main(): Promise<void> {
  const [port, sockets, seconds, rate] = process.argv.slice(2).map(Number);
  const socks: dgram.Socket[] = [];
  let sent = 0;
  let received = 0;
  let lost = 0;
  let running = true;
  const lastSent = new Array<number>(sockets).fill(0);
  for (let i = 0; i < sockets; i++) {
    const s = dgram.createSocket('udp4');
    s.on('error', () => {});
    s.bind(0, '127.0.0.1');
    socks.push(s);
  }
  await Promise.all(socks.map((s) => once(s, 'listening')));
  for (const s of socks) s.connect(port, '127.0.0.1');
  await Promise.all(socks.map((s) => once(s, 'connect')));
  const t0 = performance.now();
  if (!rate) {
    socks.forEach((s, i) => {
      const next = () => {
        if (!running) return;
        lastSent[i] = performance.now();
        sent++;
        s.send(query(sent));
      };
      s.on('message', () => {
        received++;
        next();
      });
      next();
    });
    // A socket whose query got lost would stall: resend after the loss timeout.
    const watchdog = setInterval(() => {
      const now = performance.now();
      socks.forEach((s, i) => {
        if (running && now - lastSent[i] > LOST_AFTER_MS) {
          lost++;
          lastSent[i] = now;
          sent++;
          s.send(query(sent));
        }
      });
    }, LOST_AFTER_MS / 4);
    await new Promise((r) => setTimeout(r, seconds * 1000));
    running = false;
    clearInterval(watchdog);
  } else {
    for (const s of socks) s.on('message', () => received++);
    let i = 0;
    const total = Math.round(rate * seconds);
    while (sent < total) {
      const due = Math.min(total, Math.round(((performance.now() - t0) / 1000) * rate));
      while (sent < due) {
        sent++;
        socks[i++ % sockets].send(query(sent));
      }
      await new Promise((r) => setTimeout(r, TICK_MS));
    }
    await new Promise((r) => setTimeout(r, LOST_AFTER_MS));
    lost = sent - received;
  }
  const elapsed = (performance.now() - t0) / 1000;
  const span = rate ? seconds : elapsed;
  console.log(JSON.stringify({ sent, received, lost, seconds: span, rate: received / span }));
  for (const s of socks) s.close();
}

await main();
