/**
 * @module cluster/reload — a config reload across the primary and every worker, with rollback.
 *
 * The new config is checked in the primary first — new listen addresses test-bound,
 * certificates loaded — so a bad one changes nothing. Then the primary's pools take it,
 * then every worker (each atomically). If a worker still rejects it, the primary and the
 * workers that took it go back to the old config, so all keep serving the same one. A
 * worker that does not answer is restarted with the new config. Reloads run one at a time.
 */
import type { Config } from '../config/types.js';
import type { Logger } from '../observability/log.js';
import { compilePolicy } from '../proxy/listener.js';
import type { BoundAddress, Proxy } from '../proxy/proxy.js';
import type { IpcError, WorkerMessage } from './ipc.js';
import type { ListenPorts } from './listen-ports.js';
import type { WorkerRequests } from './requests.js';
import type { StateSync } from './state-sync.js';
import type { Slot } from './supervisor.js';
import { headlessView, workerView } from './worker-config.js';

/** How long a worker gets to apply a reload before it is restarted with the new config, ms. */
export const RELOAD_TIMEOUT_MS = 15_000;

/** The parts of the cluster a reload changes or asks. */
export interface ReloadTarget {
  readonly logger: Logger;
  /** The primary's pools, checks and discovery. */
  readonly headless: Proxy;
  readonly ports: ListenPorts;
  readonly requests: WorkerRequests;
  readonly sync: StateSync;
  /** The number of workers (fixed at start). */
  readonly size: number;
  /** The config in force. */
  config: Config;
  /** Bound addresses as the workers report them. */
  addresses: BoundAddress[];
  /** True once a drain or close began. */
  readonly stopping: boolean;
  live(): Slot[];
  error(e: IpcError, context: string): Error;
}

export class ClusterReload {
  readonly #c: ReloadTarget;
  #chain: Promise<unknown> = Promise.resolve();
  /** Reloads applied / rejected by the cluster. */
  applied = 0;
  failed = 0;

  constructor(target: ReloadTarget) {
    this.#c = target;
  }

  /** Applies a new (already validated) config everywhere; see the module comment. */
  run(next: Config): Promise<void> {
    const run = this.#chain.then(() => this.#reload(next));
    this.#chain = run.catch(() => {});
    return run;
  }

  /** Brings a worker that started with a config a reload has replaced since up to date. */
  catchUp(slot: Slot): void {
    const c = this.#c;
    const state = c.sync.current();
    slot.initConfig = c.config;
    c.requests.ask(slot, (id) => ({ t: 'reload', id, config: workerView(c.config, c.ports.ports, state), state }), RELOAD_TIMEOUT_MS).then(
      (m) => {
        if (m.t === 'reloaded') return;
        c.logger.error({ worker: slot.id }, 'a restarted worker rejected the current config; restarting it');
        slot.worker?.process.kill('SIGKILL');
      },
      () => {},
    );
  }

  async #reload(next: Config): Promise<void> {
    const c = this.#c;
    if (c.stopping) {
      c.logger.warn('reload ignored: shutting down');
      return;
    }
    if (next.workers !== c.size) {
      c.logger.warn({ configured: next.workers, running: c.size }, 'the number of workers changes only on restart');
    }
    let ports: Map<string, number>;
    try {
      ports = await c.ports.reserveFor(next.listeners, c.config.listeners);
      for (const lc of next.listeners) compilePolicy(lc);
    } catch (err) {
      await c.ports.release();
      this.failed++;
      throw err;
    }

    const prev = { config: c.config, ports: new Map(c.ports.ports) };
    await c.headless.reload(headlessView(next));
    c.config = next;
    c.ports.use(ports);
    const state = c.sync.current();
    const view = workerView(next, ports, state);
    const slots = c.live();
    const results = await Promise.all(
      slots.map((s) =>
        c.requests.ask(s, (id) => ({ t: 'reload', id, config: view, state }), RELOAD_TIMEOUT_MS).then(
          (m) => ({ s, m, err: undefined }),
          (err: Error) => ({ s, m: undefined, err }),
        ),
      ),
    );
    // A drain that started meanwhile owns the workers now: no rollback, no restarts.
    if (c.stopping) return;
    const rejected = results.filter((r) => r.m?.t === 'reload-failed');
    if (rejected.length > 0) {
      const m = rejected[0].m as Extract<WorkerMessage, { t: 'reload-failed' }>;
      c.logger.error({ worker: rejected[0].s.id, err: m.error.message }, 'a worker rejected the new config; going back to the old one everywhere');
      c.config = prev.config;
      c.ports.use(prev.ports);
      await c.headless.reload(headlessView(prev.config));
      const oldState = c.sync.current();
      const oldView = workerView(prev.config, prev.ports, oldState);
      await Promise.all(
        results
          .filter((r) => r.m?.t === 'reloaded')
          .map((r) => c.requests.ask(r.s, (id) => ({ t: 'reload', id, config: oldView, state: oldState }), RELOAD_TIMEOUT_MS).catch(() => {})),
      );
      await c.ports.release();
      this.failed++;
      throw c.error(m.error, 'a worker rejected the new config');
    }
    for (const r of results) {
      if (r.m?.t === 'reloaded') {
        if (r.s === results[0].s) c.addresses = r.m.addresses;
        continue;
      }
      // Gone or stuck: a fresh worker starts with the new config.
      c.logger.error({ worker: r.s.id, err: r.err?.message }, 'worker did not apply the new config; restarting it');
      r.s.worker?.process.kill('SIGKILL');
    }
    if (results.length === 0) c.addresses = c.ports.expectedAddresses(c.config.listeners);
    c.sync.sent();
    await c.ports.release();
    this.applied++;
    // The one line for the whole cluster (the pools' and the workers' own lines are at debug).
    c.logger.info({ workers: slots.length, listeners: c.addresses.map((a) => a.address) }, 'config reloaded');
  }
}
