/**
 * @module bench/servers — start the backends and the proxies under test, all on loopback.
 *
 * Backends (pinned to the client core): two nginx HTTP servers with a small body, one iperf3
 * server, one idle-holding Node server. Proxies (pinned to the proxy core): HAProxy `mode tcp`,
 * nginx `stream`, the plain Node proxy and l4lb. Each proxy gets one instance per backend group
 * (`http`, `iperf`, `idle`) because l4lb's CLI has one listener per process; the same split is
 * used for every contender so CPU and memory are always read from a process that served only
 * that phase's traffic. Configs live in the bench's temp dir.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { IdleMessage, IdleRequest } from './idle-backend.js';
import { processTree } from './proc-stats.js';
import { sleep, startProcess, waitForPort, type ManagedProcess } from './procs.js';

/** Where Debian's nginx keeps the dynamic stream module. */
export const NGINX_STREAM_MODULE = '/usr/lib/nginx/modules/ngx_stream_module.so';
/** All servers bind here; the bench never leaves loopback. */
export const LOOPBACK = '127.0.0.1';
/** Accept queue length asked of every listener (the kernel caps it at somaxconn). */
const LISTEN_BACKLOG = 4096;
/** How long a server gets to start listening. */
const START_TIMEOUT_MS = 10_000;
/** How long l4lb gets to fork its workers after it prints its listener. */
const WORKERS_TIMEOUT_MS = 3000;
/** Proxy idle timeouts: long enough that no phase is ever cut by them. */
const PROXY_IDLE_TIMEOUT = '5m';

const HERE = fileURLToPath(new URL('.', import.meta.url));
/** l4lb's executable, relative to dist/bench/. */
export const L4LB_BIN = fileURLToPath(new URL('../../bin/l4lb.js', import.meta.url));

/** A loopback address. */
export interface Endpoint {
  host: string;
  port: number;
}

/** Formats an endpoint as HOST:PORT. */
export function hostPort(e: Endpoint): string {
  return `${e.host}:${e.port}`;
}

/** Shared settings of one bench run. */
export interface ServerContext {
  /** Temp dir for configs, pid files and logs. */
  tmpDir: string;
  /** CPU list of the backends and clients (taskset). */
  clientCpus: string;
  /** File descriptors each proxy may need: sized from the concurrency target. */
  proxyFdLimit: number;
  /**
   * I/O buffer size for HAProxy (`tune.bufsize`) and nginx (`proxy_buffer_size`); undefined
   * keeps their defaults (16 KiB both), which is what the published comparison uses.
   */
  proxyBufferSize?: number;
}

/** Asks the kernel for a free loopback port (closed again before use; races are unlikely here). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, LOOPBACK, () => {
      const addr = s.address();
      s.close(() => (addr && typeof addr === 'object' ? resolve(addr.port) : reject(new Error('no port'))));
    });
  });
}

function nginxPrefix(ctx: ServerContext, name: string): string {
  const dir = join(ctx.tmpDir, name);
  mkdirSync(dir, { recursive: true });
  return dir;
}

/** Starts nginx in the foreground with `conf` under its own prefix dir. */
function startNginx(ctx: ServerContext, name: string, conf: string, cpus: string): ManagedProcess {
  const prefix = nginxPrefix(ctx, name);
  const confPath = join(prefix, 'nginx.conf');
  writeFileSync(confPath, conf);
  // -e keeps nginx from opening the compiled-in /var/log path before it reads the config.
  return startProcess(name, 'nginx', ['-p', prefix, '-c', confPath, '-e', join(prefix, 'error.log'), '-g', 'daemon off;'], {
    cpus,
  });
}

function nginxMain(ctx: ServerContext, prefix: string, workers: number, workerConnections: number): string {
  return [
    `worker_processes ${workers};`,
    `worker_rlimit_nofile ${ctx.proxyFdLimit};`,
    `pid ${join(prefix, 'nginx.pid')};`,
    `error_log ${join(prefix, 'error.log')} warn;`,
    `events { worker_connections ${workerConnections}; }`,
  ].join('\n');
}

/** Starts an nginx HTTP backend that answers every request with a small body. */
export async function startHttpBackend(ctx: ServerContext, name: string): Promise<Endpoint> {
  const port = await freePort();
  const prefix = nginxPrefix(ctx, name);
  const conf = `${nginxMain(ctx, prefix, 1, 4096)}
http {
  access_log off;
  keepalive_requests 1000000;
  keepalive_timeout 300s;
  server {
    listen ${LOOPBACK}:${port} backlog=${LISTEN_BACKLOG};
    location / { default_type text/plain; return 200 "hello from ${name}\\n"; }
  }
}
`;
  const p = startNginx(ctx, name, conf, ctx.clientCpus);
  await waitForPort(LOOPBACK, port, START_TIMEOUT_MS, p);
  return { host: LOOPBACK, port };
}

/** Starts a persistent iperf3 server. */
export async function startIperfServer(ctx: ServerContext): Promise<Endpoint> {
  const port = await freePort();
  // --forceflush: without it the "Server listening" line sits in a pipe buffer.
  const p = startProcess('iperf3-server', 'iperf3', ['-s', '-B', LOOPBACK, '-p', String(port), '--forceflush'], {
    cpus: ctx.clientCpus,
  });
  await p.waitForLine(/Server listening/, START_TIMEOUT_MS);
  return { host: LOOPBACK, port };
}

/** The idle-holding backend and a way to ask how many connections it holds. */
export class IdleBackend {
  readonly endpoint: Endpoint;
  readonly #proc: ManagedProcess;
  #nextId = 1;
  readonly #pending = new Map<number, (m: { open: number; accepted: number }) => void>();

  private constructor(proc: ManagedProcess, port: number) {
    this.#proc = proc;
    this.endpoint = { host: LOOPBACK, port };
    proc.child.on('message', (m: IdleMessage) => {
      if (m.type !== 'count') return;
      this.#pending.get(m.id)?.(m);
      this.#pending.delete(m.id);
    });
  }

  /** Starts the backend process and waits for it to listen. */
  static async start(ctx: ServerContext): Promise<IdleBackend> {
    const proc = startProcess('idle-backend', process.execPath, [join(HERE, 'idle-backend.js'), LOOPBACK], {
      cpus: ctx.clientCpus,
      ipc: true,
    });
    const port = await new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`idle-backend did not start: ${proc.tail()}`)), START_TIMEOUT_MS);
      proc.child.on('message', (m: IdleMessage) => {
        if (m.type === 'ready') {
          clearTimeout(timer);
          resolve(m.port);
        }
      });
      void proc.exited.then(() => reject(new Error(`idle-backend exited: ${proc.tail()}`)));
    });
    return new IdleBackend(proc, port);
  }

  /** Connections open right now and accepted so far. */
  count(): Promise<{ open: number; accepted: number }> {
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      if (this.#proc.exit) return reject(new Error(`idle-backend exited: ${this.#proc.tail()}`));
      this.#pending.set(id, resolve);
      const req: IdleRequest = { type: 'count', id };
      this.#proc.child.send(req);
    });
  }
}

/** The kinds of contender the bench knows how to start. */
export type ContenderKind = 'direct' | 'haproxy' | 'nginx' | 'node-pipe' | 'l4lb';

/** One proxy (or the direct path) under test. */
export interface Contender {
  /** Unique id used in tables and JSON, e.g. `l4lb@node24`. */
  id: string;
  kind: ContenderKind;
  /** Threads (HAProxy), worker processes (nginx, l4lb); 1 for the single-core comparison. */
  workers: number;
  /** CPU list the proxy is pinned to. */
  cpus: string;
  /** Node runtime for node-pipe and l4lb. */
  node?: { bin: string; version: string };
}

/**
 * Which backend group a proxy instance forwards to, and how it logs. `http` and the others log
 * nothing (as the published comparison always did); `http-log` is the same HTTP group with an
 * access line per connection written to a file, as users run proxies: HAProxy `option tcplog`
 * with `log stdout format raw` and stdout to a file, nginx `access_log FILE`, l4lb
 * `--access-log FILE`. `http-log-stderr` is l4lb's true default (access log on stderr, log
 * level info) with stderr to a file. `idle-ka` forwards to the idle backend like `idle`, for
 * the keep-alive memory phase: a process of its own, so memory the idle phase freed is not
 * counted as this phase's.
 */
export type Target = 'http' | 'http-log' | 'http-log-stderr' | 'iperf' | 'idle' | 'idle-ka';

/** Whether the contender can log to `target` (only proxies log; node-pipe has no log). */
export function servesTarget(kind: ContenderKind, target: Target): boolean {
  if (target === 'http-log') return kind === 'haproxy' || kind === 'nginx' || kind === 'l4lb';
  if (target === 'http-log-stderr') return kind === 'l4lb';
  return true;
}

/** A running proxy instance (or the direct path, which has no process). */
export interface ProxyInstance {
  contender: Contender;
  target: Target;
  /** Where clients connect. */
  address: Endpoint;
  proc?: ManagedProcess;
}

/** Starts one instance of `contender` forwarding to `upstreams` and waits until it accepts. */
export async function startProxy(
  ctx: ServerContext,
  contender: Contender,
  target: Target,
  upstreams: Endpoint[],
): Promise<ProxyInstance> {
  if (contender.kind === 'direct') return { contender, target, address: upstreams[0] };
  const port = await freePort();
  const listen: Endpoint = { host: LOOPBACK, port };
  const name = `${contender.id}-${target}`;
  const logFile = target === 'http-log' || target === 'http-log-stderr' ? join(nginxPrefix(ctx, name), 'access.log') : undefined;
  let proc: ManagedProcess;
  switch (contender.kind) {
    case 'haproxy':
      proc = startHaproxy(ctx, name, contender, listen, upstreams, logFile);
      break;
    case 'nginx':
      proc = startNginxStream(ctx, name, contender, listen, upstreams, logFile);
      break;
    case 'node-pipe':
    case 'l4lb': {
      const script = contender.kind === 'l4lb' ? L4LB_BIN : join(HERE, 'node-pipe.js');
      const args = [script, '--listen', hostPort(listen)];
      if (contender.kind === 'l4lb') {
        // Without logs, l4lb's access log is off to match HAProxy and nginx. With them: a file,
        // or the defaults (stderr, level info) with stderr going to the file.
        args.push('--balance', 'round-robin');
        if (target === 'http-log') args.push('--log-level', 'warn', '--access-log', logFile!);
        else if (target !== 'http-log-stderr') args.push('--log-level', 'warn', '--access-log', 'off');
        if (contender.workers > 1) args.push('--workers', String(contender.workers));
      }
      args.push(...upstreams.map(hostPort));
      proc = startProcess(name, contender.node?.bin ?? process.execPath, args, {
        cpus: contender.cpus,
        ...(target === 'http-log-stderr' ? { stderrFile: logFile } : {}),
      });
      // The CLI contract: the first stdout line announces the listener.
      await proc.waitForLine(/^listening on /, START_TIMEOUT_MS);
      break;
    }
  }
  try {
    await waitForPort(LOOPBACK, port, START_TIMEOUT_MS, proc);
    if (contender.kind === 'l4lb' && contender.workers > 1) await waitForWorkers(proc, contender.workers);
  } catch (err) {
    await proc.stop();
    throw err;
  }
  return { contender, target, address: listen, proc };
}

/**
 * l4lb's multi-process mode forks workers; a tree of one process means the flag was accepted
 * but not acted on, and the comparison would be 1 worker against 2 threads.
 */
async function waitForWorkers(proc: ManagedProcess, workers: number): Promise<void> {
  const deadline = Date.now() + WORKERS_TIMEOUT_MS;
  let count = processTree(proc.pid).length;
  while (count < workers && Date.now() < deadline) {
    await sleep(100);
    count = processTree(proc.pid).length;
  }
  if (count < workers) {
    throw new Error(`--workers ${workers} started ${count} process(es): multi-process mode seems not implemented`);
  }
}

function startHaproxy(ctx: ServerContext, name: string, c: Contender, listen: Endpoint, upstreams: Endpoint[], logFile?: string): ManagedProcess {
  const maxconn = Math.floor(ctx.proxyFdLimit / 2);
  const bufsize = ctx.proxyBufferSize ? `\n  tune.bufsize ${ctx.proxyBufferSize}` : '';
  // One tcplog line per connection on stdout, which goes to the file (HAProxy 2.2+).
  const log = logFile ? '\n  log stdout format raw local0' : '';
  const tcplog = logFile ? '\n  log global\n  option tcplog' : '';
  const conf = `global
  nbthread ${c.workers}
  maxconn ${maxconn}${bufsize}${log}

defaults
  mode tcp${tcplog}
  maxconn ${maxconn}
  timeout connect 5s
  timeout client ${PROXY_IDLE_TIMEOUT}
  timeout server ${PROXY_IDLE_TIMEOUT}

frontend fe
  bind ${hostPort(listen)}
  default_backend be

backend be
  balance roundrobin
${upstreams.map((u, i) => `  server s${i + 1} ${hostPort(u)}`).join('\n')}
`;
  const dir = nginxPrefix(ctx, name);
  const confPath = join(dir, 'haproxy.cfg');
  writeFileSync(confPath, conf);
  return startProcess(name, 'haproxy', ['-db', '-q', '-f', confPath], { cpus: c.cpus, ...(logFile ? { stdoutFile: logFile } : {}) });
}

function startNginxStream(ctx: ServerContext, name: string, c: Contender, listen: Endpoint, upstreams: Endpoint[], logFile?: string): ManagedProcess {
  const prefix = nginxPrefix(ctx, name);
  // nginx's stream log has no predefined format with the upstream; this is its "basic" plus
  // the backend, written unbuffered (nginx's default: one write per line).
  const log = logFile
    ? `\n  log_format tcp '$remote_addr [$time_local] $protocol $status $bytes_sent $bytes_received $session_time "$upstream_addr"';\n  access_log ${logFile} tcp;`
    : '';
  // Debian builds the stream module as a dynamic module.
  const conf = `load_module ${NGINX_STREAM_MODULE};
${nginxMain(ctx, prefix, c.workers, ctx.proxyFdLimit - 100)}
stream {${log}
  upstream be {
${upstreams.map((u) => `    server ${hostPort(u)};`).join('\n')}
  }
  server {
    listen ${hostPort(listen)} backlog=${LISTEN_BACKLOG};
    proxy_pass be;
    proxy_timeout ${PROXY_IDLE_TIMEOUT};${ctx.proxyBufferSize ? `\n    proxy_buffer_size ${ctx.proxyBufferSize};` : ''}
  }
}
`;
  return startNginx(ctx, name, conf, c.cpus);
}
