/**
 * @module config/quick — a complete Config for the common case: one listener, one pool.
 */
import type { BalancerName, Config } from './types.js';
import { Defaults, defaultPassive, defaultTimeouts } from './types.js';
import { parseHostPort } from '../util/address.js';
import { UsageError } from '../errors.js';

export interface QuickOptions {
  /** Listen address, default `127.0.0.1:0`. */
  listen?: string;
  balance?: BalancerName;
  connectTimeoutMs?: number;
  retries?: number;
  logLevel?: Config['log']['level'];
  accessLog?: string;
}

/** Builds a one-listener config from `HOST:PORT` backend strings (as the CLI does). */
export function configFromBackends(backends: string[], o: QuickOptions = {}): Config {
  const listen = parseHostPort(o.listen ?? '127.0.0.1:0', { allowEmptyHost: true, allowPortZero: true });
  if ('error' in listen) throw new UsageError(`listen: ${listen.error}`);
  const timeouts = defaultTimeouts();
  if (o.connectTimeoutMs !== undefined) timeouts.connectMs = o.connectTimeoutMs;
  return {
    // The loader's defaults (overLimit does nothing while maxConnections is 0).
    listeners: [
      {
        name: 'default', host: listen.host, port: listen.port, pool: 'default', timeouts,
        maxConnections: Defaults.maxConnections, overLimit: 'reject', retries: o.retries, acl: [], aclDefault: Defaults.aclDefault, routes: [],
      },
    ],
    pools: [
      {
        name: 'default',
        balance: o.balance ?? Defaults.balance,
        hashKey: Defaults.hashKey,
        backends: backends.map((s) => {
          const a = parseHostPort(s);
          if ('error' in a) throw new UsageError(`backend: ${a.error}`);
          return {
            name: s, host: a.host, port: a.port, weight: Defaults.weight, backup: Defaults.backup, state: Defaults.backendState, maxConnections: Defaults.maxConnections,
            check: Defaults.backendCheck,
          };
        }),
        passive: defaultPassive(),
        slowStartMs: Defaults.slowStartMs,
        queue: { size: Defaults.queueSize, timeoutMs: Defaults.queueTimeoutMs },
      },
    ],
    workers: Defaults.workers,
    maxConnections: Defaults.maxConnections,
    shutdown: { drainTimeoutMs: Defaults.drainTimeoutMs, closeSpreadMs: Defaults.closeSpreadMs },
    log: { level: o.logLevel ?? Defaults.logLevel, access: o.accessLog ?? Defaults.accessLog },
  };
}
