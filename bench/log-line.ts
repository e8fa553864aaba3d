/**
 * What one access-log line costs, in CPU, in this process: l4lb's access log (batched
 * LineWriter) against the pino setup it replaced (pino + an asynchronous pino.destination, a
 * `fs.write` on the thread pool whenever no write was in flight), to a file.
 *
 *   node dist/bench/log-line.js [--lines N] [--per-turn K] [--dir DIR]
 *
 * Lines are written K per event-loop turn (default 4: about what a proxy closing ~10,000
 * connections a second sees per turn), as connections close. CPU is process.cpuUsage(), which
 * counts every thread (the thread pool included), from the first line until the last has
 * reached the file. The per-connection cost in the proxy is measured by `npm run bench`
 * ("new connections, logs on"); this isolates the log line.
 */
import fs from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { createAccessLog } from '../src/observability/access-log.js';
import { silentLogger } from '../src/observability/log.js';
import type { AccessRecord } from '../src/proxy/connection.js';

const { values } = parseArgs({
  options: {
    lines: { type: 'string', default: '200000' },
    'per-turn': { type: 'string', default: '4' },
    dir: { type: 'string' },
  },
});
const LINES = Number(values.lines);
const PER_TURN = Number(values['per-turn']);
const dir = values.dir ?? fs.mkdtempSync(join(os.tmpdir(), 'l4lb-log-line-'));

function record(i: number): AccessRecord {
  return {
    listener: 'default',
    client: '127.0.0.1',
    clientPort: 30000 + (i % 30000),
    pool: 'default',
    backend: '127.0.0.1:8081',
    backendAddress: '127.0.0.1:8081',
    serverName: undefined,
    tries: 1,
    retries: 0,
    connectMs: 0.21,
    durationMs: 1,
    bytesUp: 79,
    bytesDown: 158,
    closedFirst: 'client',
    closeKind: 'fin',
    reason: 'client_closed',
  };
}

interface Writer {
  write(rec: AccessRecord): void;
  /** Resolves once every line is in the file. */
  done(): Promise<void>;
}

/** The access log before session 5: pino with an asynchronous destination. */
function pinoWriter(file: string): Writer {
  const dest = pino.destination({ dest: file, sync: false, mkdir: true });
  const logger = pino({ base: undefined, timestamp: pino.stdTimeFunctions.isoTime, formatters: { level: () => ({}) } }, dest);
  return {
    write: (rec) => logger.info(rec),
    done: () =>
      new Promise((resolve) => {
        dest.once('close', () => resolve());
        dest.end();
      }),
  };
}

function l4lbWriter(file: string): Writer {
  const log = createAccessLog(file, silentLogger());
  return {
    write: (rec) => log.write(rec),
    done: async () => log.close(),
  };
}

async function run(name: string, make: (file: string) => Writer): Promise<void> {
  const file = join(dir, `${name}.log`);
  fs.rmSync(file, { force: true });
  const w = make(file);
  const recs = Array.from({ length: 1000 }, (_, i) => record(i));
  const t0 = process.cpuUsage();
  const w0 = performance.now();
  for (let i = 0; i < LINES; ) {
    for (let k = 0; k < PER_TURN && i < LINES; k++, i++) w.write(recs[i % recs.length]);
    await new Promise((r) => setImmediate(r));
  }
  await w.done();
  const cpu = process.cpuUsage(t0);
  const wall = performance.now() - w0;
  const lines = fs.readFileSync(file, 'utf8').split('\n').length - 1;
  const per = (n: number) => ((n / LINES) as number).toFixed(2);
  console.log(
    `${name.padEnd(6)} ${String(lines).padStart(8)} lines  CPU ${per(cpu.user + cpu.system)} µs/line (user ${per(cpu.user)}, system ${per(cpu.system)})  wall ${((wall * 1000) / LINES).toFixed(2)} µs/line`,
  );
  if (lines !== LINES) throw new Error(`${name}: ${lines} lines in the file, ${LINES} written`);
}

// The loop itself (a setImmediate per turn) costs the same for both; it is measured alone so
// the difference is the log line.
async function baseline(): Promise<void> {
  const t0 = process.cpuUsage();
  for (let i = 0; i < LINES; i += PER_TURN) await new Promise((r) => setImmediate(r));
  const cpu = process.cpuUsage(t0);
  console.log(`loop   (no line: the event-loop turns alone) CPU ${((cpu.user + cpu.system) / LINES).toFixed(2)} µs/line`);
}

console.log(`${LINES} lines, ${PER_TURN} per event-loop turn, Node ${process.version}, files in ${dir}`);
for (let round = 0; round < 2; round++) {
  await baseline();
  await run('pino', pinoWriter);
  await run('l4lb', l4lbWriter);
}
if (!values.dir) fs.rmSync(dir, { recursive: true, force: true });
