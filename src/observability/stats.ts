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

/** Process-wide counters not tied to one listener. */
export class ProcessStats {
  reloads = 0;
  reloadFailures = 0;
  acceptErrors = 0;
  readonly startedAt = Date.now();
}
