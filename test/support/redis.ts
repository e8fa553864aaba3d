/**
 * @module test/support/redis — a real redis-server on a free loopback port, started by the test
 * and stopped in its cleanup, with the faults the tests need: killed (SIGKILL) and started again
 * on the same port, paused (SIGSTOP) and resumed (SIGCONT). No persistence (`--save ''
 * --appendonly no`): a restarted server starts empty, as a lost Redis does.
 */
import { accessSync, constants } from 'node:fs';
import net from 'node:net';
import { spawnWatched, stopWatched, type Watched } from './watchdog.js';

/** Where Debian installs redis-server. The tests need it: they fail, never skip, without it. */
export const REDIS_SERVER = '/usr/bin/redis-server';

type Running = Watched;

/** A free TCP port on 127.0.0.1 (redis-server refuses `--port 0`): bound once, then released. */
async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((resolve, reject) => {
    s.once('error', reject);
    s.listen(0, '127.0.0.1', resolve);
  });
  const port = (s.address() as net.AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

/** One command over a fresh connection, in RESP; resolves with the raw reply text. */
export function redisCommand(port: number, ...args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1');
    let out = '';
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error(`redis ${args[0]}: no answer`));
    }, 2000);
    s.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    s.on('data', (c: Buffer) => {
      out += c.toString();
      if (out.endsWith('\r\n') && replyComplete(out)) {
        clearTimeout(timer);
        s.destroy();
        resolve(out);
      }
    });
    s.write(`*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('')}`);
  });
}

/** Whether a RESP reply of simple type, or a bulk string, is complete (enough for INFO, PING, CLIENT LIST). */
function replyComplete(r: string): boolean {
  if (r[0] !== '$') return true;
  const nl = r.indexOf('\r\n');
  const len = Number(r.slice(1, nl));
  return len < 0 || Buffer.byteLength(r) >= nl + 2 + len + 2;
}

/** A redis-server of the test's own. */
export class RedisServer {
  port = 0;
  #run: Running | undefined;
  #paused = false;
  #log = '';

  private constructor() {}

  /** Starts redis-server on a free loopback port. */
  static async start(): Promise<RedisServer> {
    accessSync(REDIS_SERVER, constants.X_OK); // throws: the test fails when redis-server is missing
    const r = new RedisServer();
    const errors: string[] = [];
    for (let attempt = 0; attempt < 5; attempt++) {
      try {
        r.port = await freePort();
        await r.#spawn();
        return r;
      } catch (err) {
        errors.push(String(err));
        await r.kill();
      }
    }
    throw new Error(`redis-server did not start:\n${errors.join('\n')}`);
  }

  /** `redis://127.0.0.1:PORT/0`, as `sourceLimits.shared.redis` takes it. */
  get url(): string {
    return `redis://127.0.0.1:${this.port}/0`;
  }

  /** The server's pid (for signals). */
  get pid(): number {
    return this.#run?.pid ?? 0;
  }

  /** SIGKILL: the store is gone, connections to it are reset. */
  async kill(): Promise<void> {
    const run = this.#run;
    this.#run = undefined;
    this.#paused = false;
    if (run) await stopWatched(run);
  }

  /** Starts again on the same port, empty. */
  async restart(): Promise<void> {
    await this.kill();
    await this.#spawn();
  }

  /** SIGSTOP: the server keeps its connections but answers nothing. */
  pause(): void {
    if (!this.#run) return;
    process.kill(this.#run.pid, 'SIGSTOP');
    this.#paused = true;
  }

  /** SIGCONT after {@link pause}. */
  resume(): void {
    if (!this.#run || !this.#paused) return;
    process.kill(this.#run.pid, 'SIGCONT');
    this.#paused = false;
  }

  /** Resumes a paused server (a stopped process ignores SIGKILL's cleanup otherwise) and kills it. */
  async close(): Promise<void> {
    this.resume();
    await this.kill();
  }

  /** One command; the raw RESP reply. */
  command(...args: string[]): Promise<string> {
    return redisCommand(this.port, ...args);
  }

  /** Clients connected to the server now, not counting the one asking. */
  async clients(): Promise<number> {
    const list = await this.command('CLIENT', 'LIST');
    return list.split('\n').filter((l) => l.includes(' addr=')).length - 1;
  }

  async #spawn(): Promise<void> {
    const args = ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--protected-mode', 'no'];
    const run: Running = spawnWatched(
      REDIS_SERVER,
      args,
      (out) => (this.#log = out),
      (chunk) => (this.#log += chunk),
    );
    this.#run = run;
    const deadline = Date.now() + 5000;
    for (;;) {
      if (run.exited) throw new Error(`redis-server exited on port ${this.port}:\n${this.#log}`);
      try {
        if ((await this.command('PING')).startsWith('+PONG')) return;
      } catch {
        // not listening yet
      }
      if (Date.now() > deadline) throw new Error(`redis-server did not answer on port ${this.port}:\n${this.#log}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }
}
