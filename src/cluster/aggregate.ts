/**
 * @module cluster/aggregate — workers' counters: collected in a worker, summed in the primary.
 *
 * Every counter is a plain number (or a map of numbers), so the cluster total is a sum.
 * Counters of a worker that exited are kept (carried into a base the live workers add to),
 * so totals never go backwards when a worker is restarted — Prometheus counters stay
 * monotonic. Gauges (active connections) and averages count live workers only. What a
 * worker counted after its last report before dying (at most one report interval) is lost.
 */
import type { Proxy } from '../proxy/proxy.js';
import type { HistogramSnapshot, MirrorStatus, PoolQueueStatus, SourceStoreStatus } from '../admin/status.js';
import { listenerCounters, mirrorStatus, queueStatus } from '../admin/proxy-source.js';
import type { BackendCounters, ListenerCounters, WorkerStats } from './ipc.js';

/** A worker's counters now. */
export function collectWorkerStats(proxy: Proxy): WorkerStats {
  proxy.flushLiveBytes(); // counters include connections still open
  return {
    at: Date.now(),
    pid: process.pid,
    activeConnections: proxy.activeConnections(),
    acceptErrors: proxy.stats.acceptErrors,
    fdExhausted: proxy.fdExhausted,
    accessLogDropped: proxy.accessLogDropped,
    heldConnections: proxy.heldConnections,
    reloads: proxy.stats.reloads,
    reloadFailures: proxy.stats.reloadFailures,
    sourceStore: proxy.sourceStoreStatus(),
    listeners: [
      ...[...proxy.listeners.values()].map((l) => listenerCounters(l.config.name, l.address, l.server.listening, l.stats)),
      ...[...proxy.udp.map.values()].map((l): ListenerCounters => ({
        ...listenerCounters(l.name, l.address, l.listening, l.stats),
        protocol: 'udp',
        datagramsUp: l.stats.datagramsUp,
        datagramsDown: l.stats.datagramsDown,
      })),
    ],
    pools: [...proxy.pools.values()].map((p) => ({
      name: p.name,
      backends: p.backends.map((b): BackendCounters => ({
        name: b.name,
        active: b.active,
        total: b.total,
        failures: b.failures,
        bytesIn: b.bytesIn,
        bytesOut: b.bytesOut,
        datagramsIn: b.datagramsIn,
        datagramsOut: b.datagramsOut,
        connectMsAvg: b.connectMsAvg,
      })),
      queue: queueStatus(proxy.backendQueue(p)),
      mirror: mirrorStatus(p),
    })),
  };
}

/** Cluster-wide sums. */
export interface ClusterTotals {
  activeConnections: number;
  acceptErrors: number;
  fdExhausted: number;
  accessLogDropped: number;
  heldConnections: number;
  /** The workers' shared store of source limits; undefined when none uses one. */
  sourceStore: SourceStoreStatus | undefined;
  /** Pool wait queues by pool name (pools with a queue only). */
  queues: Map<string, PoolQueueStatus>;
  /** Pool mirrors by pool name (pools with a mirror only). */
  mirrors: Map<string, MirrorStatus>;
  /** By listener name. */
  listeners: Map<string, ListenerCounters>;
  /** By `pool\0backend`. */
  backends: Map<string, BackendCounters>;
}

/** The key of a backend in {@link ClusterTotals.backends}. */
export function backendKey(pool: string, backend: string): string {
  return `${pool}\0${backend}`;
}

function emptyHistogram(bounds: readonly number[]): HistogramSnapshot {
  return { bounds: [...bounds], counts: new Array(bounds.length + 1).fill(0), sum: 0, count: 0 };
}

function addRecord(into: Record<string, number>, from: Record<string, number>): void {
  for (const [k, v] of Object.entries(from)) into[k] = (into[k] ?? 0) + v;
}

function addHistogram(into: HistogramSnapshot, from: HistogramSnapshot): void {
  // Bounds are compile-time constants, the same in every worker.
  for (let i = 0; i < into.counts.length && i < from.counts.length; i++) into.counts[i] += from.counts[i];
  into.sum += from.sum;
  into.count += from.count;
}

function cloneListener(l: ListenerCounters): ListenerCounters {
  return { ...l, closed: { ...l.closed }, rejected: { ...l.rejected }, connectMs: { ...l.connectMs, bounds: [...l.connectMs.bounds], counts: [...l.connectMs.counts] } };
}

/** Adds `from`'s counters to `into` (gauges too when `gauges`). */
function addListener(into: ListenerCounters, from: ListenerCounters, gauges: boolean): void {
  if (gauges) into.active += from.active;
  into.accepted += from.accepted;
  into.retries += from.retries;
  into.replays += from.replays;
  into.bytesUp += from.bytesUp;
  into.bytesDown += from.bytesDown;
  addRecord(into.closed, from.closed);
  addRecord(into.rejected, from.rejected);
  addHistogram(into.connectMs, from.connectMs);
  if (from.protocol === 'udp') {
    into.protocol = 'udp';
    into.datagramsUp = (into.datagramsUp ?? 0) + (from.datagramsUp ?? 0);
    into.datagramsDown = (into.datagramsDown ?? 0) + (from.datagramsDown ?? 0);
  }
}

function zeroListener(from: ListenerCounters): ListenerCounters {
  return {
    name: from.name,
    address: from.address,
    listening: false,
    active: 0,
    accepted: 0,
    retries: 0,
    replays: 0,
    bytesUp: 0,
    bytesDown: 0,
    closed: {},
    rejected: {},
    connectMs: emptyHistogram(from.connectMs.bounds),
  };
}

/** Adds a worker's queue counters to `into[name]` (the waiting gauge too when `gauges`). */
function addQueue(into: Map<string, PoolQueueStatus>, name: string, q: PoolQueueStatus, gauges: boolean): void {
  let t = into.get(name);
  if (!t) into.set(name, (t = { waiting: 0, queued: 0, overflowed: 0, timedOut: 0 }));
  if (gauges) t.waiting += q.waiting;
  t.queued += q.queued;
  t.overflowed += q.overflowed;
  t.timedOut += q.timedOut;
}

/** Adds a worker's mirror counters to `into[name]` (the active gauge too when `gauges`); settings from the latest. */
function addMirror(into: Map<string, MirrorStatus>, name: string, m: MirrorStatus, gauges: boolean): void {
  let t = into.get(name);
  if (!t) into.set(name, (t = { pool: m.pool, percent: m.percent, connections: 0, active: 0, bytes: 0, dropped: {} }));
  t.pool = m.pool;
  t.percent = m.percent;
  if (gauges) t.active += m.active;
  t.connections += m.connections;
  t.bytes += m.bytes;
  addRecord(t.dropped, m.dropped);
}

/** `into` plus a worker's store counters (the process and away gauges too when `gauges`). */
function addStore(into: SourceStoreStatus | undefined, from: SourceStoreStatus, gauges: boolean): SourceStoreStatus {
  const t = into ?? { processes: 0, away: 0, errors: 0, fallbacks: 0 };
  if (gauges) {
    t.processes += from.processes;
    t.away += from.away;
  }
  t.errors += from.errors;
  t.fallbacks += from.fallbacks;
  return t;
}

/** Adds a worker's backend counters to `into` (the active gauge too when `gauges`). */
function addBackend(into: BackendCounters, from: BackendCounters, gauges: boolean): void {
  if (gauges) into.active += from.active;
  into.total += from.total;
  into.failures += from.failures;
  into.bytesIn += from.bytesIn;
  into.bytesOut += from.bytesOut;
  into.datagramsIn += from.datagramsIn;
  into.datagramsOut += from.datagramsOut;
}

function zeroBackend(name: string): BackendCounters {
  return { name, active: 0, total: 0, failures: 0, bytesIn: 0, bytesOut: 0, datagramsIn: 0, datagramsOut: 0, connectMsAvg: 0 };
}

/** Keeps each worker's latest counters and sums them. */
export class StatsAggregator {
  readonly #live = new Map<number, WorkerStats>();
  /** Counters of workers that exited. */
  #baseAcceptErrors = 0;
  #baseFdExhausted = 0;
  #baseAccessLogDropped = 0;
  /** Store counters of workers that exited (their errors and fall-backs; no gauges). */
  #baseStore: SourceStoreStatus | undefined;
  readonly #baseQueues = new Map<string, PoolQueueStatus>();
  readonly #baseMirrors = new Map<string, MirrorStatus>();
  readonly #baseListeners = new Map<string, ListenerCounters>();
  readonly #baseBackends = new Map<string, BackendCounters>();

  /** Records the latest report of worker `slot`. */
  update(slot: number, stats: WorkerStats): void {
    this.#live.set(slot, stats);
  }

  /** The latest report of worker `slot`. */
  latest(slot: number): WorkerStats | undefined {
    return this.#live.get(slot);
  }

  /** Worker `slot` exited: its counters go into the base, its gauges go away. */
  retire(slot: number): void {
    const s = this.#live.get(slot);
    if (!s) return;
    this.#live.delete(slot);
    this.#baseAcceptErrors += s.acceptErrors;
    this.#baseFdExhausted += s.fdExhausted;
    this.#baseAccessLogDropped += s.accessLogDropped;
    if (s.sourceStore) this.#baseStore = addStore(this.#baseStore, s.sourceStore, false);
    for (const p of s.pools) if (p.queue) addQueue(this.#baseQueues, p.name, p.queue, false);
    for (const p of s.pools) if (p.mirror) addMirror(this.#baseMirrors, p.name, p.mirror, false);
    for (const l of s.listeners) {
      let b = this.#baseListeners.get(l.name);
      if (!b) this.#baseListeners.set(l.name, (b = zeroListener(l)));
      addListener(b, l, false);
    }
    for (const p of s.pools) {
      for (const bc of p.backends) {
        const key = backendKey(p.name, bc.name);
        let b = this.#baseBackends.get(key);
        if (!b) this.#baseBackends.set(key, (b = zeroBackend(bc.name)));
        addBackend(b, bc, false);
      }
    }
  }

  /** Sums over the live workers plus the counters of exited ones. */
  totals(): ClusterTotals {
    const listeners = new Map<string, ListenerCounters>();
    for (const [name, b] of this.#baseListeners) listeners.set(name, cloneListener(b));
    const backends = new Map<string, BackendCounters>();
    for (const [key, b] of this.#baseBackends) backends.set(key, { ...b });
    /** Connect-time weights of the live averages, per backend. */
    const avgWeight = new Map<string, number>();
    let active = 0;
    let acceptErrors = this.#baseAcceptErrors;
    let fdExhausted = this.#baseFdExhausted;
    let accessLogDropped = this.#baseAccessLogDropped;
    let heldConnections = 0;
    let sourceStore = this.#baseStore && { ...this.#baseStore };
    const queues = new Map<string, PoolQueueStatus>();
    for (const [name, q] of this.#baseQueues) queues.set(name, { ...q });
    const mirrors = new Map<string, MirrorStatus>();
    for (const [name, m] of this.#baseMirrors) mirrors.set(name, { ...m, dropped: { ...m.dropped } });
    for (const s of this.#live.values()) {
      active += s.activeConnections;
      acceptErrors += s.acceptErrors;
      fdExhausted += s.fdExhausted;
      accessLogDropped += s.accessLogDropped;
      heldConnections += s.heldConnections;
      if (s.sourceStore) sourceStore = addStore(sourceStore, s.sourceStore, true);
      for (const p of s.pools) if (p.queue) addQueue(queues, p.name, p.queue, true);
      for (const p of s.pools) if (p.mirror) addMirror(mirrors, p.name, p.mirror, true);
      for (const l of s.listeners) {
        let into = listeners.get(l.name);
        if (!into) listeners.set(l.name, (into = zeroListener(l)));
        addListener(into, l, true);
        into.listening ||= l.listening;
        into.address = l.address ?? into.address;
      }
      for (const p of s.pools) {
        for (const bc of p.backends) {
          const key = backendKey(p.name, bc.name);
          let into = backends.get(key);
          if (!into) backends.set(key, (into = zeroBackend(bc.name)));
          addBackend(into, bc, true);
          // The average of the workers' averages, weighted by their connection counts.
          const w = Math.max(bc.total, bc.connectMsAvg > 0 ? 1 : 0);
          const before = avgWeight.get(key) ?? 0;
          if (w > 0) {
            into.connectMsAvg = (into.connectMsAvg * before + bc.connectMsAvg * w) / (before + w);
            avgWeight.set(key, before + w);
          }
        }
      }
    }
    return { activeConnections: active, acceptErrors, fdExhausted, accessLogDropped, heldConnections, sourceStore, queues, mirrors, listeners, backends };
  }
}
