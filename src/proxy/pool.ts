/**
 * @module proxy/pool — a named set of backends, their balancers, and passive health.
 *
 * The pool owns the Backend objects. On reload, backends keep their identity (and so
 * their counters and health) by name; removed ones stay referenced by the connections
 * still using them until those close, and simply stop being picked.
 */
import type { PoolConfig, BackendConfig } from '../config/types.js';
import type { Balancer, PickContext } from '../balancers/types.js';
import { createBalancer } from '../balancers/index.js';
import { Backend } from './backend.js';
import { MirrorStats } from '../observability/stats.js';
import type { Mirror } from './mirror.js';

export class Pool {
  readonly name: string;
  #config: PoolConfig;
  #backends: Backend[] = [];
  #primary!: Balancer<Backend>;
  #backup!: Balancer<Backend>;
  #hasBackup = false;
  /** Where this pool's connections are mirrored; undefined without a mirror or at percent 0 (set by proxy.ts). */
  mirror: Mirror | undefined = undefined;
  /** The mirror's counters, kept over reloads that change or remove the mirror. */
  readonly mirrorStats = new MirrorStats();
  /** Called when a backend's availability changes (for logs and metrics). */
  onStateChange: ((backend: Backend, reason: string) => void) | undefined;
  /** Called with backends new to the pool after a change (reload, API, discovery). */
  onBackendsAdded: ((added: Backend[]) => void) | undefined;

  constructor(config: PoolConfig) {
    this.name = config.name;
    this.#config = config;
    this.setBackends(config.backends);
  }

  /** The pool's config in force (its `backends` are those of the file; see {@link backends}). */
  get config(): PoolConfig {
    return this.#config;
  }

  /** The backends in force, in order (the config's, or discovery's and the API's). */
  get backends(): readonly Backend[] {
    return this.#backends;
  }

  /**
   * Applies a new config for this pool (same name); the backend set becomes `backends`
   * (default: the config's; a discovered pool keeps what discovery found), matched by name.
   */
  update(config: PoolConfig, backends: BackendConfig[] = config.backends): void {
    this.#config = config;
    this.setBackends(backends);
  }

  /** Replaces the backend set, keeping existing Backend objects whose name matches. */
  setBackends(list: BackendConfig[]): void {
    const byName = new Map(this.#backends.map((b) => [b.name, b]));
    const now = Date.now();
    const added: Backend[] = [];
    this.#backends = list.map((cfg) => {
      const existing = byName.get(cfg.name);
      if (existing && existing.host === cfg.host && existing.port === cfg.port) {
        existing.configure(cfg, this.#config.slowStartMs);
        return existing;
      }
      const b = new Backend(cfg, now);
      b.configure(cfg, this.#config.slowStartMs);
      added.push(b);
      return b;
    });
    this.rebuild();
    if (added.length > 0) this.onBackendsAdded?.(added);
  }

  /** Rebuilds the balancers (after the backend list or a weight changed). */
  rebuild(): void {
    const opts = { hashPort: this.#config.hashKey === 'source-ip-port' };
    const primary = this.#backends.filter((b) => !b.backup);
    const backup = this.#backends.filter((b) => b.backup);
    this.#primary = createBalancer(this.#config.balance, primary, opts);
    this.#backup = createBalancer(this.#config.balance, backup, opts);
    this.#hasBackup = backup.length > 0;
  }

  /**
   * Picks a backend for a new connection, skipping those that are not available, full,
   * or in `tried`. Backups are used only when no primary is available at all.
   * `full` is set to true when a backend was skipped only because it was at maxconn.
   */
  pick(ctx: PickContext, tried: readonly Backend[], state?: { full: boolean }): Backend | undefined {
    const now = Date.now();
    let anyPrimaryAvailable = false;
    const accept = (b: Backend): boolean => {
      if (!b.isAvailable(now)) return false;
      if (!b.backup) anyPrimaryAvailable = true;
      if (b.isFull()) {
        if (state) state.full = true;
        return false;
      }
      return !tried.includes(b);
    };
    const b = this.#primary.pick(ctx, accept);
    if (b || !this.#hasBackup || anyPrimaryAvailable) return b;
    return this.#backup.pick(ctx, accept);
  }

  find(name: string): Backend | undefined {
    return this.#backends.find((b) => b.name === name);
  }

  /** Passive health: the backend applies the pool's policy; an ejection is reported. */
  recordConnectResult(backend: Backend, ok: boolean, connectMs: number): void {
    const ejected = backend.recordConnect(ok, connectMs, this.#config.passive);
    if (ejected) this.onStateChange?.(backend, ejected);
  }
}
