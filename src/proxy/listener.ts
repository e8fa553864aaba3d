/**
 * @module proxy/listener — one listening socket and the per-listener state every
 * connection on it shares: config, counters, live connections, admission.
 */
import net from 'node:net';
import type { ListenerConfig } from '../config/types.js';
import { L4lbError, ErrorCodes, type ConnectError } from '../errors.js';
import { ListenerStats } from '../observability/stats.js';
import type { Logger } from '../observability/log.js';
import { formatHostPort } from '../util/address.js';
import type { Backend } from './backend.js';
import type { Pool } from './pool.js';
import { handleConnection, type AccessRecord, type LiveConnection } from './connection.js';

/** What a listener needs from the process around it. */
export interface ListenerHost {
  readonly logger: Logger;
  pool(name: string): Pool | undefined;
  accessLog(rec: AccessRecord): void;
  /** Global admission (process-wide maxConnections); null = admitted. */
  admitGlobal(): string | null;
  countAcceptError(): void;
}

/** A connection refused at admission, with a logger to call (rate-limited by the caller). */
export interface Rejection {
  reason: string;
  log(): void;
}

export class ListenerRuntime {
  config: ListenerConfig;
  readonly stats = new ListenerStats();
  readonly connections = new Set<LiveConnection>();
  readonly server: net.Server;
  readonly #host: ListenerHost;
  #address: { host: string; port: number } | undefined;
  #accepting = false;

  constructor(config: ListenerConfig, host: ListenerHost) {
    this.config = config;
    this.#host = host;
    this.server = net.createServer({ allowHalfOpen: true, pauseOnConnect: true, noDelay: true }, (socket) =>
      handleConnection(this, socket),
    );
    // Accept errors (EMFILE, ENFILE…) must never crash the process: libuv keeps the
    // listening socket and retries on the next readable event.
    this.server.on('error', (err: NodeJS.ErrnoException) => {
      if (!this.#accepting) return; // listen() errors are reported by listen()
      host.countAcceptError();
      host.logger.error({ listener: config.name, err: err.message, code: err.code }, 'accept failed');
    });
  }

  /** Binds the listening socket. Rejects with L4LB_ERR_LISTEN (e.g. address in use). */
  listen(): Promise<{ host: string; port: number }> {
    const { host, port } = this.config;
    return new Promise((resolve, reject) => {
      const onError = (err: NodeJS.ErrnoException) => {
        const what = err.code === 'EADDRINUSE' ? 'address already in use' : err.code === 'EACCES' ? 'permission denied' : err.message;
        reject(new L4lbError(ErrorCodes.LISTEN, 'internal', `cannot listen on ${formatHostPort(host || '0.0.0.0', port)}: ${what}`, { cause: err }));
      };
      this.server.once('error', onError);
      this.server.listen({ host: host || undefined, port, backlog: 4096 }, () => {
        this.server.removeListener('error', onError);
        this.#accepting = true;
        const a = this.server.address() as net.AddressInfo;
        this.#address = { host: a.address, port: a.port };
        resolve(this.#address);
      });
    });
  }

  /** The bound address (after listen). */
  get address(): { host: string; port: number } | undefined {
    return this.#address;
  }

  get logger(): Logger {
    return this.#host.logger;
  }

  /** Stops accepting; resolves once the listening socket is closed (connections stay). */
  stopAccepting(): Promise<void> {
    if (!this.#accepting) return Promise.resolve();
    this.#accepting = false;
    return new Promise((resolve) => {
      this.server.close(() => resolve());
      // server.close waits for connections; we track those ourselves, so resolve
      // once the listening handle is gone.
      setImmediate(resolve);
    });
  }

  /** Stops every live connection now. */
  stopConnections(reason: 'shutdown' | 'admin_closed' = 'shutdown'): void {
    for (const c of [...this.connections]) c.stop(reason);
  }

  /** Admission: null when admitted, otherwise why not. */
  admit(_clientAddress: string): Rejection | null {
    const global = this.#host.admitGlobal();
    if (global !== null) return this.#reject(global);
    if (this.config.maxConnections > 0 && this.stats.active >= this.config.maxConnections) {
      return this.#reject('listener_limit');
    }
    return null;
  }

  #reject(reason: string): Rejection {
    return { reason, log: () => this.#host.logger.debug({ listener: this.config.name, reason }, 'connection rejected') };
  }

  /** The pool connections go to when no route matches. */
  defaultPool(): Pool | undefined {
    return this.config.pool ? this.#host.pool(this.config.pool) : undefined;
  }

  /** How many backends one connection may try: first + retries (default: each once). */
  maxTries(pool: Pool | undefined): number {
    const n = pool ? pool.backends.length : 0;
    return this.config.retries === undefined ? n : Math.min(this.config.retries + 1, Math.max(n, 1));
  }

  logBackendError(backend: Backend, pool: Pool, err: ConnectError): void {
    this.#host.logger.warn(
      { listener: this.config.name, pool: pool.name, backend: backend.address, code: err.code },
      err.message,
    );
  }

  accessLog(rec: AccessRecord): void {
    this.#host.accessLog(rec);
  }
}
