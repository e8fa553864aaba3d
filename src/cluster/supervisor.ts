/**
 * @module cluster/supervisor — the worker processes: fork, the start handshake, restart with
 * backoff, and waiting for them to exit.
 *
 * Start handshake (cluster/ipc.ts): the worker says `hello` once it listens for messages,
 * gets `init` (built by the primary), binds its listeners and says `ready` (or `failed`).
 * A worker that exits unexpectedly is restarted after a delay that doubles for each quick
 * crash in a row ({@link RESTART_BASE_MS} … {@link RESTART_MAX_MS}).
 */
import cluster, { type Worker } from 'node:cluster';
import type { Config } from '../config/types.js';
import type { Logger } from '../observability/log.js';
import type { BoundAddress } from '../proxy/proxy.js';
import { isWorkerMessage, type IpcError, type PrimaryMessage, type WorkerMessage } from './ipc.js';
import type { Peer } from './requests.js';

/** First delay before restarting a worker that exited unexpectedly, ms. */
export const RESTART_BASE_MS = 100;
/** Longest delay before restarting a worker, ms. */
export const RESTART_MAX_MS = 10_000;
/** A worker that ran this long before exiting restarts after the base delay again, ms. */
export const STABLE_AFTER_MS = 10_000;
/** How long a worker gets to start (bind its listeners), ms. */
export const START_TIMEOUT_MS = 30_000;

/** One worker position; its process changes when it restarts. */
export interface Slot extends Peer {
  worker: Worker | undefined;
  /** Said `ready` (its listeners are bound). */
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

/** What the primary does at each step of a worker's life. */
export interface SupervisorHooks {
  /** The `init` message for a worker that said `hello`. */
  init(slot: Slot): PrimaryMessage;
  /** The worker has bound its listeners. */
  ready(slot: Slot, addresses: BoundAddress[]): void;
  /** Any other message from a running worker. */
  message(slot: Slot, m: WorkerMessage): void;
  /** The worker's process exited (whatever comes next). */
  exited(slot: Slot): void;
  /** A restart or a crash, for the admin API's recent events. */
  event(level: 'info' | 'error', message: string): void;
  /** An error a worker reported, as the error to throw. */
  error(e: IpcError, context: string): Error;
}

export class Supervisor {
  readonly slots: Slot[] = [];
  readonly #logger: Logger;
  readonly #hooks: SupervisorHooks;
  /** Set once every first worker is ready: from then on, exits restart. */
  #started = false;
  #stopped = false;

  constructor(size: number, logger: Logger, hooks: SupervisorHooks) {
    this.#logger = logger;
    this.#hooks = hooks;
    for (let id = 1; id <= size; id++) {
      this.slots.push({ id, worker: undefined, ready: false, startedAt: 0, crashes: 0, restartTimer: undefined, exited: Promise.resolve(), initConfig: undefined });
    }
  }

  /** Starts every worker; resolves once all are ready, rejects when one fails to start. */
  async startAll(): Promise<void> {
    await Promise.all(this.slots.map((s) => this.#fork(s)));
    this.#started = true;
  }

  /** Workers running and serving now. */
  live(): Slot[] {
    return this.slots.filter((s) => s.ready && s.worker);
  }

  /** The first ready slot (its worker reports the bound addresses). */
  firstReady(): Slot | undefined {
    return this.slots.find((s) => s.ready);
  }

  /** No more restarts (a drain or close began). */
  stop(): void {
    this.#stopped = true;
    for (const s of this.slots) {
      if (s.restartTimer) clearTimeout(s.restartTimer);
      s.restartTimer = undefined;
    }
  }

  /** Kills workers still starting: they do not listen for `drain` or `close` yet. */
  killStarting(): void {
    for (const s of this.slots) if (s.worker && !s.ready) s.worker.process.kill('SIGKILL');
  }

  /** Waits for every worker to exit; those still running after `ms` are killed. */
  async waitForExit(ms: number): Promise<void> {
    const all = Promise.all(this.slots.map((s) => s.exited));
    let timer: NodeJS.Timeout | undefined;
    const late = await Promise.race([all.then(() => false), new Promise<boolean>((r) => (timer = setTimeout(() => r(true), ms)))]);
    clearTimeout(timer);
    if (!late) return;
    for (const s of this.slots) {
      if (!s.worker) continue;
      this.#logger.warn({ worker: s.id, workerPid: s.worker.process.pid }, 'worker did not exit in time; killing it');
      s.worker.process.kill('SIGKILL');
    }
    await all;
  }

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
        switch (m.t) {
          case 'hello':
            if (worker.isConnected()) worker.send(this.#hooks.init(slot));
            return;
          case 'ready':
            slot.ready = true;
            this.#hooks.ready(slot, m.addresses);
            settle();
            return;
          case 'failed':
            settle(this.#hooks.error(m.error, `worker ${slot.id} failed to start`));
            return;
          default:
            this.#hooks.message(slot, m);
        }
      });
      // IPC write errors after the worker died; the exit handler deals with the worker.
      worker.on('error', (err) => this.#logger.debug({ worker: slot.id, err: err.message }, 'worker IPC error'));
      worker.on('exit', (code, signal) => {
        onExit();
        settle(new Error(`worker ${slot.id} exited (${signal ?? `code ${code}`}) while starting`));
        this.#onExit(slot, worker, code, signal);
      });
    });
  }

  #onExit(slot: Slot, worker: Worker, code: number | null, signal: string | null): void {
    if (slot.worker !== worker) return;
    slot.worker = undefined;
    slot.ready = false;
    this.#hooks.exited(slot);
    if (this.#stopped || !this.#started) return;
    const lived = Date.now() - slot.startedAt;
    slot.crashes = lived >= STABLE_AFTER_MS ? 1 : slot.crashes + 1;
    const delay = Math.min(RESTART_BASE_MS * 2 ** (slot.crashes - 1), RESTART_MAX_MS);
    const how = signal ? `signal ${signal}` : `code ${code}`;
    this.#logger.error({ worker: slot.id, workerPid: worker.process.pid, code, signal, restartInMs: delay }, 'worker exited unexpectedly; restarting it');
    this.#hooks.event('error', `worker ${slot.id} (pid ${worker.process.pid}) exited (${how}); restarting in ${delay}ms`);
    slot.restartTimer = setTimeout(() => this.#restart(slot), delay);
  }

  #restart(slot: Slot): void {
    slot.restartTimer = undefined;
    if (this.#stopped) return;
    this.#fork(slot).then(
      () => {
        this.#logger.info({ worker: slot.id, workerPid: slot.worker?.process.pid }, 'worker restarted');
        this.#hooks.event('info', `worker ${slot.id} restarted (pid ${slot.worker?.process.pid})`);
      },
      // Its exit schedules the next attempt.
      (err: Error) => this.#logger.error({ worker: slot.id, err: err.message }, 'worker failed to start'),
    );
  }
}
