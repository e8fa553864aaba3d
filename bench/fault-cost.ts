/**
 * @module bench/fault-cost — `node dist/bench/fault-cost.js`: CPU per connection of an l4lb
 * listener with and without fault injection (docs/performance.md, "Fault injection").
 *
 * Starts an echo backend here and `l4lb --listen 127.0.0.1:0 --access-log off [EXTRA] BACKEND`
 * as a child, runs short connections through it (connect, 64 bytes each way, close), and reads
 * the child's CPU time (utime + stime, /proc) around them: CPU per connection, not a rate, so a
 * shared machine shifts it less (it still does: say so with the numbers). Rounds alternate
 * between the variants so that load changes hit both alike.
 *
 * Usage: node dist/bench/fault-cost.js [--connections N] [--rounds R] [--concurrency C]
 *          [--variant NAME=BIN[,EXTRA ARGS...]]...
 * Default variants: `off` (this build, no fault API) and `api` (this build, --faults-api
 * 127.0.0.1:0, no toxic). `--variant main=/path/to/other/bin/l4lb.js` compares another build.
 */
import net from 'node:net';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { cpuTimes } from './proc-stats.js';

interface Variant {
  name: string;
  bin: string;
  extra: string[];
}

const OWN_BIN = join(fileURLToPath(new URL('.', import.meta.url)), '..', '..', 'bin', 'l4lb.js');
const PAYLOAD = Buffer.alloc(64, 0x61);

function parse(argv: string[]): { connections: number; rounds: number; concurrency: number; variants: Variant[] } {
  let connections = 5000;
  let rounds = 5;
  let concurrency = 16;
  const variants: Variant[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--connections') connections = Number(argv[++i]);
    else if (a === '--rounds') rounds = Number(argv[++i]);
    else if (a === '--concurrency') concurrency = Number(argv[++i]);
    else if (a === '--variant') {
      const [name, rest] = (argv[++i] ?? '').split('=');
      const [bin, ...extra] = (rest ?? '').split(',');
      variants.push({ name, bin: bin || OWN_BIN, extra });
    } else throw new Error(`unknown option ${a}`);
  }
  if (variants.length === 0) {
    variants.push({ name: 'off', bin: OWN_BIN, extra: [] }, { name: 'api', bin: OWN_BIN, extra: ['--faults-api', '127.0.0.1:0'] });
  }
  return { connections, rounds, concurrency, variants };
}

async function startL4lb(v: Variant, backendPort: number): Promise<{ child: ChildProcess; port: number }> {
  const child = spawn(process.execPath, [v.bin, '--listen', '127.0.0.1:0', '--access-log', 'off', '--log-level', 'warn', ...v.extra, `127.0.0.1:${backendPort}`], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  const port = await new Promise<number>((resolve, reject) => {
    child.stdout!.on('data', (c: Buffer) => {
      out += c.toString();
      const m = /listening on 127\.0\.0\.1:(\d+)/.exec(out);
      if (m) resolve(Number(m[1]));
    });
    child.on('exit', (code) => reject(new Error(`${v.name}: l4lb exited (${code}) before listening`)));
  });
  return { child, port };
}

/** One connection: 64 bytes there and back, then close. */
function oneConnection(port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ port, host: '127.0.0.1' });
    let got = 0;
    s.on('connect', () => s.end(PAYLOAD));
    s.on('data', (c: Buffer) => (got += c.length));
    s.on('close', () => (got === PAYLOAD.length ? resolve() : reject(new Error(`echo: ${got} bytes`))));
    s.on('error', reject);
  });
}

async function run(port: number, n: number, concurrency: number): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < n) {
        next++;
        await oneConnection(port);
      }
    }),
  );
}

async function main(): Promise<void> {
  const o = parse(process.argv.slice(2));
  const backend = net.createServer((s) => s.pipe(s));
  backend.listen(0, '127.0.0.1');
  await once(backend, 'listening');
  const backendPort = (backend.address() as net.AddressInfo).port;
  const procs = await Promise.all(o.variants.map((v) => startL4lb(v, backendPort)));
  // Warm-up: JIT and buffer pools, not measured.
  for (const p of procs) await run(p.port, 1000, o.concurrency);
  const samples = new Map<string, number[]>(o.variants.map((v) => [v.name, []]));
  for (let r = 0; r < o.rounds; r++) {
    for (const [i, v] of o.variants.entries()) {
      const pid = procs[i].child.pid!;
      const before = cpuTimes(pid);
      const t0 = performance.now();
      await run(procs[i].port, o.connections, o.concurrency);
      const wall = performance.now() - t0;
      const after = cpuTimes(pid);
      const cpuUs = ((after.userS + after.sysS - before.userS - before.sysS) * 1e6) / o.connections;
      samples.get(v.name)!.push(cpuUs);
      process.stdout.write(`round ${r + 1} ${v.name}: ${cpuUs.toFixed(1)} µs CPU per connection (${((o.connections / wall) * 1000).toFixed(0)} conn/s)\n`);
    }
  }
  for (const p of procs) p.child.kill('SIGKILL');
  backend.close();
  process.stdout.write('\nvariant  median µs/conn  min  max\n');
  for (const [name, xs] of samples) {
    const s = [...xs].sort((a, b) => a - b);
    process.stdout.write(`${name.padEnd(8)} ${s[Math.floor(s.length / 2)].toFixed(1).padStart(14)} ${s[0].toFixed(1).padStart(4)} ${s[s.length - 1].toFixed(1).padStart(4)}\n`);
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
