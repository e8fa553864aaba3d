/**
 * @module test/cluster/helpers — a multi-process l4lb under test: config file, log lines,
 * backends that say who they are.
 */
import net from 'node:net';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnL4lb, startServer, waitFor, type CliProcess, type TestServer } from '../support/net.js';

/** A parsed JSON log line. */
export type LogLine = Record<string, unknown> & { msg?: string; pid?: number };

/** A running `l4lb --config FILE` with workers. */
export interface Cluster {
  cli: CliProcess;
  port: number;
  /** The primary's pid. */
  pid: number;
  file: string;
  /** Writes a new config (atomically) without signalling. */
  write(cfg: Record<string, unknown>): void;
  logs(): LogLine[];
  /** Log lines with this `msg`. */
  lines(msg: string): LogLine[];
  /** Waits for the `n`-th line with this `msg` (1-based) and returns it. */
  waitLine(msg: string, n?: number, ms?: number): Promise<LogLine>;
  /** The `admin on` URL, once printed. */
  adminUrl(): Promise<string>;
  /** Pids of the workers from the `l4lb cluster started` line. */
  workerPids(): Promise<number[]>;
  close(): Promise<void>;
}

/** Starts l4lb with `cfg` (JSON) as its config file; `cfg.workers` defaults to 2. */
export async function startCluster(cfg: Record<string, unknown>, env: NodeJS.ProcessEnv = {}): Promise<Cluster> {
  const dir = mkdtempSync(join(tmpdir(), 'l4lb-cluster-'));
  const file = join(dir, 'l4lb.json');
  const write = (c: Record<string, unknown>) => {
    writeFileSync(`${file}.tmp`, JSON.stringify({ workers: 2, ...c }));
    renameSync(`${file}.tmp`, file);
  };
  write(cfg);
  const listeners = Array.isArray(cfg.listeners) ? cfg.listeners.length : 1;
  let cli: CliProcess;
  try {
    cli = await spawnL4lb(['--config', file], { listeners, env });
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  const logs = (): LogLine[] => {
    const out: LogLine[] = [];
    for (const line of cli.stderr().split('\n')) {
      if (!line.startsWith('{')) continue;
      try {
        out.push(JSON.parse(line) as LogLine);
      } catch {
        // a line still being written
      }
    }
    return out;
  };
  const lines = (msg: string) => logs().filter((l) => l.msg === msg);
  const c: Cluster = {
    cli,
    port: cli.port,
    pid: cli.child.pid!,
    file,
    write,
    logs,
    lines,
    async waitLine(msg, n = 1, ms = 10_000) {
      try {
        await waitFor(() => lines(msg).length >= n, ms, `log line #${n} "${msg}"`);
      } catch (err) {
        const tail = cli.stderr().split('\n').slice(-15).join('\n');
        throw new Error(`${(err as Error).message}; exit ${cli.child.exitCode ?? cli.child.signalCode}; log tail:\n${tail}`);
      }
      return lines(msg)[n - 1];
    },
    async adminUrl() {
      await waitFor(() => cli.stdout.some((l) => l.startsWith('admin on ')), 5000, 'admin on line');
      return cli.stdout.find((l) => l.startsWith('admin on '))!.slice('admin on '.length);
    },
    async workerPids() {
      const line = await c.waitLine('l4lb cluster started');
      return line.pids as number[];
    },
    async close() {
      if (cli.child.exitCode === null && cli.child.signalCode === null) {
        const exited = new Promise((r) => cli.child.once('exit', r));
        cli.child.kill('SIGINT');
        // A second signal closes everything at once. Sent only once the first was taken:
        // two signals of one kind in a row may reach a process as one.
        await Promise.race([exited, waitFor(() => lines('draining').length > 0, 5000).catch(() => {})]);
        if (cli.child.exitCode === null && cli.child.signalCode === null) cli.child.kill('SIGINT');
        await exited;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return c;
}

/** Access-log lines (one per closed connection). */
export function accessLines(c: Cluster): LogLine[] {
  return c.logs().filter((l) => l.msg === 'access');
}

/**
 * A backend that first sends its name and a newline, then echoes everything (half-close
 * aware). Health checks that send `PING` get `PONG` while `healthy` is true, `NOPE` after.
 * `data` counts the connections that were not health checks.
 */
export interface NamedBackend extends TestServer {
  name: string;
  healthy: boolean;
  data: number;
}

/** Starts a {@link NamedBackend} on 127.0.0.1:0. */
export async function namedBackend(name: string): Promise<NamedBackend> {
  const state = { healthy: true, data: 0 };
  const ts = await startServer((s) => {
    s.once('data', (first: Buffer) => {
      if (first.subarray(0, 4).toString() === 'PING') {
        s.end(state.healthy ? 'PONG\n' : 'NOPE\n');
        return;
      }
      state.data++;
      s.write(`${name}\n`);
      s.write(first);
      s.pipe(s);
    });
  });
  // Accessors (not copies) so the test sees and sets the live values.
  return Object.defineProperties(ts, {
    name: { value: name },
    healthy: { get: () => state.healthy, set: (v: boolean) => (state.healthy = v) },
    data: { get: () => state.data },
  }) as NamedBackend;
}

/** Asks through l4lb which backend answers: sends a line, returns the backend's name. */
export async function whoAnswers(port: number): Promise<string> {
  const s = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
  s.on('error', () => {});
  try {
    const chunks: Buffer[] = [];
    await new Promise<void>((resolve, reject) => {
      s.on('data', (c: Buffer) => chunks.push(c));
      s.on('end', () => resolve());
      s.on('error', reject);
      s.end('hello\n');
    });
    const text = Buffer.concat(chunks).toString();
    return text.slice(0, text.indexOf('\n'));
  } finally {
    s.destroy();
  }
}

/** Runs `n` calls of `fn`, `concurrency` at a time; returns the results in order. */
export async function batch<T>(n: number, concurrency: number, fn: (i: number) => Promise<T>): Promise<T[]> {
  const out: T[] = new Array(n);
  let next = 0;
  const run = async () => {
    while (next < n) {
      const i = next++;
      out[i] = await fn(i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, n) }, run));
  return out;
}

/** The outcome of {@link transfer}. */
export interface Transfer {
  /** The name line the backend sent first. */
  backend: string;
  sentSha: string;
  /** Hash of what came back after the name line. */
  echoedSha: string;
  echoedBytes: number;
}

/**
 * Sends `bytes` of random data through l4lb to a {@link NamedBackend} in `chunks` pieces
 * spread over about `spreadMs` (a long-lived transfer), then FIN, and hashes what comes back.
 */
export async function transfer(port: number, bytes: number, spreadMs: number, chunks = 20): Promise<Transfer> {
  const s = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
  const sent = createHash('sha256');
  const echoed = createHash('sha256');
  let head = '';
  let headDone = false;
  let echoedBytes = 0;
  const done = new Promise<void>((resolve, reject) => {
    s.on('data', (c: Buffer) => {
      if (!headDone) {
        const nl = c.indexOf(10);
        if (nl < 0) {
          head += c.toString();
          return;
        }
        head += c.subarray(0, nl).toString();
        headDone = true;
        c = c.subarray(nl + 1);
      }
      echoedBytes += c.length;
      echoed.update(c);
    });
    s.on('end', () => resolve());
    s.on('error', reject);
  });
  try {
    await new Promise<void>((resolve, reject) => {
      s.once('connect', () => resolve());
      s.once('error', reject);
    });
    const size = Math.ceil(bytes / chunks);
    for (let i = 0; i < chunks; i++) {
      const buf = randomBytes(Math.min(size, bytes - i * size));
      sent.update(buf);
      if (!s.write(buf)) await new Promise((r) => s.once('drain', r));
      await new Promise((r) => setTimeout(r, spreadMs / chunks));
    }
    s.end();
    await done;
  } finally {
    s.destroy();
  }
  return { backend: head, sentSha: sent.digest('hex'), echoedSha: echoed.digest('hex'), echoedBytes };
}

/** GETs an admin URL and parses the JSON (or returns the text with `text`). */
export async function adminGet(url: string): Promise<unknown> {
  const res = await fetch(url);
  if (!res.ok) throw new Error(`GET ${url}: ${res.status} ${await res.text()}`);
  return (res.headers.get('content-type') ?? '').includes('json') ? res.json() : res.text();
}

/** POSTs to an admin URL with an optional JSON body. */
export async function adminPost(url: string, body?: unknown): Promise<unknown> {
  const res = await fetch(url, {
    method: 'POST',
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!res.ok) throw new Error(`POST ${url}: ${res.status} ${await res.text()}`);
  return res.json();
}

/** A listener entry for `port` 0 on loopback with pool `pool`. */
export function listener(name: string, pool: string): Record<string, unknown> {
  return { name, listen: '127.0.0.1:0', pool };
}

/** Backend entries for servers. */
export function backends(...servers: NamedBackend[]): Record<string, unknown>[] {
  return servers.map((b) => ({ name: b.name, address: `127.0.0.1:${b.port}` }));
}

/** True while `pid` runs (a zombie waiting to be reaped does not count). */
export function running(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}
