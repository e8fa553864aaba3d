/**
 * @module l4lb — the library API. The `l4lb` command is a thin shell over it.
 *
 * @example
 * ```ts
 * import { startProxy, configFromBackends } from 'l4lb';
 * const proxy = await startProxy(configFromBackends(['127.0.0.1:9001', '127.0.0.1:9002']));
 * console.log(proxy.addresses()[0].address);
 * await proxy.close();
 * ```
 */
export { startProxy, Proxy, type StartOptions, type BoundAddress } from './proxy/proxy.js';
export { Pool } from './proxy/pool.js';
export { Backend, type BackendState, type BackendSnapshot } from './proxy/backend.js';
export type * from './config/types.js';
export { Defaults } from './config/types.js';
export { loadConfigFile, parseConfigText } from './config/load.js';
export { L4lbError, ConfigError, ConnectError, ProtocolError, UsageError, ErrorCodes, type ErrorCode } from './errors.js';
export { createBalancer, balancerNames } from './balancers/index.js';
export type { Balancer, Candidate, PickContext } from './balancers/types.js';
export { configFromBackends } from './config/quick.js';
export { startAdminServer, startProxyAdmin, AdminServer, type AdminServerOptions } from './admin/server.js';
export { ProxyStatusSource } from './admin/proxy-source.js';
export type { StatusSource, StatusSnapshot, AdminAction, ActionResult } from './admin/status.js';
export { MetricsRegistry } from './observability/metrics.js';
export { MetricNames } from './observability/metric-names.js';
export { DnsDiscovery, type DnsDiscoveryStats } from './discovery/dns.js';
export { startCluster, startClusterAdmin, ClusterPrimary, type ClusterOptions } from './cluster/primary.js';
