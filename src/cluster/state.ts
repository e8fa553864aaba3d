/**
 * @module cluster/state — the shared health picture: built from the primary's pools, applied
 * to a worker's pools.
 *
 * The primary owns health (active checks, DNS discovery, admin changes, and ejections the
 * workers report). It describes every pool as a {@link ClusterState}; a worker makes its own
 * Pool objects match: the backend list through `Pool.setBackends` (which keeps Backend
 * objects, their counters and open connections, by name, and rebuilds the balancers), and
 * the health fields of each backend whose `rev` changed since it last looked.
 */
import type { Backend } from '../proxy/backend.js';
import type { Pool } from '../proxy/pool.js';
import type { BackendConfig } from '../config/types.js';
import type { BackendState, ClusterState } from './ipc.js';
import { backendConfigOf, shareOf } from './worker-config.js';

/** Builds {@link ClusterState}s in the primary, numbering health changes. */
export class StateTracker {
  #seq = 0;
  readonly #last = new WeakMap<Backend, { key: string; rev: number }>();

  /** The current state of `pools`. */
  build(pools: Iterable<Pool>): ClusterState {
    const out: ClusterState = { pools: [] };
    for (const pool of pools) {
      out.pools.push({ name: pool.name, backends: pool.backends.map((b) => this.#backend(b)) });
    }
    return out;
  }

  #backend(b: Backend): BackendState {
    const key = `${b.healthy}|${b.ejectedUntil}|${b.ejections}|${b.upSince}`;
    let last = this.#last.get(b);
    if (!last || last.key !== key) {
      last = { key, rev: ++this.#seq };
      this.#last.set(b, last);
    }
    return { ...b.toConfig(), ...b.sharedHealth(), rev: last.rev };
  }
}

/** The settings of a pool's runtime backends, as a worker compares them. */
function runtimeConfigs(pool: Pool): BackendConfig[] {
  return pool.backends.map((b) => b.toConfig());
}

/** Applies pushed states to a worker's pools. */
export class StateApplier {
  /** The rev last applied to each Backend object. */
  readonly #applied = new WeakMap<Backend, number>();
  readonly #index: number;
  readonly #count: number;

  /** `index` (0-based) and `count` pick this worker's share of per-backend connection caps. */
  constructor(index: number, count: number) {
    this.#index = index;
    this.#count = count;
  }

  /**
   * Makes `pools` match `state`, synchronously (atomic for new connections). Pools the
   * state does not name are left alone; named pools the worker lacks are skipped.
   */
  apply(pools: ReadonlyMap<string, Pool>, state: ClusterState): void {
    for (const ps of state.pools) {
      const pool = pools.get(ps.name);
      if (!pool) continue;
      const list = ps.backends.map((b) => {
        const c = backendConfigOf(b);
        c.maxConnections = shareOf(c.maxConnections, this.#index, this.#count);
        return c;
      });
      if (JSON.stringify(list) !== JSON.stringify(runtimeConfigs(pool))) pool.setBackends(list);
      for (const s of ps.backends) {
        const b = pool.find(s.name);
        if (!b || this.#applied.get(b) === s.rev) continue;
        b.applySharedHealth(s);
        this.#applied.set(b, s.rev);
      }
    }
  }
}
