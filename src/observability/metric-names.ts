/**
 * @module observability/metric-names — every Prometheus metric l4lb exports, in one place.
 *
 * Names are part of the user interface (dashboards and alerts are built on them): never
 * rename one. Each is documented in docs/metrics.md, and a test checks that every name
 * here appears there. Process and Node.js runtime metrics (`process_*`, `nodejs_*`) come
 * from prom-client's default collectors and keep their standard names.
 */

/** Names of l4lb's own metrics. */
export const MetricNames = {
  /** Build and version information (always 1). Labels: version. */
  info: 'l4lb_info',
  /** Connections accepted by a listener (admitted or not). Labels: listener. */
  connectionsAccepted: 'l4lb_connections_accepted_total',
  /** Connections open right now. Labels: listener. */
  connectionsActive: 'l4lb_connections_active',
  /** Admitted connections that ended, by termination reason. Labels: listener, reason. */
  connectionsClosed: 'l4lb_connections_closed_total',
  /** Connections refused before reaching a backend, by reason. Labels: listener, reason. */
  connectionsRejected: 'l4lb_connections_rejected_total',
  /** Connect attempts beyond the first one of a connection. Labels: listener. */
  connectRetries: 'l4lb_connect_retries_total',
  /** Bytes relayed by closed connections. Labels: listener, direction (up = client→backend). */
  listenerBytes: 'l4lb_listener_bytes_total',
  /** Time to connect to a backend, successful attempts only. Labels: listener. */
  connectDuration: 'l4lb_connect_duration_seconds',
  /** Connections to a backend open right now (including attempts in flight). Labels: pool, backend. */
  backendConnectionsActive: 'l4lb_backend_connections_active',
  /** Connections relayed to a backend. Labels: pool, backend. */
  backendConnections: 'l4lb_backend_connections_total',
  /** Failed connect attempts to a backend. Labels: pool, backend. */
  backendConnectFailures: 'l4lb_backend_connect_failures_total',
  /** Bytes relayed by closed connections to a backend. Labels: pool, backend, direction. */
  backendBytes: 'l4lb_backend_bytes_total',
  /** Average connect time of a backend (exponentially weighted). Labels: pool, backend. */
  backendConnectAverage: 'l4lb_backend_connect_average_seconds',
  /** 1 when the backend takes new connections (state up), else 0. Labels: pool, backend. */
  backendUp: 'l4lb_backend_up',
  /** 1 for the backend's current state, 0 for the others. Labels: pool, backend, state. */
  backendState: 'l4lb_backend_state',
  /** Result of the last active health check: 1 ok, 0 failed. Labels: pool, backend. */
  backendHealthy: 'l4lb_backend_healthy',
  /** Configured weight of a backend. Labels: pool, backend. */
  backendWeight: 'l4lb_backend_weight',
  /** Backends of a pool that can take connections now. Labels: pool. */
  poolBackendsUp: 'l4lb_pool_backends_up',
  /** Backends of a pool. Labels: pool. */
  poolBackends: 'l4lb_pool_backends',
  /** Connections waiting in a pool's queue for a backend slot now. Labels: pool. */
  poolQueueWaiting: 'l4lb_pool_queue_waiting',
  /** Connections that waited in a pool's queue. Labels: pool. */
  poolQueued: 'l4lb_pool_queued_total',
  /** Connections closed because a pool's queue was full (queue_full). Labels: pool. */
  poolQueueOverflows: 'l4lb_pool_queue_overflows_total',
  /** Connections closed after waiting a pool's queue timeout (queue_timeout). Labels: pool. */
  poolQueueTimeouts: 'l4lb_pool_queue_timeouts_total',
  /** Mirror connections started, one per mirrored connection. Labels: pool (the mirrored one). */
  mirrorConnections: 'l4lb_mirror_connections_total',
  /** Mirror connections open now. Labels: pool. */
  mirrorConnectionsActive: 'l4lb_mirror_connections_active',
  /** Client bytes written to mirror backends. Labels: pool. */
  mirrorBytes: 'l4lb_mirror_bytes_total',
  /** Mirror connections given up while the primary went on, by reason. Labels: pool, reason. */
  mirrorDropped: 'l4lb_mirror_dropped_total',
  /** Times kept client bytes were sent again to another backend (retryOnEmptyResponse). Labels: listener. */
  replays: 'l4lb_replays_total',
  /** Config reloads, by result. Labels: result (success, failure). */
  configReloads: 'l4lb_config_reloads_total',
  /** Errors accepting connections (EMFILE…). No labels. */
  acceptErrors: 'l4lb_accept_errors_total',
  /** Accepts and backend dials that failed for lack of file descriptors. No labels. */
  fdExhausted: 'l4lb_fd_exhausted_total',
  /** Access-log lines dropped because the log target was slower than the traffic or failing. No labels. */
  accessLogDropped: 'l4lb_access_log_dropped_total',
  /** Connections held over an accept-time limit (overLimit: queue) now. No labels. */
  connectionsHeld: 'l4lb_connections_held',
  /** UDP sessions open right now. Labels: listener. */
  udpSessionsActive: 'l4lb_udp_sessions_active',
  /** UDP sessions opened. Labels: listener. */
  udpSessions: 'l4lb_udp_sessions_total',
  /** UDP sessions that ended, by reason. Labels: listener, reason. */
  udpSessionsEnded: 'l4lb_udp_sessions_ended_total',
  /** UDP datagrams forwarded. Labels: listener, direction (up = client→backend). */
  udpDatagrams: 'l4lb_udp_datagrams_total',
  /** UDP datagrams dropped, by reason. Labels: listener, reason. */
  udpDatagramsDropped: 'l4lb_udp_datagrams_dropped_total',
  /** UDP datagrams forwarded to and from a backend. Labels: pool, backend, direction. */
  backendUdpDatagrams: 'l4lb_backend_udp_datagrams_total',
  /** Failed or timed-out commands to the shared store of source limits, and connection errors. No labels. */
  sourceLimitStoreErrors: 'l4lb_source_limit_store_errors_total',
  /** Times a process fell back from the shared store (it went away). No labels. */
  sourceLimitStoreFallbacks: 'l4lb_source_limit_store_fallbacks_total',
  /** Processes whose shared store is away now (their limits fall back); 0 = all reach it. No labels. */
  sourceLimitStoreAway: 'l4lb_source_limit_store_away',
  /** Connections an injected fault (toxic) affected. Labels: listener, toxic (its name). */
  faultConnections: 'l4lb_fault_connections_total',
  /** 1 while a listener has an active fault (a toxic, or down), else 0. Labels: listener. */
  faultsActive: 'l4lb_faults_active',
  /** Admin API actions, by action and HTTP status. Labels: action, status. */
  adminActions: 'l4lb_admin_actions_total',
} as const;

/** One of l4lb's metric names. */
export type MetricName = (typeof MetricNames)[keyof typeof MetricNames];
