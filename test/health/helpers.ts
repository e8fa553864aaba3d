/**
 * @module test/health/helpers — real loopback backends, a pool builder and a poller
 * shared by the health tests.
 */
import net from 'node:net';
import { once } from 'node:events';
import { defaultPassive, type ActiveHealthConfig, type BackendConfig, type PoolConfig } from '../../src/config/types.js';
import { Pool } from '../../src/proxy/pool.js';

/** What a test backend does with each accepted connection (index counts from 0). */
export type ConnectionHandler = (socket: net.Socket, index: number) => void;

/** A TCP server on 127.0.0.1 that counts connections and can go away and come back. */
export class TestBackend {
  readonly #handler: ConnectionHandler;
  readonly #sockets = new Set<net.Socket>();
  #server: net.Server | undefined;
  port = 0;
  /** Connections accepted so far (across re-listens). */
  connections = 0;
  /** performance.now() of every accept. */
  readonly acceptTimes: number[] = [];

  private constructor(handler: ConnectionHandler) {
    this.#handler = handler;
  }

  /** Starts a backend on a free port (or `port`). Default handler: hold the socket open. */
  static async start(handler: ConnectionHandler = () => {}, port = 0): Promise<TestBackend> {
    const b = new TestBackend(handler);
    await b.#listen(port);
    return b;
  }

  get listening(): boolean {
    return this.#server !== undefined;
  }

  async #listen(port: number): Promise<void> {
    const server = net.createServer((socket) => {
      const index = this.connections++;
      this.acceptTimes.push(performance.now());
      this.#sockets.add(socket);
      socket.on('error', () => {});
      socket.on('close', () => this.#sockets.delete(socket));
      this.#handler(socket, index);
      // Keep reading (and discarding what handlers ignore) so a peer's FIN is noticed.
      socket.resume();
    });
    server.listen(port, '127.0.0.1');
    await once(server, 'listening');
    this.port = (server.address() as net.AddressInfo).port;
    this.#server = server;
  }

  /** Listens again on the same port number after close(). */
  async relisten(): Promise<void> {
    if (this.#server) throw new Error('already listening');
    await this.#listen(this.port);
  }

  /** Stops listening and destroys every open connection. */
  async close(): Promise<void> {
    const server = this.#server;
    if (!server) return;
    this.#server = undefined;
    for (const s of this.#sockets) s.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

/** A port nothing listens on (taken from the kernel, then released). */
export async function freePort(): Promise<number> {
  const server = net.createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** Polls `cond` every few ms until it holds; fails after `timeoutMs` saying `what`. */
export async function waitFor(cond: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!cond()) {
    if (performance.now() > deadline) throw new Error(`timed out after ${timeoutMs}ms waiting for: ${what}`);
    await sleep(5);
  }
}

/** Resolves after `ms`. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** A backend config on 127.0.0.1 with every field filled. */
export function backendConfig(name: string, port: number, overrides: Partial<BackendConfig> = {}): BackendConfig {
  return { name, host: '127.0.0.1', port, weight: 1, backup: false, state: 'enabled', maxConnections: 0, check: true, ...overrides };
}

/** A fast health config for tests (50 ms interval, rise 2, fall 3, no jitter). */
export function healthConfig(overrides: Partial<ActiveHealthConfig> = {}): ActiveHealthConfig {
  return { type: 'tcp', intervalMs: 50, timeoutMs: 200, rise: 2, fall: 3, jitter: 0, ...overrides };
}

/** A real Pool from a full PoolConfig literal. */
export function makePool(backends: BackendConfig[], healthCheck: ActiveHealthConfig | undefined, overrides: Partial<PoolConfig> = {}): Pool {
  const config: PoolConfig = {
    name: 'p',
    balance: 'round-robin',
    hashKey: 'source-ip',
    backends,
    healthCheck,
    passive: defaultPassive(),
    slowStartMs: 0,
    queue: { size: 0, timeoutMs: 5000 },
    ...overrides,
  };
  return new Pool(config);
}
