/**
 * @module bench/ka-memory — `npm run bench:ka-memory`: only the two memory phases of the bench,
 * for l4lb, repeatably: resident memory per idle connection and per keep-alive connection after
 * one request and its answer, each sample on a fresh l4lb process (as `npm run bench` measures
 * them: bench/measure.ts measureIdleMemory, 4,000 connections to the idle backend), several
 * rounds, median and spread per runtime.
 *
 * `--node 20,24,26` picks the runtimes (scripts/node-runtime.sh; 20 is this Node when it is
 * 20), `--proxy-cpu 0|1` the placement (clients and backend on the other core), `--l4lb
 * DIR[,DIR]` adds other checkouts (their bin/l4lb.js, built) measured in the same rounds,
 * alternating with this one: before and after in one session. `--detail` loads
 * bench/mem-probe.ts into l4lb and splits each sample's growth into V8 heap spaces, external
 * and ArrayBuffer memory and pooled read buffers; `--snapshot` also writes heap snapshots
 * (before and after, in the temp dir, which is then kept).
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { measureIdleMemory, type IdleMemorySample } from './measure.js';
import { PROBE_ENV, READER_ENV, SNAPSHOT_ENV, type ProbeReading } from './mem-probe.js';
import { cleanupAll, registerTempDir, sleep, startProcess } from './procs.js';
import { openFilesLimit } from './proc-stats.js';
import { freePort, hostPort, IdleBackend, L4LB_BIN, LOOPBACK, type Contender, type ProxyInstance, type ServerContext } from './servers.js';
import { currentNode, l4lbBuilt, nodeRuntime, repoRoot, type NodeRuntime } from './tools.js';

/** What the bench's keep-alive client sends (bench/bench.ts KEEP_ALIVE_REQUEST); the backend echoes it. */
const KEEP_ALIVE_REQUEST = Buffer.from('GET / HTTP/1.1\r\nHost: bench\r\n\r\n');
const DEFAULTS = { rounds: 3, conns: 4000, proxyCpu: 0 };
/** How long l4lb gets to print its listener. */
const START_TIMEOUT_MS = 10_000;
/** How long the probe gets to append its reading. */
const PROBE_TIMEOUT_MS = 30_000;
const PROBE_URL = pathToFileURL(fileURLToPath(new URL('./mem-probe.js', import.meta.url))).href;
const USAGE = 'options: --node 20,24,26 --rounds N --conns N --proxy-cpu 0|1 --phase idle,ka --l4lb DIR[,DIR] --detail --snapshot';

type Phase = 'idle' | 'ka';

interface Options {
  nodes: number[];
  rounds: number;
  conns: number;
  proxyCpu: number;
  phases: Phase[];
  /** Checkouts whose bin/l4lb.js is measured; the first is this one. */
  builds: string[];
  detail: boolean;
  snapshot: boolean;
}

function fail(msg: string): never {
  console.error(`bench:ka-memory: ${msg}; ${USAGE}`);
  process.exit(2);
}

function parseArgs(argv: string[]): Options {
  const o: Options = {
    nodes: [Number(process.versions.node.split('.')[0])],
    rounds: DEFAULTS.rounds,
    conns: DEFAULTS.conns,
    proxyCpu: DEFAULTS.proxyCpu,
    phases: ['idle', 'ka'],
    builds: [repoRoot()],
    detail: false,
    snapshot: false,
  };
  const positive = (a: string, v: string | undefined): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n <= 0) fail(`${a} needs a positive integer, got ${v ?? 'nothing'}`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--detail') o.detail = true;
    else if (a === '--snapshot') o.detail = o.snapshot = true;
    else if (a === '--rounds') o.rounds = positive(a, argv[++i]);
    else if (a === '--conns') o.conns = positive(a, argv[++i]);
    else if (a === '--node') o.nodes = (argv[++i] ?? '').split(',').map((v) => positive(a, v));
    else if (a === '--proxy-cpu') {
      const v = argv[++i];
      if (v !== '0' && v !== '1') fail(`--proxy-cpu is 0 or 1, got ${v ?? 'nothing'}`);
      o.proxyCpu = Number(v);
    } else if (a === '--phase') {
      const ps = (argv[++i] ?? '').split(',');
      if (ps.some((p) => p !== 'idle' && p !== 'ka')) fail(`--phase takes idle and/or ka, got ${ps.join(',')}`);
      o.phases = ps as Phase[];
    } else if (a === '--l4lb') o.builds.push(...(argv[++i] ?? '').split(',').filter(Boolean).map((d) => resolve(d)));
    else fail(`unknown option ${a}`);
  }
  return o;
}

function runtimeOf(major: number): NodeRuntime {
  return String(major) === process.versions.node.split('.')[0] ? currentNode() : nodeRuntime(major);
}

/** One sample: a fresh l4lb process of `build` on `node`, `conns` connections, RSS growth (and the probe's). */
interface Sample {
  m: IdleMemorySample;
  probe?: { before: ProbeReading; after: ProbeReading };
}

async function probe(pid: number, file: string, count: number): Promise<ProbeReading> {
  process.kill(pid, 'SIGUSR2');
  const deadline = Date.now() + PROBE_TIMEOUT_MS;
  for (;;) {
    let lines: string[] = [];
    try {
      lines = readFileSync(file, 'utf8').trim().split('\n').filter(Boolean);
    } catch {
      // Not written yet.
    }
    if (lines.length >= count) return JSON.parse(lines[count - 1]) as ProbeReading;
    if (Date.now() > deadline) throw new Error('the memory probe did not answer');
    await sleep(50);
  }
}

async function sample(ctx: ServerContext, o: Options, backend: IdleBackend, build: string, node: NodeRuntime, phase: Phase, tag: string): Promise<Sample> {
  const port = await freePort();
  const listen = { host: LOOPBACK, port };
  const bin = build === repoRoot() ? L4LB_BIN : join(build, 'bin', 'l4lb.js');
  const probeFile = join(ctx.tmpDir, `${tag}.probe`);
  const env = { ...process.env };
  if (o.detail) {
    env.NODE_OPTIONS = `${env.NODE_OPTIONS ?? ''} --import ${PROBE_URL}`.trim();
    env[PROBE_ENV] = probeFile;
    env[READER_ENV] = pathToFileURL(join(build, 'dist', 'src', 'proxy', 'socket-reader.js')).href;
    if (o.snapshot) env[SNAPSHOT_ENV] = '1';
  }
  const args = [bin, '--listen', hostPort(listen), '--balance', 'round-robin', '--log-level', 'warn', '--access-log', 'off', hostPort(backend.endpoint)];
  const proc = startProcess(`l4lb-${tag}`, node.bin, args, { cpus: String(o.proxyCpu), env });
  try {
    await proc.waitForLine(/^listening on /, START_TIMEOUT_MS);
    const contender: Contender = { id: 'l4lb', kind: 'l4lb', workers: 1, cpus: String(o.proxyCpu), node };
    const inst: ProxyInstance = { contender, target: phase === 'ka' ? 'idle-ka' : 'idle', address: listen, proc };
    if (!o.detail) return { m: await measureIdleMemory(inst, backend, o.conns, phase === 'ka' ? KEEP_ALIVE_REQUEST : undefined) };
    // The probe reads while the connections are held: measureIdleMemory reads RSS, then this.
    let before: ProbeReading | undefined;
    let after: ProbeReading | undefined;
    const m = await measureIdleMemory(inst, backend, o.conns, phase === 'ka' ? KEEP_ALIVE_REQUEST : undefined, {
      afterWarmup: async () => void (before = await probe(proc.pid, probeFile, 1)),
      whileHeld: async () => void (after = await probe(proc.pid, probeFile, 2)),
    });
    return { m, probe: { before: before!, after: after! } };
  } finally {
    await proc.stop();
  }
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

/** Per-connection bytes of the probe's growth, as short "name +N" parts. */
function detailOf(p: { before: ProbeReading; after: ProbeReading }, held: number): string {
  const per = (a: number, b: number): string => `${((b - a) / held).toFixed(0)}`;
  const parts = [
    `rss ${per(p.before.rss, p.after.rss)}`,
    `heapUsed ${per(p.before.heapUsed, p.after.heapUsed)}`,
    `external ${per(p.before.external, p.after.external)}`,
    `arrayBuffers ${per(p.before.arrayBuffers, p.after.arrayBuffers)}`,
  ];
  for (const [name, size] of Object.entries(p.after.spaces)) {
    const d = size - (p.before.spaces[name] ?? 0);
    if (d !== 0) parts.push(`${name} ${(d / held).toFixed(0)}`);
  }
  for (const pool of p.after.pools ?? []) {
    const b = p.before.pools?.find((x) => x.size === pool.size);
    parts.push(`pool${pool.size} inUse ${b?.inUse ?? 0}→${pool.inUse} allocated ${b?.allocated ?? 0}→${pool.allocated}`);
  }
  return `bytes per connection: ${parts.join(', ')}`;
}

async function main(): Promise<void> {
  const o = parseArgs(process.argv.slice(2));
  if (!l4lbBuilt()) fail('l4lb is not built (npm run build)');
  const runtimes = o.nodes.map(runtimeOf);
  const tmpDir = mkdtempSync(join(tmpdir(), 'l4lb-ka-memory-'));
  if (!o.snapshot) registerTempDir(tmpDir);
  const ctx: ServerContext = { tmpDir, clientCpus: String(1 - o.proxyCpu), proxyFdLimit: openFilesLimit() };
  const backend = await IdleBackend.start(ctx);
  const results = new Map<string, number[]>();
  const label = (build: string, node: NodeRuntime, phase: Phase): string =>
    `${phase === 'ka' ? 'keep-alive' : 'idle'.padEnd(10)} ${node.version.padEnd(9)} ${o.builds.length > 1 ? basename(build) : ''}`;
  console.log(`${o.conns} connections per sample, l4lb on CPU ${o.proxyCpu}, ${o.rounds} round(s); KiB of RSS growth per connection`);
  try {
    for (let round = 0; round < o.rounds; round++) {
      // Alternate the order of builds and runtimes per round, so drift does not favour one.
      const builds = round % 2 === 0 ? o.builds : [...o.builds].reverse();
      const nodes = round % 2 === 0 ? runtimes : [...runtimes].reverse();
      for (const node of nodes) {
        for (const build of builds) {
          for (const phase of o.phases) {
            const key = label(build, node, phase);
            const s = await sample(ctx, o, backend, build, node, phase, `r${round}-${node.version}-${basename(build)}-${phase}`);
            (results.get(key) ?? results.set(key, []).get(key)!).push(s.m.kibPerConn);
            const errs = s.m.errors > 0 ? `, ${s.m.errors} errors` : '';
            console.log(`  round ${round + 1} ${key} ${s.m.kibPerConn.toFixed(2)} KiB (${s.m.held} held${errs})`);
            if (s.probe) console.log(`      ${detailOf(s.probe, s.m.held)}`);
          }
        }
      }
    }
  } finally {
    await cleanupAll();
    if (!o.snapshot) rmSync(tmpDir, { recursive: true, force: true });
    else console.log(`heap snapshots kept in ${tmpDir}`);
  }
  console.log('\n| phase, runtime, build | median KiB per connection | min–max | samples |');
  console.log('|---|---:|---:|---:|');
  for (const [key, xs] of results) {
    console.log(`| ${key.trim().replace(/\s+/g, ' ')} | ${median(xs).toFixed(2)} | ${Math.min(...xs).toFixed(2)}–${Math.max(...xs).toFixed(2)} | ${xs.length} |`);
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err instanceof Error ? err.stack : err);
    process.exit(1);
  },
);
