/**
 * @module test/fuzz/worker — runs one target for a time slice in a worker thread: first its
 * fast-check properties, then mutation of the seed corpus. Findings go to the main thread as
 * messages; before each input its bytes go into shared memory with a counter, so that when an
 * input never returns, the main thread (which watches the counter) can end this worker and
 * still save the input that hung it.
 */
import { readFileSync } from 'node:fs';
import { parentPort, workerData } from 'node:worker_threads';
import fc from 'fast-check';
import { Finding, TARGETS, unexpected, type FuzzCase, type FuzzInput, type TargetName, type Verdict } from './targets.js';
import { Rng, mutate } from './mutate.js';
import { loadSeeds } from './corpus.js';

/** What the main thread passes to a worker. */
export interface WorkerJob {
  parser: TargetName;
  subSeed: number;
  timeMs: number;
  /** Stop after this many inputs (Infinity: only the time counts). */
  maxInputs: number;
  /** Part of the slice (time and inputs) given to the properties (the rest is mutation). */
  propertyShare: number;
  hangMs: number;
  /** Int32 header (see the SHARED_* offsets) followed by the input's bytes. */
  shared: SharedArrayBuffer;
}

/** Shared memory layout: Int32 slots, then the bytes of the input being run. */
export const SHARED_COUNTER = 0;
export const SHARED_LENGTH = 1;
export const SHARED_VARIANT = 2;
export const SHARED_PHASE = 3;
export const SHARED_HEADER_BYTES = 16;
export const SHARED_INPUT_BYTES = 256 * 1024;

/** Messages a worker sends. */
export type WorkerMessage =
  | {
      type: 'finding';
      kind: Finding['kind'];
      message: string;
      signature: string;
      variant: string;
      bytes: Uint8Array;
      expect?: unknown;
      phase: 'property' | 'mutation';
      index: number;
    }
  | { type: 'done'; stats: WorkerStats };

export interface WorkerStats {
  inputs: number;
  propertyInputs: number;
  mutationInputs: number;
  verdicts: Record<Verdict, number>;
  /** Findings by signature, repeats included. */
  hits: Record<string, number>;
  elapsedMs: number;
  /**
   * CPU time of this worker's thread over the run ({@link threadCpuMs}). On a machine shared
   * with other work it says what the run would take on a quiet one.
   */
  cpuMs: number;
}

/**
 * CPU time of the calling thread, ms. Several workers run at once, so the process's CPU time
 * (process.cpuUsage) would charge each with the others' work: Node ≥ 23.9 has
 * process.threadCpuUsage; before it, Linux gives the thread's run time in ns in
 * /proc/thread-self/schedstat. Elsewhere the process's time is the best there is.
 */
export function threadCpuMs(): number {
  const own = (process as { threadCpuUsage?: () => NodeJS.CpuUsage }).threadCpuUsage;
  if (typeof own === 'function') {
    const u = own.call(process);
    return (u.user + u.system) / 1000;
  }
  try {
    return Number(readFileSync('/proc/thread-self/schedstat', 'latin1').split(' ')[0]) / 1e6;
  } catch {
    const u = process.cpuUsage();
    return (u.user + u.system) / 1000;
  }
}

/** Groups findings that are the same bug: numbers and quoted text do not matter. */
export function signatureOf(kind: string, message: string): string {
  return `${kind}: ${message.replace(/"(?:[^"\\]|\\.)*"/g, '"…"').replace(/\d+/g, 'N')}`.slice(0, 160);
}

/**
 * The parsers make many errors (the yaml package one per syntax problem), and capturing ten
 * stack frames for each was a fifth of the config loader's time; one frame still says where an
 * unexpected exception came from. Recursion depth does not depend on it.
 */
const FUZZ_STACK_TRACE_LIMIT = 1;

function main(job: WorkerJob): void {
  Error.stackTraceLimit = FUZZ_STACK_TRACE_LIMIT;
  // The yaml package reads process.env (LOG_TOKENS, LOG_STREAM) for every token it parses, and
  // process.env is an object backed by native code, slow to read: about a fifth of the config
  // loader's time here. A plain copy holds the same values at the cost of an object lookup.
  process.env = { ...process.env };
  const target = TARGETS[job.parser];
  const header = new Int32Array(job.shared, 0, SHARED_HEADER_BYTES / 4);
  const inputView = new Uint8Array(job.shared, SHARED_HEADER_BYTES);
  const stats: WorkerStats = {
    inputs: 0,
    propertyInputs: 0,
    mutationInputs: 0,
    verdicts: { accepted: 0, rejected: 0, incomplete: 0 },
    hits: {},
    elapsedMs: 0,
    cpuMs: 0,
  };
  const started = performance.now();
  const cpuStart = threadCpuMs();
  const end = started + job.timeMs;

  /** Runs one case; returns the finding, if any (hangs confirmed by a second run). */
  function runOne(c: FuzzCase, phase: number): { verdict?: Verdict; finding?: Finding } {
    const { bytes, variant } = c.input;
    const n = Math.min(bytes.length, SHARED_INPUT_BYTES);
    inputView.set(n === bytes.length ? bytes : bytes.subarray(0, n));
    header[SHARED_LENGTH] = n;
    header[SHARED_VARIANT] = target.variants.indexOf(variant);
    header[SHARED_PHASE] = phase;
    Atomics.add(header, SHARED_COUNTER, 1);
    stats.inputs++;
    const t0 = performance.now();
    let verdict: Verdict | undefined;
    let finding: Finding | undefined;
    try {
      verdict = target.check(c.input, c.expect);
    } catch (err) {
      finding = unexpected(err);
    }
    const ms = performance.now() - t0;
    if (finding === undefined && ms > job.hangMs) {
      // A slow run can be a GC pause or a machine busy with other work: run it again and count
      // the CPU time this thread spends on it, so that only the input's own cost is judged.
      const cpu0 = threadCpuMs();
      try {
        target.check(c.input, c.expect);
      } catch {
        // The first run passed; only the time is measured here.
      }
      const cpuMs = threadCpuMs() - cpu0;
      if (cpuMs > job.hangMs) {
        finding = new Finding('hang', `took ${Math.round(cpuMs)} ms of CPU (limit ${job.hangMs} ms) on ${bytes.length} bytes`);
      }
    }
    if (verdict !== undefined) stats.verdicts[verdict]++;
    return { verdict, finding };
  }

  const reported = new Set<string>();
  function report(f: Finding, c: FuzzCase, phase: 'property' | 'mutation', index: number): void {
    const signature = signatureOf(f.kind, f.message);
    stats.hits[signature] = (stats.hits[signature] ?? 0) + 1;
    if (reported.has(signature)) return;
    reported.add(signature);
    const msg: WorkerMessage = {
      type: 'finding',
      kind: f.kind,
      message: f.message,
      signature,
      variant: c.input.variant,
      bytes: new Uint8Array(c.input.bytes),
      ...(c.expect !== undefined && { expect: c.expect }),
      phase,
      index,
    };
    parentPort!.postMessage(msg);
  }

  // --- properties: each one in turn, a new seed after every failure, until their share ends ---
  const properties = target.properties();
  const propertyEnd = started + job.timeMs * job.propertyShare;
  const propertyInputs = job.maxInputs * job.propertyShare;
  const rng = new Rng(job.subSeed);
  for (let round = 0; performance.now() < propertyEnd && stats.inputs < propertyInputs && round < 1000; round++) {
    const left = properties.length - (round % properties.length);
    const slice = (propertyEnd - performance.now()) / left;
    const runs = Math.min(Number.MAX_SAFE_INTEGER, Math.ceil((propertyInputs - stats.inputs) / left));
    const arb = properties[round % properties.length];
    if (slice < 5) break;
    const details = fc.check(
      fc.property(arb, (c) => {
        stats.propertyInputs++;
        const { finding } = runOne(c, 1);
        if (finding) throw finding;
      }),
      { seed: rng.u32() | 0, numRuns: runs, interruptAfterTimeLimit: slice, markInterruptAsFailure: false },
    );
    if (details.failed && details.counterexample) {
      const c = details.counterexample[0];
      const { finding } = runOne(c, 1);
      const f = finding ?? (details.errorInstance instanceof Finding ? details.errorInstance : unexpected(details.errorInstance));
      report(f, c, 'property', details.numRuns);
    }
  }

  // --- mutation: seeds and the accepted inputs grown from them, mutated in stacks ---
  const seeds = loadSeeds(job.parser);
  const pool: FuzzInput[] = [...seeds];
  const byVariant = new Map<string, Buffer[]>();
  for (const s of seeds) byVariant.set(s.variant, [...(byVariant.get(s.variant) ?? []), s.bytes]);
  const POOL_MAX = 4096;
  let index = 0;
  while (performance.now() < end && stats.inputs < job.maxInputs) {
    for (let k = 0; k < 64; k++, index++) {
      const base = rng.pick(pool);
      const bytes = mutate(rng, base.bytes, byVariant.get(base.variant) ?? [], target.profile);
      const c: FuzzCase = { input: { variant: base.variant, bytes } };
      stats.mutationInputs++;
      const { verdict, finding } = runOne(c, 2);
      if (finding) report(finding, c, 'mutation', index);
      // Valid inputs are the best material for the next mutations: keep some.
      else if (verdict === 'accepted' && rng.oneIn(4)) {
        if (pool.length < POOL_MAX) pool.push(c.input);
        else pool[seeds.length + rng.below(POOL_MAX - seeds.length)] = c.input;
      }
    }
  }
  stats.elapsedMs = performance.now() - started;
  stats.cpuMs = threadCpuMs() - cpuStart;
  const done: WorkerMessage = { type: 'done', stats };
  parentPort!.postMessage(done);
}

if (parentPort !== null && workerData !== null && typeof workerData === 'object' && 'parser' in workerData) {
  main(workerData as WorkerJob);
}
