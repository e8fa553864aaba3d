/**
 * @module admin/actions — apply an {@link AdminAction} to a running single-process proxy.
 *
 * Everything here is synchronous, so a change is atomic for new connections: the event
 * loop never sees a half-applied action. Only public Pool/Backend fields are used:
 * admin state and weight are set on the Backend (a weight change rebuilds the pool's
 * balancers, which hash tables like Maglev need); adding or removing a backend gives the
 * pool a new list built from its *runtime* backends, so states and weights changed
 * earlier through the API survive (Pool.setBackends re-applies whatever the list says).
 */
import type { BackendConfig } from '../config/types.js';
import type { Backend } from '../proxy/backend.js';
import type { Pool } from '../proxy/pool.js';
import { AdminError } from './errors.js';
import type { AdminAction } from './status.js';

/** What an action touched, for the answer. */
export interface Applied {
  pool: Pool;
  /** The backend acted on; undefined after a removal. */
  backend: Backend | undefined;
}

/** Finds a pool by name or throws 404. */
export function findPool(pools: ReadonlyMap<string, Pool>, name: string): Pool {
  const pool = pools.get(name);
  if (!pool) throw new AdminError(404, 'unknown_pool', `no pool named "${name}"`);
  return pool;
}

/** Finds a backend of a pool by name or throws 404. */
export function findBackend(pool: Pool, name: string): Backend {
  const b = pool.find(name);
  if (!b) throw new AdminError(404, 'unknown_backend', `no backend named "${name}" in pool "${pool.name}"`);
  return b;
}


/** Validates `action` against the pools and applies it; throws {@link AdminError}. */
export function applyAction(pools: ReadonlyMap<string, Pool>, action: AdminAction): Applied {
  const pool = findPool(pools, action.pool);
  switch (action.kind) {
    case 'set-state': {
      const b = findBackend(pool, action.backend);
      b.admin = action.state;
      return { pool, backend: b };
    }
    case 'set-weight': {
      const b = findBackend(pool, action.backend);
      b.configuredWeight = action.weight;
      pool.rebuild();
      return { pool, backend: b };
    }
    case 'add-backend': {
      if (pool.config.dns) {
        throw new AdminError(409, 'discovered_pool', `pool "${pool.name}" gets its backends from DNS; they cannot be added by hand`);
      }
      const nb = action.backend;
      if (pool.find(nb.name)) {
        throw new AdminError(409, 'duplicate_backend', `pool "${pool.name}" already has a backend named "${nb.name}"`);
      }
      const cfg: BackendConfig = {
        name: nb.name, host: nb.host, port: nb.port, weight: nb.weight, backup: nb.backup, state: nb.state, maxConnections: nb.maxConnections, check: nb.check,
      };
      pool.setBackends([...pool.backends.map((x) => x.toConfig()), cfg]);
      return { pool, backend: findBackend(pool, nb.name) };
    }
    case 'remove-backend': {
      if (pool.config.dns) {
        throw new AdminError(409, 'discovered_pool', `pool "${pool.name}" gets its backends from DNS; they cannot be removed by hand`);
      }
      const b = findBackend(pool, action.backend);
      if (pool.backends.length === 1) {
        // An empty pool refuses every connection: make that a deliberate config change.
        throw new AdminError(409, 'last_backend', `"${b.name}" is the last backend of pool "${pool.name}"; disable it instead`);
      }
      // Connections still on it keep running; it just stops being picked.
      pool.setBackends(pool.backends.filter((x) => x !== b).map((x) => x.toConfig()));
      return { pool, backend: undefined };
    }
  }
}
