/**
 * @module test/support/net — real loopback servers and clients for tests.
 * Every helper returns something with close(); tests close what they open.
 */
import net from 'node:net';
import { createHash, randomBytes } from 'node:crypto';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import { getSystemErrorName } from 'node:util';
import { bindWithoutListening } from '../../src/proxy/node-internals.js';

/** Repository root (tests run from dist/test/...). */
export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
export const BIN = join(ROOT, 'bin', 'l4lb.js');

export interface TestServer {
  port: number;
  server: net.Server;
  /** Sockets accepted so far and still open. */
  sockets: Set<net.Socket>;
  accepted: number;
  close(): Promise<void>;
}

/** Starts a TCP server on 127.0.0.1:0 (allowHalfOpen) with `handler` per connection. */
export async function startServer(handler: (s: net.Socket) => void, host = '127.0.0.1'): Promise<TestServer> {
  const sockets = new Set<net.Socket>();
  const ts: TestServer = {
    port: 0,
    server: undefined as unknown as net.Server,
    sockets,
    accepted: 0,
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise((r) => ts.server.close(r));
    },
  };
  ts.server = net.createServer({ allowHalfOpen: true }, (s) => {
    ts.accepted++;
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => {});
    handler(s);
  });
  ts.server.listen(0, host);
  await once(ts.server, 'listening');
  ts.port = (ts.server.address() as net.AddressInfo).port;
  return ts;
}

/** An echo backend that replies with `name: ` + each chunk's text (for routing tests). */
export function nameServer(name: string): Promise<TestServer> {
  return startServer((s) => {
    s.once('data', () => {});
    s.write(`${name}\n`);
    s.on('end', () => s.end());
  });
}

/** A plain echo backend (half-close aware). */
export function echoServer(): Promise<TestServer> {
  return startServer((s) => {
    s.pipe(s);
  });
}

/**
 * Keeps 127.0.0.1:`port` (0: a free one) bound without listening until `release()`. Connections
 * to it are refused, as to a closed port, but unlike a closed port no other process's
 * listen(0) or outgoing connection is given it meanwhile: the suite runs two test files at a
 * time, and a "dead" backend whose port another file's server took is no longer dead.
 */
export function holdPort(port = 0): { port: number; release(): void } {
  const h = bindWithoutListening('127.0.0.1', port, 4);
  if (h === undefined) throw new Error('this Node cannot bind a TCP port without listening (net._createServerHandle)');
  if (typeof h === 'number') throw new Error(`cannot hold 127.0.0.1:${port}: ${getSystemErrorName(h)}`);
  const out: { port?: number } = {};
  h.getsockname(out as net.AddressInfo);
  return { port: out.port!, release: () => h.close() };
}

/** A port that refuses connections: held ({@link holdPort}) until the test process exits. */
export async function refusedPort(): Promise<number> {
  return holdPort().port;
}

/**
 * A black-holed backend: a listening socket that never accepts, with its accept queue
 * already full, so further SYNs go unanswered. Node always accepts, so a small python3
 * process holds the socket; two connections fill its queue of one.
 */
export async function blackHole(): Promise<{ port: number; close(): Promise<void> }> {
  const py = spawn('python3', [
    '-c',
    'import socket,sys,time\ns=socket.socket()\ns.bind(("127.0.0.1",0))\ns.listen(0)\nprint(s.getsockname()[1],flush=True)\ntime.sleep(600)',
  ], { stdio: ['ignore', 'pipe', 'inherit'] });
  const [line] = (await once(py.stdout!, 'data')) as [Buffer];
  const port = Number(line.toString().trim());
  const fillers: net.Socket[] = [];
  for (let i = 0; i < 2; i++) {
    const c = net.connect(port, '127.0.0.1');
    c.on('error', () => {});
    fillers.push(c);
  }
  await new Promise((r) => setTimeout(r, 200));
  return {
    port,
    async close() {
      for (const c of fillers) c.destroy();
      py.kill('SIGKILL');
      if (py.exitCode === null) await once(py, 'exit');
    },
  };
}

/** Connects to 127.0.0.1:port (allowHalfOpen). */
export async function connect(port: number, opts: { localAddress?: string; host?: string } = {}): Promise<net.Socket> {
  const s = net.connect({ port, host: opts.host ?? '127.0.0.1', localAddress: opts.localAddress, allowHalfOpen: true });
  await once(s, 'connect');
  return s;
}

/** Reads a socket to its end; resolves with all bytes (rejects on error). */
export function readAll(s: net.Socket): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    s.on('data', (c: Buffer) => chunks.push(c));
    s.on('end', () => resolve(Buffer.concat(chunks)));
    s.on('error', reject);
  });
}

/** Sends a request over a fresh connection, half-closes, and returns the full reply. */
export async function request(port: number, data: string | Buffer = 'hello\n', opts: { localAddress?: string } = {}): Promise<string> {
  const s = await connect(port, opts);
  const reply = readAll(s);
  s.end(data);
  const buf = await reply;
  s.destroy();
  return buf.toString();
}

export interface StreamResult {
  sentBytes: number;
  sentSha: string;
  receivedBytes: number;
  receivedSha: string;
}

/**
 * Sends `bytes` of random data over `s` (then FIN, unless `end` is false) while hashing
 * everything received until the peer's FIN. Honours backpressure.
 */
export function exchange(s: net.Socket, bytes: number, opts: { end?: boolean; chunk?: number } = {}): Promise<StreamResult> {
  const chunkSize = opts.chunk ?? 256 * 1024;
  const sentHash = createHash('sha256');
  const recvHash = createHash('sha256');
  let sent = 0;
  let received = 0;
  return new Promise((resolve, reject) => {
    let sendDone = false;
    let recvDone = false;
    const finish = () => {
      if (sendDone && recvDone) {
        resolve({ sentBytes: sent, sentSha: sentHash.digest('hex'), receivedBytes: received, receivedSha: recvHash.digest('hex') });
      }
    };
    s.on('data', (c: Buffer) => {
      received += c.length;
      recvHash.update(c);
    });
    s.on('end', () => {
      recvDone = true;
      finish();
    });
    s.on('error', reject);
    const pump = () => {
      while (sent < bytes) {
        const n = Math.min(chunkSize, bytes - sent);
        const buf = randomBytes(n);
        sentHash.update(buf);
        sent += n;
        if (!s.write(buf)) {
          s.once('drain', pump);
          return;
        }
      }
      if (opts.end !== false) s.end();
      sendDone = true;
      finish();
    };
    pump();
  });
}

/** Waits until `pred()` is true, polling; rejects after `ms`. */
export async function waitFor(pred: () => boolean | Promise<boolean>, ms = 5000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await pred())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms}ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

export interface CliProcess {
  child: ChildProcess;
  /** The `listening on` lines' addresses. */
  addresses: string[];
  port: number;
  stdout: string[];
  stderr: () => string;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/** Spawns `l4lb args…` and waits for its first `listening on` line (or its exit). */
export async function spawnL4lb(
  args: string[],
  opts: { env?: NodeJS.ProcessEnv; listeners?: number; execArgv?: string[]; node?: string; prefix?: string[] } = {},
): Promise<CliProcess> {
  const node = opts.node ?? process.execPath;
  const child = spawn(node, [...(opts.execArgv ?? []), BIN, ...args], {
    env: { ...process.env, ...opts.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let err = '';
  child.stderr!.on('data', (c: Buffer) => (err += c.toString()));
  const stdout: string[] = [];
  const want = opts.listeners ?? 1;
  const addresses: string[] = [];
  await new Promise<void>((resolve, reject) => {
    let buf = '';
    const onData = (c: Buffer) => {
      buf += c.toString();
      let nl;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        stdout.push(line);
        const m = /^listening on (.+)$/.exec(line);
        if (m) addresses.push(m[1]);
        if (addresses.length === want) resolve();
      }
    };
    child.stdout!.on('data', onData);
    child.once('exit', (code) => reject(new Error(`l4lb exited with ${code} before listening:\n${err}`)));
  });
  const port = Number(addresses[0].slice(addresses[0].lastIndexOf(':') + 1));
  return {
    child,
    addresses,
    port,
    stdout,
    stderr: () => err,
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      // Gone already (an exit code, or killed by a signal): 'exit' has fired and will not again.
      if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
      const exited = once(child, 'exit');
      child.kill(signal);
      const [code] = (await exited) as [number | null];
      return code;
    },
  };
}

/** Runs `l4lb args…` to completion; returns exit code and output. */
export async function runL4lb(args: string[], opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [BIN, ...args], { env: { ...process.env, ...opts.env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 10_000);
  const [code] = (await once(child, 'exit')) as [number | null];
  clearTimeout(timer);
  return { code, stdout, stderr };
}

/** Resident set size of a process in bytes, from /proc. */
export async function rssOf(pid: number): Promise<number> {
  const { readFile } = await import('node:fs/promises');
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const m = /VmRSS:\s+(\d+) kB/.exec(status);
  return m ? Number(m[1]) * 1024 : 0;
}
