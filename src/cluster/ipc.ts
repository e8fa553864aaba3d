/**
 * @module cluster/ipc — the typed messages between the cluster primary and its workers.
 *
 * Messages travel over the Node IPC channel `cluster.fork` opens (JSON serialization), so
 * every field is plain JSON: no Buffers, Maps or class instances. The config a worker gets
 * has no health check (which holds a Buffer) and no DNS settings: both run in the primary
 * only (see cluster/worker-config.ts).
 *
 * Requests that expect an answer carry an `id`; the answer repeats it.
 */
import type { BackendConfig, Config } from '../config/types.js';
import type { BoundAddress } from '../proxy/proxy.js';
import type { BackendTotals } from '../proxy/backend.js';
import type { HistogramSnapshot, MirrorStatus, PoolQueueStatus, SourceStoreStatus } from '../admin/status.js';

/** A backend as the primary sees it: its settings plus the health the primary decided. */
export interface BackendState extends BackendConfig {
  /** Result of the primary's active checks. */
  healthy: boolean;
  /** Passive ejection end, ms since the epoch (0 = none). */
  ejectedUntil: number;
  /** Ejections in a row (drives the growing ejection time). */
  ejections: number;
  /** When the backend last came up (drives slow start). */
  upSince: number;
  /**
   * Changes whenever the primary changes any health field of this backend. A worker
   * applies the health fields only when `rev` differs from the one it applied last, so a
   * push about another backend never overwrites an ejection the worker made meanwhile.
   */
  rev: number;
}

/** One pool's backend set and states. */
export interface PoolState {
  name: string;
  backends: BackendState[];
}

/** Every pool's backend set and states: the whole shared health picture. */
export interface ClusterState {
  pools: PoolState[];
}

/** Counters of one listener in one worker (plain numbers, so summing is addition). */
export interface ListenerCounters {
  name: string;
  /** Bound `HOST:PORT`. */
  address: string | undefined;
  listening: boolean;
  active: number;
  accepted: number;
  retries: number;
  replays: number;
  bytesUp: number;
  bytesDown: number;
  closed: Record<string, number>;
  rejected: Record<string, number>;
  connectMs: HistogramSnapshot;
  /** UDP listeners (sessions count as connections, dropped datagrams as rejected). */
  protocol?: 'udp';
  datagramsUp?: number;
  datagramsDown?: number;
}

/** Counters of one backend in one worker. */
export interface BackendCounters extends BackendTotals {
  name: string;
}

/** A worker's counters at one instant. */
export interface WorkerStats {
  /** ms since the epoch. */
  at: number;
  pid: number;
  activeConnections: number;
  acceptErrors: number;
  fdExhausted: number;
  accessLogDropped: number;
  heldConnections: number;
  reloads: number;
  reloadFailures: number;
  /** The worker's view of its shared store of source limits; absent without one. */
  sourceStore?: SourceStoreStatus;
  listeners: ListenerCounters[];
  pools: { name: string; backends: BackendCounters[]; queue: PoolQueueStatus | undefined; mirror?: MirrorStatus }[];
}

/** A failure in plain form (error objects do not survive JSON). */
export interface IpcError {
  code: string;
  message: string;
}

/** Primary → worker. */
export type PrimaryMessage =
  | {
      t: 'init';
      /** 1-based worker slot; with `count`, picks this worker's share of the limits. */
      worker: number;
      count: number;
      /** Bind each listener with SO_REUSEPORT in the worker (else share through cluster). */
      reusePort: boolean;
      config: Config;
      state: ClusterState;
    }
  | { t: 'reload'; id: number; config: Config; state: ClusterState }
  /** `id` 0: a push nobody waits for (no `state-applied` answer). */
  | { t: 'state'; id: number; state: ClusterState }
  | { t: 'stats?'; id: number }
  | { t: 'drain'; timeoutMs: number; spreadMs: number }
  | { t: 'close' }
  | { t: 'reopen-logs' };

/** Worker → primary. */
export type WorkerMessage =
  /**
   * The worker listens for messages now. A cluster worker's ESM entry registers its
   * handler only after the primary sees it `online`, and messages sent before are lost,
   * so the primary waits for this before sending `init`.
   */
  | { t: 'hello' }
  | { t: 'ready'; addresses: BoundAddress[] }
  | { t: 'failed'; error: IpcError }
  | { t: 'reloaded'; id: number; addresses: BoundAddress[] }
  | { t: 'reload-failed'; id: number; error: IpcError }
  | { t: 'state-applied'; id: number }
  | { t: 'stats'; id?: number; stats: WorkerStats }
  /**
   * The worker closed its listening sockets (draining). Sent on the IPC channel after
   * node:cluster's own 'close' of a shared handle, so the primary has let go of that
   * handle by the time it reads this.
   */
  | { t: 'stopped-accepting' }
  /** The worker ejected a backend after connect failures (passive health). */
  | { t: 'ejected'; pool: string; backend: string; until: number; ejections: number; reason: string };

const PRIMARY_TYPES = new Set(['init', 'reload', 'state', 'stats?', 'drain', 'close', 'reopen-logs']);
const WORKER_TYPES = new Set(['hello', 'ready', 'failed', 'reloaded', 'reload-failed', 'state-applied', 'stats', 'ejected', 'stopped-accepting']);

/** True for a message the primary sends (Node's own cluster messages are ignored). */
export function isPrimaryMessage(m: unknown): m is PrimaryMessage {
  return typeof m === 'object' && m !== null && PRIMARY_TYPES.has((m as { t?: unknown }).t as string);
}

/** True for a message a worker sends. */
export function isWorkerMessage(m: unknown): m is WorkerMessage {
  return typeof m === 'object' && m !== null && WORKER_TYPES.has((m as { t?: unknown }).t as string);
}

/** An error in plain form for IPC. */
export function toIpcError(err: unknown): IpcError {
  const e = err as { code?: unknown; message?: unknown };
  return {
    code: typeof e?.code === 'string' ? e.code : 'L4LB_ERR_INTERNAL',
    message: typeof e?.message === 'string' ? e.message : String(err),
  };
}
