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
 *
 * What flows over IPC (cluster/ipc.ts): the config (at start and on reload), the backend
 * sets and health states (whenever they change: the primary checks every
 * {@link STATE_POLL_MS} and after each change it makes), admin changes (acknowledged by every
 * worker before the API answers), ejections workers make (passive health), and counters
 * (every second and on request).
 *
 * A worker that exits unexpectedly is restarted after a delay that doubles for each quick
 * crash in a row ({@link RESTART_BASE_MS} … {@link RESTART_MAX_MS}).
 */
import cluster, { type Worker } from 'node:cluster';
import { fileURLToPath } from 'node:url';
import type { AdminConfig, Config } from '../config/types.js';
import { ErrorCodes, L4lbError, type ErrorCode } from '../errors.js';
import { createLogger, type Logger } from '../observability/log.js';
import { startProxy, type BoundAddress, type Proxy } from '../proxy/proxy.js';
import { compilePolicy } from '../proxy/listener.js';
import { formatHostPort } from '../util/address.js';
import { AdminServer, type AdminServerOptions } from '../admin/server.js';
import { assertAdminConfigSafe } from '../admin/auth.js';
import { StatsAggregator, type ClusterTotals } from './aggregate.js';
import { isWorkerMessage, type IpcError, type PrimaryMessage, type WorkerMessage } from './ipc.js';
import { reservePort, reusePortSupported, type PortHold } from './ports.js';
import { StateTracker } from './state.js';
import { ClusterStatusSource } from './status-source.js';
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

/** First delay before restarting a worker that exited unexpectedly, ms. */
export const RESTART_BASE_MS = 100;
/** Longest delay before restarting a worker, ms. */
export const RESTART_MAX_MS = 10_000;
/** A worker that ran this long before exiting restarts after the base delay again, ms. */
export const STABLE_AFTER_MS = 10_000;
/** How often the primary looks for health/backend changes to push, ms. */
export const STATE_POLL_MS = 100;
/** How long a status request waits for fresh worker counters before using the last ones, ms. */
export const STATS_TIMEOUT_MS = 500;
/** How long an admin change waits for every worker to apply it, ms. */
export const ACK_TIMEOUT_MS = 2_000;
/** How long a worker gets to start (bind its listeners), ms. */
export const START_TIMEOUT_MS = 30_000;
/** How long a worker gets to apply a reload before it is restarted with the new config, ms. */
export const RELOAD_TIMEOUT_MS = 15_000;
/** Extra time past drain timeout + close spread before stragglers are killed, ms. */
export const DRAIN_GRACE_MS = 5_000;
/** How long `close()` waits for workers to exit before killing them, ms. */
export const CLOSE_GRACE_MS = 3_000;

const WORKER_MAIN = fileURLToPath(new URL('./worker-main.js', import.meta.url));

interface Slot {
  /** 1-based. */
  readonly id: number;
  worker: Worker | undefined;
  ready: boolean;
  startedAt: number;
  /** Quick exits in a row (drives the restart delay). */
  crashes: number;
  restartTimer: NodeJS.Timeout | undefined;
  /** Resolves when the current worker process has exited. */
  exited: Promise<void>;
  /** The config the worker was started with (a reload may have come while it started). */
  initConfig: Config | undefined;
}

interface Pending {
  slot: Slot;
  resolve(m: WorkerMessage): void;
  reject(err: Error): void;
  timer: NodeJS.Timeout;
}

function isErrorCode(code: string): code is ErrorCode {
  return (Object.values(ErrorCodes) as string[]).includes(code);
}

/** An error a worker reported, as an L4lbError when its code is one of ours. */
function fromIpcError(e: IpcError, context: string): Error {
  return isErrorCode(e.code) ? new L4lbError(e.code, 'internal', e.message) : new Error(`${context}: ${e.message}`);
}

/** The cluster: a primary and its workers. Same lifecycle methods as {@link Proxy}. */
export class ClusterPrimary {
  /** The config as loaded (ports as written). */
  config: Config;
  readonly logger: Logger;
  readonly mode: ListenMode;
  /** Pools, health checks and discovery, without listeners. */
  readonly headless: Proxy;
  /** Number of worker processes (fixed at start). */
  readonly size: number;
  /** Reloads applied / rejected by the cluster. */
  reloads = 0;
  reloadFailures = 0;
  readonly #slots: Slot[] = [];
  readonly #stats = new StatsAggregator();
  readonly #tracker = new StateTracker();
  readonly #pending = new Map<number, Pending>();
  /** Resolved ports of port-0 listeners, by listener name. */
  #ports = new Map<string, number>();
  /** Sockets held for port-0 listeners until the workers have bound (reuseport mode). */
  #holds: PortHold[] = [];
  #addresses: BoundAddress[] = [];
  #nextId = 1;
  #lastState = '';
  #pollTimer: NodeJS.Timeout | undefined;
  #pushQueued = false;
  #started = false;
  #stopping: 'drain' | 'close' | undefined;
  /** Slots whose worker reported it closed its listening sockets (draining). */
  readonly #stoppedAccepting = new Set<number>();
  #reloadChain: Promise<unknown> = Promise.resolve();
  #source: ClusterStatusSource | undefined;

  private constructor(config: Config, logger: Logger, mode: ListenMode, headless: Proxy) {
    this.config = config;
    this.logger = logger;
    this.mode = mode;
    this.headless = headless;
    this.size = config.workers;
    for (let id = 1; id <= this.size; id++) {
      this.#slots.push({ id, worker: undefined, ready: false, startedAt: 0, crashes: 0, restartTimer: undefined, exited: Promise.resolve(), initConfig: undefined });
    }
  }

  /** Starts the primary's pools and checks, then the workers; resolves once all listen. */
  static async start(config: Config, options: ClusterOptions = {}): Promise<ClusterPrimary> {
    const logger = options.logger ?? createLogger(config.log.level);
    const mode = options.mode ?? (await chooseMode(logger));
    // Before the first fork: with SCHED_RR the primary would accept every connection itself.
    cluster.schedulingPolicy = cluster.SCHED_NONE;
    cluster.setupPrimary({ exec: WORKER_MAIN, args: [], serialization: 'json' });

    const ports = new Map<string, number>();
    const holds: PortHold[] = [];
    try {
      // What would fail in every worker fails here once: certificates, addresses in use.
      for (const lc of config.listeners) compilePolicy(lc);
      for (const lc of config.listeners) {
        const h = await reservePort(lc.host, lc.port, lc.port === 0 && mode === 'reuseport', lc.port === 0 && mode === 'reuseport');
        holds.push(h);
        if (lc.port === 0) ports.set(lc.name, h.port);
      }
    } catch (err) {
      await Promise.all(holds.map((h) => h.release()));
      throw err;
    }
    let headless: Proxy;
    try {
      headless = await startProxy(headlessView(config), { logger, quietReload: true });
    } catch (err) {
      await Promise.all(holds.map((h) => h.release()));
      throw err;
    }
    const primary = new ClusterPrimary(config, logger, mode, headless);
    primary.#ports = ports;
    primary.#holds = holds;
    primary.#source = new ClusterStatusSource(primary);
    try {
      await Promise.all(primary.#slots.map((s) => primary.#fork(s)));
    } catch (err) {
      await primary.close();
      throw err;
    }
    await primary.#releaseHolds();
    primary.#started = true;
    primary.#lastState = JSON.stringify(primary.#state());
    primary.#pollTimer = setInterval(() => primary.#poll(), STATE_POLL_MS);
    primary.#pollTimer.unref();
    logger.info(
      { workers: primary.size, mode, pids: primary.#slots.map((s) => s.worker?.process.pid), listeners: primary.#addresses.map((a) => a.address) },
      'l4lb cluster started',
    );
    return primary;
  }

  // --- workers ---

  #fork(slot: Slot): Promise<void> {
    const worker = cluster.fork({ L4LB_WORKER_ID: String(slot.id) });
    slot.worker = worker;
    slot.ready = false;
    slot.startedAt = Date.now();
    let onExit!: () => void;
    slot.exited = new Promise<void>((r) => (onExit = r));
    return new Promise<void>((resolve, reject) => {
      let settled = false;
      const settle = (err?: Error) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (err) reject(err);
        else resolve();
      };
      const timer = setTimeout(() => {
        settle(new Error(`worker ${slot.id} did not start within ${START_TIMEOUT_MS}ms`));
        worker.process.kill('SIGKILL');
      }, START_TIMEOUT_MS);
      worker.on('message', (m: unknown) => {
        if (!isWorkerMessage(m)) return;
        if (m.t === 'hello') {
          slot.initConfig = this.config;
          this.#send(slot, {
            t: 'init',
            worker: slot.id,
            count: this.size,
            reusePort: this.mode === 'reuseport',
            config: workerView(this.config, this.#ports, this.#state()),
            state: this.#state(),
          });
          return;
        }
        if (m.t === 'ready') {
          slot.ready = true;
          // Whatever changed while it started (a reload, health, discovery) reaches it now.
          if (slot.initConfig !== this.config) this.#catchUp(slot);
          else this.#send(slot, { t: 'state', id: 0, state: this.#state() });
          if (this.#addresses.length === 0 || slot.id === this.#firstReady()?.id) this.#addresses = m.addresses;
          settle();
          return;
        }
        if (m.t === 'failed') {
          settle(fromIpcError(m.error, `worker ${slot.id} failed to start`));
          return;
        }
        this.#onMessage(slot, m);
      });
      // IPC write errors after the worker died; the exit handler deals with the worker.
      worker.on('error', (err) => this.logger.debug({ worker: slot.id, err: err.message }, 'worker IPC error'));
      worker.on('exit', (code, signal) => {
        onExit();
        settle(new Error(`worker ${slot.id} exited (${signal ?? `code ${code}`}) while starting`));
        this.#onExit(slot, worker, code, signal);
      });
    });
  }

  /** A worker that started with a config a reload has replaced since gets the current one. */
  #catchUp(slot: Slot): void {
    const state = this.#state();
    slot.initConfig = this.config;
    this.#ask(slot, (id) => ({ t: 'reload', id, config: workerView(this.config, this.#ports, state), state }), RELOAD_TIMEOUT_MS).then(
      (m) => {
        if (m.t === 'reloaded') return;
        this.logger.error({ worker: slot.id }, 'a restarted worker rejected the current config; restarting it');
        slot.worker?.process.kill('SIGKILL');
      },
      () => {},
    );
  }

  #firstReady(): Slot | undefined {
    return this.#slots.find((s) => s.ready);
  }

  #onExit(slot: Slot, worker: Worker, code: number | null, signal: string | null): void {
    if (slot.worker !== worker) return;
    slot.worker = undefined;
    slot.ready = false;
    this.#stats.retire(slot.id);
    for (const [id, p] of this.#pending) {
      if (p.slot !== slot) continue;
      this.#pending.delete(id);
      clearTimeout(p.timer);
      p.reject(new Error(`worker ${slot.id} exited`));
    }
    if (this.#stopping || !this.#started) return;
    const lived = Date.now() - slot.startedAt;
    slot.crashes = lived >= STABLE_AFTER_MS ? 1 : slot.crashes + 1;
    const delay = Math.min(RESTART_BASE_MS * 2 ** (slot.crashes - 1), RESTART_MAX_MS);
    const how = signal ? `signal ${signal}` : `code ${code}`;
    this.logger.error({ worker: slot.id, workerPid: worker.process.pid, code, signal, restartInMs: delay }, 'worker exited unexpectedly; restarting it');
    this.#source?.events.push({ level: 'error', message: `worker ${slot.id} (pid ${worker.process.pid}) exited (${how}); restarting in ${delay}ms` });
    slot.restartTimer = setTimeout(() => this.#restart(slot), delay);
  }

  #restart(slot: Slot): void {
    slot.restartTimer = undefined;
    if (this.#stopping) return;
    this.#fork(slot).then(
      () => {
        this.logger.info({ worker: slot.id, workerPid: slot.worker?.process.pid }, 'worker restarted');
        this.#source?.events.push({ level: 'info', message: `worker ${slot.id} restarted (pid ${slot.worker?.process.pid})` });
      },
      // Its exit schedules the next attempt.
      (err: Error) => this.logger.error({ worker: slot.id, err: err.message }, 'worker failed to start'),
    );
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
    if ('id' in m && m.id !== undefined) {
      const p = this.#pending.get(m.id);
      if (!p) return;
      this.#pending.delete(m.id);
      clearTimeout(p.timer);
      p.resolve(m);
    }
  }

  /**
   * Logs 'listeners closed' once every worker has closed its listening sockets. In `shared`
   * mode the primary's copy of a socket goes when the last worker lets go of it (node:cluster
   * handles that message before this one), so from this line on connections are refused.
   */
  #onStoppedAccepting(slot: Slot): void {
    this.#stoppedAccepting.add(slot.id);
    if (this.#slots.every((s) => !s.worker || this.#stoppedAccepting.has(s.id))) {
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
    const already = b.ejectedUntil > Date.now();
    b.ejectedUntil = m.until;
    b.ejections = Math.max(b.ejections, m.ejections);
    if (!already) pool.onStateChange?.(b, `${m.reason} (seen by worker ${slot.id})`);
    this.#schedulePush();
  }

  #send(slot: Slot, m: PrimaryMessage): boolean {
    const w = slot.worker;
    if (!w || !w.isConnected()) return false;
    w.send(m);
    return true;
  }

  /** Sends a request to one worker and waits for the answer with the same id. */
  #ask(slot: Slot, build: (id: number) => PrimaryMessage, timeoutMs: number): Promise<WorkerMessage> {
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(new Error(`worker ${slot.id} did not answer within ${timeoutMs}ms`));
      }, timeoutMs);
      this.#pending.set(id, { slot, resolve, reject, timer });
      if (!this.#send(slot, build(id))) {
        this.#pending.delete(id);
        clearTimeout(timer);
        reject(new Error(`worker ${slot.id} is not running`));
      }
    });
  }

  #live(): Slot[] {
    return this.#slots.filter((s) => s.ready && s.worker);
  }

  #broadcast(m: PrimaryMessage): void {
    for (const s of this.#slots) if (s.worker) this.#send(s, m);
  }

  async #releaseHolds(): Promise<void> {
    const holds = this.#holds;
    this.#holds = [];
    await Promise.all(holds.map((h) => h.release()));
  }

  // --- shared state ---

  #state() {
    return this.#tracker.build(this.headless.pools.values());
  }

  /** Pushes the state when it changed since the last push (health checks, discovery). */
  #poll(): void {
    if (this.#stopping) return;
    const state = this.#state();
    const json = JSON.stringify(state);
    if (json === this.#lastState) return;
    this.#lastState = json;
    for (const s of this.#live()) this.#send(s, { t: 'state', id: 0, state });
  }

  #schedulePush(): void {
    if (this.#pushQueued) return;
    this.#pushQueued = true;
    setImmediate(() => {
      this.#pushQueued = false;
      this.#poll();
    });
  }

  /**
   * Sends the current state to every worker and waits until each has applied it (or
   * {@link ACK_TIMEOUT_MS} passed): after an admin change, the API answers only once
   * every worker acts on it.
   */
  async pushState(): Promise<void> {
    const state = this.#state();
    this.#lastState = JSON.stringify(state);
    await Promise.all(
      this.#live().map((s) =>
        this.#ask(s, (id) => ({ t: 'state', id, state }), ACK_TIMEOUT_MS).catch((err: Error) =>
          this.logger.warn({ worker: s.id, err: err.message }, 'worker did not confirm a state change'),
        ),
      ),
    );
  }

  // --- counters ---

  /** Asks every worker for fresh counters (waits at most {@link STATS_TIMEOUT_MS}). */
  async refreshStats(): Promise<void> {
    await Promise.all(this.#live().map((s) => this.#ask(s, (id) => ({ t: 'stats?', id }), STATS_TIMEOUT_MS).catch(() => {})));
  }

  /** Counters summed over the workers (as of their last reports). */
  totals(): ClusterTotals {
    return this.#stats.totals();
  }

  /** Workers running and serving now. */
  liveWorkers(): number {
    return this.#live().length;
  }

  /** Process ids of the running workers, by slot (undefined while one restarts). */
  workerPids(): (number | undefined)[] {
    return this.#slots.map((s) => s.worker?.process.pid);
  }

  /** The admin view of the cluster. */
  statusSource(): ClusterStatusSource {
    return this.#source!;
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

  /**
   * Applies a new (already validated) config everywhere. Checked in the primary first —
   * new listen addresses are test-bound, certificates loaded — so a bad one changes
   * nothing. Then the primary's pools take it, then every worker (each atomically). If a
   * worker still rejects it, the primary and the workers that took it go back to the old
   * config, so all keep serving the same one. Reloads run one at a time.
   */
  reload(next: Config): Promise<void> {
    const run = this.#reloadChain.then(() => this.#reload(next));
    this.#reloadChain = run.catch(() => {});
    return run;
  }

  async #reload(next: Config): Promise<void> {
    if (this.#stopping) {
      this.logger.warn('reload ignored: shutting down');
      return;
    }
    if (next.workers !== this.size) {
      this.logger.warn({ configured: next.workers, running: this.size }, 'the number of workers changes only on restart');
    }
    const reuse = this.mode === 'reuseport';
    const ports = new Map<string, number>();
    const taken = new Set<string>();
    try {
      for (const lc of next.listeners) {
        const cur = this.config.listeners.find((l) => l.name === lc.name);
        if (cur && cur.host === lc.host && cur.port === lc.port) {
          if (lc.port === 0) ports.set(lc.name, this.#ports.get(lc.name)!);
          continue;
        }
        // Renamed on the same address: the workers keep that listener's socket (Proxy.reload).
        const renamedFrom = lc.port === 0 ? undefined : this.config.listeners.find(
          (l) =>
            !taken.has(l.name) && l.host === lc.host && l.port === lc.port &&
            !next.listeners.some((n) => n.name === l.name && n.host === l.host && n.port === l.port),
        );
        if (renamedFrom) {
          taken.add(renamedFrom.name);
          continue;
        }
        const h = await reservePort(lc.host, lc.port, reuse && lc.port === 0, reuse && lc.port === 0);
        this.#holds.push(h);
        if (lc.port === 0) ports.set(lc.name, h.port);
      }
      for (const lc of next.listeners) compilePolicy(lc);
    } catch (err) {
      await this.#releaseHolds();
      this.reloadFailures++;
      throw err;
    }

    const prev = { config: this.config, ports: this.#ports };
    await this.headless.reload(headlessView(next));
    this.config = next;
    this.#ports = ports;
    const state = this.#state();
    const view = workerView(next, ports, state);
    const slots = this.#live();
    const results = await Promise.all(
      slots.map((s) =>
        this.#ask(s, (id) => ({ t: 'reload', id, config: view, state }), RELOAD_TIMEOUT_MS).then(
          (m) => ({ s, m, err: undefined }),
          (err: Error) => ({ s, m: undefined, err }),
        ),
      ),
    );
    // A drain that started meanwhile owns the workers now: no rollback, no restarts.
    if (this.#stopping) return;
    const rejected = results.filter((r) => r.m?.t === 'reload-failed');
    if (rejected.length > 0) {
      const m = rejected[0].m as Extract<WorkerMessage, { t: 'reload-failed' }>;
      this.logger.error({ worker: rejected[0].s.id, err: m.error.message }, 'a worker rejected the new config; going back to the old one everywhere');
      this.config = prev.config;
      this.#ports = prev.ports;
      await this.headless.reload(headlessView(prev.config));
      const oldState = this.#state();
      const oldView = workerView(prev.config, prev.ports, oldState);
      await Promise.all(
        results
          .filter((r) => r.m?.t === 'reloaded')
          .map((r) => this.#ask(r.s, (id) => ({ t: 'reload', id, config: oldView, state: oldState }), RELOAD_TIMEOUT_MS).catch(() => {})),
      );
      await this.#releaseHolds();
      this.reloadFailures++;
      throw fromIpcError(m.error, 'a worker rejected the new config');
    }
    for (const r of results) {
      if (r.m?.t === 'reloaded') {
        if (r.s === results[0].s) this.#addresses = r.m.addresses;
        continue;
      }
      // Gone or stuck: a fresh worker starts with the new config.
      this.logger.error({ worker: r.s.id, err: r.err?.message }, 'worker did not apply the new config; restarting it');
      r.s.worker?.process.kill('SIGKILL');
    }
    if (results.length === 0) this.#addresses = this.#expectedAddresses();
    this.#lastState = JSON.stringify(state);
    await this.#releaseHolds();
    this.reloads++;
    // The one line for the whole cluster (the pools' and the workers' own lines are at debug).
    this.logger.info({ workers: slots.length, listeners: this.#addresses.map((a) => a.address) }, 'config reloaded');
  }

  /** Addresses as configured, with resolved ports (when no worker could report them). */
  #expectedAddresses(): BoundAddress[] {
    return this.config.listeners.map((lc) => {
      const port = this.#ports.get(lc.name) ?? lc.port;
      const host = lc.host || '0.0.0.0';
      return { name: lc.name, host, port, address: formatHostPort(host, port) };
    });
  }

  /**
   * Every worker stops accepting, lets its connections finish for up to `timeoutMs`, closes
   * the rest over `spreadMs` and exits; resolves once all have exited (stragglers are
   * killed {@link DRAIN_GRACE_MS} after that). A `close()` meanwhile ends the drain early.
   */
  async drain(timeoutMs = this.config.shutdown.drainTimeoutMs, spreadMs = this.config.shutdown.closeSpreadMs): Promise<void> {
    if (!this.#stopping) this.#stopping = 'drain';
    this.#stopTimers();
    await this.headless.close();
    this.#broadcast({ t: 'drain', timeoutMs, spreadMs });
    for (const s of this.#slots) if (s.worker && !s.ready) s.worker.process.kill('SIGKILL');
    await this.#waitForExit(timeoutMs + spreadMs + DRAIN_GRACE_MS);
  }

  /** Closes every connection in every worker now and waits for the workers to exit. */
  async close(): Promise<void> {
    this.#stopping = 'close';
    this.#stopTimers();
    this.#broadcast({ t: 'close' });
    // A worker still starting does not listen for `close` yet; nothing of it is worth keeping.
    for (const s of this.#slots) if (s.worker && !s.ready) s.worker.process.kill('SIGKILL');
    await this.#waitForExit(CLOSE_GRACE_MS);
    await this.headless.close();
    await this.#releaseHolds();
    for (const [id, p] of this.#pending) {
      clearTimeout(p.timer);
      this.#pending.delete(id);
      p.reject(new Error('cluster closed'));
    }
  }

  #stopTimers(): void {
    if (this.#pollTimer) clearInterval(this.#pollTimer);
    this.#pollTimer = undefined;
    for (const s of this.#slots) {
      if (s.restartTimer) clearTimeout(s.restartTimer);
      s.restartTimer = undefined;
    }
  }

  async #waitForExit(ms: number): Promise<void> {
    const all = Promise.all(this.#slots.map((s) => s.exited));
    let timer: NodeJS.Timeout | undefined;
    const late = await Promise.race([all.then(() => false), new Promise<boolean>((r) => (timer = setTimeout(() => r(true), ms)))]);
    clearTimeout(timer);
    if (!late) return;
    for (const s of this.#slots) {
      if (!s.worker) continue;
      this.logger.warn({ worker: s.id, workerPid: s.worker.process.pid }, 'worker did not exit in time; killing it');
      s.worker.process.kill('SIGKILL');
    }
    await all;
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
