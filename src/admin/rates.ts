/**
 * @module admin/rates — per-second rates from the difference of two snapshots' counters.
 *
 * Computed on the server so every dashboard sees the same numbers and a page opened late
 * still gets a history to draw. Byte counters grow when a connection closes, so the
 * throughput is that of connections that finished during the interval.
 */
import type { StatusSnapshot } from './status.js';

/** Rates of one listener or backend, per second. */
export interface RateEntry {
  /** New connections per second (listener: accepted; backend: relayed). */
  connPerSec: number;
  /** Bytes per second, both directions together. */
  bytesPerSec: number;
  /** Open connections at the sample time. */
  active: number;
}

/** One sample of rates. */
export interface Rates {
  /** ms since the epoch. */
  at: number;
  /** Length of the interval the rates are measured over, ms (0 on the first sample). */
  intervalMs: number;
  total: RateEntry;
  listeners: Record<string, RateEntry>;
  /** Keyed by `pool/backend`. */
  backends: Record<string, RateEntry>;
}

/** Samples kept by default (one per second: a minute). */
export const DEFAULT_RATE_HISTORY = 60;

interface Counts {
  conns: number;
  bytes: number;
}

/** Turns successive snapshots into {@link Rates} and keeps a short history. */
export class RateTracker {
  readonly historySize: number;
  readonly #history: Rates[] = [];
  #prevAt = 0;
  #prev = new Map<string, Counts>();

  constructor(historySize = DEFAULT_RATE_HISTORY) {
    this.historySize = Math.max(1, historySize);
  }

  /** Adds a sample from `s`; returns its rates. */
  update(s: StatusSnapshot): Rates {
    const intervalMs = this.#prevAt > 0 ? Math.max(0, s.at - this.#prevAt) : 0;
    const next = new Map<string, Counts>();
    const rate = (key: string, c: Counts, active: number): RateEntry => {
      next.set(key, c);
      const p = this.#prev.get(key);
      if (!p || intervalMs === 0) return { connPerSec: 0, bytesPerSec: 0, active };
      // A counter that went down was reset (a backend removed and re-added): no rate.
      const per = (a: number, b: number) => (a >= b ? ((a - b) * 1000) / intervalMs : 0);
      return { connPerSec: round(per(c.conns, p.conns)), bytesPerSec: round(per(c.bytes, p.bytes)), active };
    };
    const listeners: Record<string, RateEntry> = {};
    let tc = 0;
    let tb = 0;
    for (const l of s.listeners) {
      tc += l.accepted;
      tb += l.bytesUp + l.bytesDown;
      listeners[l.name] = rate(`l\u0000${l.name}`, { conns: l.accepted, bytes: l.bytesUp + l.bytesDown }, l.active);
    }
    const backends: Record<string, RateEntry> = {};
    for (const p of s.pools) {
      for (const b of p.backends) {
        const key = `${p.name}/${b.name}`;
        backends[key] = rate(`b\u0000${key}`, { conns: b.total, bytes: b.bytesIn + b.bytesOut }, b.active);
      }
    }
    // Retired listeners drop out of the sum; the total's own history then restarts.
    const total = rate('total', { conns: tc, bytes: tb }, s.process.activeConnections);
    this.#prev = next;
    this.#prevAt = s.at;
    const r: Rates = { at: s.at, intervalMs, total, listeners, backends };
    this.#history.push(r);
    if (this.#history.length > this.historySize) this.#history.shift();
    return r;
  }

  /** Samples kept, oldest first. */
  history(): Rates[] {
    return [...this.#history];
  }

  /** The latest sample, if any. */
  latest(): Rates | undefined {
    return this.#history[this.#history.length - 1];
  }
}

function round(n: number): number {
  return Math.round(n * 100) / 100;
}
