/**
 * @module observability/stats — plain counters the hot path bumps.
 *
 * The data path only increments numbers on plain objects; the Prometheus registry
 * (observability/metrics.ts) reads them at scrape time. That keeps metrics off the hot path
 * and makes aggregation over worker processes a matter of adding snapshots.
 */

/** Upper bounds (ms) of the connect-time histogram buckets. */
export const CONNECT_MS_BUCKETS = [1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000] as const;

/** A fixed-bucket histogram: counts[i] counts observations ≤ bounds[i]; the last slot is +Inf. */
export class Histogram {
  readonly bounds: readonly number[];
  readonly counts: number[];
  sum = 0;
  count = 0;

  constructor(bounds: readonly number[]) {
    this.bounds = bounds;
    this.counts = new Array(bounds.length + 1).fill(0);
  }

  observe(v: number): void {
    let i = 0;
    while (i < this.bounds.length && v > this.bounds[i]) i++;
    this.counts[i]++;
    this.sum += v;
    this.count++;
  }
}

/** Counters of one listener. */
export class ListenerStats {
  accepted = 0;
  active = 0;
  /** Closed connections by termination reason. */
  readonly closed = new Map<string, number>();
  /** Connections refused before reaching a backend, by reason (acl, limit, bad header…). */
  readonly rejected = new Map<string, number>();
  retries = 0;
  /** Times kept client bytes were sent again to another backend (retryOnEmptyResponse). */
  replays = 0;
  bytesUp = 0;
  bytesDown = 0;
  readonly connectMs = new Histogram(CONNECT_MS_BUCKETS);

  countClosed(reason: string): void {
    this.closed.set(reason, (this.closed.get(reason) ?? 0) + 1);
  }

  countRejected(reason: string): void {
    this.rejected.set(reason, (this.rejected.get(reason) ?? 0) + 1);
  }
}

/** Why a mirror connection was given up before it carried everything (docs/mirroring.md). */
export type MirrorDropReason = 'no_backend' | 'connect_failed' | 'buffer_full' | 'error' | 'timeout' | 'shutdown';

/** Counters of one pool's mirror (kept on the pool, so a reload that changes the mirror keeps them). */
export class MirrorStats {
  /** Connections whose client bytes were copied to a mirror backend (one mirror connection each). */
  started = 0;
  /** Mirror connections open now. */
  active = 0;
  /** Client bytes written to mirror backends. */
  bytes = 0;
  /** Mirror connections given up, by reason. */
  readonly dropped = new Map<MirrorDropReason, number>();

  countDropped(reason: MirrorDropReason): void {
    this.dropped.set(reason, (this.dropped.get(reason) ?? 0) + 1);
  }
}

/** Process-wide counters not tied to one listener. */
export class ProcessStats {
  reloads = 0;
  reloadFailures = 0;
  acceptErrors = 0;
  readonly startedAt = Date.now();
}
