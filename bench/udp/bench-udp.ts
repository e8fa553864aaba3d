/**
 * @module bench/udp/bench-udp — the UDP phase: l4lb against nginx `stream` (`listen … udp`, one
 * worker) in front of two dnsmasq servers, DNS queries from a load generator in its own process.
 *
 *   npm run bench:udp            (quick: 3 s per measurement, one round)
 *   npm run bench:udp -- --full  (10 s per measurement, three rounds, the median reported)
 *
 * For each mode — `session` (a session per client socket, many queries each; nginx without
 * `proxy_responses`) and `responses-1` (a session per query; nginx `proxy_responses 1`, l4lb
 * `udp.responses: 1`) — it measures, per contender:
 * - the closed-loop query rate with {@link SOCKETS} client sockets, and the proxy's CPU time per
 *   query (one datagram each way; utime+stime of the whole process tree, from /proc);
 * - the loss at a fixed offered rate that nginx carries without loss (found by halving from half
 *   nginx's closed-loop rate until nginx loses nothing).
 * Both proxies run one process; the access log is off on both. Prints a table and a JSON line.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import dgram from 'node:dgram';
import { cpuTimes } from '../proc-stats.js';

const ROOT = join(fileURLToPath(import.meta.url), '..', '..', '..', '..');
const LOAD = join(ROOT, 'dist', 'bench', 'udp', 'load.js');
const NGINX_STREAM_MODULE = '/usr/lib/nginx/modules/ngx_stream_module.so';
/** Client sockets of the closed loop (each one session in session mode). */
const SOCKETS = 32;
/** Open-loop rates below this are not worth halving further. */
const MIN_RATE = 500;

const full = process.argv.includes('--full');
const SECONDS = full ? 10 : 3;
const ROUNDS = full ? 3 : 1;

type Mode = 'session' | 'responses-1';
type Kind = 'nginx' | 'l4lb';

interface LoadResult {
  sent: number;
  received: number;
  lost: number;
  seconds: number;
  rate: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function freeUdpPort(): Promise<number> {
  const s = dgram.createSocket('udp4');
  s.bind(0, '127.0.0.1');
  await once(s, 'listening');
  const port = s.address().port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

function startDnsmasq(port: number, ip: string): ChildProcess {
  const p = spawn('/usr/sbin/dnsmasq', [
    '--keep-in-foreground', '--conf-file=/dev/null', `--port=${port}`, '--listen-address=127.0.0.1', '--bind-interfaces',
    '--no-resolv', '--no-hosts', `--address=/svc.test/${ip}`, '--pid-file=', '--cache-size=0', '--dns-forward-max=10000',
  ], { stdio: 'ignore' });
  return p;
}

async function startNginx(dir: string, port: number, backends: number[], mode: Mode): Promise<ChildProcess> {
  const prefix = join(dir, `nginx-${mode}`);
  spawn('mkdir', ['-p', join(prefix, 'logs')]);
  await sleep(50);
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
  const p = spawn('nginx', ['-p', prefix, '-c', confPath, '-e', join(prefix, 'error.log'), '-g', 'daemon off;'], { stdio: 'ignore' });
  await sleep(500);
  if (p.exitCode !== null) throw new Error(`nginx exited (${p.exitCode}); see ${prefix}/error.log`);
  return p;
}

async function startL4lb(dir: string, port: number, backends: number[], mode: Mode): Promise<ChildProcess> {
  const file = join(dir, `l4lb-${mode}.yaml`);
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
  const p = spawn(process.execPath, [join(ROOT, 'bin', 'l4lb.js'), '--config', file], { stdio: ['ignore', 'pipe', 'inherit'] });
  await once(createInterface({ input: p.stdout! }), 'line');
  return p;
}

async function runLoad(port: number, seconds: number, rate?: number): Promise<LoadResult> {
  const args = [LOAD, String(port), String(SOCKETS), String(seconds), ...(rate ? [String(rate)] : [])];
  const p = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  p.stdout!.on('data', (c: Buffer) => (out += c.toString()));
  await once(p, 'exit');
  return JSON.parse(out) as LoadResult;
}

interface Measured {
  rate: number;
  cpuUsPerQuery: number;
  /** The kernel's share (stime): the syscalls and, on loopback, the delivery to the receiver. */
  sysUsPerQuery: number;
  lost: number;
}

async function closedLoop(proc: ChildProcess, port: number): Promise<Measured> {
  const before = cpuTimes(proc.pid!);
  const r = await runLoad(port, SECONDS);
  const after = cpuTimes(proc.pid!);
  const cpu = after.userS + after.sysS - before.userS - before.sysS;
  const n = Math.max(1, r.received);
  return { rate: r.rate, cpuUsPerQuery: (cpu * 1e6) / n, sysUsPerQuery: ((after.sysS - before.sysS) * 1e6) / n, lost: r.lost };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'l4lb-bench-udp-'));
  const backendPorts = [await freeUdpPort(), await freeUdpPort()];
  const dns = [startDnsmasq(backendPorts[0], '10.0.0.1'), startDnsmasq(backendPorts[1], '10.0.0.2')];
  await sleep(500);
  const results: Record<string, unknown> = {};
  try {
    for (const mode of ['session', 'responses-1'] as Mode[]) {
      const procs = new Map<Kind, { proc: ChildProcess; port: number }>();
      for (const kind of ['nginx', 'l4lb'] as Kind[]) {
        const port = await freeUdpPort();
        const proc = kind === 'nginx' ? await startNginx(dir, port, backendPorts, mode) : await startL4lb(dir, port, backendPorts, mode);
        procs.set(kind, { proc, port });
      }
      try {
        // Warm-up (JIT, socket buffers) before anything is measured.
        for (const { port } of procs.values()) await runLoad(port, 1);
        const closed = new Map<Kind, Measured[]>([['nginx', []], ['l4lb', []]]);
        for (let round = 0; round < ROUNDS; round++) {
          for (const kind of ['nginx', 'l4lb'] as Kind[]) {
            const { proc, port } = procs.get(kind)!;
            closed.get(kind)!.push(await closedLoop(proc, port));
          }
        }
        const summary = (kind: Kind) => ({
          rate: Math.round(median(closed.get(kind)!.map((m) => m.rate))),
          cpuUsPerQuery: Math.round(median(closed.get(kind)!.map((m) => m.cpuUsPerQuery)) * 10) / 10,
          sysUsPerQuery: Math.round(median(closed.get(kind)!.map((m) => m.sysUsPerQuery)) * 10) / 10,
        });
        const ng = summary('nginx');
        const l4 = summary('l4lb');
        // The fixed offered rate: the highest (halving from half nginx's rate) nginx carries with no loss.
        let rate = Math.max(MIN_RATE, Math.round(ng.rate / 2));
        let ngLoss = await runLoad(procs.get('nginx')!.port, SECONDS, rate);
        while (ngLoss.lost > 0 && rate > MIN_RATE) {
          rate = Math.max(MIN_RATE, Math.round(rate / 2));
          ngLoss = await runLoad(procs.get('nginx')!.port, SECONDS, rate);
        }
        const l4Loss = await runLoad(procs.get('l4lb')!.port, SECONDS, rate);
        results[mode] = {
          nginx: { ...ng, fixedRate: rate, lost: ngLoss.lost, sent: ngLoss.sent },
          l4lb: { ...l4, fixedRate: rate, lost: l4Loss.lost, sent: l4Loss.sent },
          cpuRatio: Math.round((l4.cpuUsPerQuery / ng.cpuUsPerQuery) * 100) / 100,
          rateRatio: Math.round((l4.rate / ng.rate) * 100) / 100,
        };
        console.log(`\n${mode}: ${SOCKETS} client sockets, ${SECONDS}s × ${ROUNDS}`);
        console.log(`  nginx  ${String(ng.rate).padStart(7)} q/s  ${String(ng.cpuUsPerQuery).padStart(6)} µs CPU/query (${ng.sysUsPerQuery} kernel)  loss at ${rate}/s: ${ngLoss.lost}/${ngLoss.sent}`);
        console.log(`  l4lb   ${String(l4.rate).padStart(7)} q/s  ${String(l4.cpuUsPerQuery).padStart(6)} µs CPU/query (${l4.sysUsPerQuery} kernel)  loss at ${rate}/s: ${l4Loss.lost}/${l4Loss.sent}`);
        console.log(`  l4lb/nginx: CPU per query ${(results[mode] as { cpuRatio: number }).cpuRatio}×, rate ${(results[mode] as { rateRatio: number }).rateRatio}×`);
      } finally {
        for (const { proc } of procs.values()) {
          proc.kill('SIGKILL');
          if (proc.exitCode === null) await once(proc, 'exit');
        }
      }
    }
    console.log(JSON.stringify({ udp: results, seconds: SECONDS, rounds: ROUNDS, sockets: SOCKETS, node: process.version }));
  } finally {
    for (const p of dns) p.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
