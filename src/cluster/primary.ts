/**
 * @module cluster/primary — multi-process mode: the primary process and its N workers.
 *
 * The primary serves no connection. It runs the parts that must be decided once — active
 * health checks and DNS discovery, on a listener-less Proxy of its own (`headless`) — the
 * admin API, reloads and shutdown, and it supervises the workers. Each worker is a full
 * Proxy bound to every listener (see cluster/worker.ts).
 *
 * Sharing the listening sockets (docs/cluster.md has the measurements):
 * - `reuseport` (Node ≥ 22.12 / 23.1 on Linux): each worker binds its own socket with
 *   SO_REUSEPORT and the kernel spreads new connections over them by a hash of the address
 *   pair. The default where supported.
 * - `shared` (the fallback, Node 20): node:cluster binds one socket in the primary and hands
 *   it to every worker, which all accept from it (`SCHED_NONE`). The primary is not on the
 *   data path; with node:cluster's default round-robin (`SCHED_RR`) it would be.
 * `L4LB_CLUSTER_MODE=reuseport|shared` forces one (for measurements).
 * UDP listeners: in `reuseport` mode every worker binds its own socket and the kernel keeps a
 * client address and port on one of them (its session stays in one worker); in `shared` mode
 * the first worker alone binds them (cluster/worker-config.ts says why).
 *
 * This file ties the parts together; each concern has its module:
 * - cluster/listen-ports.ts — test-binding listen addresses, resolving port 0;
 * - cluster/supervisor.ts — forking, the start handshake, restarts with backoff;
 * - cluster/requests.ts — request/response over IPC;
 * - cluster/state-sync.ts — pushing backend sets and health to the workers;
 * - cluster/reload.ts — reload with rollback;
 * - here: start, the messages workers send unasked (counters, ejections), drain and close.
 */
import cluster from 'node:cluster';
import { fileURLToPath } from 'node:url';
import type { AdminConfig, Config } from '../config/types.js';
import { ErrorCodes, L4lbError, type ErrorCode } from '../errors.js';
import { createLogger, type Logger } from '../observability/log.js';
import { startProxy, type BoundAddress, type Proxy } from '../proxy/proxy.js';
import { compilePolicy } from '../proxy/listener.js';
import { AdminServer, type AdminServerOptions } from '../admin/server.js';
import { assertAdminConfigSafe } from '../admin/auth.js';
import { StatsAggregator, type ClusterTotals } from './aggregate.js';
import type { IpcError, WorkerMessage } from './ipc.js';
import { ListenPorts } from './listen-ports.js';
import { reusePortSupported } from './ports.js';
import { ClusterReload } from './reload.js';
import { WorkerRequests } from './requests.js';
import { StateSync } from './state-sync.js';
import { ClusterStatusSource } from './status-source.js';
import { Supervisor, type Slot } from './supervisor.js';
import { headlessView, workerView } from './worker-config.js';

/** How listening sockets are shared by the workers. */
export type ListenMode = 'reuseport' | 'shared';

/** Options of {@link startCluster}. */
export interface ClusterOptions {
  /** Process logger; default: JSON lines on stderr at config.log.level. */
  logger?: Logger;
  /** Default: `L4LB_CLUSTER_MODE` if set, else `reuseport` where supported, else `shared`. */
  mode?: ListenMode;
}

/** How long a status request waits for fresh worker counters before using the last ones, ms. */
export const STATS_TIMEOUT_MS = 500;
/** Extra time past drain timeout + close spread before stragglers are killed, ms. */
export const DRAIN_GRACE_MS = 5_000;
/** How long `close()` waits for workers to exit before killing them, ms. */
export const CLOSE_GRACE_MS = 3_000;

const WORKER_MAIN = fileURLToPath(new URL('./worker-main.js', import.meta.url));

function isErrorCode(code: string): code is ErrorCode {
  return (Object.values(ErrorCodes) as string[]).includes(code);
}

/** An error a worker reported, as an L4lbError when its code is one of ours. */
function fromIpcError(e: IpcError, context: string): Error {
  return isErrorCode(e.code) ? new L4lbError(e.code, 'internal', e.message) : new Error(`${context}: ${e.message}`);
}

/** The cluster: a primary and its workers. Same lifecycle methods as {@link Proxy}. */
export class ClusterPrimary {
  #config: Config;
  readonly logger: Logger;
  readonly mode: ListenMode;
  /** Pools, health checks and discovery, without listeners. */
  readonly headless: Proxy;
  /** Number of worker processes (fixed at start). */
  readonly size: number;
  readonly #ports: ListenPorts;
  readonly #requests = new WorkerRequests();
  readonly #supervisor: Supervisor;
  readonly #sync: StateSync;
  readonly #reload: ClusterReload;
  readonly #stats = new StatsAggregator();
  readonly #source: ClusterStatusSource;
  #addresses: BoundAddress[] = [];
  #stopping: 'drain' | 'close' | undefined;
  /** Slots whose worker reported it closed its listening sockets (draining). */
  readonly #stoppedAccepting = new Set<number>();

  private constructor(config: Config, logger: Logger, mode: ListenMode, headless: Proxy, ports: ListenPorts) {
    this.#config = config;
    this.logger = logger;
    this.mode = mode;
    this.headless = headless;
    this.size = config.workers;
    this.#ports = ports;
    this.#supervisor = new Supervisor(this.size, logger, {
      init: (slot) => this.#init(slot),
      ready: (slot, addresses) => this.#ready(slot, addresses),
      message: (slot, m) => this.#onMessage(slot, m),
      exited: (slot) => {
        this.#stats.retire(slot.id);
        this.#requests.failPeer(slot, `worker ${slot.id} exited`);
      },
      event: (level, message) => this.#source.events.push({ level, message }),
      error: fromIpcError,
    });
    this.#sync = new StateSync(() => headless.pools.values(), () => this.#supervisor.live(), this.#requests, logger);
    // The reload reads and sets the primary's config and addresses through this view.
    const self = this;
    this.#reload = new ClusterReload({
      logger,
      headless,
      ports,
      requests: this.#requests,
      sync: this.#sync,
      size: this.size,
      get config() {
        return self.#config;
      },
      set config(c: Config) {
        self.#config = c;
      },
      get addresses() {
        return self.#addresses;
      },
      set addresses(a: BoundAddress[]) {
        self.#addresses = a;
      },
      get stopping() {
        return self.#stopping !== undefined;
      },
      live: () => this.#supervisor.live(),
      error: fromIpcError,
    });
    this.#source = new ClusterStatusSource(this);
  }

  /** Starts the primary's pools and checks, then the workers; resolves once all listen. */
  static async start(config: Config, options: ClusterOptions = {}): Promise<ClusterPrimary> {
    const logger = options.logger ?? createLogger(config.log.level);
    const mode = options.mode ?? (await chooseMode(logger));
    // Before the first fork: with SCHED_RR the primary would accept every connection itself.
    cluster.schedulingPolicy = cluster.SCHED_NONE;
    cluster.setupPrimary({ exec: WORKER_MAIN, args: [], serialization: 'json' });

    // What would fail in every worker fails here once: certificates, addresses in use.
    for (const lc of config.listeners) compilePolicy(lc);
    const ports = new ListenPorts(mode === 'reuseport');
    await ports.reserve(config.listeners);
    let headless: Proxy;
    try {
      headless = await startProxy(headlessView(config), { logger, quietReload: true });
    } catch (err) {
      await ports.close();
      throw err;
    }
    const primary = new ClusterPrimary(config, logger, mode, headless, ports);
    try {
      await primary.#supervisor.startAll();
    } catch (err) {
      await primary.close();
      throw err;
    }
    await ports.release();
    primary.#sync.start();
    logger.info(
      { workers: primary.size, mode, pids: primary.workerPids(), listeners: primary.#addresses.map((a) => a.address) },
      'l4lb cluster started',
    );
    return primary;
  }

  /** The config as loaded (ports as written); the last one a reload applied. */
  get config(): Config {
    return this.#config;
  }

  /** Reloads applied by the cluster. */
  get reloads(): number {
    return this.#reload.applied;
  }

  /** Reloads the cluster rejected (the old config kept serving). */
  get reloadFailures(): number {
    return this.#reload.failed;
  }

  // --- worker start and messages ---

  #init(slot: Slot) {
    slot.initConfig = this.#config;
    const state = this.#sync.current();
    return {
      t: 'init' as const,
      worker: slot.id,
      count: this.size,
      reusePort: this.mode === 'reuseport',
      config: workerView(this.#config, this.#ports.ports, state),
      state,
    };
  }

  #ready(slot: Slot, addresses: BoundAddress[]): void {
    // Whatever changed while it started (a reload, health, discovery) reaches it now.
    if (slot.initConfig !== this.#config) this.#reload.catchUp(slot);
    else this.#requests.send(slot, { t: 'state', id: 0, state: this.#sync.current() });
    if (this.#addresses.length === 0 || slot.id === this.#supervisor.firstReady()?.id) this.#addresses = addresses;
  }

  #onMessage(slot: Slot, m: WorkerMessage): void {
    switch (m.t) {
      case 'stats':
        this.#stats.update(slot.id, m.stats);
        break;
      case 'ejected':
        this.#onEjected(slot, m);
        return;
      case 'stopped-accepting':
        this.#onStoppedAccepting(slot);
        return;
      default:
        break;
    }
    this.#requests.answer(m);
  }

  /**
   * Logs 'listeners closed' once every worker has closed its listening sockets. In `shared`
   * mode the primary's copy of a socket goes when the last worker lets go of it (node:cluster
   * handles that message before this one), so from this line on connections are refused.
   */
  #onStoppedAccepting(slot: Slot): void {
    this.#stoppedAccepting.add(slot.id);
    if (this.#supervisor.slots.every((s) => !s.worker || this.#stoppedAccepting.has(s.id))) {
      this.logger.info({ workers: this.#stoppedAccepting.size }, 'listeners closed');
    }
  }

  /**
   * A worker ejected a backend: every worker stops using it. Logged once, by the primary,
   * however many workers report the same ejection; a later report only extends it.
   */
  #onEjected(slot: Slot, m: Extract<WorkerMessage, { t: 'ejected' }>): void {
    const pool = this.headless.pools.get(m.pool);
    const b = pool?.find(m.backend);
    if (!pool || !b || m.until <= b.ejectedUntil) return;
    if (b.eject(m.until, m.ejections)) pool.onStateChange?.(b, `${m.reason} (seen by worker ${slot.id})`);
    this.#sync.soon();
  }

  /**
   * Sends the current state to every worker and waits until each has applied it: after an
   * admin change, the API answers only once every worker acts on it.
   */
  pushState(): Promise<void> {
    return this.#sync.pushAndWait();
  }

  // --- counters ---

  /** Asks every worker for fresh counters (waits at most {@link STATS_TIMEOUT_MS}). */
  async refreshStats(): Promise<void> {
    await Promise.all(this.#supervisor.live().map((s) => this.#requests.ask(s, (id) => ({ t: 'stats?', id }), STATS_TIMEOUT_MS).catch(() => {})));
  }

  /** Counters summed over the workers (as of their last reports). */
  totals(): ClusterTotals {
    return this.#stats.totals();
  }

  /** Workers running and serving now. */
  liveWorkers(): number {
    return this.#supervisor.live().length;
  }

  /** Process ids of the running workers, by slot (undefined while one restarts). */
  workerPids(): (number | undefined)[] {
    return this.#supervisor.slots.map((s) => s.worker?.process.pid);
  }

  /** The admin view of the cluster. */
  statusSource(): ClusterStatusSource {
    return this.#source;
  }

  // --- the Proxy-like lifecycle the CLI uses ---

  /** Bound addresses, in config order (the real ports). */
  addresses(): BoundAddress[] {
    return this.#addresses;
  }

  /** Connections open right now over all workers (as of their last reports). */
  activeConnections(): number {
    return this.#stats.totals().activeConnections;
  }

  /** Reopens the log files of the primary and every worker (SIGUSR1). */
  reopenLogs(): void {
    this.headless.reopenLogs();
    this.#broadcast({ t: 'reopen-logs' });
  }

  /** Applies a new (already validated) config everywhere, with rollback (cluster/reload.ts). */
  reload(next: Config): Promise<void> {
    return this.#reload.run(next);
  }

  /**
   * Every worker stops accepting, lets its connections finish for up to `timeoutMs`, closes
   * the rest over `spreadMs` and exits; resolves once all have exited (stragglers are
   * killed {@link DRAIN_GRACE_MS} after that). A `close()` meanwhile ends the drain early.
   */
  async drain(timeoutMs = this.#config.shutdown.drainTimeoutMs, spreadMs = this.#config.shutdown.closeSpreadMs): Promise<void> {
    if (!this.#stopping) this.#stopping = 'drain';
    this.#stopTimers();
    await this.headless.close();
    this.#broadcast({ t: 'drain', timeoutMs, spreadMs });
    this.#supervisor.killStarting();
    await this.#supervisor.waitForExit(timeoutMs + spreadMs + DRAIN_GRACE_MS);
    await this.#ports.close();
  }

  /** Closes every connection in every worker now and waits for the workers to exit. */
  async close(): Promise<void> {
    this.#stopping = 'close';
    this.#stopTimers();
    this.#broadcast({ t: 'close' });
    // A worker still starting does not listen for `close` yet; nothing of it is worth keeping.
    this.#supervisor.killStarting();
    await this.#supervisor.waitForExit(CLOSE_GRACE_MS);
    await this.headless.close();
    await this.#ports.close();
    this.#requests.failAll('cluster closed');
  }

  #broadcast(m: Parameters<WorkerRequests['send']>[1]): void {
    for (const s of this.#supervisor.slots) this.#requests.send(s, m);
  }

  #stopTimers(): void {
    this.#sync.stop();
    this.#supervisor.stop();
  }
}

/** Picks the listening mode: `L4LB_CLUSTER_MODE`, else reuseport where supported. */
async function chooseMode(logger: Logger): Promise<ListenMode> {
  const forced = process.env.L4LB_CLUSTER_MODE;
  if (forced === 'reuseport' || forced === 'shared') return forced;
  if (forced) logger.warn({ L4LB_CLUSTER_MODE: forced }, 'unknown L4LB_CLUSTER_MODE (reuseport, shared); choosing automatically');
  return (await reusePortSupported()) ? 'reuseport' : 'shared';
}

/** Starts a cluster of `config.workers` workers; resolves once every listener is bound. */
export function startCluster(config: Config, options: ClusterOptions = {}): Promise<ClusterPrimary> {
  return ClusterPrimary.start(config, options);
}

/**
 * Starts the admin server of a cluster from its `admin` config (the counterpart of
 * `startProxyAdmin` for one process). It runs in the primary and sees the whole cluster.
 */
export async function startClusterAdmin(
  primary: ClusterPrimary,
  admin: AdminConfig,
  options: Partial<AdminServerOptions> = {},
): Promise<AdminServer> {
  assertAdminConfigSafe(admin);
  const server = new AdminServer(primary.statusSource(), {
    host: admin.host,
    port: admin.port,
    token: admin.token,
    persist: admin.persist,
    configFile: primary.config.file,
    logger: primary.logger,
    ...options,
  });
  await server.listen();
  return server;
}
