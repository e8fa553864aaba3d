/**
 * @module cluster/status-source — {@link StatusSource} for a cluster: what the admin server in
 * the primary reads and does.
 *
 * Health, backend sets and admin state live in the primary's own pools, so the admin view
 * starts from the single-process one ({@link ProxyStatusSource} over the primary's
 * listener-less Proxy) and reads backend counters from the sums over the workers (the
 * primary's Backend objects carry no traffic of their own): before each status, the workers
 * are asked for fresh counters. Listeners exist only in the workers; their status is built
 * from the summed counters.
 *
 * Actions are applied to the primary's pools (validated exactly as in one process), then
 * pushed to every worker; the answer waits until every worker has applied the change.
 */
import { ProxyStatusSource, packageVersion } from '../admin/proxy-source.js';
import type { EventRing } from '../admin/events.js';
import type { ActionResult, AdminAction, ListenerStatus, StatusSnapshot, StatusSource } from '../admin/status.js';
import { CONNECT_MS_BUCKETS } from '../observability/stats.js';
import { backendKey, type ClusterTotals } from './aggregate.js';
import type { BackendTotals } from '../proxy/backend.js';
import type { ClusterPrimary } from './primary.js';

/** Counters of a backend no worker has reported yet. */
const NO_TRAFFIC: BackendTotals = { active: 0, total: 0, failures: 0, bytesIn: 0, bytesOut: 0, datagramsIn: 0, datagramsOut: 0, connectMsAvg: 0 };

/** The admin view of a {@link ClusterPrimary}. */
export class ClusterStatusSource implements StatusSource {
  readonly #primary: ClusterPrimary;
  readonly #inner: ProxyStatusSource;
  /** The sums the snapshot being built reads (set at its start). */
  #totals: ClusterTotals;

  constructor(primary: ClusterPrimary) {
    this.#primary = primary;
    this.#totals = primary.totals();
    this.#inner = new ProxyStatusSource(primary.headless, { counters: (pool, b) => this.#totals.backends.get(backendKey(pool, b.name)) ?? NO_TRAFFIC });
  }

  /** Recent events (backend state changes, reloads, worker restarts…). */
  get events(): EventRing {
    return this.#inner.events;
  }

  async status(): Promise<StatusSnapshot> {
    await this.#primary.refreshStats();
    return this.snapshot();
  }

  /** The snapshot from the counters the workers reported last. */
  snapshot(): StatusSnapshot {
    const p = this.#primary;
    const totals = p.totals();
    this.#totals = totals;
    const s = this.#inner.snapshot();
    const listeners = p.config.listeners.map((lc): ListenerStatus => {
      const c = totals.listeners.get(lc.name);
      return {
        name: lc.name,
        // By name: a worker without the UDP listeners (shared mode) reports fewer addresses.
        address: c?.address ?? p.addresses().find((a) => a.name === lc.name)?.address,
        listening: c?.listening ?? false,
        pool: lc.pool,
        routePools: [...new Set(lc.routes.map((r) => r.pool))],
        active: c?.active ?? 0,
        accepted: c?.accepted ?? 0,
        retries: c?.retries ?? 0,
        replays: c?.replays ?? 0,
        bytesUp: c?.bytesUp ?? 0,
        bytesDown: c?.bytesDown ?? 0,
        closed: c?.closed ?? {},
        rejected: c?.rejected ?? {},
        connectMs: c?.connectMs ?? { bounds: [...CONNECT_MS_BUCKETS], counts: new Array(CONNECT_MS_BUCKETS.length + 1).fill(0), sum: 0, count: 0 },
        ...(lc.protocol === 'udp' && { protocol: 'udp' as const, datagramsUp: c?.datagramsUp ?? 0, datagramsDown: c?.datagramsDown ?? 0 }),
      };
    });
    return {
      ...s,
      process: {
        pid: process.pid,
        version: packageVersion(),
        startedAt: s.process.startedAt,
        uptimeMs: s.process.uptimeMs,
        workers: p.liveWorkers(),
        activeConnections: totals.activeConnections,
        reloads: p.reloads,
        reloadFailures: p.reloadFailures,
        acceptErrors: totals.acceptErrors,
        fdExhausted: totals.fdExhausted,
        accessLogDropped: totals.accessLogDropped,
        heldConnections: totals.heldConnections,
        ...(totals.sourceStore && { sourceLimitStore: totals.sourceStore }),
      },
      listeners,
      // Queues and mirrors live in the workers: their sums replace the primary's (idle) ones.
      pools: s.pools.map((pool) => ({
        ...pool,
        ...(pool.queue && { queue: totals.queues.get(pool.name) ?? pool.queue }),
        ...(pool.mirror && { mirror: totals.mirrors.get(pool.name) ?? pool.mirror }),
      })),
    };
  }

  async act(action: AdminAction): Promise<ActionResult> {
    const result = await this.#inner.act(action);
    await this.#primary.pushState();
    return result;
  }

  /** Releases the hooks on the primary's pools. */
  close(): void {
    this.#inner.close();
  }
}
