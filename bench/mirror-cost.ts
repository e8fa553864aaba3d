/**
 * @module bench/mirror-cost — `npm run bench:mirror`: the CPU l4lb spends per GB and per new
 * connection with a pool mirrored at 100 %, at 0 %, and without `mirror` at all, in one run.
 *
 * One l4lb process (`l4lb --config`) with three listeners whose pools differ only in `mirror`,
 * backends in this process (a sink for bulk data that greets and closes for short connections,
 * and a sink for the mirror), and clients in this process: `--streams` connections sending as
 * fast as they can (bulk), then `--concurrency` loops opening a connection, sending a short
 * request, reading the answer and closing (new connections). Phases of `--duration` seconds, in
 * alternating order per round. Reported per phase: l4lb CPU seconds per GB sent through it and
 * µs per connection (user + system, from /proc), and the rate. The clients share the machine:
 * compare the rows with each other, not with other runs.
 */
import net from 'node:net';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';
import { cpuTimes } from './proc-stats.js';
import { startL4lbConfig } from './tools.js';

const DEFAULTS = { durationS: 3, rounds: 2, concurrency: 32, streams: 4 };
const CHUNK = Buffer.alloc(64 * 1024, 0x61);
const REQUEST = Buffer.from('GET / HTTP/1.0\r\nHost: bench\r\n\r\n');

interface Options {
  durationS: number;
  rounds: number;
  concurrency: number;
  streams: number;
}

function parseArgs(argv: string[]): Options {
  const o = { ...DEFAULTS };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const v = Number(argv[++i]);
    if (!Number.isFinite(v) || v <= 0) {
      console.error(`${a} needs a positive number; options: --duration S --rounds N --concurrency N --streams N`);
      process.exit(2);
    }
    if (a === '--duration') o.durationS = v;
    else if (a === '--rounds') o.rounds = Math.round(v);
    else if (a === '--concurrency') o.concurrency = Math.round(v);
    else if (a === '--streams') o.streams = Math.round(v);
    else {
      console.error(`unknown option ${a}; options: --duration S --rounds N --concurrency N --streams N`);
      process.exit(2);
    }
  }
  return o;
}

/** A server on 127.0.0.1:0 that runs `handler` for each connection. */
async function server(handler: (s: net.Socket) => void): Promise<{ port: number; close(): void }> {
  const sockets = new Set<net.Socket>();
  const srv = net.createServer({ allowHalfOpen: true }, (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => {});
    handler(s);
  });
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  return {
    port: (srv.address() as net.AddressInfo).port,
    close() {
      for (const s of sockets) s.destroy();
      srv.close();
    },
  };
}

/** `streams` connections writing as fast as they can for `ms`; resolves with the bytes written. */
async function bulk(port: number, streams: number, ms: number): Promise<number> {
  let bytes = 0;
  const end = performance.now() + ms;
  await Promise.all(
    Array.from({ length: streams }, async () => {
      const s = net.connect({ port, host: '127.0.0.1' });
      s.on('error', () => {});
      await once(s, 'connect');
      while (performance.now() < end) {
        bytes += CHUNK.length;
        if (!s.write(CHUNK)) await once(s, 'drain');
      }
      s.end();
      await once(s, 'close');
    }),
  );
  return bytes;
}

/** One short connection: request, answer, close; resolves true when the answer came. */
function shortConnection(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ port, host: '127.0.0.1' });
    let got = false;
    s.on('data', () => (got = true));
    s.on('error', () => {});
    s.on('close', () => resolve(got));
    s.end(REQUEST);
  });
}

async function connections(port: number, concurrency: number, ms: number): Promise<number> {
  let n = 0;
  const end = performance.now() + ms;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < end) if (await shortConnection(port)) n++;
    }),
  );
  return n;
}

interface Sample {
  seconds: number;
  cpuS: number;
  amount: number;
}

async function measure(pid: number, run: () => Promise<number>): Promise<Sample> {
  const c0 = cpuTimes(pid);
  const t0 = performance.now();
  const amount = await run();
  const seconds = (performance.now() - t0) / 1000;
  // The mirror connections finish after their primaries: let them in.
  await new Promise((r) => setTimeout(r, 500));
  const c1 = cpuTimes(pid);
  return { seconds, cpuS: c1.userS + c1.sysS - c0.userS - c0.sysS, amount };
}

async function main(): Promise<void> {
  const o = parseArgs(process.argv.slice(2));
  // The primary backend: a sink that answers a short request and closes.
  const backend = await server((s) => {
    s.on('data', (c: Buffer) => {
      if (c.length < 1024 && c.includes('\r\n\r\n')) s.end('HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok');
    });
    s.on('end', () => s.end());
  });
  // The mirror: a sink that closes when the client's copy ends.
  const mirror = await server((s) => {
    s.resume();
    s.on('end', () => s.end());
  });
  const dir = mkdtempSync(join(tmpdir(), 'l4lb-bench-mirror-'));
  const file = join(dir, 'l4lb.yaml');
  const app = `backends: [ "127.0.0.1:${backend.port}" ]`;
  writeFileSync(
    file,
    `listeners:
  - { name: none, listen: "127.0.0.1:0", pool: plain }
  - { name: zero, listen: "127.0.0.1:0", pool: zero }
  - { name: full, listen: "127.0.0.1:0", pool: full }
pools:
  - { name: plain, ${app} }
  - { name: zero, ${app}, mirror: { pool: shadow, percent: 0 } }
  - { name: full, ${app}, mirror: { pool: shadow, percent: 100 } }
  - { name: shadow, backends: [ "127.0.0.1:${mirror.port}" ] }
log: { level: warn, access: "off" }
`,
  );
  const { child, ports } = await startL4lbConfig(file, 3);
  const listeners: Array<[string, number]> = [
    ['no mirror', ports[0]],
    ['mirror, percent 0', ports[1]],
    ['mirror, percent 100', ports[2]],
  ];
  const ms = o.durationS * 1000;
  const bulkRes = new Map<string, Sample[]>();
  const connRes = new Map<string, Sample[]>();
  try {
    for (const [, port] of listeners) {
      await bulk(port, o.streams, 500);
      await connections(port, o.concurrency, 500);
    }
    for (let round = 0; round < o.rounds; round++) {
      const order = round % 2 === 0 ? listeners : [...listeners].reverse();
      for (const [name, port] of order) {
        bulkRes.set(name, [...(bulkRes.get(name) ?? []), await measure(child.pid!, () => bulk(port, o.streams, ms))]);
        connRes.set(name, [...(connRes.get(name) ?? []), await measure(child.pid!, () => connections(port, o.concurrency, ms))]);
      }
    }
  } finally {
    child.kill('SIGTERM');
    await once(child, 'exit');
    backend.close();
    mirror.close();
    rmSync(dir, { recursive: true, force: true });
  }

  const sum = (xs: Sample[], f: (s: Sample) => number) => xs.reduce((a, s) => a + f(s), 0);
  console.log(`\nl4lb CPU with mirroring; ${o.rounds} round(s) of ${o.durationS} s per phase, ${o.streams} bulk streams, ${o.concurrency} connection loops`);
  console.log('The clients and backends run on the same machine, in this process: compare the rows with each other.\n');
  console.log('| pool | bulk GB/s | CPU s per GB | new conn/s | CPU µs per connection |');
  console.log('|---|---:|---:|---:|---:|');
  for (const [name] of listeners) {
    const b = bulkRes.get(name)!;
    const c = connRes.get(name)!;
    const gb = sum(b, (s) => s.amount) / 1e9;
    const conns = sum(c, (s) => s.amount);
    console.log(
      `| ${name} | ${(gb / sum(b, (s) => s.seconds)).toFixed(2)} | ${(sum(b, (s) => s.cpuS) / gb).toFixed(3)} | ${Math.round(conns / sum(c, (s) => s.seconds))} | ${((sum(c, (s) => s.cpuS) * 1e6) / Math.max(1, conns)).toFixed(1)} |`,
    );
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
