/**
 * @module admin/proxy-source — {@link StatusSource} for a single-process {@link Proxy}.
 *
 * Reads the plain counters the data path bumps (never adding work to it) and applies
 * actions through admin/actions.ts. Recent events come from two places: the pools'
 * `onStateChange` hook (chained after the proxy's own logger, so the reason text is
 * kept), and a comparison with the previous look at every `status()` call, which catches
 * what no hook reports: connect failures, ejections running out, reloads, accept errors.
 * The admin server calls `status()` every second, so events are at most that late.
 */
import { readFileSync } from 'node:fs';
import type { Proxy } from '../proxy/proxy.js';
import type { Pool } from '../proxy/pool.js';
import type { Backend, BackendState, BackendTotals } from '../proxy/backend.js';
import type { ListenerRuntime } from '../proxy/listener.js';
import { formatHostPort } from '../util/address.js';
import { applyAction } from './actions.js';
import { EventRing, DEFAULT_EVENT_CAPACITY } from './events.js';
import type {
  ActionResult, AdminAction, ListenerStatus, MirrorStatus, PoolQueueStatus, PoolStatus, StatusSnapshot, StatusSource,
} from './status.js';
import type { BackendQueue } from '../admission/queue.js';
import type { UdpListener } from '../udp/listener.js';
import type { ListenerConfig } from '../config/types.js';
import type { ListenerStats } from '../observability/stats.js';
import type { ListenerCounters } from '../cluster/ipc.js';
import type { ListenerFaults } from '../faults/table.js';

/** Options of {@link ProxyStatusSource}. */
export interface ProxyStatusSourceOptions {
  /** Recent events kept. Default {@link DEFAULT_EVENT_CAPACITY}. */
  eventCapacity?: number;
  /**
   * Where a backend's traffic counters come from; default the Backend itself. The cluster
   * primary's backends carry no traffic: it reads its workers' sums instead.
   */
  counters?: CountersOf;
}

/** The traffic counters of backend `b` of pool `pool`. */
export type CountersOf = (pool: string, b: Backend) => BackendTotals;

const ownCounters: CountersOf = (_pool, b) => b;

type StateHook = NonNullable<Pool['onStateChange']>;

interface Seen {
  state: BackendState;
  failures: number;
}

let cachedVersion: string | undefined;

/** The package version (package.json sits three levels above dist/src/admin/). */
export function packageVersion(): string {
  if (cachedVersion === undefined) {
    try {
      const url = new URL('../../../package.json', import.meta.url);
      cachedVersion = (JSON.parse(readFileSync(url, 'utf8')) as { version: string }).version;
    } catch {
      cachedVersion = 'unknown';
    }
  }
  return cachedVersion;
}

/** The admin view of one running {@link Proxy}. */
export class ProxyStatusSource implements StatusSource {
  readonly proxy: Proxy;
  readonly events: EventRing;
  /** Pools whose onStateChange we chained, with the handler that was there before. */
  readonly #hooked = new Map<Pool, { prev: Pool['onStateChange']; ours: StateHook }>();
  /** Last seen state and failure count per backend object. */
  readonly #seen = new WeakMap<Backend, Seen>();
  readonly #counters: CountersOf;
  #reloads: number;
  #reloadFailures: number;
  #acceptErrors: number;

  constructor(proxy: Proxy, options: ProxyStatusSourceOptions = {}) {
    this.proxy = proxy;
    this.#counters = options.counters ?? ownCounters;
    this.events = new EventRing(options.eventCapacity ?? DEFAULT_EVENT_CAPACITY);
    this.#reloads = proxy.stats.reloads;
    this.#reloadFailures = proxy.stats.reloadFailures;
    this.#acceptErrors = proxy.stats.acceptErrors;
    this.#hookPools();
    for (const pool of proxy.pools.values()) for (const b of pool.backends) this.#remember(pool, b);
  }

  async status(): Promise<StatusSnapshot> {
    return this.snapshot();
  }

  /** The snapshot, synchronously (the single-process case needs no waiting). */
  snapshot(): StatusSnapshot {
    const now = Date.now();
    this.#hookPools();
    this.proxy.flushLiveBytes(); // counters include connections still open
    this.#poll(now);
    const p = this.proxy;
    const store = p.sourceStoreStatus();
    return {
      at: now,
      process: {
        pid: process.pid,
        version: packageVersion(),
        startedAt: p.stats.startedAt,
        uptimeMs: now - p.stats.startedAt,
        workers: 1,
        activeConnections: p.activeConnections(),
        reloads: p.stats.reloads,
        reloadFailures: p.stats.reloadFailures,
        acceptErrors: p.stats.acceptErrors,
        fdExhausted: p.fdExhausted,
        accessLogDropped: p.accessLogDropped,
        heldConnections: p.heldConnections,
        ...(store && { sourceLimitStore: store }),
      },
      listeners: [
        ...[...p.listeners.values()].map((l) => withFaults(listenerStatus(l), l.policy.faults)),
        ...[...p.udp.map.values()].map(udpListenerStatus),
      ],
      pools: [...p.pools.values()].map((pool) => poolStatus(pool, now, p.backendQueue(pool), this.#counters)),
      events: this.events.list(),
    };
  }

  async act(action: AdminAction): Promise<ActionResult> {
    const { pool, backend } = applyAction(this.proxy.pools, action);
    const now = Date.now();
    const name = action.kind === 'add-backend' ? action.backend.name : action.backend;
    this.events.push({ level: 'info', pool: pool.name, backend: name, message: describeAction(action) });
    if (backend) this.#remember(pool, backend, now);
    this.#hookPools();
    const result: ActionResult = { pool: poolStatus(pool, now, undefined, this.#counters) };
    if (backend) result.backend = backend.snapshot(now, this.#counters(pool.name, backend));
    if (action.kind === 'remove-backend') result.removed = action.backend;
    return result;
  }

  /** Restores the pools' original onStateChange handlers. */
  close(): void {
    for (const [pool, h] of this.#hooked) if (pool.onStateChange === h.ours) pool.onStateChange = h.prev;
    this.#hooked.clear();
  }

  /** Chains our hook onto pools we have not seen yet (reloads create new Pool objects). */
  #hookPools(): void {
    for (const pool of [...this.#hooked.keys()]) if (this.proxy.pools.get(pool.name) !== pool) this.#hooked.delete(pool);
    for (const pool of this.proxy.pools.values()) {
      const h = this.#hooked.get(pool);
      if (h && pool.onStateChange === h.ours) continue;
      const prev = pool.onStateChange;
      const ours: StateHook = (b, reason) => {
        prev?.(b, reason);
        this.#onStateChange(pool, b, reason);
      };
      pool.onStateChange = ours;
      this.#hooked.set(pool, { prev, ours });
    }
  }

  #onStateChange(pool: Pool, b: Backend, reason: string): void {
    const state = b.state();
    this.events.push({ level: state === 'up' ? 'info' : 'warn', pool: pool.name, backend: b.name, message: `${state}: ${reason}` });
    const seen = this.#seen.get(b);
    if (seen) seen.state = state;
    else this.#remember(pool, b);
  }

  #remember(pool: Pool, b: Backend, now = Date.now()): void {
    this.#seen.set(b, { state: b.state(now), failures: this.#counters(pool.name, b).failures });
  }

  /** Turns counter and state differences since the last look into events. */
  #poll(now: number): void {
    const s = this.proxy.stats;
    if (s.reloads > this.#reloads) this.events.push({ level: 'info', message: `config reloaded (${s.reloads - this.#reloads}×)` });
    if (s.reloadFailures > this.#reloadFailures) {
      this.events.push({ level: 'error', message: `config reload failed (${s.reloadFailures - this.#reloadFailures}×); the old config keeps serving` });
    }
    if (s.acceptErrors > this.#acceptErrors) {
      this.events.push({ level: 'error', message: `${s.acceptErrors - this.#acceptErrors} error(s) accepting connections` });
    }
    this.#reloads = s.reloads;
    this.#reloadFailures = s.reloadFailures;
    this.#acceptErrors = s.acceptErrors;
    for (const pool of this.proxy.pools.values()) {
      for (const b of pool.backends) {
        const seen = this.#seen.get(b);
        if (!seen) {
          this.#remember(pool, b, now);
          continue;
        }
        const failures = this.#counters(pool.name, b).failures;
        if (failures > seen.failures) {
          const n = failures - seen.failures;
          this.events.push({ level: 'error', pool: pool.name, backend: b.name, message: `${n} connect failure(s) to ${b.address}` });
          seen.failures = failures;
        }
        const state = b.state(now);
        if (state !== seen.state) {
          this.events.push({ level: state === 'up' ? 'info' : 'warn', pool: pool.name, backend: b.name, message: `${seen.state} → ${state}` });
          seen.state = state;
        }
      }
    }
  }
}

function describeAction(a: AdminAction): string {
  switch (a.kind) {
    case 'set-state':
      return `admin API: state set to ${a.state}`;
    case 'set-weight':
      return `admin API: weight set to ${a.weight}`;
    case 'add-backend':
      return `admin API: backend ${a.backend.address} added`;
    case 'remove-backend':
      return 'admin API: backend removed';
  }
}

function mapToRecord(m: ReadonlyMap<string, number>): Record<string, number> {
  return Object.fromEntries(m);
}

function listenerStatus(l: ListenerRuntime): ListenerStatus {
  return countersStatus(l.config, l.address, l.server.listening, l.stats, [...new Set(l.config.routes.map((r) => r.pool))]);
}

/** Adds a listener's injected faults, when it has a fault table. */
function withFaults(s: ListenerStatus, t: ListenerFaults | undefined): ListenerStatus {
  if (t === undefined) return s;
  return {
    ...s,
    faults: {
      active: t.active,
      enabled: t.enabled,
      toxics: t.list().map((x) => ({ name: x.name, type: x.type, stream: x.stream, toxicity: x.toxicity, attributes: { ...x.attributes } })),
      connections: Object.fromEntries(t.affectedCounts()),
    },
  };
}

/** A UDP listener in the shape of a TCP one: sessions as connections, dropped datagrams as rejected. */
function udpListenerStatus(l: UdpListener): ListenerStatus {
  const s = l.stats;
  return { ...countersStatus(l.config, l.address, l.listening, s, []), protocol: 'udp', datagramsUp: s.datagramsUp, datagramsDown: s.datagramsDown };
}

function countersStatus(
  c: ListenerConfig,
  a: { host: string; port: number } | undefined,
  listening: boolean,
  s: ListenerStats,
  routePools: string[],
): ListenerStatus {
  const { name, address, ...counters } = listenerCounters(c.name, a, listening, s);
  return { name, address, pool: c.pool, routePools, ...counters };
}

/** One listener's counters as they are now (a cluster worker sends these to its primary). */
export function listenerCounters(name: string, a: { host: string; port: number } | undefined, listening: boolean, s: ListenerStats): ListenerCounters {
  const h = s.connectMs;
  return {
    name,
    address: a ? formatHostPort(a.host, a.port) : undefined,
    listening,
    active: s.active,
    accepted: s.accepted,
    retries: s.retries,
    replays: s.replays,
    bytesUp: s.bytesUp,
    bytesDown: s.bytesDown,
    closed: mapToRecord(s.closed),
    rejected: mapToRecord(s.rejected),
    connectMs: { bounds: [...h.bounds], counts: [...h.counts], sum: h.sum, count: h.count },
  };
}

/** The counters of a pool's wait queue. */
export function queueStatus(q: BackendQueue | undefined): PoolQueueStatus | undefined {
  return q && q.limits.size > 0 ? { waiting: q.length, queued: q.total, overflowed: q.overflowed, timedOut: q.timedOut } : undefined;
}

/** The counters of a pool's mirror; undefined when it has none configured. */
export function mirrorStatus(pool: Pool): MirrorStatus | undefined {
  const mc = pool.config.mirror;
  if (mc === undefined) return undefined;
  const s = pool.mirrorStats;
  return { pool: mc.pool, percent: mc.percent, connections: s.started, active: s.active, bytes: s.bytes, dropped: Object.fromEntries(s.dropped) };
}

/** A pool's status at `now` (with its wait queue's counters when given one). */
export function poolStatus(pool: Pool, now = Date.now(), queue?: BackendQueue, counters: CountersOf = ownCounters): PoolStatus {
  const backends = pool.backends.map((b) => b.snapshot(now, counters(pool.name, b)));
  return {
    name: pool.name,
    balance: pool.config.balance,
    healthCheck: pool.config.healthCheck?.type,
    discovery: pool.config.dns ? 'dns' : 'static',
    backendsUp: backends.filter((b) => b.state === 'up').length,
    backends,
    queue: queueStatus(queue),
    ...(pool.config.mirror !== undefined && { mirror: mirrorStatus(pool) }),
  };
}

