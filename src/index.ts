/**
 * @module l4lb — the library API (docs/library.md). The `l4lb` command is a thin shell over
 * it. Only what that page documents is exported; everything else is internal and may
 * change without notice.
 *
 * @example
 * ```ts
 * import { startProxy, configFromBackends } from 'l4lb';
 * const proxy = await startProxy(configFromBackends(['127.0.0.1:9001', '127.0.0.1:9002']));
 * console.log(proxy.addresses()[0].address);
 * await proxy.close();
 * ```
 */
import { startProxy as startProxyImpl, Proxy as ProxyImpl, type ProxyHandle, type StartOptions } from './proxy/proxy.js';
import { startProxyAdmin as startProxyAdminImpl, type AdminServer } from './admin/server.js';
import { startFaultsApi as startFaultsApiImpl } from './faults/api.js';
import type { AdminConfig, Config, FaultsConfig } from './config/types.js';

export type { ProxyHandle as Proxy, StartOptions, BoundAddress } from './proxy/proxy.js';
export type { AccessRecord } from './proxy/connection.js';
export type * from './config/types.js';
export { Defaults } from './config/types.js';
export { loadConfigFile, parseConfigText, normalizeConfig, type NormalizeOptions } from './config/load.js';
export { configFromBackends, type QuickOptions } from './config/quick.js';
export { diffConfig, type ConfigDiff } from './config/diff.js';
export { L4lbError, ConfigError, ConnectError, ProtocolError, UsageError, ErrorCodes, type ErrorCode, type ErrorSide, type ConfigIssue } from './errors.js';
export type { StatusSnapshot, ListenerStatus, PoolStatus, PoolQueueStatus, HistogramSnapshot, RecentEvent } from './admin/status.js';
export type { BackendSnapshot, BackendState } from './proxy/backend.js';


/** Starts a proxy for `config`; resolves once every listener is bound. */
export function startProxy(config: Config, options: StartOptions = {}): Promise<ProxyHandle> {
  return startProxyImpl(config, options);
}

/** The admin HTTP server {@link startProxyAdmin} returns. */
export interface AdminHandle {
  /** The bound address (the real port when `admin.port` is 0). */
  readonly address: { host: string; port: number };
  /** `http://HOST:PORT`. */
  readonly url: string;
  close(): Promise<void>;
}

/**
 * Starts the admin API, dashboard and `/metrics` (docs/admin.md) for a proxy from
 * {@link startProxy}, configured like the config file's `admin` section.
 */
export function startProxyAdmin(proxy: ProxyHandle, admin: AdminConfig): Promise<AdminHandle> {
  if (!(proxy instanceof ProxyImpl)) throw new TypeError('startProxyAdmin: expected a proxy returned by startProxy()');
  return startProxyAdminImpl(proxy, admin) as Promise<AdminServer>;
}

/**
 * Starts the Toxiproxy-compatible fault API (docs/faults.md) for a proxy from
 * {@link startProxy} whose config has `faults` (so that its listeners carry fault tables),
 * configured like the config file's `faults` section.
 */
export function startFaultsApi(proxy: ProxyHandle, faults: FaultsConfig): Promise<AdminHandle> {
  if (!(proxy instanceof ProxyImpl)) throw new TypeError('startFaultsApi: expected a proxy returned by startProxy()');
  return startFaultsApiImpl(proxy, faults).then((api) => ({
    get address() {
      return api.address;
    },
    get url() {
      return api.url;
    },
    close: () => api.close(),
  }));
}
