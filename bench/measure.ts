/**
 * @module bench/measure — one measurement of one proxy instance: the clients and the readings.
 *
 * Clients (iperf3, wrk, the connection holder) run on the client core. CPU time of the proxy is
 * read from /proc before and after each client run, so it covers exactly that phase's traffic
 * (plus the idle ticks of the proxy, which are near zero).
 */
import { parseIperf, parseWrk, wrkErrorCount } from './parse.js';
import { ConnectionHolder } from './holder.js';
import { cpuBusySeconds, cpuTimes, foreignCores, parseCpuList, rssKiB, snapshotProcesses } from './proc-stats.js';
import { describeExit, runCommand, sleep } from './procs.js';
import { hostPort, type IdleBackend, type ProxyInstance } from './servers.js';

/** wrk connections, as the issue asks. */
export const WRK_CONNECTIONS = 50;
/** iperf3 attempts: the server serves one test at a time and may still be finishing the last. */
const IPERF_ATTEMPTS = 3;
const IPERF_RETRY_DELAY_MS = 500;
/** Extra time a client gets beyond its run duration before it is killed. */
const CLIENT_TIMEOUT_SLACK_MS = 20_000;
/**
 * Connections opened and closed before the memory baseline, so first-use allocations (code,
 * lazily built structures) are not counted; few, so that their garbage cannot shrink RSS later.
 */
const MEMORY_WARMUP_CONNS = 20;
/** Pause before reading RSS so the proxy finishes its per-connection setup. */
const MEMORY_SETTLE_MS = 500;

/** Throws when the instance's process has died: its numbers would be meaningless. */
export function assertAlive(inst: ProxyInstance): void {
  const exit = inst.proc?.exit;
  if (exit) throw new Error(`${inst.proc!.name} exited (${describeExit(exit)}): ${inst.proc!.tail()}`);
}

/** What is read around one client run besides the client's own report. */
export interface CpuReading {
  /** Proxy CPU seconds, user + system (absent for the direct path). */
  cpuS?: number;
  /** Proxy user CPU seconds: the part the proxy's own code is responsible for. */
  cpuUserS?: number;
  /** Cores used meanwhile by processes outside the bench: how noisy this sample is. */
  foreignCores: number;
}

/**
 * Runs a client and reads the proxy's CPU time around it, and how much other processes ran
 * meanwhile: those alive at both ends are seen in /proc, and short-lived ones that landed on the
 * proxy's own CPUs show up as busy time there that the proxy did not account for.
 */
async function withReadings<T>(inst: ProxyInstance, clientCpus: string, fn: () => Promise<T>): Promise<{ value: T } & CpuReading> {
  assertAlive(inst);
  const pid = inst.proc?.pid;
  const proxyCpus = parseCpuList(inst.contender.cpus);
  // Only when the proxy has its CPUs to itself is their busy time all the proxy's.
  const exclusive = pid !== undefined && !parseCpuList(clientCpus).some((c) => proxyCpus.includes(c));
  const before = pid !== undefined ? cpuTimes(pid) : undefined;
  const busyBefore = cpuBusySeconds(proxyCpus);
  const snap = snapshotProcesses();
  const value = await fn();
  const end = snapshotProcesses();
  const busyS = cpuBusySeconds(proxyCpus) - busyBefore;
  const wallS = (end.atMs - snap.atMs) / 1000;
  let foreign = foreignCores(snap, end, process.pid);
  assertAlive(inst);
  if (pid === undefined || !before) return { value, foreignCores: foreign };
  const after = cpuTimes(pid);
  const cpuUserS = after.userS - before.userS;
  const cpuS = cpuUserS + after.sysS - before.sysS;
  if (exclusive && wallS > 0) foreign = Math.max(foreign, (busyS - cpuS) / wallS);
  return { value, cpuS, cpuUserS, foreignCores: foreign };
}

/** One bulk-throughput run. */
export interface BulkSample extends CpuReading {
  streams: number;
  gbps: number;
  bytes: number;
}

/** iperf3 through the instance (client → server direction), `streams` parallel streams. */
export async function measureBulk(inst: ProxyInstance, streams: number, durationS: number, clientCpus: string): Promise<BulkSample> {
  const args = ['-c', inst.address.host, '-p', String(inst.address.port), '-t', String(durationS), '-P', String(streams), '-J'];
  const { value, ...cpu } = await withReadings(inst, clientCpus, async () => {
    let lastErr: unknown;
    for (let attempt = 1; attempt <= IPERF_ATTEMPTS; attempt++) {
      const r = await runCommand('iperf3', 'iperf3', args, { cpus: clientCpus, timeoutMs: durationS * 1000 + CLIENT_TIMEOUT_SLACK_MS });
      try {
        return parseIperf(r.stdout);
      } catch (err) {
        lastErr = err;
        await sleep(IPERF_RETRY_DELAY_MS);
      }
    }
    throw lastErr;
  });
  return { streams, gbps: value.bitsPerSecond / 1e9, bytes: value.bytes, ...cpu };
}

/** One wrk run. */
export interface WrkSample extends CpuReading {
  reqPerSec: number;
  p50Ms: number;
  p99Ms: number;
  requests: number;
  /** Socket errors plus non-2xx responses. */
  errors: number;
}

/** wrk against the instance; `close` sends `Connection: close`, so every request is a new connection. */
export async function measureWrk(
  inst: ProxyInstance,
  opts: { close: boolean; durationS: number; clientCpus: string },
): Promise<WrkSample> {
  const args = ['-t1', `-c${WRK_CONNECTIONS}`, `-d${opts.durationS}s`, '--latency'];
  if (opts.close) args.push('-H', 'Connection: close');
  args.push(`http://${hostPort(inst.address)}/`);
  const { value, ...cpu } = await withReadings(inst, opts.clientCpus, async () => {
    const r = await runCommand('wrk', 'wrk', args, { cpus: opts.clientCpus, timeoutMs: opts.durationS * 1000 + CLIENT_TIMEOUT_SLACK_MS });
    if (r.code !== 0) throw new Error(`wrk exited (${describeExit(r)}): ${r.stderr.trim() || r.stdout.trim()}`);
    return parseWrk(r.stdout);
  });
  return { reqPerSec: value.reqPerSec, p50Ms: value.p50Ms, p99Ms: value.p99Ms, requests: value.requests, errors: wrkErrorCount(value), ...cpu };
}

/** Memory cost of idle proxied connections. */
export interface IdleMemorySample {
  conns: number;
  held: number;
  rssBeforeKiB: number;
  rssAfterKiB: number;
  kibPerConn: number;
  errors: number;
}

/** Readings taken besides RSS (bench/ka-memory.ts --detail), next to the RSS readings. */
export interface MemoryHooks {
  /** Right before the baseline RSS is read. */
  afterWarmup(): Promise<void>;
  /** Right after RSS is read with the connections held. */
  whileHeld(): Promise<void>;
}

/** Opens `count` idle connections through the instance to the idle backend and reads RSS growth. */
export async function measureIdleMemory(
  inst: ProxyInstance,
  backend: IdleBackend,
  count: number,
  request?: Buffer,
  hooks?: MemoryHooks,
): Promise<IdleMemorySample> {
  assertAlive(inst);
  const pid = inst.proc!.pid;
  const warm = new ConnectionHolder(inst.address, backend);
  await warm.init();
  await warm.open(MEMORY_WARMUP_CONNS, request);
  await warm.closeAll();
  await sleep(MEMORY_SETTLE_MS);

  const holder = new ConnectionHolder(inst.address, backend);
  await holder.init();
  await hooks?.afterWarmup();
  const rssBeforeKiB = rssKiB(pid);
  try {
    const r = await holder.open(count, request);
    await sleep(MEMORY_SETTLE_MS);
    assertAlive(inst);
    const rssAfterKiB = rssKiB(pid);
    await hooks?.whileHeld();
    return {
      conns: count,
      held: r.held,
      rssBeforeKiB,
      rssAfterKiB,
      kibPerConn: r.held > 0 ? (rssAfterKiB - rssBeforeKiB) / r.held : NaN,
      errors: r.errors,
    };
  } finally {
    await holder.closeAll();
  }
}

/** How many concurrent proxied connections an instance held. */
export interface MaxConnSample {
  target: number;
  /** Held without any error, at the last step that had none. */
  held: number;
  /** Errors at the first failing step (0 when the target was reached). */
  errors: number;
  errorCodes: Record<string, number>;
  /** Connections established at each step. */
  steps: number[];
}

/** Opens connections in steps up to `target`, stopping at the first step with errors. */
export async function measureMaxConns(inst: ProxyInstance, backend: IdleBackend, target: number, step: number): Promise<MaxConnSample> {
  assertAlive(inst);
  const holder = new ConnectionHolder(inst.address, backend);
  await holder.init();
  const steps: number[] = [];
  let held = 0;
  try {
    while (held < target) {
      const r = await holder.open(Math.min(step, target - held));
      steps.push(r.held);
      if (r.errors > 0 || inst.proc?.exit) {
        return { target, held, errors: r.errors, errorCodes: r.errorCodes, steps };
      }
      held = r.held;
    }
    return { target, held, errors: 0, errorCodes: {}, steps };
  } finally {
    await holder.closeAll();
  }
}
