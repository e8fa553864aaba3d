/**
 * @module proxy/proxy — the running proxy: listeners, pools, health, reload, drain.
 *
 * `startProxy(config)` is the library entry point the CLI and tests use; it returns a
 * handle with the bound addresses, `reload`, `drain` and `close`.
 *
 * Lifecycle rules kept here:
 * - `reload` is atomic for new connections and never touches existing ones; reloads run one
 *   at a time, in the order asked.
 * - Accept-time limits (`maxConnections` global and per listener): with `overLimit: queue` a
 *   connection over the limit is held, paused, in the listener's bounded {@link AcceptQueue}
 *   and served, oldest first across listeners, when a connection closes; see proxy/limits.ts
 *   for why it is not the kernel backlog.
 * - `drain` stops accepting at once, lets connections finish, then closes the rest spread
 *   over a window; `close` ends everything now, also in the middle of a drain.
 */
import type { Config, ListenerConfig, SharedSourceLimitsConfig } from '../config/types.js';
import { createLogger, LogFields, type Logger } from '../observability/log.js';
import { ProcessStats } from '../observability/stats.js';
import { createAccessLog, type AccessLog } from '../observability/access-log.js';
import { formatHostPort } from '../util/address.js';
import { ActiveHealthChecker } from '../health/active.js';
import { DISCOVERY_START_WAIT_MS, PoolDiscoveries } from '../discovery/manager.js';
import { BackendQueue } from '../admission/queue.js';
import { handleConnection, type AccessRecord } from './connection.js';
import { ListenerRuntime, type ListenerHost, type ListenOptions } from './listener.js';
import { SourceStore } from '../admission/source-store.js';
import type { SourceStoreStatus } from '../admin/status.js';
import { AcceptQueue, FdPressure, isFdExhausted } from './limits.js';
import { Pool } from './pool.js';
import { Mirror, MirrorConnections, type MirrorHost } from './mirror.js';
import { matchListeners } from './listener-match.js';
import { RateLimitedLog } from '../admission/source-limits.js';
import type { DataSocket } from './data-socket.js';
import { UdpListeners, type PreparedUdpReload } from '../udp/listeners.js';
import { ProxyStatusSource } from '../admin/proxy-source.js';
import type { StatusSnapshot } from '../admin/status.js';
import { FaultRegistry } from '../faults/registry.js';
import type { ListenerFaults } from '../faults/table.js';

export interface StartOptions {
  /** Process logger; default: JSON lines on stderr at config.log.level. */
  logger?: Logger;
  /** How listening sockets are bound; cluster workers set SO_REUSEPORT here. Default none. */
  listen?: ListenOptions;
  /**
   * Log `config reloaded` at debug instead of info: in a cluster, the primary logs one line
   * once every worker has applied a reload (docs/cluster.md). Default false.
   */
  quietReload?: boolean;
  /**
   * Receives every access record as an object, as well as (not instead of) `log.access`.
   * For embedding l4lb and for tests; with neither, no record is built at all.
   */
  onAccess?: (record: AccessRecord) => void;
}

/**
 * What a library user holds: the result of {@link startProxy} as src/index.ts exports it
 * (docs/library.md). Everything else on {@link Proxy} is for l4lb's own modules.
 */
export interface ProxyHandle {
  /** The config in force (the last one a reload applied). */
  readonly config: Config;
  /** Bound addresses, in config order (the real ports when the config says 0). */
  addresses(): BoundAddress[];
  /** Applies a new config atomically; throws and changes nothing when it cannot. */
  reload(next: Config): Promise<void>;
  /** Stops accepting, lets connections finish for up to `timeoutMs`, closes the rest over `spreadMs`. */
  drain(timeoutMs?: number, spreadMs?: number): Promise<void>;
  /** Closes everything now. */
  close(): Promise<void>;
  /** Connections open right now. */
  activeConnections(): number;
  /** Listeners, pools, backends, counters and recent events, as the admin API shows them. */
  status(): StatusSnapshot;
  /** Reopens the access-log file (after log rotation). */
  reopenLogs(): void;
}

/** A bound listener's address. */
export interface BoundAddress {
  name: string;
  host: string;
  port: number;
  /** `HOST:PORT`, IPv6 in brackets. */
  address: string;
  /** Set for UDP listeners. */
  protocol?: 'udp';
}

/** Poll interval while waiting for connections to finish during a drain. */
const DRAIN_POLL_MS = 50;
/** Shortest step between two batches of closes when spreading them over `closeSpreadMs`. */
const CLOSE_SPREAD_STEP_MS = 10;
/** How often a retired listener checks whether its last connection has gone. */
const RETIRED_CHECK_MS = 250;
/** Descriptors a process needs besides connections (stdio, epoll, logs, listeners…). */
const FD_BASE_MARGIN = 64;

/**
 * The running proxy. Library users hold it through the narrower {@link ProxyHandle}
 * (src/index.ts); the getters below are for l4lb's own modules (admin, cluster) and tests.
 */
export class Proxy implements ListenerHost, ProxyHandle, MirrorHost {
  #config: Config;
  readonly #logger: Logger;
  readonly #listenOptions: ListenOptions | undefined;
  readonly #reloadLogLevel: 'info' | 'debug';
  readonly #pools = new Map<string, Pool>();
  readonly #listeners = new Map<string, ListenerRuntime>();
  readonly #udp: UdpListeners;
  readonly #stats = new ProcessStats();
  readonly #checkers = new Map<string, ActiveHealthChecker>();
  readonly #discovery: PoolDiscoveries;
  #source: ProxyStatusSource | undefined;
  /** Each pool's wait queue for when all its backends are at maxConnections. */
  readonly #backendQueues = new Map<Pool, BackendQueue>();
  /** Connections held over an accept-time limit, per listener (retired ones included). */
  readonly #acceptQueues = new Map<ListenerRuntime, AcceptQueue>();
  #held = 0;
  #serving = false;
  #serveAgain = false;
  readonly #fd: FdPressure;
  readonly #acceptErrorLog = new RateLimitedLog({ perInterval: 1, intervalMs: 5_000 });
  #access: AccessLog;
  /** Lines dropped by access logs that reloads replaced. */
  #accessDroppedBefore = 0;
  readonly #onAccess: ((record: AccessRecord) => void) | undefined;
  /** Listeners removed by a reload whose connections are still draining. */
  readonly #retired = new Map<ListenerRuntime, NodeJS.Timeout>();
  /** Tail of the reload chain: reloads run one after the other. */
  #reloadChain: Promise<unknown> = Promise.resolve();
  /** Set when draining starts: no new connection is admitted. */
  #closing = false;
  /** Set by close(): a drain in progress stops waiting and spreading. */
  #closed = false;
  /** Connections to shared stores of source limits, by store. */
  readonly #stores = new Map<string, SourceStore>();
  /** Live mirror connections (secondary: not counted as active, closed at the end of a drain). */
  readonly #mirrors = new MirrorConnections();
  /** Fault tables by listener, and the listeners the fault API made (faults/registry.ts). */
  readonly #faults: FaultRegistry;

  constructor(config: Config, options: StartOptions = {}) {
    this.#config = config;
    this.#logger = options.logger ?? createLogger(config.log.level);
    this.#listenOptions = options.listen;
    this.#reloadLogLevel = options.quietReload ? 'debug' : 'info';
    this.#discovery = new PoolDiscoveries(this.#logger);
    this.#access = createAccessLog(config.log.access, this.#logger);
    this.#onAccess = options.onAccess;
    this.#fd = new FdPressure(this.#logger);
    this.#udp = new UdpListeners(this);
    // With the fault API on, every listener carries a table from the start (docs/faults.md).
    this.#faults = new FaultRegistry(config.faults !== undefined);
  }

  /** The config in force (the last one a reload applied). */
  get config(): Config {
    return this.#config;
  }
  /** The process logger. */
  get logger(): Logger {
    return this.#logger;
  }
  /** How listening sockets are bound (SO_REUSEPORT in cluster workers). */
  get listenOptions(): ListenOptions | undefined {
    return this.#listenOptions;
  }
  /** Pools by name. */
  get pools(): ReadonlyMap<string, Pool> {
    return this.#pools;
  }
  /** TCP listeners by name, in config order (retired ones not included). */
  get listeners(): ReadonlyMap<string, ListenerRuntime> {
    return this.#listeners;
  }
  /** The `protocol: udp` listeners (udp/listeners.ts); `listeners` holds the TCP ones. */
  get udp(): UdpListeners {
    return this.#udp;
  }
  /** Process-wide counters (reloads, accept errors). */
  get stats(): ProcessStats {
    return this.#stats;
  }
  /** Live mirror connections (proxy/mirror.ts). */
  get mirrors(): MirrorConnections {
    return this.#mirrors;
  }
  /** Fault tables and the listeners the fault API made. */
  get faults(): FaultRegistry {
    return this.#faults;
  }
  /** DNS discovery of the pools that have `dns` (its stats feed the admin API and metrics). */
  get discovery(): PoolDiscoveries {
    return this.#discovery;
  }

  /** The admin view of this proxy right now: listeners, pools, backends, recent events. */
  status(): StatusSnapshot {
    this.#source ??= new ProxyStatusSource(this);
    return this.#source.snapshot();
  }

  /** Creates pools and binds every listener; on a bind error, closes what it opened. */
  async start(): Promise<void> {
    for (const pc of this.#config.pools) this.#addPool(pc);
    this.#applyMirrors();
    // Listen with the first DNS answers in place when they come quickly; never wait long.
    await this.#discovery.settled(DISCOVERY_START_WAIT_MS);
    try {
      for (const lc of this.#config.listeners) if (lc.protocol !== 'udp') await this.#addListener(lc);
      await this.#udp.start(this.#config.listeners);
    } catch (err) {
      await this.close();
      throw err;
    }
    const fdLimit = this.#fd.limit;
    this.#fd.start();
    this.#logger.info({ listeners: this.addresses().map((a) => a.address), fdLimit }, 'l4lb started');
    this.#warnFdLimit(this.#config, fdLimit);
  }

  /** Each proxied connection holds two descriptors; say so when the limits cannot be reached. */
  #warnFdLimit(config: Config, fdLimit: number | undefined): void {
    if (fdLimit === undefined) return;
    const perListener = config.listeners.reduce((n, l) => (l.maxConnections > 0 && n >= 0 ? n + l.maxConnections : -1), 0);
    const max = config.maxConnections > 0 ? config.maxConnections : perListener;
    if (max > 0 && 2 * max + FD_BASE_MARGIN > fdLimit) {
      this.#logger.warn(
        { fdLimit, maxConnections: max, needed: 2 * max + FD_BASE_MARGIN },
        'the file descriptor limit is below what maxConnections needs (two per connection); raise it (ulimit -n / LimitNOFILE)',
      );
    }
  }

  #addPool(pc: Config['pools'][number]): Pool {
    const pool = new Pool(pc);
    pool.onStateChange = (b, reason) =>
      this.#logger.warn({ [LogFields.pool]: pool.name, [LogFields.backend]: b.name, [LogFields.backendAddress]: b.address, state: b.state() }, reason);
    this.#pools.set(pc.name, pool);
    this.#backendQueues.set(pool, new BackendQueue({ ...pc.queue }));
    const firstLookup = this.#discovery.start(pool);
    if (pc.healthCheck) {
      const checker = new ActiveHealthChecker(pool, this.#logger);
      this.#checkers.set(pc.name, checker);
      // A discovered pool's first answer is its starting set (up at once, like a static
      // list); backends that appear later must pass their checks first.
      if (firstLookup) {
        void firstLookup.then(() => {
          if (this.#checkers.get(pc.name) === checker && !this.#closing) checker.start();
        });
      } else {
        checker.start();
      }
    }
    return pool;
  }

  /**
   * Gives each pool the mirror its config names (after pools were added or updated: a mirror
   * points at another pool). No mirror, or percent 0, leaves `pool.mirror` undefined, so the
   * connection path pays one property check.
   */
  #applyMirrors(): void {
    for (const pool of this.#pools.values()) {
      const mc = pool.config.mirror;
      const target = mc && mc.percent > 0 ? this.#pools.get(mc.pool) : undefined;
      pool.mirror = mc && target ? new Mirror(mc, target, pool.mirrorStats, this) : undefined;
    }
  }

  #removePool(name: string): void {
    this.#discovery.stop(name);
    this.#checkers.get(name)?.stop();
    this.#checkers.delete(name);
    const pool = this.#pools.get(name);
    this.#pools.delete(name);
    if (pool) {
      // Connections waiting for this pool's backends have nowhere to go any more.
      this.#backendQueues.get(pool)?.clear('no_backend');
      this.#backendQueues.delete(pool);
    }
  }

  async #addListener(lc: ListenerConfig): Promise<ListenerRuntime> {
    const l = new ListenerRuntime(lc, this);
    await l.listen();
    this.#listeners.set(lc.name, l);
    return l;
  }

  /**
   * Applies a new config atomically. New (or moved) listeners are bound first; if any
   * bind fails, nothing changes and the error is thrown (the old config keeps serving).
   * Then, in one tick: pools are updated by name (backends keep their state by name),
   * listeners that stay keep their sockets and take the new settings for new
   * connections, removed listeners stop accepting and their connections drain.
   * Concurrent calls are queued and applied one after the other.
   */
  reload(next: Config): Promise<void> {
    // The fault API's listeners stay over a reload from the file (faults/registry.ts).
    const run = this.#reloadChain.then(() => this.#reload(this.#faults.withMade(next)));
    this.#reloadChain = run.catch(() => {});
    return run;
  }

  async #reload(next: Config): Promise<void> {
    if (this.#closing) {
      this.#logger.warn('reload ignored: shutting down');
      return;
    }
    const opened: ListenerRuntime[] = [];
    // Everything that can fail happens before the switch: binding new listeners and
    // compiling the policies (certificates, ACLs) of the listeners that stay.
    const compiled = new Map<ListenerRuntime, ReturnType<ListenerRuntime['compile']>>();
    const tcpListeners = next.listeners.filter((l) => l.protocol !== 'udp');
    const running = [...this.#listeners.values()];
    const match = matchListeners(
      tcpListeners,
      running.map((l) => ({ name: l.config.name, host: l.config.host, port: l.config.port, boundPort: l.address?.port })),
    );
    /** The new config of each listener that stays. */
    const kept = new Map<ListenerRuntime, ListenerConfig>();
    let udp: PreparedUdpReload | undefined;
    try {
      for (const [i, lc] of tcpListeners.entries()) {
        const m = match[i];
        if (m !== undefined) {
          const cur = running[m];
          compiled.set(cur, cur.compile(lc));
          kept.set(cur, lc);
          continue;
        }
        const l = new ListenerRuntime(lc, this);
        await l.listen();
        opened.push(l);
      }
      udp = await this.#udp.prepare(next.listeners);
    } catch (err) {
      await Promise.all(opened.map((l) => l.stopAccepting()));
      this.#stats.reloadFailures++;
      throw err;
    }
    if (this.#closing) {
      // A drain started while the new listeners were binding.
      await Promise.all(opened.map((l) => l.stopAccepting()));
      udp.abort();
      return;
    }

    // --- from here on, synchronous: the switch is atomic for new connections ---
    const nextPools = new Set(next.pools.map((p) => p.name));
    for (const name of [...this.#pools.keys()]) if (!nextPools.has(name)) this.#removePool(name);
    for (const pc of next.pools) {
      const pool = this.#pools.get(pc.name);
      if (!pool) {
        this.#addPool(pc);
        continue;
      }
      const healthChanged = JSON.stringify(pool.config.healthCheck) !== JSON.stringify(pc.healthCheck);
      this.#discovery.update(pool, pc);
      const queue = this.#backendQueues.get(pool);
      if (queue) queue.limits = { ...pc.queue };
      if (healthChanged) {
        this.#checkers.get(pc.name)?.stop();
        this.#checkers.delete(pc.name);
        if (pc.healthCheck) {
          const checker = new ActiveHealthChecker(pool, this.#logger);
          this.#checkers.set(pc.name, checker);
          checker.start();
        } else {
          // No active check any more: nothing will bring back backends it held down.
          for (const b of pool.backends) b.markUnchecked();
        }
      }
    }
    this.#applyMirrors();
    const byName = new Map<string, ListenerRuntime>();
    const retire: ListenerRuntime[] = [];
    for (const l of running) {
      const lc = kept.get(l);
      const policy = compiled.get(l);
      if (lc && policy) {
        l.apply(lc, policy);
        byName.set(lc.name, l);
      } else retire.push(l);
    }
    for (const l of retire) this.#retire(l);
    for (const l of opened) byName.set(l.config.name, l);
    // Keep config order.
    this.#listeners.clear();
    for (const lc of tcpListeners) this.#listeners.set(lc.name, byName.get(lc.name)!);
    const udpChange = udp.commit();
    if (next.log.access !== this.#config.log.access) {
      this.#accessDroppedBefore += this.#access.dropped;
      this.#access.close();
      this.#access = createAccessLog(next.log.access, this.#logger);
    }
    if (next.log.level !== this.#config.log.level) this.#logger.level = next.log.level;
    this.#config = next;
    this.#stats.reloads++;
    this.#logger[this.#reloadLogLevel](
      {
        listeners: this.addresses().map((a) => a.address),
        opened: opened.length + udpChange.opened,
        retired: retire.length + udpChange.retired,
      },
      'config reloaded',
    );
    // Limits may have been raised and backends added: let waiting connections in.
    for (const q of this.#backendQueues.values()) q.wake();
    this.#serveHeld();
    this.#warnFdLimit(next, this.#fd.limit);
  }

  #retire(l: ListenerRuntime): void {
    void l.stopAccepting();
    const check = setInterval(() => {
      if (l.connections.size === 0 && (this.#acceptQueues.get(l)?.size ?? 0) === 0) {
        clearInterval(check);
        this.#retired.delete(l);
        this.#acceptQueues.delete(l);
      }
    }, RETIRED_CHECK_MS);
    check.unref();
    this.#retired.set(l, check);
  }

  /** Bound addresses, in config order. */
  addresses(): BoundAddress[] {
    const out: BoundAddress[] = [];
    for (const lc of this.#config.listeners) {
      const l = lc.protocol === 'udp' ? this.#udp.map.get(lc.name) : this.#listeners.get(lc.name);
      const a = l?.address;
      if (!a) continue;
      out.push({
        name: lc.name, host: a.host, port: a.port, address: formatHostPort(a.host, a.port),
        ...(lc.protocol === 'udp' && { protocol: 'udp' as const }),
      });
    }
    return out;
  }

  // --- ListenerHost ---
  faultsFor(config: ListenerConfig): ListenerFaults | undefined {
    return this.#faults.tableFor(config);
  }

  sourceStore(config: SharedSourceLimitsConfig): SourceStore {
    // One connection per store (URL and prefix) and process, whatever the listeners using it.
    const id = JSON.stringify([config.redis, config.prefix, config.timeoutMs, config.leaseTtlMs, config.onStoreFailure]);
    let store = this.#stores.get(id);
    if (!store) this.#stores.set(id, (store = new SourceStore(config, this.logger)));
    return store;
  }

  /** The shared stores of source limits this process uses (none without `sourceLimits.shared`). */
  get sourceStores(): SourceStore[] {
    return [...this.#stores.values()];
  }

  /** This process's view of its shared stores (any store away = away); undefined without one. */
  sourceStoreStatus(): SourceStoreStatus | undefined {
    if (this.#stores.size === 0) return undefined;
    const st: SourceStoreStatus = { processes: 1, away: 0, errors: 0, fallbacks: 0 };
    for (const store of this.#stores.values()) {
      const c = store.counters;
      if (c.state !== 'up') st.away = 1;
      st.errors += c.errors;
      st.fallbacks += c.fallbacks;
    }
    return st;
  }

  pool(name: string): Pool | undefined {
    return this.#pools.get(name);
  }

  accessLog(rec: AccessRecord): void {
    this.#access.write(rec);
    this.#onAccess?.(rec);
  }

  get logsAccess(): boolean {
    return this.#access.enabled || this.#onAccess !== undefined;
  }

  admitGlobal(): string | null {
    if (this.#closing) return 'shutdown';
    const max = this.#config.maxConnections;
    if (max > 0 && this.activeConnections() >= max) return 'global_limit';
    return null;
  }

  /**
   * A listening socket reported an accept error. Counted and logged at most once per 5s;
   * running out of descriptors is reported as such (libuv already closed the connection).
   */
  acceptError(l: ListenerRuntime, err: NodeJS.ErrnoException): void {
    this.#stats.acceptErrors++;
    if (isFdExhausted(err)) {
      this.#fd.record('accept', err);
      return;
    }
    const take = this.#acceptErrorLog.take(err.code ?? 'accept');
    if (take) this.#logger.error({ listener: l.config.name, err: err.message, code: err.code, suppressed: take.suppressed }, 'accept failed');
  }

  /**
   * A backend dial failed with EMFILE/ENFILE: l4lb's own shortage, not the backend's fault,
   * so the caller must not count it against the backend's health. Counted and rate-logged.
   */
  fdExhaustedOnConnect(err: unknown): void {
    this.#fd.record('connect', err);
  }

  /** Times an accept or a dial failed because the process was out of file descriptors. */
  /** Access-log lines dropped (a target slower than the traffic, or failing), over reloads. */
  get accessLogDropped(): number {
    return this.#accessDroppedBefore + this.#access.dropped;
  }

  get fdExhausted(): number {
    return this.#fd.count;
  }

  /** Descriptors in use at the last periodic count (Linux), and the limit. */
  get fdUsage(): { inUse: number | undefined; limit: number | undefined } {
    return { inUse: this.#fd.inUse, limit: this.#fd.limit };
  }

  /** The wait queue of `pool` (for connections when all its backends are full). */
  backendQueue(pool: Pool): BackendQueue | undefined {
    return this.#backendQueues.get(pool);
  }

  /** A connection to one of `pool`'s backends ended (or gave up its slot): a waiter may go. */
  backendReleased(pool: Pool): void {
    const q = this.#backendQueues.get(pool);
    if (q && q.length > 0) q.wake();
  }

  /**
   * Accept-time limits. Returns true when `socket` was held in the listener's accept queue
   * (to be served when a slot frees); false when the caller serves it now (it may still be
   * rejected by the limit check when the listener says `overLimit: reject`, or the queue is full).
   */
  holdIfOverLimit(l: ListenerRuntime, socket: DataSocket): boolean {
    if (l.config.overLimit !== 'queue' || this.#closing) return false;
    const q = this.#acceptQueues.get(l);
    // Newcomers line up behind those already waiting.
    if ((q === undefined || q.size === 0) && !this.#overLimit(l)) return false;
    const queue = q ?? this.#acceptQueueOf(l);
    if (!queue.push(socket)) return false;
    this.#held++;
    return true;
  }

  /** Connections held over an accept-time limit right now, over all listeners. */
  get heldConnections(): number {
    return this.#held;
  }

  /** The accept queue of `l` (created on first use). */
  #acceptQueueOf(l: ListenerRuntime): AcceptQueue {
    let q = this.#acceptQueues.get(l);
    if (!q) {
      q = new AcceptQueue();
      this.#acceptQueues.set(l, q);
    }
    return q;
  }

  #overLimit(l: ListenerRuntime): boolean {
    if (l.config.maxConnections > 0 && l.connections.size >= l.config.maxConnections) return true;
    const max = this.#config.maxConnections;
    return max > 0 && this.activeConnections() >= max;
  }

  /** A connection closed: serve held connections while there is room. */
  connectionClosed(): void {
    if (this.#held > 0) this.#serveHeld();
  }

  /** Serves held connections, oldest first over all listeners, while limits allow. */
  #serveHeld(): void {
    if (this.#held === 0 || this.#closing) return;
    // Serving one can end it at once (no backend), which calls back here: loop instead.
    if (this.#serving) {
      this.#serveAgain = true;
      return;
    }
    this.#serving = true;
    try {
      do {
        this.#serveAgain = false;
        for (;;) {
          let best: ListenerRuntime | undefined;
          let bestSince = Infinity;
          for (const [l, q] of this.#acceptQueues) {
            if (q.size > 0 && q.oldestSince < bestSince && !this.#overLimit(l)) {
              best = l;
              bestSince = q.oldestSince;
            }
          }
          if (!best || this.#closing) break;
          const socket = this.#acceptQueues.get(best)!.shift()!;
          this.#held--;
          if (socket.destroyed) continue;
          handleConnection(best, socket);
        }
      } while (this.#serveAgain);
    } finally {
      this.#serving = false;
    }
  }

  /** Counts the bytes of connections still open into the counters (before a snapshot). */
  flushLiveBytes(): void {
    for (const l of this.#listeners.values()) for (const c of l.connections) c.flushBytes();
    for (const l of this.#retired.keys()) for (const c of l.connections) c.flushBytes();
    this.#udp.flushLiveBytes();
  }

  /** Connections and UDP sessions open right now, over all listeners (including retired ones). */
  activeConnections(): number {
    let n = this.#udp.sessionCount();
    for (const l of this.#listeners.values()) n += l.connections.size;
    for (const l of this.#retired.keys()) n += l.connections.size;
    return n;
  }

  /** Reopens the access-log file (SIGUSR1). */
  reopenLogs(): void {
    this.#access.reopen();
  }

  /** Closes the connections held in accept queues (they never got service). */
  #dropHeld(): void {
    for (const q of this.#acceptQueues.values()) this.#held -= q.closeAll();
  }

  /**
   * The first half of a drain: the listening sockets are closed (or let go of, in a cluster
   * worker) when it resolves, held connections are dropped, checks stop. Idempotent.
   */
  async stopAccepting(): Promise<void> {
    this.#closing = true;
    await Promise.all([...this.#listeners.values()].map((l) => l.stopAccepting()));
    // UDP sessions end by their idle timeout (or responses) within the drain time.
    this.#udp.stopAccepting();
    this.#dropHeld();
    for (const c of this.#checkers.values()) c.stop();
    this.#discovery.stopAll();
  }

  /**
   * Stops accepting, waits up to `timeoutMs` for connections to finish, then closes
   * the rest spread over `spreadMs` so clients don't all reconnect at once. Connections
   * held over a limit are closed at once, as a closed listening socket drops its backlog.
   * A `close()` during the drain ends it early.
   */
  async drain(timeoutMs = this.#config.shutdown.drainTimeoutMs, spreadMs = this.#config.shutdown.closeSpreadMs): Promise<void> {
    await this.stopAccepting();
    const deadline = Date.now() + timeoutMs;
    while (!this.#closed && this.activeConnections() > 0 && Date.now() < deadline) {
      await sleep(Math.min(DRAIN_POLL_MS, Math.max(1, deadline - Date.now())));
    }
    const rest = this.#allConnections();
    if (rest.length > 0 && !this.#closed) {
      // A drain asked not to wait (the demo's Ctrl-C) has no timeout to blame.
      const why = timeoutMs > 0 ? 'drain timeout reached' : 'not waiting for connections to finish';
      this.#logger.info({ remaining: rest.length, spreadMs }, `${why}, closing remaining connections`);
      // Close in small batches, proportionally to the time elapsed in the window: the last
      // batch goes at the end of the window, whatever the number of connections.
      const t0 = Date.now();
      let i = 0;
      while (i < rest.length && !this.#closed) {
        const due = spreadMs > 0 ? Math.ceil((rest.length * (Date.now() - t0)) / spreadMs) : rest.length;
        for (const end = Math.min(Math.max(due, i + 1), rest.length); i < end; i++) rest[i].stop('shutdown');
        if (i < rest.length) await sleep(Math.max(CLOSE_SPREAD_STEP_MS, spreadMs / rest.length));
      }
    }
    // Mirror connections are secondary: they do not outlive the drain.
    this.#mirrors.closeAll();
    this.#udp.close();
    this.#access.flush();
  }

  #allConnections() {
    const out = [];
    for (const l of this.#listeners.values()) out.push(...l.connections);
    for (const l of this.#retired.keys()) out.push(...l.connections);
    return out;
  }

  /** Closes everything now: listeners, connections, queues, health checks. */
  async close(): Promise<void> {
    this.#closing = true;
    this.#closed = true;
    this.#fd.stop();
    for (const c of this.#checkers.values()) c.stop();
    this.#checkers.clear();
    this.#discovery.stopAll();
    await Promise.all([...this.#listeners.values(), ...this.#retired.keys()].map((l) => l.stopAccepting()));
    this.#dropHeld();
    for (const c of this.#allConnections()) c.stop('shutdown');
    this.#mirrors.closeAll();
    this.#udp.close();
    for (const q of this.#backendQueues.values()) q.clear('no_backend');
    for (const [l, timer] of this.#retired) {
      if (l.connections.size === 0) {
        clearInterval(timer);
        this.#retired.delete(l);
      }
    }
    for (const l of [...this.listeners.values(), ...this.#retired.keys()]) l.policy.sourceLimits?.close?.();
    await Promise.all([...this.#stores.values()].map((st) => st.close()));
    this.#access.flush();
  }
}

/** Starts a proxy for `config`; resolves once every listener is bound. */
export async function startProxy(config: Config, options: StartOptions = {}): Promise<Proxy> {
  const proxy = new Proxy(config, options);
  await proxy.start();
  return proxy;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
