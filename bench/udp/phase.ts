/**
 * @module bench/udp/phase — the UDP phase: l4lb against nginx `stream` (`listen … udp`, one
 * worker) in front of two dnsmasq servers, DNS queries from a load generator in its own process
 * (bench/udp/load.ts). Run by `npm run bench` (skip it with `--no-udp`) and on its own by
 * `npm run bench:udp` (bench/udp/bench-udp.ts).
 *
 * For each mode — `session` (a session per client socket, many queries each; nginx without
 * `proxy_responses`) and `responses-1` (a session per query; nginx `proxy_responses 1`, l4lb
 * `udp.responses: 1`) — it measures, per contender, in rounds with the order rotated:
 * - the closed-loop query rate with {@link SOCKETS} client sockets, and the proxy's CPU time per
 *   query (one datagram each way; utime+stime of the whole process tree, from /proc);
 * - the loss at a fixed offered rate that nginx carries without loss (found by halving from half
 *   nginx's closed-loop rate until nginx loses nothing).
 * Every proxy runs one process, access log off. With CPUs given, the proxies are pinned to one
 * and the load generator and dnsmasq to the other, as in the TCP phases.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import dgram from 'node:dgram';
import net from 'node:net';
import { cpuTimes } from '../proc-stats.js';
import { NGINX_STREAM_MODULE } from '../servers.js';

const ROOT = join(fileURLToPath(import.meta.url), '..', '..', '..', '..');
const LOAD = join(ROOT, 'dist', 'bench', 'udp', 'load.js');
/** Client sockets of the closed loop (each one session in session mode). */
const SOCKETS = 32;
/** Open-loop rates below this are not worth halving further. */
const MIN_RATE = 500;
/** How long dnsmasq gets to answer its first query (a loaded machine starts it slowly). */
const DNS_READY_MS = 15_000;
/** A query for svc.test (the load generator's, bench/udp/load.ts). */
/** dnsmasq starts tried before the phase gives up (each on a fresh port). */
const DNS_START_ATTEMPTS = 5;
const PROBE_QUERY = Buffer.from('0000010000010000000000000373766304746573740000010001', 'hex');

/** The issue's targets for l4lb against nginx (docs/performance.md, UDP). */
export const UDP_TARGETS = { cpuRatio: 1.2, rateRatio: 0.9, lost: 0 } as const;

export type UdpMode = 'session' | 'responses-1';
const MODES: UdpMode[] = ['session', 'responses-1'];

/** An l4lb to measure: a label, the Node binary to run it with, and which l4lb (default this one). */
export interface UdpL4lb {
  id: string;
  node: string;
  /** Path of `bin/l4lb.js` (another build, for a before/after comparison in one run). */
  bin?: string;
}

export interface UdpPhaseOptions {
  /** Seconds per measurement. */
  seconds: number;
  rounds: number;
  l4lb: UdpL4lb[];
  /** CPU list for the proxies (taskset -c); undefined = not pinned. */
  proxyCpus?: string;
  /** CPU list for the load generator and dnsmasq. */
  clientCpus?: string;
  log(msg: string): void;
}

/** One contender in one mode (medians over the rounds). */
export interface UdpContenderResult {
  id: string;
  /** Closed-loop queries per second. */
  rate: number;
  cpuUsPerQuery: number;
  /** The kernel's share of it (stime). */
  sysUsPerQuery: number;
  /** Queries lost at the mode's fixed rate, of `sent`. */
  lost: number;
  sent: number;
  /** l4lb only: against nginx (CPU per query, rate). */
  cpuRatio?: number;
  rateRatio?: number;
}

export interface UdpModeResult {
  mode: UdpMode;
  /** The offered rate of the loss measurement (nginx loses nothing there). */
  fixedRate: number;
  contenders: UdpContenderResult[];
}

export interface UdpPhaseResult {
  seconds: number;
  rounds: number;
  sockets: number;
  modes: UdpModeResult[];
}

interface LoadResult {
  sent: number;
  received: number;
  lost: number;
  seconds: number;
  rate: number;
}

interface Measured {
  rate: number;
  cpuUsPerQuery: number;
  sysUsPerQuery: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** `cmd args` pinned to `cpus` when given. */
function pinned(cpus: string | undefined, cmd: string, args: string[]): [string, string[]] {
  return cpus === undefined ? [cmd, args] : ['taskset', ['-c', cpus, cmd, ...args]];
}

async function freeUdpPort(): Promise<number> {
  const s = dgram.createSocket('udp4');
  s.bind(0, '127.0.0.1');
  await once(s, 'listening');
  const port = s.address().port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

function startDnsmasq(port: number, ip: string, cpus: string | undefined): ChildProcess {
  const [cmd, args] = pinned(cpus, '/usr/sbin/dnsmasq', [
    '--keep-in-foreground', '--conf-file=/dev/null', `--port=${port}`, '--listen-address=127.0.0.1', '--bind-interfaces',
    '--no-resolv', '--no-hosts', `--address=/svc.test/${ip}`, '--pid-file=', '--cache-size=0', '--dns-forward-max=10000',
  ]);
  const p = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  p.stderr!.on('data', (c: Buffer) => (err += c.toString()));
  p.once('exit', (code, signal) => {
    if (signal !== 'SIGKILL') process.stderr.write(`dnsmasq on port ${port} exited (${signal ?? code}): ${err.trim()}\n`);
  });
  return p;
}

async function startNginx(dir: string, port: number, backends: number[], mode: UdpMode, cpus: string | undefined): Promise<ChildProcess> {
  const prefix = join(dir, `nginx-${mode}`);
  mkdirSync(join(prefix, 'logs'), { recursive: true });
  const conf = `load_module ${NGINX_STREAM_MODULE};
worker_processes 1;
worker_rlimit_nofile 65536;
pid ${join(prefix, 'nginx.pid')};
error_log ${join(prefix, 'error.log')} error;
events { worker_connections 65536; }
stream {
  upstream dns { ${backends.map((b) => `server 127.0.0.1:${b};`).join(' ')} }
  server {
    listen 127.0.0.1:${port} udp;
    proxy_pass dns;
    proxy_timeout 30s;
    ${mode === 'responses-1' ? 'proxy_responses 1;' : ''}
  }
}
`;
  const confPath = join(dir, `nginx-${mode}.conf`);
  writeFileSync(confPath, conf);
  const [cmd, args] = pinned(cpus, 'nginx', ['-p', prefix, '-c', confPath, '-e', join(prefix, 'error.log'), '-g', 'daemon off;']);
  const p = spawn(cmd, args, { stdio: 'ignore' });
  await sleep(500);
  if (p.exitCode !== null) throw new Error(`nginx exited (${p.exitCode}); see ${prefix}/error.log`);
  return p;
}

async function startL4lb(dir: string, l: UdpL4lb, port: number, backends: number[], mode: UdpMode, cpus: string | undefined): Promise<ChildProcess> {
  const file = join(dir, `${l.id}-${mode}.yaml`);
  writeFileSync(file, `
log: { level: warn, access: off }
listeners:
  - name: dns
    listen: 127.0.0.1:${port}
    protocol: udp
    pool: dns
    timeouts: { idle: 30s }
${mode === 'responses-1' ? '    udp: { responses: 1 }' : ''}
pools:
  - name: dns
    backends: [${backends.map((b) => `127.0.0.1:${b}`).join(', ')}]
`);
  const [cmd, args] = pinned(cpus, l.node, [l.bin ?? join(ROOT, 'bin', 'l4lb.js'), '--config', file]);
  const p = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = once(p, 'exit').then(([code]) => {
    throw new Error(`${l.id} exited (${String(code)}) before listening`);
  });
  await Promise.race([once(createInterface({ input: p.stdout! }), 'line'), exited]);
  exited.catch(() => {});
  return p;
}

async function runLoad(port: number, seconds: number, cpus: string | undefined, rate?: number): Promise<LoadResult> {
  const [cmd, args] = pinned(cpus, process.execPath, [LOAD, String(port), String(SOCKETS), String(seconds), ...(rate ? [String(rate)] : [])]);
  const p = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  p.stdout!.on('data', (c: Buffer) => (out += c.toString()));
  await once(p, 'exit');
  return JSON.parse(out) as LoadResult;
}

async function closedLoop(proc: ChildProcess, port: number, o: UdpPhaseOptions): Promise<Measured> {
  const before = cpuTimes(proc.pid!);
  const r = await runLoad(port, o.seconds, o.clientCpus);
  const after = cpuTimes(proc.pid!);
  const cpu = after.userS + after.sysS - before.userS - before.sysS;
  const n = Math.max(1, r.received);
  return { rate: r.rate, cpuUsPerQuery: (cpu * 1e6) / n, sysUsPerQuery: ((after.sysS - before.sysS) * 1e6) / n };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

const round1 = (x: number) => Math.round(x * 10) / 10;
const round2 = (x: number) => Math.round(x * 100) / 100;

async function measureMode(mode: UdpMode, dir: string, backends: number[], o: UdpPhaseOptions): Promise<UdpModeResult> {
  const procs = new Map<string, { proc: ChildProcess; port: number }>();
  try {
    procs.set('nginx', await (async () => {
      const port = await freeUdpPort();
      return { proc: await startNginx(dir, port, backends, mode, o.proxyCpus), port };
    })());
    for (const l of o.l4lb) {
      const port = await freeUdpPort();
      procs.set(l.id, { proc: await startL4lb(dir, l, port, backends, mode, o.proxyCpus), port });
    }
    const ids = [...procs.keys()];
    // Warm-up (JIT, socket buffers) before anything is measured.
    for (const { port } of procs.values()) await runLoad(port, 1, o.clientCpus);
    const samples = new Map<string, Measured[]>(ids.map((id) => [id, []]));
    for (let round = 0; round < o.rounds; round++) {
      o.log(`  udp ${mode}: round ${round + 1}/${o.rounds}`);
      for (const id of [...ids.slice(round % ids.length), ...ids.slice(0, round % ids.length)]) {
        const { proc, port } = procs.get(id)!;
        samples.get(id)!.push(await closedLoop(proc, port, o));
      }
    }
    const summary = (id: string): Measured => ({
      rate: Math.round(median(samples.get(id)!.map((m) => m.rate))),
      cpuUsPerQuery: round1(median(samples.get(id)!.map((m) => m.cpuUsPerQuery))),
      sysUsPerQuery: round1(median(samples.get(id)!.map((m) => m.sysUsPerQuery))),
    });
    const ng = summary('nginx');
    // The fixed offered rate: the highest (halving from half nginx's rate) nginx carries with no loss.
    let rate = Math.max(MIN_RATE, Math.round(ng.rate / 2));
    o.log(`  udp ${mode}: loss at a fixed rate`);
    let ngLoss = await runLoad(procs.get('nginx')!.port, o.seconds, o.clientCpus, rate);
    while (ngLoss.lost > 0 && rate > MIN_RATE) {
      rate = Math.max(MIN_RATE, Math.round(rate / 2));
      ngLoss = await runLoad(procs.get('nginx')!.port, o.seconds, o.clientCpus, rate);
    }
    const contenders: UdpContenderResult[] = [{ id: 'nginx', ...ng, lost: ngLoss.lost, sent: ngLoss.sent }];
    for (const l of o.l4lb) {
      const m = summary(l.id);
      const loss = await runLoad(procs.get(l.id)!.port, o.seconds, o.clientCpus, rate);
      contenders.push({
        id: l.id,
        ...m,
        lost: loss.lost,
        sent: loss.sent,
        cpuRatio: round2(m.cpuUsPerQuery / ng.cpuUsPerQuery),
        rateRatio: round2(m.rate / ng.rate),
      });
    }
    return { mode, fixedRate: rate, contenders };
  } finally {
    for (const { proc } of procs.values()) {
      if (proc.exitCode !== null || proc.signalCode !== null) continue;
      proc.kill('SIGKILL');
      await once(proc, 'exit');
    }
  }
}

/**
 * Waits until the DNS server on `port` answers: a proxy started before would see ICMP
 * port-unreachable and eject it for the whole run.
 */
async function dnsReady(port: number, proc: ChildProcess): Promise<void> {
  const s = dgram.createSocket('udp4');
  let answered = false;
  s.on('message', () => (answered = true));
  // ICMP port-unreachable while dnsmasq is not bound yet: try again.
  s.on('error', () => {});
  const deadline = Date.now() + DNS_READY_MS;
  try {
    s.bind(0, '127.0.0.1');
    await once(s, 'listening');
    while (!answered) {
      if (proc.exitCode !== null || proc.signalCode !== null) throw new Error(`dnsmasq on port ${port} exited before it answered`);
      if (Date.now() > deadline) throw new Error(`dnsmasq on port ${port} did not answer within ${DNS_READY_MS} ms`);
      s.send(PROBE_QUERY, port, '127.0.0.1');
      await sleep(100);
    }
  } finally {
    s.close();
  }
}

/**
 * A loopback port free for TCP and UDP alike: dnsmasq listens on both, and after the TCP phases
 * a port free for UDP is often still held by a TCP connection.
 */
async function freeDnsPort(): Promise<number> {
  for (;;) {
    const server = net.createServer();
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve());
    });
    const port = (server.address() as net.AddressInfo).port;
    const udp = dgram.createSocket('udp4');
    const free = await new Promise<boolean>((resolve) => {
      udp.once('error', () => resolve(false));
      udp.bind(port, '127.0.0.1', () => resolve(true));
    });
    if (free) await new Promise<void>((r) => udp.close(() => r()));
    await new Promise<void>((r) => server.close(() => r()));
    if (free) return port;
  }
}

/** Starts dnsmasq answering `ip` and waits until it does; a port taken in between is tried again with another. */
async function startDns(ip: string, cpus: string | undefined): Promise<{ proc: ChildProcess; port: number }> {
  let lastError: unknown;
  for (let attempt = 0; attempt < DNS_START_ATTEMPTS; attempt++) {
    const port = await freeDnsPort();
    const proc = startDnsmasq(port, ip, cpus);
    try {
      await dnsReady(port, proc);
      return { proc, port };
    } catch (err) {
      lastError = err;
      proc.kill('SIGKILL');
    }
  }
  throw lastError;
}

/** Runs both modes; starts and stops its own dnsmasq servers and proxies. */
export async function runUdpPhase(o: UdpPhaseOptions): Promise<UdpPhaseResult> {
  const dir = mkdtempSync(join(tmpdir(), 'l4lb-bench-udp-'));
  const dns: ChildProcess[] = [];
  try {
    const backendPorts: number[] = [];
    for (const ip of ['10.0.0.1', '10.0.0.2']) {
      const { proc, port } = await startDns(ip, o.clientCpus);
      dns.push(proc);
      backendPorts.push(port);
    }
    const modes: UdpModeResult[] = [];
    for (const mode of MODES) modes.push(await measureMode(mode, dir, backendPorts, o));
    return { seconds: o.seconds, rounds: o.rounds, sockets: SOCKETS, modes };
  } finally {
    for (const p of dns) p.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
}

function verdict(ok: boolean): string {
  return ok ? 'PASS' : 'MISS';
}

/**
 * The phase as a table (Markdown with `markdown`), one row per contender and mode, with
 * l4lb's ratios to nginx and PASS/MISS against {@link UDP_TARGETS}.
 */
export function udpReport(r: UdpPhaseResult, markdown = false): string {
  const head = ['mode', 'contender', 'queries/s', 'CPU µs/query (kernel)', 'lost at fixed rate', 'CPU ×nginx', 'rate ×nginx', 'targets'];
  const rows = r.modes.flatMap((m) =>
    m.contenders.map((c) => [
      m.mode,
      c.id,
      String(c.rate),
      `${c.cpuUsPerQuery} (${c.sysUsPerQuery})`,
      `${c.lost}/${c.sent} at ${m.fixedRate}/s`,
      c.cpuRatio === undefined ? '' : `${c.cpuRatio}× (≤ ${UDP_TARGETS.cpuRatio})`,
      c.rateRatio === undefined ? '' : `${c.rateRatio}× (≥ ${UDP_TARGETS.rateRatio})`,
      c.cpuRatio === undefined
        ? ''
        : `CPU ${verdict(c.cpuRatio <= UDP_TARGETS.cpuRatio)}, rate ${verdict(c.rateRatio! >= UDP_TARGETS.rateRatio)}, loss ${verdict(c.lost <= UDP_TARGETS.lost)}`,
    ]),
  );
  const title = `UDP: DNS through the proxy to two dnsmasq (${r.sockets} client sockets, ${r.seconds} s × ${r.rounds} round(s), medians; loss at a rate nginx carries without loss)`;
  if (markdown) {
    return [`**${title}**`, '', `| ${head.join(' | ')} |`, `| ${head.map(() => '---').join(' | ')} |`, ...rows.map((row) => `| ${row.join(' | ')} |`)].join('\n');
  }
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i])).join('  ').trimEnd();
  return [title, line(head), ...rows.map(line)].join('\n');
}
