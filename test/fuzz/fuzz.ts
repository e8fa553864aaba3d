/**
 * @module test/fuzz/fuzz — `npm run fuzz`: fast-check properties and corpus mutation for the
 * PROXY v1/v2 decoder, the TLS ClientHello parser, the config loader, the admin API's request
 * parsing and the CLI arguments, in process; then slices over real sockets through a running
 * l4lb (PROXY-in and SNI listeners, the admin server). See docs/fuzzing.md.
 *
 *   node dist/test/fuzz/fuzz.js [--budget 12m] [--parser NAME] [--seed N] [--jobs N] [--no-sockets]
 *
 * Every finding (an exception the parser's contract does not allow, a broken invariant, an
 * input that takes more than 100 ms) is saved under test/fuzz/corpus/<parser>/ and replayed by
 * test/fuzz/replay.test.ts. The exit code is 1 when anything was found.
 */
import { availableParallelism, loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { Worker } from 'node:worker_threads';
import { fileURLToPath } from 'node:url';
import { parseDuration } from '../../src/util/duration.js';
import { TARGETS, TARGET_NAMES, type TargetName } from './targets.js';
import { deriveSeed } from './mutate.js';
import { saveReproducer, textOf, type Reproducer } from './corpus.js';
import {
  SHARED_COUNTER,
  SHARED_HEADER_BYTES,
  SHARED_INPUT_BYTES,
  SHARED_LENGTH,
  SHARED_PHASE,
  SHARED_VARIANT,
  signatureOf,
  type WorkerJob,
  type WorkerMessage,
  type WorkerStats,
} from './worker.js';
import { SOCKET_PARSERS, runSocketSlice, type SliceFinding } from './sockets.js';

/**
 * Default total time. The config loader is the slow one (about 2,000 inputs per CPU-second,
 * most of it in the yaml parser): a million of its inputs take about eight minutes of one core,
 * the other four parsers a million each in well under a minute. 12 minutes leaves room for
 * the socket slices and worker start-up (docs/fuzzing.md has the measurements).
 */
const DEFAULT_BUDGET = '12m';
/** An input that takes longer than this is a finding. */
export const HANG_MS = 100;
/** A worker whose input counter has not moved for this long is stuck on one input. */
const WATCHDOG_MS = 5_000;
/** Inputs each parser should get in process with the default budget. */
const TARGET_INPUTS = 1_000_000;
/** Part of the budget for the socket slices (shared by the parsers that have one). */
const SOCKET_SHARE = 0.1;
/**
 * The order the parsers run in: fastest first. Each stops at a million inputs, so the time the
 * fast ones do not need passes to the config loader, which is the slowest by far.
 */
const RUN_ORDER: readonly TargetName[] = ['proxy', 'tls', 'admin', 'cli', 'config'];
/** The parser that needs most of the time, which runs alongside the others (see main). */
const SLOWEST: TargetName = 'config';

/**
 * Workers per parser running at once (`--jobs`; default: one per CPU, at most this many). Each
 * takes its share of the parser's inputs with its own seed. On a machine shared with other
 * work the scheduler gives each thread its share, so two workers get the config loader twice
 * the CPU time one would.
 */
const MAX_DEFAULT_JOBS = 4;

const WORKER_URL = new URL('./worker.js', import.meta.url);
const WORKER_STACK_MB = 1.15;

interface ParserTotals {
  inputs: number;
  ms: number;
  /** CPU time of the runs that reported it (all but those ended by the watchdog). */
  cpuMs: number;
  cpuInputs: number;
  socketInputs: number;
  socketMs: number;
  /** Unique findings (by signature) and how often each was hit. */
  findings: Map<string, { hits: number; file?: string; message: string }>;
}

function usage(message: string): never {
  process.stderr.write(`fuzz: ${message}\nusage: node dist/test/fuzz/fuzz.js [--budget 12m] [--parser ${TARGET_NAMES.join('|')}] [--seed N] [--jobs N] [--no-sockets]\n`);
  process.exit(2);
}

function parseOptions(): { budgetMs: number; parsers: TargetName[]; seed: number; jobs: number; sockets: boolean } {
  let v;
  try {
    v = parseArgs({
      options: {
        budget: { type: 'string' },
        parser: { type: 'string' },
        seed: { type: 'string' },
        jobs: { type: 'string' },
        'no-sockets': { type: 'boolean' },
      },
    }).values;
  } catch (err) {
    usage((err as Error).message);
  }
  const budgetMs = parseDuration(v.budget ?? DEFAULT_BUDGET);
  if (budgetMs === undefined || budgetMs <= 0) usage(`--budget: "${v.budget}" is not a duration such as 10m or 90s`);
  if (v.parser !== undefined && !(TARGET_NAMES as readonly string[]).includes(v.parser)) usage(`--parser: "${v.parser}" is not one of ${TARGET_NAMES.join(', ')}`);
  if (v.seed !== undefined && !/^\d{1,10}$/.test(v.seed)) usage(`--seed: "${v.seed}" is not a whole number`);
  if (v.jobs !== undefined && !/^([1-9]|[1-5][0-9]|6[0-4])$/.test(v.jobs)) usage(`--jobs: "${v.jobs}" is not a number of workers from 1 to 64`);
  const seed = v.seed !== undefined ? Number(v.seed) >>> 0 : (Date.now() ^ (process.pid << 16)) >>> 0;
  const jobs = v.jobs !== undefined ? Number(v.jobs) : Math.min(MAX_DEFAULT_JOBS, availableParallelism());
  return { budgetMs, parsers: v.parser !== undefined ? [v.parser as TargetName] : [...TARGET_NAMES], seed, jobs, sockets: !v['no-sockets'] };
}

function log(line: string): void {
  process.stderr.write(`${line}\n`);
}

/**
 * Runs `parser` in `jobs` workers at once, each for `timeMs` or its share of `maxInputs`,
 * whichever comes first; a worker ended by a hang is replaced (with a new derived seed).
 * Findings are saved as they arrive.
 */
async function runInProcess(parser: TargetName, timeMs: number, seed: number, round: number, totals: ParserTotals, maxInputs: number, jobs: number): Promise<void> {
  const deadline = Date.now() + timeMs;
  const share = Math.ceil(maxInputs / jobs);
  const started = Date.now();
  const lane = async (k: number): Promise<void> => {
    let ran = 0;
    for (let restart = 0; Date.now() < deadline - 50 && ran < share; restart++) {
      // Lane 0 derives its seeds as a single worker always did, so older seeds still replay.
      const subSeed = deriveSeed(seed, k === 0 ? parser : `${parser}#${k}`, round * 1000 + restart);
      const shared = new SharedArrayBuffer(SHARED_HEADER_BYTES + SHARED_INPUT_BYTES);
      const job: WorkerJob = {
        parser,
        subSeed,
        timeMs: deadline - Date.now(),
        maxInputs: share - ran,
        propertyShare: TARGETS[parser].propertyShare,
        hangMs: HANG_MS,
        shared,
      };
      const stats = await runWorker(job, seed, totals);
      ran += stats.inputs;
      totals.inputs += stats.inputs;
      if (stats.cpuMs > 0) {
        totals.cpuMs += stats.cpuMs;
        totals.cpuInputs += stats.inputs;
      }
    }
  };
  await Promise.all(Array.from({ length: jobs }, (_, k) => lane(k)));
  totals.ms += Date.now() - started;
}

function recordFinding(totals: ParserTotals, signature: string, message: string, hits: number, r: Reproducer | undefined): void {
  const known = totals.findings.get(signature);
  if (known) {
    known.hits += hits;
    return;
  }
  const file = r ? saveReproducer(r) : undefined;
  totals.findings.set(signature, { hits, file, message });
  log(`  FINDING ${r?.parser ?? ''} ${signature}${file ? `\n    saved ${file}` : ''}`);
}

function runWorker(job: WorkerJob, seed: number, totals: ParserTotals): Promise<WorkerStats> {
  const target = TARGETS[job.parser];
  const header = new Int32Array(job.shared, 0, SHARED_HEADER_BYTES / 4);
  const started = Date.now();
  return new Promise((resolve) => {
    // l4lb parses on its main thread: give the worker that thread's stack (V8's ~984 KiB plus
    // the margin Node keeps), so that recursion too deep for l4lb is too deep here as well.
    const worker = new Worker(WORKER_URL, { workerData: job, resourceLimits: { stackSizeMb: WORKER_STACK_MB } });
    let finished = false;
    let lastCount = -1;
    let lastMove = Date.now();
    const reproducer = (m: { kind: Reproducer['kind']; message: string; variant: string; bytes: Uint8Array; expect?: unknown; phase: Reproducer['phase']; index: number }): Reproducer => {
      const bytes = Buffer.from(m.bytes);
      const text = target.profile.text ? textOf(bytes) : undefined;
      return {
        parser: job.parser,
        variant: m.variant,
        kind: m.kind,
        description: m.message,
        seed,
        subSeed: job.subSeed,
        index: m.index,
        phase: m.phase,
        found: new Date().toISOString(),
        bytes: bytes.toString('base64'),
        ...(text !== undefined && { text }),
        ...(m.expect !== undefined && { expect: m.expect }),
      };
    };
    const finish = (stats: WorkerStats) => {
      if (finished) return;
      finished = true;
      clearInterval(watchdog);
      resolve(stats);
    };
    const watchdog = setInterval(() => {
      const count = Atomics.load(header, SHARED_COUNTER);
      if (count !== lastCount) {
        lastCount = count;
        lastMove = Date.now();
        return;
      }
      if (Date.now() - lastMove < WATCHDOG_MS) return;
      // Stuck on one input: save it, end the worker; the caller starts a new one.
      const n = header[SHARED_LENGTH];
      const bytes = new Uint8Array(job.shared, SHARED_HEADER_BYTES, n).slice();
      const variant = target.variants[header[SHARED_VARIANT]] ?? target.variants[0];
      const message = `no answer within ${WATCHDOG_MS} ms on ${n} bytes`;
      const phase = header[SHARED_PHASE] === 1 ? 'property' : 'mutation';
      recordFinding(totals, signatureOf('hang', message), message, 1, reproducer({ kind: 'hang', message, variant, bytes, phase, index: count }));
      void worker.terminate();
      finish({ inputs: count, propertyInputs: 0, mutationInputs: 0, verdicts: { accepted: 0, rejected: 0, incomplete: 0 }, hits: {}, elapsedMs: Date.now() - started, cpuMs: 0 });
    }, 250);
    worker.on('message', (m: WorkerMessage) => {
      if (m.type === 'finding') {
        recordFinding(totals, m.signature, m.message, 0, reproducer(m));
      } else {
        for (const [sig, hits] of Object.entries(m.stats.hits)) {
          const f = totals.findings.get(sig);
          if (f) f.hits += hits;
        }
        finish(m.stats);
      }
    });
    worker.on('error', (err) => {
      // The worker itself died (out of memory, a bug in the harness): say so, count what ran.
      const message = `worker died: ${err.message}`;
      recordFinding(totals, signatureOf('exception', message), message, 1, undefined);
      finish({ inputs: Atomics.load(header, SHARED_COUNTER), propertyInputs: 0, mutationInputs: 0, verdicts: { accepted: 0, rejected: 0, incomplete: 0 }, hits: {}, elapsedMs: Date.now() - started, cpuMs: 0 });
    });
    worker.on('exit', () => {
      if (!finished) finish({ inputs: Atomics.load(header, SHARED_COUNTER), propertyInputs: 0, mutationInputs: 0, verdicts: { accepted: 0, rejected: 0, incomplete: 0 }, hits: {}, elapsedMs: Date.now() - started, cpuMs: 0 });
    });
  });
}

function pad(s: string, n: number, right = false): string {
  return right ? s.padStart(n) : s.padEnd(n);
}

function summary(parsers: TargetName[], totals: Map<TargetName, ParserTotals>, seed: number, wallMs: number, jobs: number, load: string): string {
  const rows = [['parser', 'inputs', 'inputs/s', 'inputs/CPU-s', 'socket inputs', 'findings', 'hits']];
  for (const p of parsers) {
    const t = totals.get(p)!;
    const hits = [...t.findings.values()].reduce((a, f) => a + Math.max(1, f.hits), 0);
    rows.push([
      p,
      String(t.inputs),
      t.ms > 0 ? String(Math.round((t.inputs / t.ms) * 1000)) : '-',
      t.cpuMs > 0 ? String(Math.round((t.cpuInputs / t.cpuMs) * 1000)) : '-',
      SOCKET_PARSERS.includes(p) ? String(t.socketInputs) : '-',
      String(t.findings.size),
      String(t.findings.size > 0 ? hits : 0),
    ]);
  }
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  const lines = rows.map((r) => r.map((cell, c) => pad(cell, widths[c], c > 0)).join('  '));
  lines.splice(1, 0, widths.map((w) => '-'.repeat(w)).join('  '));
  return `\nfuzz summary (seed ${seed}, ${(wallMs / 1000).toFixed(0)} s, ${jobs} worker(s) per parser, load average ${load})\n${lines.join('\n')}\n`;
}

async function main(): Promise<void> {
  const { budgetMs, parsers, seed, jobs, sockets } = parseOptions();
  const started = Date.now();
  const loadAtStart = loadavg()[0];
  log(`fuzz: seed ${seed}, budget ${Math.round(budgetMs / 1000)} s, parsers ${parsers.join(', ')}, ${jobs} worker(s) per parser`);
  const totals = new Map<TargetName, ParserTotals>(
    parsers.map((p) => [p, { inputs: 0, ms: 0, cpuMs: 0, cpuInputs: 0, socketInputs: 0, socketMs: 0, findings: new Map() }]),
  );
  const socketParsers = sockets ? parsers.filter((p) => SOCKET_PARSERS.includes(p)) : [];
  const socketMs = socketParsers.length > 0 ? budgetMs * SOCKET_SHARE : 0;
  const inProcessEnd = started + budgetMs - socketMs;

  // The slowest parser (the config loader) runs from the start to the end of the budget, or
  // to its million, alongside everything else: it needs most of the CPU time, and on a shared
  // machine its workers get their share of the CPU all along. Beside it, the fast parsers run
  // one after the other, fastest first, each with an equal share of the in-process time left,
  // stopping at a million; time left when all have theirs is shared out among them; then the
  // socket slices run.
  const order = RUN_ORDER.filter((p) => parsers.includes(p));
  const slow = order.length > 1 && order[order.length - 1] === SLOWEST ? SLOWEST : undefined;
  const fast = order.filter((p) => p !== slow);
  let slowDone = slow === undefined;
  let onSlowDone: () => void = () => {};
  const slowFinished = new Promise<void>((resolve) => (onSlowDone = resolve));
  const slowLane = async (): Promise<void> => {
    if (slow === undefined) return;
    const t = totals.get(slow)!;
    const ms = Math.max(0, started + budgetMs - Date.now());
    log(`  ${slow}: up to ${(ms / 1000).toFixed(1)} s in process, alongside the others, stopping at ${TARGET_INPUTS} inputs`);
    await runInProcess(slow, ms, seed, 0, t, TARGET_INPUTS, jobs);
    slowDone = true;
    onSlowDone();
    log(`  ${slow}: ${t.inputs} inputs, ${t.findings.size} findings`);
  };
  const socketSlices = async (): Promise<void> => {
    for (const p of socketParsers) {
      const ms = Math.max(1000, (started + budgetMs - Date.now()) / (socketParsers.length - socketParsers.indexOf(p)));
      log(`  ${p}: ${(ms / 1000).toFixed(1)} s over real sockets`);
      const t = totals.get(p)!;
      const t0 = Date.now();
      const result = await runSocketSlice(p, ms, deriveSeed(seed, `${p}-socket`), (f: SliceFinding) => {
        const r: Reproducer | undefined = f.input
          ? {
              parser: p,
              variant: f.input.variant,
              kind: 'socket',
              description: f.message,
              seed,
              subSeed: deriveSeed(seed, `${p}-socket`),
              index: f.index,
              phase: 'socket',
              found: new Date().toISOString(),
              bytes: f.input.bytes.toString('base64'),
            }
          : undefined;
        recordFinding(t, signatureOf('socket', f.message), f.message, 1, r);
      });
      t.socketInputs += result.connections;
      t.socketMs += Date.now() - t0;
      log(`  ${p}: ${result.connections} connections over sockets (${result.detail})`);
    }
  };
  const fastLane = async (): Promise<void> => {
    for (const [k, p] of fast.entries()) {
      const t = totals.get(p)!;
      const ms = Math.max(0, inProcessEnd - Date.now()) / (fast.length - k);
      log(`  ${p}: up to ${(ms / 1000).toFixed(1)} s in process, stopping at ${TARGET_INPUTS} inputs`);
      await runInProcess(p, ms, seed, 0, t, TARGET_INPUTS, jobs);
      log(`  ${p}: ${t.inputs} inputs, ${t.findings.size} findings`);
    }
    // The fast ones are done early: the CPU is the slow one's until the socket slices' time
    // (or until it has its million).
    if (!slowDone) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([slowFinished, new Promise<void>((resolve) => (timer = setTimeout(resolve, Math.max(0, inProcessEnd - Date.now()))))]);
      clearTimeout(timer);
    }
    // Every parser has its million and time is left: share it (unless the slow one still
    // needs the CPU for its million).
    for (const [k, p] of fast.entries()) {
      const ms = Math.max(0, inProcessEnd - Date.now()) / (fast.length - k);
      if (ms < 1000 || !slowDone) break;
      const t = totals.get(p)!;
      log(`  ${p}: ${(ms / 1000).toFixed(1)} s more in process`);
      await runInProcess(p, ms, seed, 1, t, Number.POSITIVE_INFINITY, jobs);
      log(`  ${p}: ${t.inputs} inputs, ${t.findings.size} findings`);
    }
    await socketSlices();
  };
  await Promise.all([slowLane(), fastLane()]);

  // The 1-minute load average at the start and the 15-minute one at the end: how shared the machine was.
  const load = `${loadAtStart.toFixed(1)} at the start, ${loadavg()[2].toFixed(1)} over the last 15 min`;
  process.stdout.write(summary(parsers, totals, seed, Date.now() - started, jobs, load));
  const found = [...totals.values()].reduce((a, t) => a + t.findings.size, 0);
  if (found > 0) {
    process.stdout.write(`\n${found} finding(s):\n`);
    for (const [p, t] of totals) for (const [sig, f] of t.findings) process.stdout.write(`  ${p}: ${sig}${f.file ? `\n    ${f.file}` : ''}\n`);
  }
  process.exitCode = found > 0 ? 1 : 0;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  main().catch((err: unknown) => {
    process.stderr.write(`fuzz: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(2);
  });
}
