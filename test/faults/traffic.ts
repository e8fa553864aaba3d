/**
 * @module test/faults/traffic — client load for lifecycle and fault tests, checked end to end.
 *
 * Backends are echo servers, so one comparison proves both directions: what comes back must be
 * exactly what was sent (same length, same SHA-256).
 */
import net from 'node:net';
import { once } from 'node:events';
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';

/** One checked transfer. */
export interface Transfer {
  sent: number;
  received: number;
  /** True when what came back is byte-for-byte what was sent. */
  intact: boolean;
  /** Set when the connection could not be made or failed: the errno code, or what went wrong. */
  error?: string;
  /** From connecting to the end. */
  ms: number;
}

/**
 * Connects to `port`, sends `chunks` random chunks of `chunkSize` bytes, one every
 * `intervalMs` (a long-lived, slow transfer), then FIN; resolves once the echo has ended.
 */
export function pacedEcho(port: number, o: { chunks: number; chunkSize: number; intervalMs: number }): Promise<Transfer> {
  return new Promise((resolve) => {
    const t0 = Date.now();
    const s = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
    const sentHash = createHash('sha256');
    const recvHash = createHash('sha256');
    let sent = 0;
    let received = 0;
    let timer: NodeJS.Timeout | undefined;
    let done = false;
    const finish = (error?: string) => {
      if (done) return;
      done = true;
      if (timer) clearInterval(timer);
      s.destroy();
      const intact = error === undefined && received === sent && recvHash.digest('hex') === sentHash.digest('hex');
      resolve({ sent, received, intact, ms: Date.now() - t0, ...(error !== undefined && { error }) });
    };
    s.on('data', (c: Buffer) => {
      received += c.length;
      recvHash.update(c);
    });
    // An echo that ends before everything was sent was cut short, whatever it held.
    s.on('end', () => finish(timer === undefined && sent > 0 ? undefined : 'ended early'));
    s.on('error', (err: NodeJS.ErrnoException) => finish(err.code ?? err.message));
    s.on('close', () => finish(received === sent ? undefined : 'closed early'));
    s.once('connect', () => {
      let n = 0;
      timer = setInterval(() => {
        const buf = randomBytes(o.chunkSize);
        sentHash.update(buf);
        sent += buf.length;
        s.write(buf);
        if (++n === o.chunks) {
          clearInterval(timer);
          timer = undefined;
          s.end();
        }
      }, o.intervalMs);
    });
  });
}

/** Sends `bytes` random bytes at full speed, FIN, and checks the echo. */
export function echoOnce(port: number, bytes = 1024): Promise<Transfer> {
  return pacedEcho(port, { chunks: 1, chunkSize: bytes, intervalMs: 0 });
}

/** Counts of a {@link steadyStream}. */
export interface StreamStats {
  attempted: number;
  completed: number;
  /** Connection refused by l4lb (ECONNREFUSED). */
  refused: number;
  /**
   * Reset before any byte came back: what a client in the kernel's accept backlog gets when
   * the listening socket closes (shutdown). Never expected while l4lb keeps listening.
   */
  resetEmpty: number;
  /** Anything else that went wrong: reset, truncated, corrupted. */
  failed: number;
  errors: string[];
}

/**
 * Opens short echo connections back to back from `concurrency` loops until `stop()` is
 * called; `stop()` resolves with the counts once the last connection has finished. Call it
 * from `t.after` too, so a failing test does not leave the loops running.
 */
export function steadyStream(port: () => number, concurrency = 4, bytes = 1024): { stop(): Promise<StreamStats> } {
  const stats: StreamStats = { attempted: 0, completed: 0, refused: 0, resetEmpty: 0, failed: 0, errors: [] };
  let running = true;
  const loops = Array.from({ length: concurrency }, async () => {
    while (running) {
      stats.attempted++;
      const r = await echoOnce(port(), bytes);
      if (r.intact) stats.completed++;
      else if (r.error === 'ECONNREFUSED') {
        stats.refused++;
        await new Promise((res) => setTimeout(res, 10)); // no point hammering a closed port
      } else if (r.received === 0 && (r.error === 'ECONNRESET' || r.error === 'EPIPE')) {
        stats.resetEmpty++;
      }
      else {
        stats.failed++;
        if (stats.errors.length < 10) stats.errors.push(`${r.error ?? 'corrupt'} (${r.received}/${r.sent} bytes)`);
      }
    }
  });
  return {
    async stop() {
      running = false;
      await Promise.all(loops);
      return stats;
    },
  };
}

/** Runs `n` jobs, at most `concurrency` at a time; resolves with all results in order. */
export async function inBatches<T>(n: number, concurrency: number, job: (i: number) => Promise<T>): Promise<T[]> {
  const out: T[] = new Array(n);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(n, concurrency) }, async () => {
      while (next < n) {
        const i = next++;
        out[i] = await job(i);
      }
    }),
  );
  return out;
}

/** Byte `i` of every patterned stream: a period (251) that no chunk size divides, so a lost, repeated or reordered chunk shows. */
export function patternByte(i: number): number {
  return i % 251;
}

/** `length` bytes of the pattern starting at offset `from`. */
export function pattern(length: number, from = 0): Buffer {
  const b = Buffer.allocUnsafe(length);
  for (let i = 0; i < length; i++) b[i] = (from + i) % 251;
  return b;
}

/** True when `buf` is exactly the pattern's first `buf.length` bytes (a prefix of what was sent). */
export function isPatternPrefix(buf: Buffer): boolean {
  for (let i = 0; i < buf.length; i++) if (buf[i] !== i % 251) return false;
  return true;
}

/** Reads `s` until it ends, resets or closes; resolves with what arrived and how it ended. */
export function readToEnd(s: net.Socket): Promise<{ data: Buffer; how: 'end' | 'error' | 'close' }> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let settled = false;
    const done = (how: 'end' | 'error' | 'close') => {
      if (settled) return;
      settled = true;
      resolve({ data: Buffer.concat(chunks), how });
    };
    s.on('data', (c: Buffer) => chunks.push(c));
    s.on('end', () => done('end'));
    s.on('error', () => done('error'));
    s.on('close', () => done('close'));
  });
}

/**
 * A backend in its own process that, on its first connection, sends `bytes` of the pattern
 * and then dies by SIGKILL: the kernel still delivers what was written, then a FIN.
 */
export async function dyingBackend(bytes: number): Promise<{ port: number; exited: Promise<unknown>; close(): void }> {
  const script = `
    const net = require('node:net');
    const size = Number(process.argv[1]);
    const buf = Buffer.allocUnsafe(size);
    for (let i = 0; i < size; i++) buf[i] = i % 251;
    const srv = net.createServer((s) => s.write(buf, () => process.kill(process.pid, 'SIGKILL')));
    srv.listen(0, '127.0.0.1', () => console.log(srv.address().port));`;
  const child = spawn(process.execPath, ['-e', script, String(bytes)], { stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = once(child, 'exit');
  const [line] = (await once(child.stdout!, 'data')) as [Buffer];
  return {
    port: Number(line.toString().trim()),
    exited,
    close() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    },
  };
}

/**
 * A backend on a fixed port that goes down (stops listening; open connections carry on) and
 * comes back up, every `periodMs`, echoing while up.
 */
export async function flappingBackend(periodMs: number): Promise<{ port: number; accepted: () => number; stop(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  let accepted = 0;
  const make = () =>
    net.createServer({ allowHalfOpen: true }, (s) => {
      accepted++;
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => {});
      s.pipe(s);
    });
  let server = make().listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as net.AddressInfo).port;
  let up = true;
  let busy: Promise<unknown> = Promise.resolve();
  const timer = setInterval(() => {
    busy = busy.then(async () => {
      if (up) {
        await new Promise((r) => server.close(r));
      } else {
        server = make().listen(port, '127.0.0.1');
        await once(server, 'listening');
      }
      up = !up;
    });
  }, periodMs);
  return {
    port,
    accepted: () => accepted,
    async stop() {
      clearInterval(timer);
      await busy;
      if (up) await new Promise((r) => server.close(r));
      for (const s of sockets) s.destroy();
    },
  };
}

/** Listens on 127.0.0.1:`port` (a port used before) with an echo handler. */
export async function echoOn(port: number): Promise<{ close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer({ allowHalfOpen: true }, (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => {});
    s.pipe(s);
  });
  server.listen(port, '127.0.0.1');
  await once(server, 'listening');
  return {
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise((r) => server.close(r));
    },
  };
}

/**
 * An echo server with the largest accept backlog the kernel allows (net.core.somaxconn). For
 * bursts of thousands of connections: with Node's default backlog of 511, a test process
 * busy opening connections lets the queue overflow, and the kernel then silently drops
 * handshakes that the connecting side (l4lb) already counts as established.
 */
export async function roomyEchoServer(): Promise<{ port: number; sockets: Set<net.Socket>; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer({ allowHalfOpen: true }, (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => {});
    s.pipe(s);
  });
  server.listen({ port: 0, host: '127.0.0.1', backlog: 65535 });
  await once(server, 'listening');
  return {
    port: (server.address() as net.AddressInfo).port,
    sockets,
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise((r) => server.close(r));
    },
  };
}
