/**
 * @module bench/shared-limits — `npm run bench:shared-limits`: the CPU l4lb spends per new
 * connection when its per-source limits are counted in Redis (`sourceLimits.shared`), against the
 * same limits counted in the process, in one run.
 *
 * One l4lb process (`l4lb --config`) with two listeners that differ only in `shared`, a backend
 * that greets and closes, a redis-server of its own (the tests' helper), and clients in this
 * process opening and closing connections as fast as `--concurrency` allows, from one source
 * (a busy client) or from `--sources` loopback addresses in turn (many clients). The limits are
 * high enough to admit every connection, so what is measured is the bookkeeping: leases taken,
 * renewed and given back. Four phases of `--duration` seconds, in alternating order per round:
 * local/one, shared/one, local/many, shared/many. Reported per phase: connections per second,
 * l4lb CPU µs per connection (user + system, from /proc), Redis CPU µs and Redis calls per
 * connection. The clients share the machine: compare phases with each other, not with other runs.
 */
import net from 'node:net';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';
import { cpuTimes } from './proc-stats.js';
import { startL4lbConfig } from './tools.js';
import { RedisServer } from '../test/support/redis.js';

/** Defaults: about 30 s in all. */
const DEFAULTS = { durationS: 3, rounds: 2, concurrency: 32, sources: 1000 };
/** Limits high enough that every connection is admitted: the cost of counting, not of refusing. */
const LIMITS = '{ ratePerSecond: 100000, burst: 100000, maxConnections: 10000 }';

interface Options {
  durationS: number;
  rounds: number;
  concurrency: number;
  sources: number;
}

function parseArgs(argv: string[]): Options {
  const o = { ...DEFAULTS };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const next = (): number => {
      const v = Number(argv[++i]);
      if (!Number.isFinite(v) || v <= 0) {
        console.error(`${a} needs a positive number`);
        process.exit(2);
      }
      return v;
    };
    if (a === '--duration') o.durationS = next();
    else if (a === '--rounds') o.rounds = Math.round(next());
    else if (a === '--concurrency') o.concurrency = Math.round(next());
    else if (a === '--sources') o.sources = Math.min(65_000, Math.round(next()));
    else {
      console.error(`unknown option ${a}; options: --duration S --rounds N --concurrency N --sources N`);
      process.exit(2);
    }
  }
  return o;
}

/** The i-th client source address: 127.1.0.1, 127.1.0.2, … (all of 127/8 is loopback on Linux). */
function sourceAddress(i: number): string {
  return `127.1.${Math.floor(i / 250)}.${(i % 250) + 1}`;
}

/** One connection: connect from `localAddress`, read the greeting (or see the close), close. */
function oneConnection(port: number, localAddress: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ port, host: '127.0.0.1', localAddress });
    let got = false;
    s.on('data', () => {
      got = true;
      s.destroy();
    });
    s.on('error', () => {});
    s.on('close', () => resolve(got));
  });
}

interface PhaseResult {
  name: string;
  connections: number;
  refused: number;
  seconds: number;
  l4lbCpuS: number;
  redisCpuS: number;
  redisCalls: number;
}

async function evalshaCalls(redis: RedisServer): Promise<number> {
  const info = await redis.command('INFO', 'commandstats');
  let calls = 0;
  for (const m of info.matchAll(/cmdstat_(?:evalsha|eval):calls=(\d+)/g)) calls += Number(m[1]);
  return calls;
}

async function phase(name: string, port: number, o: Options, many: boolean, l4lbPid: number, redis: RedisServer): Promise<PhaseResult> {
  const cpu0 = cpuTimes(l4lbPid);
  const rcpu0 = cpuTimes(redis.pid);
  const calls0 = await evalshaCalls(redis);
  const t0 = performance.now();
  const end = t0 + o.durationS * 1000;
  let connections = 0;
  let refused = 0;
  let next = 0;
  await Promise.all(
    Array.from({ length: o.concurrency }, async () => {
      while (performance.now() < end) {
        const src = many ? sourceAddress(next++ % o.sources) : '127.1.0.1';
        if (await oneConnection(port, src)) connections++;
        else refused++;
      }
    }),
  );
  const seconds = (performance.now() - t0) / 1000;
  // Give-backs and renewals that the phase caused land after it: let them in.
  await new Promise((r) => setTimeout(r, 1500));
  const cpu1 = cpuTimes(l4lbPid);
  const rcpu1 = cpuTimes(redis.pid);
  return {
    name,
    connections,
    refused,
    seconds,
    l4lbCpuS: cpu1.userS + cpu1.sysS - cpu0.userS - cpu0.sysS,
    redisCpuS: rcpu1.userS + rcpu1.sysS - rcpu0.userS - rcpu0.sysS,
    redisCalls: (await evalshaCalls(redis)) - calls0,
  };
}

async function main(): Promise<void> {
  const o = parseArgs(process.argv.slice(2));
  const backend = net.createServer((s) => {
    s.on('error', () => {});
    s.end('ok\n');
  });
  backend.listen(0, '127.0.0.1');
  await once(backend, 'listening');
  const backendPort = (backend.address() as net.AddressInfo).port;
  const redis = await RedisServer.start();
  const dir = mkdtempSync(join(tmpdir(), 'l4lb-bench-shared-'));
  const file = join(dir, 'l4lb.yaml');
  writeFileSync(
    file,
    `listeners:
  - name: local
    listen: 127.0.0.1:0
    pool: app
    sourceLimits: ${LIMITS}
  - name: shared
    listen: 127.0.0.1:0
    pool: app
    sourceLimits: { ${LIMITS.slice(2, -2)}, shared: { redis: "${redis.url}" } }
pools:
  - name: app
    backends: [ "127.0.0.1:${backendPort}" ]
log: { level: warn, access: "off" }
`,
  );
  const { child, ports } = await startL4lbConfig(file, 2);
  const [localPort, sharedPort] = ports;
  const results = new Map<string, PhaseResult[]>();
  try {
    // Warm-up: both paths, one second each, not reported.
    await phase('warm-up', localPort, { ...o, durationS: 1 }, true, child.pid!, redis);
    await phase('warm-up', sharedPort, { ...o, durationS: 1 }, true, child.pid!, redis);
    const phases: Array<[string, number, boolean]> = [
      ['local, one source', localPort, false],
      ['shared, one source', sharedPort, false],
      ['local, many sources', localPort, true],
      ['shared, many sources', sharedPort, true],
    ];
    for (let round = 0; round < o.rounds; round++) {
      const order = round % 2 === 0 ? phases : [...phases].reverse();
      for (const [name, port, many] of order) {
        const r = await phase(name, port, o, many, child.pid!, redis);
        results.set(name, [...(results.get(name) ?? []), r]);
      }
    }
  } finally {
    child.kill('SIGTERM');
    await once(child, 'exit');
    backend.close();
    await redis.close();
    rmSync(dir, { recursive: true, force: true });
  }

  console.log(`\nCPU per new connection, per-source limits local vs shared (Redis); ${o.rounds} round(s) of ${o.durationS} s, concurrency ${o.concurrency}, ${o.sources} sources for "many"`);
  console.log('The clients run on the same machine: compare the rows with each other.\n');
  console.log('| phase | conn/s | refused | l4lb CPU µs/conn | Redis CPU µs/conn | Redis calls/conn |');
  console.log('|---|---:|---:|---:|---:|---:|');
  for (const [name, rs] of results) {
    const sum = (f: (r: PhaseResult) => number) => rs.reduce((a, r) => a + f(r), 0);
    const conns = sum((r) => r.connections);
    const per = (x: number) => (conns > 0 ? (x * 1e6) / conns : 0);
    console.log(
      `| ${name} | ${Math.round(conns / sum((r) => r.seconds))} | ${sum((r) => r.refused)} | ${per(sum((r) => r.l4lbCpuS)).toFixed(1)} | ${per(sum((r) => r.redisCpuS)).toFixed(1)} | ${(sum((r) => r.redisCalls) / Math.max(1, conns)).toFixed(3)} |`,
    );
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
