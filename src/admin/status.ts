/**
 * @module admin/status — what the admin server reads and does, as plain data, behind one
 * small interface ({@link StatusSource}).
 *
 * The admin server, the metrics registry and the dashboard only ever see a
 * {@link StatusSnapshot} and send {@link AdminAction}s. The single-process proxy implements
 * the interface directly (admin/proxy-source.ts); a multi-process supervisor implements it
 * by asking its workers and adding their snapshots up (every counter here is a plain
 * number or a map of numbers, so aggregation is addition).
 */
import type { AdminState, BackendConfig, BalancerName } from '../config/types.js';
import type { BackendSnapshot } from '../proxy/backend.js';

/** A fixed-bucket histogram: counts[i] counts observations ≤ bounds[i]; the last slot is +Inf. */
export interface HistogramSnapshot {
  bounds: number[];
  counts: number[];
  sum: number;
  count: number;
}

/** One listener: where it listens and its counters. */
export interface ListenerStatus {
  name: string;
  /** Bound `HOST:PORT` (IPv6 in brackets); undefined before binding. */
  address: string | undefined;
  /** True while the listening socket accepts connections. */
  listening: boolean;
  /** Default pool. */
  pool: string | undefined;
  /** Pools reachable through routes (SNI/ALPN). */
  routePools: string[];
  active: number;
  accepted: number;
  retries: number;
  /** Times kept client bytes were sent again to another backend (`retryOnEmptyResponse`). */
  replays: number;
  /** Bytes client → backend, counted when a connection closes. */
  bytesUp: number;
  /** Bytes backend → client, counted when a connection closes. */
  bytesDown: number;
  /** Closed connections by termination reason. */
  closed: Record<string, number>;
  /** Connections refused before reaching a backend, by reason. */
  rejected: Record<string, number>;
  /** Connect time of successful attempts, in milliseconds. */
  connectMs: HistogramSnapshot;
  /**
   * `udp` for a UDP listener, whose counters count sessions (active, accepted = sessions opened,
   * closed = sessions ended by reason) and datagrams dropped (rejected, by reason).
   */
  protocol?: 'udp';
  /** UDP: datagrams forwarded client → backend. */
  datagramsUp?: number;
  /** UDP: datagrams forwarded backend → client. */
  datagramsDown?: number;
  /** Injected faults (docs/faults.md); absent when no fault can reach the listener. */
  faults?: ListenerFaultsStatus;
}

/** A listener's injected faults, as the admin API, the dashboard and /metrics show them. */
export interface ListenerFaultsStatus {
  /** A toxic is set, or the listener is down. */
  active: boolean;
  /** False: down (the fault API's `enabled: false`), refusing connections. */
  enabled: boolean;
  /** The toxics, in chain order, in Toxiproxy's JSON shape. */
  toxics: Array<{ name: string; type: string; stream: string; toxicity: number; attributes: Record<string, number> }>;
  /** Connections each toxic affected since start, by toxic name. */
  connections: Record<string, number>;
}

/** One backend: state, health details, weight, counters, connect latency. */
export type BackendStatus = BackendSnapshot;

/** One pool and its backends. */
/** A pool's wait queue (connections waiting for a backend slot). */
export interface PoolQueueStatus {
  /** Waiting now. */
  waiting: number;
  /** Connections that ever waited. */
  queued: number;
  /** Closed because the queue was full (`queue_full`). */
  overflowed: number;
  /** Closed after waiting the queue timeout (`queue_timeout`). */
  timedOut: number;
}

/** A pool's mirror (docs/mirroring.md): its settings and counters. */
export interface MirrorStatus {
  /** The pool the copies go to. */
  pool: string;
  /** Share of connections mirrored, 0-100. */
  percent: number;
  /** Mirror connections started (one per mirrored connection). */
  connections: number;
  /** Mirror connections open now. */
  active: number;
  /** Client bytes written to mirror backends. */
  bytes: number;
  /** Mirror connections given up, by reason (no_backend, connect_failed, buffer_full, error, timeout, shutdown). */
  dropped: Record<string, number>;
}

export interface PoolStatus {
  name: string;
  balance: BalancerName;
  /** Active health check type, when one is configured. */
  healthCheck: 'tcp' | 'send-expect' | 'udp' | undefined;
  /** Where the backend list comes from: the config (and the API), or DNS. */
  discovery: 'static' | 'dns';
  /** Backends in state `up`. */
  backendsUp: number;
  backends: BackendStatus[];
  /** The wait queue for when every backend is at maxConnections; undefined without one. */
  queue: PoolQueueStatus | undefined;
  /** Where this pool's connections are mirrored; absent without a mirror. */
  mirror?: MirrorStatus;
}

/** Process-wide numbers. */
export interface ProcessStatus {
  pid: number;
  version: string;
  /** ms since the epoch. */
  startedAt: number;
  uptimeMs: number;
  workers: number;
  activeConnections: number;
  reloads: number;
  reloadFailures: number;
  acceptErrors: number;
  /** Accepts and backend dials that failed for lack of file descriptors. */
  fdExhausted: number;
  /** Access-log lines dropped (a log target slower than the traffic, or failing). */
  accessLogDropped: number;
  /** Connections held over an accept-time limit (`overLimit: queue`) right now. */
  heldConnections: number;
  /** The shared store of per-source limits; absent when no listener uses one. */
  sourceLimitStore?: SourceStoreStatus;
}

/** The shared store of per-source limits (`sourceLimits.shared`), as the processes see it. */
export interface SourceStoreStatus {
  /** Processes that use a store: this one, or the live workers. */
  processes: number;
  /** Of them, those that cannot reach it now (its limits fall back, `onStoreFailure`). */
  away: number;
  /** Failed or timed-out store commands and connection errors, since start. */
  errors: number;
  /** Times a process fell back because the store went away. */
  fallbacks: number;
}

/** A recent notable event (backend state change, connect failures, reload…). */
export interface RecentEvent {
  /** Increases by one per event, so clients can tell new events from seen ones. */
  id: number;
  /** ms since the epoch. */
  at: number;
  level: 'info' | 'warn' | 'error';
  pool?: string;
  backend?: string;
  message: string;
}

/** Everything the admin API shows, at one instant. */
export interface StatusSnapshot {
  /** ms since the epoch. */
  at: number;
  process: ProcessStatus;
  listeners: ListenerStatus[];
  pools: PoolStatus[];
  /** Most recent last, bounded. */
  events: RecentEvent[];
}

/** A backend to add through the API, resolved (defaults filled in). */
export interface NewBackend extends BackendConfig {
  /** The address as the user wrote it (kept verbatim when persisting). */
  address: string;
}

/** Something the admin API can change. */
export type AdminAction =
  | { kind: 'set-state'; pool: string; backend: string; state: AdminState }
  | { kind: 'set-weight'; pool: string; backend: string; weight: number }
  | { kind: 'add-backend'; pool: string; backend: NewBackend }
  | { kind: 'remove-backend'; pool: string; backend: string };

/** The new state after an action. */
export interface ActionResult {
  /** The pool after the change. */
  pool: PoolStatus;
  /** The backend acted on (absent after a removal). */
  backend?: BackendStatus;
  /** The name of the removed backend. */
  removed?: string;
}

/**
 * The one interface the admin server needs from the running proxy.
 * Implementations throw {@link AdminError} (404 unknown pool/backend, 409 conflict).
 */
export interface StatusSource {
  /** A consistent snapshot of listeners, pools, backends and recent events. */
  status(): Promise<StatusSnapshot>;
  /** Validates and applies one change atomically; resolves with the new state. */
  act(action: AdminAction): Promise<ActionResult>;
}

/** Whether the proxy can serve, and if not, why. */
export interface Readiness {
  ready: boolean;
  reasons: string[];
}

/**
 * Ready = every listener is bound and accepting, and every pool has at least one
 * backend up. Derived from a snapshot so it means the same for any {@link StatusSource}.
 */
export function readiness(s: StatusSnapshot): Readiness {
  const reasons: string[] = [];
  if (s.listeners.length === 0) reasons.push('no listener');
  for (const l of s.listeners) {
    if (!l.listening) reasons.push(`listener "${l.name}" is not accepting connections`);
  }
  for (const p of s.pools) {
    if (p.backendsUp > 0) continue;
    const states = p.backends.map((b) => `${b.name} ${b.state}`).join(', ');
    reasons.push(`pool "${p.name}" has no backend up${states ? ` (${states})` : ' (no backends)'}`);
  }
  return { ready: reasons.length === 0, reasons };
}
