/**
 * @module proxy/listener — one listening socket and the per-listener state every
 * connection on it shares: config, counters, live connections, admission.
 */
import net from 'node:net';
import { Defaults, type ListenerConfig, type SharedSourceLimitsConfig } from '../config/types.js';
import { L4lbError, ErrorCodes, type ConnectError } from '../errors.js';
import { ListenerStats } from '../observability/stats.js';
import { LogFields, type Logger } from '../observability/log.js';
import { formatHostPort } from '../util/address.js';
import type { Backend } from './backend.js';
import type { Pool } from './pool.js';
import { reportFastPath } from './node-internals.js';
import { installFastAccept } from './raw-socket.js';
import { ConnectionSet } from './connection-set.js';
import {
  handleConnection, type AccessRecord, type ConnectionHost, type ConnectionPolicy, type LiveConnection, type Rejection,
} from './connection.js';
import type { DataSocket } from './data-socket.js';
import { Acl } from '../admission/acl.js';
import { SourceLimiter, RateLimitedLog, type SourceLimits } from '../admission/source-limits.js';
import { SharedSourceLimiter } from '../admission/shared-source-limits.js';
import type { SourceStore } from '../admission/source-store.js';
import { SniRouter } from '../protocol/sni-router.js';
import { CertificateStore } from './tls.js';
import type { BackendQueue } from '../admission/queue.js';
import type { ListenerFaults } from '../faults/table.js';

/** A listener's config compiled for the hot path: what its connections read (connection.ts). */
export type ListenerPolicy = ConnectionPolicy;

/** Where shared per-source limits are counted: the process's connection to a store. */
export type SourceStores = (config: SharedSourceLimitsConfig) => SourceStore;

/**
 * Compiles a listener config; throws (L4lbError) on unusable certificates. Without `stores`
 * (a cluster primary checking a config), shared source limits are compiled as local ones.
 */
export function compilePolicy(c: ListenerConfig, previous?: { config: ListenerConfig; policy: ListenerPolicy }, stores?: SourceStores): ListenerPolicy {
  const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);
  const keepLimiter = previous && same(previous.config.sourceLimits, c.sourceLimits);
  const policy: Omit<ListenerPolicy, 'needsClientAddress' | 'needsNetSocket' | 'faults'> = {
    acl: c.acl.length > 0 || c.aclDefault === 'deny' ? new Acl(c.acl, c.aclDefault) : undefined,
    proxyTrusted: c.acceptProxy ? new Acl(c.acceptProxy.trusted.map((cidr) => ({ action: 'allow' as const, cidr })), 'deny') : undefined,
    sourceLimits: keepLimiter ? previous.policy.sourceLimits : sourceLimiter(c, stores),
    peekClientHello: c.tls?.mode === 'passthrough',
    router:
      c.routes.length > 0 || c.tls
        ? new SniRouter(c.routes.map((r) => ({ serverNames: r.serverNames, alpn: r.alpn, target: r.pool })), c.pool)
        : undefined,
    certificates: c.tls?.mode === 'terminate' ? new CertificateStore(c.tls.certificates) : undefined,
  };
  return {
    ...policy,
    needsClientAddress: !!(policy.acl || policy.proxyTrusted || policy.sourceLimits),
    needsNetSocket: !!(policy.proxyTrusted || policy.peekClientHello || policy.certificates),
    // The listener's fault table is the process's (it outlives reloads): ListenerRuntime sets it.
    faults: undefined,
  };
}

function sourceLimiter(c: ListenerConfig, stores: SourceStores | undefined): SourceLimits | undefined {
  const sl = c.sourceLimits;
  if (!sl || (sl.maxConnections === 0 && sl.ratePerSecond === 0)) return undefined;
  const opts = { maxConnections: sl.maxConnections, ratePerSecond: sl.ratePerSecond, burst: sl.burst, ipv6Prefix: sl.ipv6Prefix };
  if (!sl.shared || !stores) return new SourceLimiter(opts);
  return new SharedSourceLimiter({
    ...opts,
    listener: c.name,
    store: stores(sl.shared),
    onStoreFailure: sl.shared.onStoreFailure,
    leaseSize: sl.shared.leaseSize,
  });
}

/** What a listener needs from the process around it. */
export interface ListenerHost {
  readonly logger: Logger;
  pool(name: string): Pool | undefined;
  accessLog(rec: AccessRecord): void;
  /** Whether access-log lines go anywhere (`log.access` is not `off`). */
  readonly logsAccess: boolean;
  /** Global admission (process-wide maxConnections); null = admitted. */
  admitGlobal(): string | null;
  /** An accept error: counted, logged (rate-limited); EMFILE is reported as such. */
  acceptError(l: ListenerRuntime, err: NodeJS.ErrnoException): void;
  /**
   * Accept-time limits with `overLimit: queue`: true when the socket was held, to be served
   * later by the host; false when the listener serves it now.
   */
  holdIfOverLimit(l: ListenerRuntime, socket: DataSocket): boolean;
  /** A connection ended: a slot is free for a held connection. */
  connectionClosed(): void;
  /** The wait queue of `pool`, for when all its backends are at maxConnections. */
  backendQueue(pool: Pool): BackendQueue | undefined;
  /** A connection released its slot on one of `pool`'s backends. */
  backendReleased(pool: Pool): void;
  /** A backend dial failed for lack of file descriptors (not the backend's fault). */
  fdExhaustedOnConnect(err: unknown): void;
  /** Extra options for binding listening sockets (cluster workers); default none. */
  readonly listenOptions?: ListenOptions;
  /** The process's connection to a shared store of source limits (one per store). */
  sourceStore(config: SharedSourceLimitsConfig): SourceStore;
  /** The fault table of a listener with this config, when faults are possible there (faults/registry.ts). */
  faultsFor?(config: ListenerConfig): ListenerFaults | undefined;
}

/** How a listening socket is bound (multi-process mode, see docs/cluster.md). */
export interface ListenOptions {
  /** SO_REUSEPORT: several processes bind the same address and the kernel spreads connections. */
  reusePort?: boolean;
  /** Bind in this process even in a cluster worker, instead of sharing the primary's socket. */
  exclusive?: boolean;
}

export class ListenerRuntime implements ConnectionHost {
  #config: ListenerConfig;
  #policy: ListenerPolicy;
  /** Rate-limits the log lines of rejected connections (per reason). */
  readonly rejectLog = new RateLimitedLog();
  /** Rate-limits the warnings of failed backend connects (per pool and error code). */
  readonly #connectErrorLog = new RateLimitedLog();
  readonly stats = new ListenerStats();
  /** Not a Set: see connection-set.ts for why. */
  readonly connections = new ConnectionSet<LiveConnection>();
  readonly server: net.Server;
  readonly #host: ListenerHost;
  #address: { host: string; port: number } | undefined;
  #accepting = false;

  constructor(config: ListenerConfig, host: ListenerHost) {
    this.#config = config;
    this.#host = host;
    this.#policy = compilePolicy(config, undefined, (sc) => host.sourceStore(sc));
    this.#policy.faults = host.faultsFor?.(config);
    this.server = net.createServer({ allowHalfOpen: true, pauseOnConnect: true, noDelay: true }, (socket) => this.#accept(socket));
    // Accept errors (EMFILE, ENFILE…) must never crash the process: libuv keeps the
    // listening socket and retries on the next readable event.
    this.server.on('error', (err: NodeJS.ErrnoException) => {
      if (!this.#accepting) return; // listen() errors are reported by listen()
      host.acceptError(this, err);
    });
  }

  /** An accepted connection (a net.Socket, or a raw socket from raw-socket.ts). */
  #accept(socket: DataSocket): void {
    if (!this.#host.holdIfOverLimit(this, socket)) this.serve(socket);
  }

  /**
   * Serves an accepted connection now. Shared source limits may first need one answer from
   * their store (bounded by its timeout); the client is not read meanwhile. With PROXY the
   * source is known only after the header, so nothing waits here.
   */
  serve(socket: DataSocket): void {
    const p = this.#policy;
    const wait = p.sourceLimits?.prepare && !p.proxyTrusted ? p.sourceLimits.prepare(socket.remoteAddress) : undefined;
    if (wait === undefined) handleConnection(this, socket);
    else void wait.then(() => handleConnection(this, socket));
  }

  get config(): ListenerConfig {
    return this.#config;
  }

  /** Applies a new config for new connections (reload); recompiles the policy. */
  set config(next: ListenerConfig) {
    this.apply(next, this.compile(next));
  }

  /**
   * Compiles `next` for this listener without applying it, so a reload can check every
   * listener (certificate files are read here) before changing anything. Throws L4lbError.
   */
  compile(next: ListenerConfig): ListenerPolicy {
    return compilePolicy(next, { config: this.#config, policy: this.#policy }, (sc) => this.#host.sourceStore(sc));
  }

  /** Applies `next` with the policy {@link compile} made from it; cannot fail. */
  apply(next: ListenerConfig, policy: ListenerPolicy): void {
    if (this.#policy.sourceLimits !== policy.sourceLimits) this.#policy.sourceLimits?.close?.();
    policy.faults = this.#host.faultsFor?.(next);
    this.#policy = policy;
    this.#config = next;
  }

  get policy(): ListenerPolicy {
    return this.#policy;
  }

  /**
   * Binds the listening socket (on `port`, default the config's). Rejects with L4LB_ERR_LISTEN
   * (e.g. address in use).
   */
  listen(port = this.config.port): Promise<{ host: string; port: number }> {
    const { host } = this.config;
    return new Promise((resolve, reject) => {
      const onError = (err: NodeJS.ErrnoException) => {
        const what = err.code === 'EADDRINUSE' ? 'address already in use' : err.code === 'EACCES' ? 'permission denied' : err.message;
        reject(new L4lbError(ErrorCodes.LISTEN, 'internal', `cannot listen on ${formatHostPort(host || '0.0.0.0', port)}: ${what}`, { cause: err }));
      };
      this.server.once('error', onError);
      this.server.listen({ host: host || undefined, port, backlog: 4096, ...this.#host.listenOptions }, () => {
        this.server.removeListener('error', onError);
        this.#accepting = true;
        // Listeners without preread or TLS accept onto raw sockets (raw-socket.ts); the others,
        // and all of them when the fast path is off, get net.Sockets through 'connection'.
        const fast = installFastAccept(
          this.server,
          () => !this.#policy.proxyTrusted && !this.#policy.peekClientHello && !this.#policy.certificates,
          (socket) => this.#accept(socket),
        );
        if (!fast) reportFastPath(this.#host.logger);
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

  /** Whether the listening socket accepts connections. */
  get accepting(): boolean {
    return this.#accepting;
  }

  /** Listens again on the port it had, after stopAccepting() (the fault API's "down", undone). */
  resume(): Promise<{ host: string; port: number }> {
    return this.listen(this.#address?.port ?? this.config.port);
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

  /** Process and listener limits: null when admitted, otherwise why not. */
  admitLimits(): Rejection | null {
    const global = this.#host.admitGlobal();
    if (global !== null) return this.reject(global);
    if (this.config.maxConnections > 0 && this.stats.active >= this.config.maxConnections) {
      return this.reject('listener_limit');
    }
    return null;
  }

  /** A rejection whose log line is rate-limited per reason. */
  reject(reason: string, fields: Record<string, unknown> = {}, message = 'connection rejected'): Rejection {
    return {
      reason,
      log: () => {
        const r = this.rejectLog.take(reason);
        if (r) this.#host.logger.warn({ listener: this.config.name, reason, suppressed: r.suppressed || undefined, ...fields }, message);
      },
    };
  }

  /** The pool connections go to when no route matches. */
  defaultPool(): Pool | undefined {
    return this.config.pool ? this.#host.pool(this.config.pool) : undefined;
  }

  /** A pool by name (routes name pools). */
  pool(name: string | undefined): Pool | undefined {
    return name === undefined ? undefined : this.#host.pool(name);
  }

  /**
   * How many backends one connection may try: first + retries, at most each backend once.
   * The default is bounded (HAProxy's), not the pool size: with a large pool of dead
   * backends "each once" made one client dial thousands of them.
   */
  maxTries(pool: Pool | undefined): number {
    const n = pool ? pool.backends.length : 0;
    return Math.min((this.config.retries ?? Defaults.retries) + 1, Math.max(n, 1));
  }

  /** A connection of this listener ended (its slot may go to a held connection). */
  released(): void {
    this.#host.connectionClosed();
  }

  /** The wait queue of `pool` (all backends at maxConnections). */
  backendQueue(pool: Pool): BackendQueue | undefined {
    return this.#host.backendQueue(pool);
  }

  /** A connection gave back its slot on one of `pool`'s backends. */
  backendReleased(pool: Pool): void {
    this.#host.backendReleased(pool);
  }

  /** A dial failed with EMFILE/ENFILE. */
  fdExhausted(err: unknown): void {
    this.#host.fdExhaustedOnConnect(err);
  }

  /**
   * A failed connect, logged at most 10 times a second per pool and error code (the
   * {@link RateLimitedLog} defaults; `suppressed` counts the lines held back): a pool of dead
   * backends under load would otherwise write a line per attempt. Counters see every failure.
   */
  logBackendError(backend: Backend, pool: Pool, err: ConnectError): void {
    const r = this.#connectErrorLog.take(`${pool.name}\u0000${err.code}`);
    if (!r) return;
    this.#host.logger.warn(
      {
        [LogFields.listener]: this.config.name,
        [LogFields.pool]: pool.name,
        [LogFields.backend]: backend.name,
        [LogFields.backendAddress]: backend.address,
        code: err.code,
        suppressed: r.suppressed || undefined,
      },
      err.message,
    );
  }

  /** Whether closed connections write an access-log line (else none is built). */
  get logsAccess(): boolean {
    return this.#host.logsAccess;
  }

  accessLog(rec: AccessRecord): void {
    this.#host.accessLog(rec);
  }
}
