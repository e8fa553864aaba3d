/**
 * @module bench/bench — `npm run bench`: l4lb side by side with HAProxy and nginx.
 *
 * Starts the backends and every contender on loopback, measures them in alternating rounds
 * (each round runs every phase for every contender, contender order rotated per round), then
 * prints the tables, writes JSON under bench/results/ and the chart. See bench/README.md.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus as cpuInfo, release, tmpdir } from 'node:os';
import { join } from 'node:path';
import { renderChart } from './chart.js';
import { measureBulk, measureIdleMemory, measureMaxConns, measureWrk, type BulkSample, type CpuReading, type WrkSample } from './measure.js';
import { clockTicksPerSecond, machineBusyCores, openFilesLimit, processTree } from './proc-stats.js';
import { cleanupAll, registerTempDir } from './procs.js';
import { markdownReport, summarize, textReport, type ContenderResult, type MetricId, type RunInfo, type SuiteResult } from './report.js';
import {
  IdleBackend,
  startHttpBackend,
  startIperfServer,
  startProxy,
  type Contender,
  type Endpoint,
  type ProxyInstance,
  type ServerContext,
  type Target,
} from './servers.js';
import { currentNode, extendPath, l4lbBuilt, missingTools, node24, repoRoot, toolVersions, type NodeRuntime } from './tools.js';

/** Full-mode defaults: about five minutes on a 2-core machine. */
const FULL = { rounds: 3, durationS: 3, idleConns: 4000, maxConns: 9000, workerRounds: 2, warmupS: 1, noiseRepeats: 24 };
/** Quick-mode defaults: under a minute, to show the bench works (numbers are noisy). */
const QUICK = { rounds: 1, durationS: 1, idleConns: 1000, maxConns: 1000, workerRounds: 1, warmupS: 0, noiseRepeats: 4 };
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
/** CPU the proxies run on, and CPU the clients and backends run on. */
const PROXY_CPU = '0';
const CLIENT_CPU = '1';

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
  /** Samples that may be taken again per suite because other processes were busy. */
  noiseRepeats: number;
  node24: 'auto' | 'yes' | 'no';
  workers: boolean;
  only?: string[];
}

const USAGE = `usage: npm run bench -- [options]

  --quick            short run (< 1 min): 1 round of 1 s, no warm-up, 1000 idle conns,
                     1000 concurrent; writes *-quick files, never docs/perf-chart.svg
  --rounds N         alternating rounds (default ${FULL.rounds})
  --duration S       seconds per client run (default ${FULL.durationS})
  --idle-conns N     idle connections for the memory phase (default ${FULL.idleConns})
  --max-conns N      concurrency target (default ${FULL.maxConns}, capped by the fd limit)
  --node24           require l4lb on Node 24 too (scripts/node24.sh installs it)
  --no-node24        run l4lb on the current Node only
                     (default: current Node, plus Node 24 when scripts/node24.sh succeeds)
  --no-workers       skip the 2-worker comparison (l4lb --workers 2 vs HAProxy nbthread 2)
  --only LIST        only these contenders (ids or kinds, comma-separated; haproxy is always kept)
  --help             this text

Needs haproxy, nginx + libnginx-mod-stream, iperf3, wrk, taskset: run bench/setup.sh once.`;

function parseOptions(argv: string[]): Options | undefined {
  const quick = argv.includes('--quick');
  const d = quick ? QUICK : FULL;
  const o: Options = { quick, ...d, node24: 'auto', workers: true };
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
    else if (a === '--node24') o.node24 = 'yes';
    else if (a === '--no-node24') o.node24 = 'no';
    else if (a === '--no-workers') o.workers = false;
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

type Phase = 'bulk1' | 'bulk4' | 'newConn' | 'keepAlive';

const PHASE_LABEL: Record<Phase, string> = {
  bulk1: 'bulk, 1 stream',
  bulk4: 'bulk, 4 streams',
  newConn: 'new connections',
  keepAlive: 'keep-alive',
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
    keepAlive: [],
    failures: [],
    repeats: 0,
  };
}

function targetsOf(spec: SuiteSpec): Target[] {
  const t: Target[] = [];
  if (spec.phases.some((p) => p === 'bulk1' || p === 'bulk4')) t.push('iperf');
  if (spec.phases.some((p) => p === 'newConn' || p === 'keepAlive')) t.push('http');
  if (spec.memory) t.push('idle');
  return t;
}

function upstreamsOf(target: Target, b: Backends): Endpoint[] {
  return target === 'http' ? b.http : target === 'iperf' ? [b.iperf] : [b.idle.endpoint];
}

function measurePhase(phase: Phase, inst: Map<Target, ProxyInstance>, opts: Options, ctx: ServerContext): Promise<BulkSample | WrkSample> {
  if (phase === 'bulk1' || phase === 'bulk4') {
    return measureBulk(inst.get('iperf')!, phase === 'bulk1' ? 1 : 4, opts.durationS, ctx.clientCpus);
  }
  return measureWrk(inst.get('http')!, { close: phase === 'newConn', durationS: opts.durationS, clientCpus: ctx.clientCpus });
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

async function runSuite(spec: SuiteSpec, ctx: ServerContext, backends: Backends, opts: Options, run: RunInfo): Promise<SuiteResult> {
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
        instances.set(c.id, await startContender(c, targetsOf(spec), ctx, backends));
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

  // Repeats for noise are capped per suite so a busy machine cannot stretch the run unboundedly.
  const noiseBudget = { left: opts.noiseRepeats };
  for (let round = 0; round < spec.rounds; round++) {
    for (const phase of spec.phases) {
      log(`  round ${round + 1}/${spec.rounds}: ${PHASE_LABEL[phase]}`);
      for (const c of rotate(live, round)) {
        const r = results.get(c.id)!;
        const inst = instances.get(c.id)!;
        const what = `round ${round + 1} ${PHASE_LABEL[phase]}`;
        await attempt(c, what, async () => {
          const { sample, repeats } = await leastNoisy(c, noiseBudget, () => measurePhase(phase, inst, opts, ctx));
          r.repeats += repeats;
          if ('gbps' in sample) {
            r.bulk.push(sample);
            return `${sample.gbps.toFixed(2)} Gbit/s${sample.cpuS !== undefined ? `, ${sample.cpuS.toFixed(2)} CPU s` : ''}`;
          }
          (phase === 'newConn' ? r.newConn : r.keepAlive).push(sample);
          const cpu = sample.cpuS !== undefined ? `, ${((sample.cpuS / sample.requests) * 1e6).toFixed(1)} CPU µs/req` : '';
          return `${Math.round(sample.reqPerSec)} req/s, p99 ${sample.p99Ms.toFixed(2)} ms${cpu}${sample.errors ? `, ${sample.errors} errors` : ''}`;
        });
      }
    }
  }

  if (spec.memory) {
    log(`  idle memory (${run.idleConns} connections) and concurrency (up to ${run.maxConnTarget})`);
    for (const c of live.filter((x) => x.kind !== 'direct')) {
      const r = results.get(c.id)!;
      const inst = instances.get(c.id)!.get('idle')!;
      await attempt(c, 'idle memory', async () => {
        r.idleMemory = await measureIdleMemory(inst, backends.idle, run.idleConns);
        const m = r.idleMemory;
        return `${m.kibPerConn.toFixed(2)} KiB per connection (${m.rssBeforeKiB} → ${m.rssAfterKiB} KiB RSS, ${m.held} held)`;
      });
      await attempt(c, 'concurrency', async () => {
        const step = Math.ceil(run.maxConnTarget / MAX_CONN_STEPS);
        r.maxConns = await measureMaxConns(inst, backends.idle, run.maxConnTarget, step);
        return `${r.maxConns.held} held${r.maxConns.errors ? `, stopped by ${r.maxConns.errors} errors` : ''}`;
      });
    }
  }

  await Promise.all([...instances.values()].flatMap((m) => [...m.values()].map((i) => i.proc?.stop())));
  log(`  (${fmtDuration(Date.now() - started)})`);
  // Keep the declared contender order in tables (unavailable ones included).
  const order = [...spec.contenders, ...spec.unavailable.map((u) => u.contender)];
  const all = [...spec.contenders.map((c) => c.id), ...spec.unavailable.map((u) => u.contender.id)];
  order.sort((a, b) => all.indexOf(a.id) - all.indexOf(b.id));
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

/** Node runtimes to run l4lb on, per the --node24 option. */
function runtimes(opts: Options): NodeRuntime[] {
  const current = currentNode();
  const major = Number(current.version.slice(1).split('.')[0]);
  if (opts.node24 === 'no' || major >= 24) return [current];
  try {
    return [current, node24()];
  } catch (err) {
    if (opts.node24 === 'yes') throw new Error(`Node 24 unavailable (scripts/node24.sh): ${(err as Error).message}`);
    log(`note: Node 24 unavailable, l4lb runs on ${current.version} only (${(err as Error).message.split('\n')[0]})`);
    return [current];
  }
}

function l4lbId(rt: NodeRuntime, workers: number): string {
  return `l4lb${workers > 1 ? `-w${workers}` : ''}@node${rt.version.slice(1).split('.')[0]}`;
}

function selected(opts: Options, c: Contender): boolean {
  return !opts.only || c.kind === 'haproxy' || opts.only.includes(c.id) || opts.only.includes(c.kind);
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
  extendPath();
  const missing = missingTools();
  if (missing.length > 0) {
    log(`bench: missing tools:\n${missing.map((m) => `  - ${m}`).join('\n')}\nRun bench/setup.sh (as root) to install them, then try again.`);
    return 2;
  }
  const started = Date.now();
  const cores = availableParallelism();
  const [proxyCpu, clientCpu] = cores >= 2 ? [PROXY_CPU, CLIENT_CPU] : ['0', '0'];
  if (cores < 2) log('warning: fewer than 2 CPUs: proxies and clients share CPU 0, numbers are not comparable');
  // The bench itself (and the connection holder inside it) is a client: keep it off the proxy core.
  execFileSync('taskset', ['-a', '-cp', clientCpu, String(process.pid)], { stdio: 'ignore' });

  const fdLimit = openFilesLimit();
  // Each proxied connection costs the proxy two descriptors.
  const maxConnTarget = Math.max(1, Math.min(opts.maxConns, Math.floor((fdLimit - FD_MARGIN) / 2)));
  if (maxConnTarget < opts.maxConns) log(`note: ulimit -n is ${fdLimit}: concurrency target lowered to ${maxConnTarget}`);
  const run: RunInfo = { quick: opts.quick, rounds: opts.rounds, durationS: opts.durationS, idleConns: opts.idleConns, maxConnTarget };
  const tmpDir = mkdtempSync(join(tmpdir(), 'l4lb-bench-'));
  registerTempDir(tmpDir);
  const ctx: ServerContext = { tmpDir, clientCpus: clientCpu, proxyFdLimit: Math.min(fdLimit, 2 * maxConnTarget + FD_MARGIN) };

  const rts = runtimes(opts);
  const built = l4lbBuilt();
  const notBuilt = 'l4lb is not built: dist/src/cli/main.js is missing (run npx tsc -p .)';
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

  const singleAll: Contender[] = [
    { id: 'direct', kind: 'direct', workers: 1, cpus: proxyCpu },
    { id: 'haproxy', kind: 'haproxy', workers: 1, cpus: proxyCpu },
    { id: 'nginx', kind: 'nginx', workers: 1, cpus: proxyCpu },
    { id: 'node-pipe', kind: 'node-pipe', workers: 1, cpus: proxyCpu, node: currentNode() },
    ...rts.map((rt): Contender => ({ id: l4lbId(rt, 1), kind: 'l4lb', workers: 1, cpus: proxyCpu, node: rt })),
  ];
  const single = singleAll.filter((c) => selected(opts, c));
  const split = (list: Contender[]) => ({
    contenders: built ? list : list.filter((c) => c.kind !== 'l4lb'),
    unavailable: built ? [] : list.filter((c) => c.kind === 'l4lb').map((contender) => ({ contender, reason: notBuilt })),
  });

  const suites: SuiteResult[] = [];
  suites.push(
    await runSuite(
      {
        id: 'single-core',
        title: 'Single core: every proxy on one CPU',
        placement: `proxies pinned to CPU ${proxyCpu}; wrk, iperf3, backends and the bench pinned to CPU ${clientCpu} (taskset -c)`,
        baseline: 'haproxy',
        ...split(single),
        phases: ['bulk1', 'bulk4', 'newConn', 'keepAlive'],
        memory: true,
        rounds: opts.rounds,
        judged: true,
        metrics: ['bulk1', 'bulk4', 'cpuPerGB', 'userPerGB', 'connPerSec', 'cpuPerConnUs', 'userPerConnUs', 'kaReqPerSec', 'kaP50Ms', 'kaP99Ms', 'idleKiBPerConn', 'maxHeld'],
      },
      ctx,
      backends,
      opts,
      run,
    ),
  );

  if (opts.workers && cores >= 2) {
    // The newest runtime: the multi-worker comparison is about l4lb's design, not Node's version.
    const rt = rts[rts.length - 1];
    const both = `${proxyCpu},${clientCpu}`;
    const twoAll: Contender[] = [
      { id: 'haproxy-t2', kind: 'haproxy', workers: 2, cpus: both },
      { id: l4lbId(rt, 2), kind: 'l4lb', workers: 2, cpus: both, node: rt },
    ];
    const two = twoAll.filter((c) => selected(opts, c));
    suites.push(
      await runSuite(
        {
          id: 'two-workers',
          title: 'Two workers: l4lb --workers 2 vs HAProxy nbthread 2',
          placement: `proxies pinned to CPUs ${both}; clients and backends pinned to CPU ${clientCpu}, so they share it with one proxy worker`,
          baseline: 'haproxy-t2',
          ...split(two),
          phases: ['bulk4', 'newConn', 'keepAlive'],
          memory: false,
          rounds: opts.workerRounds,
          judged: false,
          metrics: ['bulk4', 'cpuPerGB', 'userPerGB', 'connPerSec', 'cpuPerConnUs', 'userPerConnUs', 'kaReqPerSec', 'kaP99Ms'],
        },
        ctx,
        backends,
        opts,
        run,
      ),
    );
  }
  await cleanupAll();
  const busyAfter = await machineBusyCores(BUSY_SAMPLE_MS, cores);
  const elapsed = Date.now() - started;
  const busyNote = `other load on the machine: ${busyBefore.toFixed(2)} cores busy before the run, ${busyAfter.toFixed(2)} after (measured while the bench was idle)`;

  // Report.
  const text = suites.map((s) => textReport(s, run)).join('\n\n');
  process.stdout.write(`\n${text}\n\n${busyNote}\nbench took ${fmtDuration(elapsed)}\n`);
  const stamp = new Date(started).toISOString().replace(/[:.]/g, '-');
  const resultsDir = join(repoRoot(), 'bench', 'results');
  mkdirSync(resultsDir, { recursive: true });
  const suffix = opts.quick ? '-quick' : '';
  const record = {
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
    node: rts.map((r) => r.version),
    suites: suites.map((s) => ({ ...s, summary: summarize(s, run) })),
  };
  const json = `${JSON.stringify(record, null, 2)}\n`;
  writeFileSync(join(resultsDir, `${stamp}${suffix}.json`), json);
  writeFileSync(join(resultsDir, `latest${suffix}.json`), json);
  const md = [
    `<!-- generated by npm run bench${opts.quick ? ' -- --quick' : ''} on ${record.startedAt} -->`,
    `Run: ${record.mode}, ${run.rounds} round(s) × ${run.durationS} s per client run, ${run.idleConns} idle connections, concurrency target ${run.maxConnTarget}; ${cores} × ${record.machine.cpuModel}, Linux ${record.machine.kernel}; ${record.tools.haproxy}; ${record.tools.nginx}; l4lb on ${rts.map((r) => `Node ${r.version}`).join(' and ')}; ${busyNote}.`,
    '',
    ...suites.map((s) => markdownReport(s, run)),
  ].join('\n\n');
  writeFileSync(join(resultsDir, `latest${suffix}.md`), `${md}\n`);
  // Quick runs are noisy: their chart stays out of docs/.
  const chartPath = opts.quick ? join(resultsDir, 'perf-chart-quick.svg') : join(repoRoot(), 'docs', 'perf-chart.svg');
  mkdirSync(join(chartPath, '..'), { recursive: true });
  const subtitle = `${record.mode} run ${record.startedAt.slice(0, 16).replace('T', ' ')} UTC, ${run.rounds} round(s) × ${run.durationS} s, proxies pinned to one CPU, clients on the other; l4lb on ${rts.map((r) => `Node ${r.version}`).join(', ')}`;
  writeFileSync(chartPath, renderChart(suites[0], run, subtitle));
  log(`wrote ${join(resultsDir, `latest${suffix}.json`)}, ${join(resultsDir, `latest${suffix}.md`)} and ${chartPath}`);

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
