/**
 * @module cluster/worker-config — the config a worker runs, derived from the user's config.
 *
 * - Health checks and DNS discovery run once, in the primary: the worker's pools have
 *   neither, so a worker's Proxy starts no checker and no discovery. Their backend lists
 *   and health come from the primary ({@link ClusterState}); the config a worker gets
 *   already lists the primary's current backends, so a reload switches the set in the same
 *   tick as everything else.
 * - Listeners on port 0 get the port the primary resolved, so every worker binds the same.
 * - Connection caps are shared out: each worker enforces its share of the global,
 *   per-listener and per-backend `maxConnections` and of the backend queue size, so the sum
 *   over the workers never exceeds the configured value (as long as the value is at least the
 *   number of workers: every share is at least 1). Per-source limits stay per worker (see
 *   docs/cluster.md).
 * - UDP listeners: with SO_REUSEPORT every worker binds its own socket and the kernel keeps
 *   each client address and port on one of them, so a session lives in one worker. Without it
 *   (`shared` mode, Node 20), node:cluster would hand one socket to every worker and each
 *   datagram to whichever reads first, splitting one client's datagrams over several
 *   sessions (and backends); there the first worker alone serves the UDP listeners, with their
 *   whole session limit ({@link shareLimits}).
 */
import type { BackendConfig, Config, ListenerConfig, PoolConfig } from '../config/types.js';
import type { ClusterState, BackendState } from './ipc.js';

/**
 * Worker `index` (0-based)'s share of `limit` over `count` workers: the shares add up to
 * `limit`, and none is below 1 (0 would mean "unlimited"). A limit ≤ 0 (off) stays as it is.
 */
export function shareOf(limit: number, index: number, count: number): number {
  if (limit <= 0 || count <= 1) return limit;
  const base = Math.floor(limit / count) + (index % count < limit % count ? 1 : 0);
  return Math.max(1, base);
}

/**
 * The config to send to workers: `config` with resolved listener ports, no health check,
 * no DNS, and each pool's backends as `state` has them (the primary's runtime list).
 */
export function workerView(config: Config, ports: ReadonlyMap<string, number>, state: ClusterState): Config {
  const runtime = new Map(state.pools.map((p) => [p.name, p.backends]));
  return {
    ...config,
    listeners: config.listeners.map((lc): ListenerConfig => ({ ...lc, port: ports.get(lc.name) ?? lc.port })),
    pools: config.pools.map((pc): PoolConfig => {
      const { healthCheck: _h, dns: _d, ...rest } = pc;
      const backends = runtime.get(pc.name);
      return { ...rest, backends: backends ? backends.map(backendConfigOf) : pc.backends };
    }),
  };
}

/** The settings part of a backend state. */
export function backendConfigOf(b: BackendConfig | BackendState): BackendConfig {
  return {
    name: b.name,
    host: b.host,
    port: b.port,
    weight: b.weight,
    backup: b.backup,
    state: b.state,
    maxConnections: b.maxConnections,
    check: b.check,
  };
}

/**
 * Worker `index`'s config: its share of the connection caps, and, when `reusePort` is false,
 * the UDP listeners in the first worker only (with the whole listener limit there).
 */
export function shareLimits(config: Config, index: number, count: number, reusePort = true): Config {
  const oneWorker = !reusePort;
  const listeners = oneWorker && index > 0 ? config.listeners.filter((lc) => lc.protocol !== 'udp') : config.listeners;
  return {
    ...config,
    maxConnections: shareOf(config.maxConnections, index, count),
    listeners: listeners.map((lc) => ({
      ...lc,
      maxConnections: oneWorker && lc.protocol === 'udp' ? lc.maxConnections : shareOf(lc.maxConnections, index, count),
    })),
    pools: config.pools.map((pc) => ({
      ...pc,
      queue: { ...pc.queue, size: shareOf(pc.queue.size, index, count) },
      backends: pc.backends.map((b) => ({ ...b, maxConnections: shareOf(b.maxConnections, index, count) })),
    })),
  };
}

/**
 * The same config without listeners (and so without an access log): what the primary runs
 * its pools, checks and discovery on.
 */
export function headlessView(config: Config): Config {
  return { ...config, listeners: [], log: { ...config.log, access: 'off' } };
}
