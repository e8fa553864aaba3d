/**
 * @module bench/bench — `npm run bench`: l4lb side by side with HAProxy and nginx.
 *
 * Starts the backends and every contender on loopback, measures them in alternating rounds
 * (each round runs every phase for every contender, contender order rotated per round), then
 * prints the tables, writes JSON under bench/results/ and the chart. See bench/README.md.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus as cpuInfo, release, tmpdir } from 'node:os';
import { join } from 'node:path';
import { renderChart } from './chart.js';
import { measureBulk, measureIdleMemory, measureMaxConns, measureWrk, type BulkSample, type CpuReading, type WrkSample } from './measure.js';
import { clockTicksPerSecond, machineBusyCores, openFilesLimit, processTree } from './proc-stats.js';
import { cleanupAll, registerTempDir } from './procs.js';
import { markdownReport, summarize, textReport, type ContenderResult, type MetricId, type RunInfo, type SuiteResult } from './report.js';
import {
  IdleBackend,
  servesTarget,
  startHttpBackend,
  startIperfServer,
  startProxy,
  type Contender,
  type Endpoint,
  type ProxyInstance,
  type ServerContext,
  type Target,
} from './servers.js';
import { currentNode, extendPath, l4lbBuilt, missingTools, nodeRuntime, repoRoot, shortToolVersions, toolVersions, type NodeRuntime } from './tools.js';
import { runUdpPhase, udpReport, type UdpPhaseResult } from './udp/phase.js';

/** Full-mode defaults: about 7.5 minutes on a 2-core machine. */
const FULL = { rounds: 5, durationS: 3, idleConns: 4000, maxConns: 9000, workerRounds: 2, warmupS: 1, noiseRepeats: 12 };
/** Quick-mode defaults: under a minute, to show the bench works (numbers are noisy). */
const QUICK = { rounds: 1, durationS: 1, idleConns: 1000, maxConns: 1000, workerRounds: 1, warmupS: 0, noiseRepeats: 2 };
/** Concurrency is raised in this many steps up to the target. */
const MAX_CONN_STEPS = 9;
/** File descriptors kept free for the proxy's own use (listeners, logs, pipes). */
const FD_MARGIN = 1000;
/** Idle sampling of the machine's load before and after the run. */
const BUSY_SAMPLE_MS = 1000;
/** Above this much CPU taken by other processes, the bench warns that numbers will be noisy. */
const BUSY_WARN_CORES = 0.15;
/** Other processes' CPU use during a sample above which the sample is taken again. */
const NOISE_LIMIT_CORES = 0.2;
/** How many times one sample may be taken again because of other processes' load (see also `noiseRepeats`). */
const MAX_NOISE_REPEATS = 2;
/** CPU the proxies run on by default (`--proxy-cpu`); clients and backends run on the other. */
const PROXY_CPU = 0;
/** Node majors l4lb runs on by default, besides the bench's own Node (`--node`). */
const DEFAULT_NODE_MAJORS = [24, 26];
/** What a keep-alive client sends on each connection before it idles (the memory phase). */
const KEEP_ALIVE_REQUEST = Buffer.from('GET / HTTP/1.1\r\nHost: bench\r\n\r\n');

/** Command-line options. */
interface Options {
  quick: boolean;
  rounds: number;
  durationS: number;
  idleConns: number;
  maxConns: number;
  workerRounds: number;
  /** Seconds of unmeasured wrk per HTTP instance first (JIT, lazy allocations); 0 = none. */
  warmupS: number;
  /** Samples that may be taken again in the whole run because other processes were busy. */
  noiseRepeats: number;
  /** Node majors to run l4lb on besides the bench's own Node. */
  nodeMajors: number[];
  /** Whether a runtime of `nodeMajors` that cannot be had is an error (else it is skipped). */
  strictNode: boolean;
  /** CPU the proxies are pinned to (0 or 1); the clients get the other. */
  proxyCpu: number;
  workers: boolean;
  /** Whether to run the UDP phase (bench/udp/phase.ts). */
  udp: boolean;
  /** Whether a full run may update docs/perf-chart.svg and the results block of docs/performance.md. */
  docs: boolean;
  only?: string[];
  /** Re-render this saved results JSON instead of measuring. */
  report?: string;
  /** I/O buffer size given to HAProxy and nginx instead of their 16 KiB defaults. */
  bufferSize?: number;
}

const USAGE = `usage: npm run bench -- [options]

  --quick            short run (< 1 min): 1 round of 1 s, no warm-up, 1000 idle conns,
                     1000 concurrent; writes *-quick files, never docs/perf-chart.svg
  --rounds N         alternating rounds (default ${FULL.rounds})
  --duration S       seconds per client run (default ${FULL.durationS})
  --idle-conns N     idle connections for the memory phase (default ${FULL.idleConns})
  --max-conns N      concurrency target (default ${FULL.maxConns}, capped by the fd limit)
  --node LIST        Node majors to run l4lb on besides the bench's own Node, comma-separated
                     (default ${DEFAULT_NODE_MAJORS.join(',')}; scripts/node-runtime.sh installs them;
                     one that cannot be installed is skipped with a note); --node none: only
                     the bench's own Node
  --strict-node      a runtime of --node that cannot be installed is an error
  --node24           the same as --node 24 --strict-node; --no-node24: --node none
  --proxy-cpu N      pin the proxies to CPU N (0 or 1, default ${PROXY_CPU}); clients go to the other
  --no-workers       skip the 2-worker comparison (l4lb --workers 2 vs HAProxy nbthread 2)
  --no-udp           skip the UDP phase (l4lb vs nginx stream udp, DNS to two dnsmasq)
  --no-docs          leave docs/ alone (the chart goes to bench/results/ instead)
  --only LIST        only these contenders (ids or kinds, comma-separated; haproxy is always kept)
  --buffer-size B    give HAProxy (tune.bufsize) and nginx (proxy_buffer_size) B-byte
                     buffers instead of their 16 KiB defaults; docs/ is left alone
  --report FILE      measure nothing: print and re-render (md, chart, docs) a saved results JSON
  --help             this text

Needs haproxy, nginx + libnginx-mod-stream, iperf3, wrk, taskset: run bench/setup.sh once.`;

function parseOptions(argv: string[]): Options | undefined {
  const quick = argv.includes('--quick');
  const d = quick ? QUICK : FULL;
  const o: Options = { quick, ...d, nodeMajors: DEFAULT_NODE_MAJORS, strictNode: false, proxyCpu: PROXY_CPU, workers: true, udp: true, docs: true };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const num = (): number => {
      const v = Number(argv[++i]);
      if (!Number.isInteger(v) || v < 1) throw new Error(`${a} needs a positive integer`);
      return v;
    };
    if (a === '--quick') continue;
    else if (a === '--rounds') o.rounds = num();
    else if (a === '--duration') o.durationS = num();
    else if (a === '--idle-conns') o.idleConns = num();
    else if (a === '--max-conns') o.maxConns = num();
    else if (a === '--node') {
      const list = argv[++i] ?? '';
      o.nodeMajors = list === 'none' ? [] : list.split(',').map(Number);
      if (o.nodeMajors.some((m) => !Number.isInteger(m) || m < 20)) throw new Error(`--node needs Node majors (20 or later), comma-separated, or none: ${list}`);
    } else if (a === '--strict-node') o.strictNode = true;
    else if (a === '--node24') {
      o.nodeMajors = [24];
      o.strictNode = true;
    } else if (a === '--no-node24') o.nodeMajors = [];
    else if (a === '--proxy-cpu') {
      const v = argv[++i];
      if (v !== '0' && v !== '1') throw new Error(`--proxy-cpu needs 0 or 1, not ${v}`);
      o.proxyCpu = Number(v);
    }
    else if (a === '--no-workers') o.workers = false;
    else if (a === '--no-udp') o.udp = false;
    else if (a === '--no-docs') o.docs = false;
    else if (a === '--report') o.report = argv[++i];
    else if (a === '--buffer-size') o.bufferSize = num();
    else if (a === '--only') o.only = (argv[++i] ?? '').split(',').filter(Boolean);
    else if (a === '--help' || a === '-h') return undefined;
    else throw new Error(`unknown option ${a}`);
  }
  return o;
}

function log(msg: string): void {
  process.stderr.write(`${msg}\n`);
}

function fmtDuration(ms: number): string {
  const s = Math.round(ms / 1000);
  return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
}

/** Rotates the list by `r` so no contender always goes first (ABC, BCA, CAB...). */
function rotate<T>(list: T[], r: number): T[] {
  const k = list.length === 0 ? 0 : r % list.length;
  return list.slice(k).concat(list.slice(0, k));
}

/** The backends every suite forwards to. */
interface Backends {
  http: Endpoint[];
  iperf: Endpoint;
  idle: IdleBackend;
}

type Phase = 'bulk1' | 'bulk4' | 'newConn' | 'newConnLog' | 'newConnLogStderr' | 'keepAlive';

const PHASE_LABEL: Record<Phase, string> = {
  bulk1: 'bulk, 1 stream',
  bulk4: 'bulk, 4 streams',
  newConn: 'new connections',
  newConnLog: 'new connections, logs on (file)',
  newConnLogStderr: 'new connections, l4lb defaults (stderr to a file)',
  keepAlive: 'keep-alive',
};

/** The instance each phase drives. */
const PHASE_TARGET: Record<Phase, Target> = {
  bulk1: 'iperf',
  bulk4: 'iperf',
  newConn: 'http',
  newConnLog: 'http-log',
  newConnLogStderr: 'http-log-stderr',
  keepAlive: 'http',
};

/** What one suite measures. */
interface SuiteSpec {
  id: string;
  title: string;
  placement: string;
  baseline: string;
  contenders: Contender[];
  /** Contenders that cannot run, with the reason (shown as n/a). */
  unavailable: Array<{ contender: Contender; reason: string }>;
  phases: Phase[];
  memory: boolean;
  rounds: number;
  judged: boolean;
  metrics: MetricId[];
}

function emptyResult(c: Contender): ContenderResult {
  return {
    id: c.id,
    kind: c.kind,
    workers: c.workers,
    cpus: c.cpus,
    ...(c.node ? { node: c.node.version } : {}),
    available: true,
    bulk: [],
    newConn: [],
    newConnLog: [],
    newConnLogStderr: [],
    keepAlive: [],
    failures: [],
    repeats: 0,
  };
}

/** The instances a contender needs for the suite's phases (a log target only if it logs). */
function targetsOf(spec: SuiteSpec, c: Contender): Target[] {
  const t = new Set<Target>(spec.phases.map((p) => PHASE_TARGET[p]));
  if (spec.memory) {
    t.add('idle');
    t.add('idle-ka');
  }
  return [...t].filter((x) => servesTarget(c.kind, x));
}

function upstreamsOf(target: Target, b: Backends): Endpoint[] {
  return target === 'iperf' ? [b.iperf] : target === 'idle' || target === 'idle-ka' ? [b.idle.endpoint] : b.http;
}

function measurePhase(phase: Phase, inst: Map<Target, ProxyInstance>, opts: Options, ctx: ServerContext): Promise<BulkSample | WrkSample> {
  if (phase === 'bulk1' || phase === 'bulk4') {
    return measureBulk(inst.get('iperf')!, phase === 'bulk1' ? 1 : 4, opts.durationS, ctx.clientCpus);
  }
  return measureWrk(inst.get(PHASE_TARGET[phase])!, { close: phase !== 'keepAlive', durationS: opts.durationS, clientCpus: ctx.clientCpus });
}

/**
 * Runs a measurement again (up to {@link MAX_NOISE_REPEATS} times) while other processes on the
 * machine took more than {@link NOISE_LIMIT_CORES} during it, and keeps the quietest sample.
 */
async function leastNoisy<T extends CpuReading>(
  c: Contender,
  budget: { left: number },
  measure: () => Promise<T>,
): Promise<{ sample: T; repeats: number }> {
  let sample = await measure();
  let best = sample;
  let repeats = 0;
  while (best.foreignCores > NOISE_LIMIT_CORES && repeats < MAX_NOISE_REPEATS && budget.left > 0) {
    log(`    ${c.id.padEnd(16)} other processes used ${sample.foreignCores.toFixed(2)} cores meanwhile: measuring again`);
    repeats++;
    budget.left--;
    sample = await measure();
    if (sample.foreignCores < best.foreignCores) best = sample;
  }
  return { sample: best, repeats };
}

/** Where a wrk phase's samples go. */
function wrkSamples(r: ContenderResult, phase: Phase): WrkSample[] {
  if (phase === 'newConn') return r.newConn;
  if (phase === 'newConnLog') return (r.newConnLog ??= []);
  if (phase === 'newConnLogStderr') return (r.newConnLogStderr ??= []);
  return r.keepAlive;
}

/** Starts one instance per target; if any fails, stops the others and throws. */
async function startContender(c: Contender, targets: Target[], ctx: ServerContext, backends: Backends): Promise<Map<Target, ProxyInstance>> {
  const started = await Promise.allSettled(targets.map((t) => startProxy(ctx, c, t, upstreamsOf(t, backends))));
  const byTarget = new Map<Target, ProxyInstance>();
  for (const s of started) if (s.status === 'fulfilled') byTarget.set(s.value.target, s.value);
  const failed = started.find((s): s is PromiseRejectedResult => s.status === 'rejected');
  if (failed) {
    await Promise.all([...byTarget.values()].map((i) => i.proc?.stop()));
    throw failed.reason;
  }
  const procs = [...byTarget.values()].map((i) => (i.proc ? processTree(i.proc.pid).length : 0));
  log(`  started ${c.id}${c.node ? ` (${c.node.version})` : ''}${c.kind === 'direct' ? '' : `: ${procs.join('+')} process(es)`}`);
  return byTarget;
}

/**
 * Memory per idle connection, then concurrency, on the instance that saw no other traffic;
 * memory per keep-alive connection on another such instance.
 */
async function measureIdlePhases(
  r: ContenderResult,
  inst: ProxyInstance,
  kaInst: ProxyInstance,
  idle: IdleBackend,
  run: RunInfo,
  attempt: (what: string, fn: () => Promise<string>) => Promise<void>,
): Promise<void> {
  await attempt('idle memory', async () => {
    const m = await measureIdleMemory(inst, idle, run.idleConns);
    r.idleMemory = m;
    return `${m.kibPerConn.toFixed(2)} KiB per connection (${m.rssBeforeKiB} → ${m.rssAfterKiB} KiB RSS, ${m.held} held)`;
  });
  await attempt('keep-alive memory', async () => {
    const m = await measureIdleMemory(kaInst, idle, run.idleConns, KEEP_ALIVE_REQUEST);
    r.kaMemory = m;
    return `${m.kibPerConn.toFixed(2)} KiB per keep-alive connection after a request (${m.rssBeforeKiB} → ${m.rssAfterKiB} KiB RSS, ${m.held} held)`;
  });
  await attempt('concurrency', async () => {
    const m = await measureMaxConns(inst, idle, run.maxConnTarget, Math.ceil(run.maxConnTarget / MAX_CONN_STEPS));
    r.maxConns = m;
    return `${m.held} held${m.errors ? `, stopped by ${m.errors} errors` : ''}`;
  });
}

async function runSuite(
  spec: SuiteSpec,
  ctx: ServerContext,
  backends: Backends,
  opts: Options,
  run: RunInfo,
  noise: { left: number },
): Promise<SuiteResult> {
  const started = Date.now();
  log(`\n${spec.title}`);
  const results = new Map<string, ContenderResult>();
  const instances = new Map<string, Map<Target, ProxyInstance>>();
  for (const { contender, reason } of spec.unavailable) {
    results.set(contender.id, { ...emptyResult(contender), available: false, unavailableReason: reason });
  }

  // Start every instance up front, in parallel: idle proxies cost nothing, and alternating
  // rounds need them all.
  for (const c of spec.contenders) results.set(c.id, emptyResult(c));
  await Promise.all(
    spec.contenders.map(async (c) => {
      try {
        instances.set(c.id, await startContender(c, targetsOf(spec, c), ctx, backends));
      } catch (err) {
        const r = results.get(c.id)!;
        r.available = false;
        r.unavailableReason = `did not start: ${(err as Error).message}`;
        log(`  ${c.id} n/a: ${r.unavailableReason}`);
      }
    }),
  );
  const live = spec.contenders.filter((c) => instances.has(c.id));

  const attempt = async (c: Contender, what: string, fn: () => Promise<string>): Promise<void> => {
    try {
      const summary = await fn();
      log(`    ${c.id.padEnd(16)} ${summary}`);
    } catch (err) {
      const msg = `${what}: ${(err as Error).message}`;
      results.get(c.id)!.failures.push(msg);
      log(`    ${c.id.padEnd(16)} FAILED ${msg}`);
    }
  };

  if (opts.warmupS > 0 && (spec.phases.includes('keepAlive') || spec.phases.includes('newConn'))) {
    log(`  warm-up (${opts.warmupS} s of wrk each)`);
    for (const c of live) {
      const inst = instances.get(c.id)!.get('http')!;
      await measureWrk(inst, { close: false, durationS: opts.warmupS, clientCpus: ctx.clientCpus }).catch(() => undefined);
    }
  }

  for (let round = 0; round < spec.rounds; round++) {
    for (const phase of spec.phases) {
      log(`  round ${round + 1}/${spec.rounds}: ${PHASE_LABEL[phase]}`);
      for (const c of rotate(live, round)) {
        const r = results.get(c.id)!;
        const inst = instances.get(c.id)!;
        if (!inst.has(PHASE_TARGET[phase])) continue;
        const what = `round ${round + 1} ${PHASE_LABEL[phase]}`;
        await attempt(c, what, async () => {
          const { sample, repeats } = await leastNoisy(c, noise, () => measurePhase(phase, inst, opts, ctx));
          r.repeats += repeats;
          if ('gbps' in sample) {
            r.bulk.push(sample);
            return `${sample.gbps.toFixed(2)} Gbit/s${sample.cpuS !== undefined ? `, ${sample.cpuS.toFixed(2)} CPU s` : ''}`;
          }
          wrkSamples(r, phase).push(sample);
          const cpu = sample.cpuS !== undefined ? `, ${((sample.cpuS / sample.requests) * 1e6).toFixed(1)} CPU µs/req` : '';
          return `${Math.round(sample.reqPerSec)} req/s, p99 ${sample.p99Ms.toFixed(2)} ms${cpu}${sample.errors ? `, ${sample.errors} errors` : ''}`;
        });
      }
    }
  }

  if (spec.memory) {
    log(`  idle memory (${run.idleConns} connections) and concurrency (up to ${run.maxConnTarget})`);
    for (const c of live.filter((x) => x.kind !== 'direct')) {
      const inst = instances.get(c.id)!;
      await measureIdlePhases(results.get(c.id)!, inst.get('idle')!, inst.get('idle-ka')!, backends.idle, run, (what, fn) => attempt(c, what, fn));
    }
  }

  await Promise.all([...instances.values()].flatMap((m) => [...m.values()].map((i) => i.proc?.stop())));
  log(`  (${fmtDuration(Date.now() - started)})`);
  // Unavailable contenders (l4lb not built) go last, where l4lb is declared anyway.
  const order = [...spec.contenders, ...spec.unavailable.map((u) => u.contender)];
  return {
    id: spec.id,
    title: spec.title,
    placement: spec.placement,
    baseline: spec.baseline,
    metrics: spec.metrics,
    judged: spec.judged,
    contenders: order.map((c) => results.get(c.id)!),
  };
}

/** Node runtimes to run l4lb on: the bench's own, then those of --node (oldest first). */
function runtimes(opts: Options): NodeRuntime[] {
  const current = currentNode();
  const major = Number(current.version.slice(1).split('.')[0]);
  const out = [current];
  for (const m of [...new Set(opts.nodeMajors)].sort((a, b) => a - b)) {
    if (m === major) continue;
    try {
      out.push(nodeRuntime(m));
    } catch (err) {
      if (opts.strictNode) throw new Error(`Node ${m} unavailable (scripts/node-runtime.sh ${m}): ${(err as Error).message}`);
      log(`note: Node ${m} unavailable, l4lb does not run on it (${(err as Error).message.split('\n')[0]})`);
    }
  }
  return out.sort((a, b) => Number(a.version.slice(1).split('.')[0]) - Number(b.version.slice(1).split('.')[0]));
}

function l4lbId(rt: NodeRuntime, workers: number): string {
  return `l4lb${workers > 1 ? `-w${workers}` : ''}@node${rt.version.slice(1).split('.')[0]}`;
}

function selected(opts: Options, c: Contender): boolean {
  return !opts.only || c.kind === 'haproxy' || opts.only.includes(c.id) || opts.only.includes(c.kind);
}

/** Seconds per UDP measurement at least (the closed loop needs time to settle). */
const UDP_MIN_SECONDS = 2;

/**
 * The UDP phase (bench/udp/phase.ts) with l4lb on every runtime, unless skipped (`--no-udp`,
 * l4lb not selected or not built, dnsmasq missing). A failure is reported, not fatal.
 */
async function udpPhase(setup: Setup, pin: boolean): Promise<UdpPhaseResult | undefined> {
  const { opts } = setup;
  if (!opts.udp) return undefined;
  const l4lb = setup.runtimes
    .map((rt) => ({ id: l4lbId(rt, 1), node: rt.bin, kind: 'l4lb' }))
    .filter((l) => !opts.only || opts.only.includes(l.kind) || opts.only.includes(l.id));
  if (l4lb.length === 0 || !setup.built) {
    log('UDP phase skipped: no l4lb selected or l4lb not built');
    return undefined;
  }
  if (!existsSync('/usr/sbin/dnsmasq')) {
    log('UDP phase skipped: dnsmasq is missing (Debian package dnsmasq-base)');
    return undefined;
  }
  log(`UDP phase: nginx and ${l4lb.map((l) => l.id).join(', ')}`);
  const started = Date.now();
  try {
    return await runUdpPhase({
      seconds: Math.max(UDP_MIN_SECONDS, opts.durationS),
      rounds: opts.rounds,
      l4lb,
      ...(pin && { proxyCpus: setup.proxyCpu, clientCpus: setup.clientCpu }),
      log,
    });
  } catch (err) {
    log(`UDP phase failed: ${(err as Error).stack ?? String(err)}`);
    return undefined;
  } finally {
    log(`  (${fmtDuration(Date.now() - started)})`);
  }
}

/** What the suite builders need to know about this run. */
interface Setup {
  opts: Options;
  proxyCpu: string;
  clientCpu: string;
  runtimes: NodeRuntime[];
  /** Whether l4lb has been compiled; when not, its contenders are listed as n/a. */
  built: boolean;
}

const NOT_BUILT = 'l4lb is not built: dist/src/cli/main.js is missing (run npx tsc -p .)';

/** Splits the selected contenders into those to run and those shown as n/a. */
function contendersOf(setup: Setup, all: Contender[]): Pick<SuiteSpec, 'contenders' | 'unavailable'> {
  const list = all.filter((c) => selected(setup.opts, c));
  const runnable = (c: Contender) => setup.built || c.kind !== 'l4lb';
  return {
    contenders: list.filter(runnable),
    unavailable: list.filter((c) => !runnable(c)).map((contender) => ({ contender, reason: NOT_BUILT })),
  };
}

/** The main comparison: every proxy on one core, judged against the targets. */
function singleCoreSpec(setup: Setup): SuiteSpec {
  const cpus = setup.proxyCpu;
  return {
    id: 'single-core',
    title: 'Single core: every proxy on one CPU',
    placement: `proxies pinned to CPU ${cpus}; wrk, iperf3, backends and the bench pinned to CPU ${setup.clientCpu} (taskset -c)`,
    baseline: 'haproxy',
    ...contendersOf(setup, [
      { id: 'direct', kind: 'direct', workers: 1, cpus },
      { id: 'haproxy', kind: 'haproxy', workers: 1, cpus },
      { id: 'nginx', kind: 'nginx', workers: 1, cpus },
      { id: 'node-pipe', kind: 'node-pipe', workers: 1, cpus, node: currentNode() },
      ...setup.runtimes.map((rt): Contender => ({ id: l4lbId(rt, 1), kind: 'l4lb', workers: 1, cpus, node: rt })),
    ]),
    phases: ['bulk1', 'bulk4', 'newConn', 'newConnLog', 'newConnLogStderr', 'keepAlive'],
    memory: true,
    rounds: setup.opts.rounds,
    judged: true,
    metrics: [
      'bulk1', 'bulk4', 'cpuPerGB', 'userPerGB', 'connPerSec', 'cpuPerConnUs', 'userPerConnUs',
      'logConnPerSec', 'logCpuPerConnUs', 'logLineUs', 'stderrLogCpuPerConnUs', 'stderrLogLineUs',
      'kaReqPerSec', 'kaP50Ms', 'kaP99Ms', 'idleKiBPerConn', 'kaKiBPerConn', 'maxHeld',
    ],
  };
}

/** l4lb --workers 2 against HAProxy nbthread 2, both on both cores. */
function twoWorkerSpec(setup: Setup): SuiteSpec {
  // The newest runtime: this comparison is about l4lb's multi-process design, not Node's version.
  const rt = setup.runtimes[setup.runtimes.length - 1];
  const cpus = `${setup.proxyCpu},${setup.clientCpu}`;
  return {
    id: 'two-workers',
    title: 'Two workers: l4lb --workers 2 vs HAProxy nbthread 2',
    placement: `proxies pinned to CPUs ${cpus}; clients and backends pinned to CPU ${setup.clientCpu}, so they share it with one proxy worker`,
    baseline: 'haproxy-t2',
    ...contendersOf(setup, [
      { id: 'haproxy-t2', kind: 'haproxy', workers: 2, cpus },
      { id: l4lbId(rt, 2), kind: 'l4lb', workers: 2, cpus, node: rt },
    ]),
    phases: ['bulk4', 'newConn', 'keepAlive'],
    memory: false,
    rounds: setup.opts.workerRounds,
    judged: false,
    metrics: ['bulk4', 'cpuPerGB', 'userPerGB', 'connPerSec', 'cpuPerConnUs', 'userPerConnUs', 'kaReqPerSec', 'kaP99Ms'],
  };
}

/** Everything written to bench/results/*.json. */
interface RunRecord {
  schema: number;
  startedAt: string;
  elapsedS: number;
  mode: string;
  run: RunInfo;
  machine: { cpus: number; cpuModel: string; kernel: string; clkTck: number; openFilesLimit: number; busyCoresBefore: number; busyCoresAfter: number };
  tools: Record<string, string>;
  /** Git revision of the measured l4lb. */
  l4lbRevision: string;
  node: string[];
  suites: Array<SuiteResult & { summary: unknown }>;
  /** The UDP phase; absent when skipped. */
  udp?: UdpPhaseResult;
}

/**
 * Writes the JSON, the Markdown tables and the chart (and, for a full run, the docs). With
 * `source` (a re-rendered saved run) the JSON is not rewritten and the Markdown and any chart
 * outside docs/ go next to the source file.
 */
function writeOutputs(record: RunRecord, opts: Options, source?: string): void {
  const { run, suites } = record;
  const busyNote = loadNote(record);
  const stamp = record.startedAt.replace(/[:.]/g, '-');
  const resultsDir = join(repoRoot(), 'bench', 'results');
  mkdirSync(resultsDir, { recursive: true });
  const suffix = opts.quick ? '-quick' : '';
  if (!source) {
    const json = `${JSON.stringify(record, null, 2)}\n`;
    writeFileSync(join(resultsDir, `${stamp}${suffix}.json`), json);
    writeFileSync(join(resultsDir, `latest${suffix}.json`), json);
  }
  const nodes = record.node.map((v) => `Node ${v}`).join(' and ');
  const md = [
    `<!-- generated by npm run bench${opts.quick ? ' -- --quick' : ''} on ${record.startedAt} -->`,
    `Run: ${record.mode}, ${run.rounds} round(s) × ${run.durationS} s per client run, ${run.idleConns} idle connections, concurrency target ${run.maxConnTarget}${run.bufferSize ? `, HAProxy/nginx buffers ${run.bufferSize} bytes` : ''}; ${record.machine.cpus} × ${record.machine.cpuModel}, Linux ${record.machine.kernel}; ${shortToolVersions(record.tools).join(', ')}; l4lb (revision ${record.l4lbRevision ?? "not recorded"}) on ${nodes}; ${busyNote}.`,
    ...suites.map((s) => markdownReport(s, run)),
    ...(record.udp ? [udpReport(record.udp, true)] : []),
  ].join('\n\n');
  const mdPath = source ? source.replace(/\.json$/, '') + '.md' : join(resultsDir, `latest${suffix}.md`);
  writeFileSync(mdPath, `${md}\n`);
  // Quick and partial runs are not comparable, so only a full run of everyone updates docs/.
  const toDocs = !opts.quick && opts.docs && !opts.only && !record.run.bufferSize;
  const chartPath = toDocs
    ? join(repoRoot(), 'docs', 'perf-chart.svg')
    : source
      ? source.replace(/\.json$/, '') + '.svg'
      : join(resultsDir, `perf-chart${suffix}.svg`);
  mkdirSync(join(chartPath, '..'), { recursive: true });
  const subtitle = `${record.mode} run ${record.startedAt.slice(0, 16).replace('T', ' ')} UTC, ${run.rounds} round(s) × ${run.durationS} s, proxies pinned to one CPU, clients on the other; l4lb on ${nodes}`;
  writeFileSync(chartPath, renderChart(suites[0], run, subtitle));
  if (toDocs && updateDocsBlock(join(repoRoot(), 'docs', 'performance.md'), md)) log('updated the results block of docs/performance.md');
  log(`wrote ${source ? '' : `${join(resultsDir, `latest${suffix}.json`)}, `}${mdPath} and ${chartPath}`);
}

function loadNote(record: RunRecord): string {
  const m = record.machine;
  return `other load on the machine: ${m.busyCoresBefore.toFixed(2)} cores busy before the run, ${m.busyCoresAfter.toFixed(2)} after (measured while the bench was idle)`;
}

/** The plain-text report: every suite's tables, the machine's other load, the duration. */
function printReport(record: RunRecord): void {
  const text = [...record.suites.map((s) => textReport(s, record.run)), ...(record.udp ? [udpReport(record.udp)] : [])].join('\n\n');
  process.stdout.write(`\n${text}\n\n${loadNote(record)}\nbench took ${fmtDuration(record.elapsedS * 1000)}\n`);
}

/** Which l4lb was measured: the commit, marked when the work tree had changes. */
function l4lbRevision(): string {
  try {
    const rev = execFileSync('git', ['-C', repoRoot(), 'rev-parse', '--short', 'HEAD'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    const dirty = execFileSync('git', ['-C', repoRoot(), 'status', '--porcelain', '--', 'src'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    return dirty ? `${rev} + uncommitted changes` : rev;
  } catch {
    return 'unknown revision';
  }
}

/** Marks the part of docs/performance.md that a full run rewrites. */
const DOCS_BEGIN = '<!-- bench:results:begin -->';
const DOCS_END = '<!-- bench:results:end -->';

/** Replaces the text between the markers of `file`; false when the file or markers are missing. */
function updateDocsBlock(file: string, block: string): boolean {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return false;
  }
  const begin = text.indexOf(DOCS_BEGIN);
  const end = text.indexOf(DOCS_END);
  if (begin < 0 || end < begin) return false;
  writeFileSync(file, `${text.slice(0, begin + DOCS_BEGIN.length)}\n${block}\n${text.slice(end)}`);
  return true;
}

async function main(argv: string[]): Promise<number> {
  let opts: Options | undefined;
  try {
    opts = parseOptions(argv);
  } catch (err) {
    log(`bench: ${(err as Error).message}\n\n${USAGE}`);
    return 2;
  }
  if (!opts) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  if (opts.report) {
    // Re-render a saved run (for example after a run on a quiet machine) without measuring.
    const record = JSON.parse(readFileSync(opts.report, 'utf8')) as RunRecord;
    printReport(record);
    writeOutputs(record, { ...opts, quick: record.mode === 'quick' }, opts.report);
    return 0;
  }
  extendPath();
  const missing = missingTools();
  if (missing.length > 0) {
    log(`bench: missing tools:\n${missing.map((m) => `  - ${m}`).join('\n')}\nRun bench/setup.sh (as root) to install them, then try again.`);
    return 2;
  }
  const started = Date.now();
  const cores = availableParallelism();
  const [proxyCpu, clientCpu] = cores >= 2 ? [String(opts.proxyCpu), String(1 - opts.proxyCpu)] : ['0', '0'];
  if (cores < 2) log('warning: fewer than 2 CPUs: proxies and clients share CPU 0, numbers are not comparable');
  // The bench itself (and the connection holder inside it) is a client: keep it off the proxy core.
  execFileSync('taskset', ['-a', '-cp', clientCpu, String(process.pid)], { stdio: 'ignore' });

  const fdLimit = openFilesLimit();
  // Each proxied connection costs the proxy two descriptors.
  const maxConnTarget = Math.max(1, Math.min(opts.maxConns, Math.floor((fdLimit - FD_MARGIN) / 2)));
  if (maxConnTarget < opts.maxConns) log(`note: ulimit -n is ${fdLimit}: concurrency target lowered to ${maxConnTarget}`);
  const run: RunInfo = {
    quick: opts.quick,
    rounds: opts.rounds,
    durationS: opts.durationS,
    idleConns: opts.idleConns,
    maxConnTarget,
    ...(opts.bufferSize ? { bufferSize: opts.bufferSize } : {}),
  };
  const tmpDir = mkdtempSync(join(tmpdir(), 'l4lb-bench-'));
  registerTempDir(tmpDir);
  const ctx: ServerContext = {
    tmpDir,
    clientCpus: clientCpu,
    proxyFdLimit: Math.min(fdLimit, 2 * maxConnTarget + FD_MARGIN),
    proxyBufferSize: opts.bufferSize,
  };

  const rts = runtimes(opts);
  log(`l4lb bench (${opts.quick ? 'quick' : 'full'}): ${opts.rounds} round(s) × ${opts.durationS} s, proxies on CPU ${proxyCpu}, clients and backends on CPU ${clientCpu}`);

  log('starting backends');
  const backends: Backends = {
    http: [await startHttpBackend(ctx, 'nginx-http-1'), await startHttpBackend(ctx, 'nginx-http-2')],
    iperf: await startIperfServer(ctx),
    idle: await IdleBackend.start(ctx),
  };

  // Other processes on the machine skew every number: measure what they take while we are idle.
  const busyBefore = await machineBusyCores(BUSY_SAMPLE_MS, cores);
  if (busyBefore > BUSY_WARN_CORES) log(`warning: other processes use ${busyBefore.toFixed(2)} CPU cores right now: results will be noisy`);

  const setup: Setup = { opts, proxyCpu, clientCpu, runtimes: rts, built: l4lbBuilt() };
  // Repeats for noise share one budget so a busy machine cannot stretch the run unboundedly.
  const noise = { left: opts.noiseRepeats };
  const suites: SuiteResult[] = [await runSuite(singleCoreSpec(setup), ctx, backends, opts, run, noise)];
  if (opts.workers && cores >= 2) suites.push(await runSuite(twoWorkerSpec(setup), ctx, backends, opts, run, noise));
  const udp = await udpPhase(setup, cores >= 2);
  await cleanupAll();
  const busyAfter = await machineBusyCores(BUSY_SAMPLE_MS, cores);
  const elapsed = Date.now() - started;
  const record: RunRecord = {
    schema: 1,
    startedAt: new Date(started).toISOString(),
    elapsedS: Math.round(elapsed / 1000),
    mode: opts.quick ? 'quick' : 'full',
    run,
    machine: {
      cpus: cores,
      cpuModel: cpuInfo()[0]?.model ?? 'unknown',
      kernel: release(),
      clkTck: clockTicksPerSecond(),
      openFilesLimit: fdLimit,
      busyCoresBefore: busyBefore,
      busyCoresAfter: busyAfter,
    },
    tools: toolVersions(),
    l4lbRevision: l4lbRevision(),
    node: rts.map((r) => r.version),
    suites: suites.map((s) => ({ ...s, summary: summarize(s, run) })),
    ...(udp && { udp }),
  };
  printReport(record);
  writeOutputs(record, opts);

  // The reference contenders must work; l4lb failures are reported as n/a but do not fail the run.
  const broken = suites.flatMap((s) => s.contenders.filter((c) => c.kind !== 'l4lb' && (!c.available || c.failures.length > 0)).map((c) => c.id));
  if (broken.length > 0) {
    log(`bench: reference contender(s) failed: ${broken.join(', ')}`);
    return 1;
  }
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  async (err: Error) => {
    log(`bench: ${err.stack ?? err}`);
    await cleanupAll();
    process.exitCode = 1;
  },
);
