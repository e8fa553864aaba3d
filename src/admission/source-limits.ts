/**
 * @module admission/source-limits — per-source connection limits (concurrency and new connections
 * per second), and a rate-limited logging helper for the reject paths.
 *
 * Sources are keyed by address with IPv4 taken whole (/32) and IPv6 grouped by /64 (configurable):
 * one host usually owns a whole /64, so limiting single IPv6 addresses would be no limit at all.
 * IPv4-mapped IPv6 addresses count as IPv4. The rate is a token bucket per source: `burst` tokens,
 * refilled at `ratePerSecond`; a new source starts with a full bucket.
 *
 * Memory stays bounded without a timer: an entry that has no open connection and a full bucket
 * carries no information (a new entry would look the same), so it may be dropped. An entry whose
 * last connection closes is dropped at once when it is already full (always, when there is no
 * rate limit); the others are found by an incremental sweep that looks at
 * {@link SWEEP_STEPS_PER_ADMIT} entries (in insertion order, wrapping around) on every
 * `tryAdmit`. Each admit adds at most one entry and examines two, so the table holds at most about
 * twice the sources that were connected or seen within the last `burst / ratePerSecond` seconds.
 * `sweep()` does a full pass for callers that want to trim on a timer. Every operation is O(1).
 */
import { isMappedIPv4, parseIPv4, parseIPv6 } from './acl.js';

/** Options of a {@link SourceLimiter}; 0 disables a limit. */
export interface SourceLimitOptions {
  /** Concurrent connections per source; 0 = unlimited. */
  maxConnections: number;
  /** New connections per second per source; 0 = unlimited. May be fractional (0.5 = one per 2s). */
  ratePerSecond: number;
  /** Token bucket size; default max(1, ratePerSecond). */
  burst?: number;
  /** IPv6 sources are grouped by this prefix length; default {@link DEFAULT_IPV6_PREFIX}. */
  ipv6Prefix?: number;
  /** IPv4 sources are grouped by this prefix length; default {@link DEFAULT_IPV4_PREFIX}. */
  ipv4Prefix?: number;
  /** Monotonic clock in milliseconds; default `performance.now`. */
  clock?: () => number;
}

/** Default grouping of IPv6 sources (a typical end-site allocation). */
export const DEFAULT_IPV6_PREFIX = 64;
/** Default grouping of IPv4 sources (each address on its own). */
export const DEFAULT_IPV4_PREFIX = 32;
/** Entries examined by the incremental sweep on every admit. */
export const SWEEP_STEPS_PER_ADMIT = 2;

/** Why a source was refused (`source_store`: the shared store is away with `onStoreFailure: closed`). */
export type SourceRejectReason = 'source_concurrency' | 'source_rate' | 'source_store';

/** The outcome of {@link SourceLimits.tryAdmit}. */
export type SourceAdmission = { ok: true; release: () => void } | { ok: false; reason: SourceRejectReason };

/**
 * Per-source limits as the listener uses them: {@link SourceLimiter} counts in this process,
 * `SharedSourceLimiter` (shared-source-limits.ts) in a shared store, with a SourceLimiter as its
 * fall-back.
 */
export interface SourceLimits {
  /** The key a source address is counted under. */
  keyOf(address: string): string;
  /** Admits a new connection from `address` or says why not; synchronous. */
  tryAdmit(address: string): SourceAdmission;
  /**
   * Called at accept, before {@link tryAdmit}, when the address is known then: a promise when
   * the decision needs an answer from a shared store first (the connection waits for it, at
   * most once), undefined to decide now.
   */
  prepare?(address: string | undefined): Promise<void> | undefined;
  /** Stops timers and leaves the store (the limiter was replaced by a reload or the proxy closed). */
  close?(): void;
}

interface Entry {
  active: number;
  tokens: number;
  /** Clock time `tokens` was last brought up to date. */
  at: number;
}

const NOOP_RELEASE = (): void => {};

/** Per-source limiter counting in this process; one per listener. */
export class SourceLimiter implements SourceLimits {
  readonly #maxConnections: number;
  readonly #rate: number;
  readonly #burst: number;
  readonly #v6Prefix: number;
  readonly #v4Prefix: number;
  readonly #clock: () => number;
  readonly #entries = new Map<string, Entry>();
  #cursor: IterableIterator<[string, Entry]> | undefined;

  /** Validates the options; throws RangeError on a negative or out-of-range value. */
  constructor(opts: SourceLimitOptions) {
    const nonNegative = (v: number, what: string) => {
      if (!Number.isFinite(v) || v < 0) throw new RangeError(`source limits: ${what} must be a number >= 0, got ${v}`);
      return v;
    };
    this.#maxConnections = nonNegative(opts.maxConnections, 'maxConnections');
    this.#rate = nonNegative(opts.ratePerSecond, 'ratePerSecond');
    this.#burst = nonNegative(opts.burst ?? Math.max(1, this.#rate), 'burst');
    if (this.#rate > 0 && this.#burst < 1) throw new RangeError(`source limits: burst must be >= 1, got ${this.#burst}`);
    this.#v6Prefix = opts.ipv6Prefix ?? DEFAULT_IPV6_PREFIX;
    this.#v4Prefix = opts.ipv4Prefix ?? DEFAULT_IPV4_PREFIX;
    if (!Number.isInteger(this.#v6Prefix) || this.#v6Prefix < 1 || this.#v6Prefix > 128) {
      throw new RangeError(`source limits: ipv6Prefix must be an integer in 1-128, got ${this.#v6Prefix}`);
    }
    if (!Number.isInteger(this.#v4Prefix) || this.#v4Prefix < 1 || this.#v4Prefix > 32) {
      throw new RangeError(`source limits: ipv4Prefix must be an integer in 1-32, got ${this.#v4Prefix}`);
    }
    this.#clock = opts.clock ?? (() => performance.now());
  }

  /** Number of sources currently tracked (for tests and the admin API). */
  get size(): number {
    return this.#entries.size;
  }

  /** The key a source address is counted under (`10.0.0.1`, `2001:db8::/64`). */
  keyOf(address: string): string {
    const v4 = parseIPv4(address);
    if (v4 >= 0) return v4Key(v4, this.#v4Prefix);
    const v6 = parseIPv6(address, true);
    if (v6 === undefined) return address; // not an IP (should not happen for TCP peers): count it as is
    if (isMappedIPv4(v6)) return v4Key(((v6[12] << 24) | (v6[13] << 16) | (v6[14] << 8) | v6[15]) >>> 0, this.#v4Prefix);
    return v6Key(v6, this.#v6Prefix);
  }

  /**
   * Admits a new connection from `address` or says why not. On success the caller must call
   * `release()` when the connection ends (calling it again is harmless).
   */
  tryAdmit(address: string, now: number = this.#clock()): SourceAdmission {
    this.#sweepSome(now, SWEEP_STEPS_PER_ADMIT);
    if (this.#maxConnections === 0 && this.#rate === 0) return { ok: true, release: NOOP_RELEASE };
    const key = this.keyOf(address);
    let e = this.#entries.get(key);
    if (e === undefined) {
      e = { active: 0, tokens: this.#burst, at: now };
    } else {
      this.#refill(e, now);
    }
    if (this.#maxConnections > 0 && e.active >= this.#maxConnections) return { ok: false, reason: 'source_concurrency' };
    if (this.#rate > 0) {
      if (e.tokens < 1) return { ok: false, reason: 'source_rate' };
      e.tokens -= 1;
    }
    e.active++;
    if (!this.#entries.has(key)) this.#entries.set(key, e);
    return { ok: true, release: this.#releaseOf(key, e) };
  }

  #releaseOf(key: string, entry: Entry): () => void {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      entry.active--;
      // Tokens as of the last admit: full then means idle now; otherwise the sweep finds it.
      if (entry.active === 0 && this.#idle(entry) && this.#entries.get(key) === entry) this.#entries.delete(key);
    };
  }

  /**
   * Counts a connection that was admitted elsewhere (by a shared store) without checking the
   * limits, so that these limits, when they take over, start from what really happened. Returns
   * the release to call when it ends.
   */
  record(address: string, now: number = this.#clock()): () => void {
    this.#sweepSome(now, SWEEP_STEPS_PER_ADMIT);
    if (this.#maxConnections === 0 && this.#rate === 0) return NOOP_RELEASE;
    const key = this.keyOf(address);
    let e = this.#entries.get(key);
    if (e === undefined) {
      e = { active: 0, tokens: this.#burst, at: now };
      this.#entries.set(key, e);
    } else {
      this.#refill(e, now);
    }
    if (this.#rate > 0) e.tokens = Math.max(0, e.tokens - 1);
    e.active++;
    return this.#releaseOf(key, e);
  }

  /** Drops every idle entry (no connections, full bucket); returns how many were dropped. */
  sweep(now: number = this.#clock()): number {
    let dropped = 0;
    for (const [key, e] of this.#entries) {
      if (e.active > 0) continue;
      this.#refill(e, now);
      if (this.#idle(e)) {
        this.#entries.delete(key);
        dropped++;
      }
    }
    return dropped;
  }

  #sweepSome(now: number, steps: number): void {
    if (this.#entries.size === 0) return;
    for (let i = 0; i < steps; i++) {
      this.#cursor ??= this.#entries.entries();
      const next = this.#cursor.next();
      if (next.done) {
        this.#cursor = undefined;
        continue;
      }
      const [key, e] = next.value;
      if (e.active > 0) continue;
      this.#refill(e, now);
      if (this.#idle(e)) this.#entries.delete(key);
    }
  }

  #refill(e: Entry, now: number): void {
    if (this.#rate === 0) return;
    const dt = now - e.at;
    // A clock that goes backwards (an injected one) must not drain or overfill the bucket.
    if (dt > 0) e.tokens = Math.min(this.#burst, e.tokens + (dt * this.#rate) / 1000);
    e.at = now;
  }

  #idle(e: Entry): boolean {
    return e.active === 0 && (this.#rate === 0 || e.tokens >= this.#burst);
  }
}

function v4Key(n: number, prefix: number): string {
  if (prefix === 32) return `${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
  const m = (n & ((0xffffffff << (32 - prefix)) >>> 0)) >>> 0;
  return `${m >>> 24}.${(m >>> 16) & 255}.${(m >>> 8) & 255}.${m & 255}/${prefix}`;
}

function v6Key(b: Uint8Array, prefix: number): string {
  // Hex of the prefix bytes with the partial byte masked; cheap and unique per /prefix.
  const full = prefix >>> 3;
  const rest = prefix & 7;
  let s = '';
  for (let i = 0; i < full; i++) s += (b[i] < 16 ? '0' : '') + b[i].toString(16);
  if (rest > 0) {
    const v = b[full] & ((0xff00 >> rest) & 0xff);
    s += (v < 16 ? '0' : '') + v.toString(16);
  }
  return `${s}/${prefix}`;
}

/** Options of a {@link RateLimitedLog}. */
export interface RateLimitedLogOptions {
  /** Lines allowed per reason per interval; default {@link DEFAULT_LOG_LINES_PER_INTERVAL}. */
  perInterval?: number;
  /** Interval length in ms; default {@link DEFAULT_LOG_INTERVAL_MS}. */
  intervalMs?: number;
  /** Reasons tracked at once; beyond it the stalest is forgotten. Default {@link DEFAULT_LOG_MAX_REASONS}. */
  maxReasons?: number;
  /** Monotonic clock in milliseconds; default `performance.now`. */
  clock?: () => number;
}

/** Default lines per reason per interval for reject logs. */
export const DEFAULT_LOG_LINES_PER_INTERVAL = 10;
/** Default rate-limited-log interval (1s). */
export const DEFAULT_LOG_INTERVAL_MS = 1_000;
/** Default cap on distinct reasons tracked by a {@link RateLimitedLog}. */
export const DEFAULT_LOG_MAX_REASONS = 1_024;

interface LogWindow {
  start: number;
  lines: number;
  suppressed: number;
}

/**
 * Lets at most N log lines per reason through per interval, counting the ones held back, so a
 * flood of rejected connections cannot flood the log. Usage:
 * `const r = limiter.take('acl_deny'); if (r) log.warn({ reason, suppressed: r.suppressed }, ...)`.
 */
export class RateLimitedLog {
  readonly #perInterval: number;
  readonly #intervalMs: number;
  readonly #maxReasons: number;
  readonly #clock: () => number;
  readonly #windows = new Map<string, LogWindow>();

  constructor(opts: RateLimitedLogOptions = {}) {
    this.#perInterval = opts.perInterval ?? DEFAULT_LOG_LINES_PER_INTERVAL;
    this.#intervalMs = opts.intervalMs ?? DEFAULT_LOG_INTERVAL_MS;
    this.#maxReasons = opts.maxReasons ?? DEFAULT_LOG_MAX_REASONS;
    this.#clock = opts.clock ?? (() => performance.now());
  }

  /**
   * Whether a line for `reason` may be logged now. When it may, returns how many lines for this
   * reason were suppressed since the last one let through (to be logged with it); otherwise
   * counts this one as suppressed and returns `undefined`.
   */
  take(reason: string, now: number = this.#clock()): { suppressed: number } | undefined {
    let w = this.#windows.get(reason);
    if (w === undefined) {
      if (this.#windows.size >= this.#maxReasons) {
        const oldest = this.#windows.keys().next();
        if (!oldest.done) this.#windows.delete(oldest.value);
      }
      w = { start: now, lines: 0, suppressed: 0 };
      this.#windows.set(reason, w);
    } else if (now - w.start >= this.#intervalMs || now < w.start) {
      w.start = now;
      w.lines = 0;
    }
    if (w.lines >= this.#perInterval) {
      w.suppressed++;
      return undefined;
    }
    w.lines++;
    const suppressed = w.suppressed;
    w.suppressed = 0;
    return { suppressed };
  }

  /**
   * Returns and resets the suppressed counts not yet reported, for a periodic summary line, and
   * forgets reasons with nothing pending whose interval has passed.
   */
  drainSuppressed(now: number = this.#clock()): { reason: string; suppressed: number }[] {
    const out: { reason: string; suppressed: number }[] = [];
    for (const [reason, w] of this.#windows) {
      if (w.suppressed > 0) {
        out.push({ reason, suppressed: w.suppressed });
        w.suppressed = 0;
      } else if (now - w.start >= this.#intervalMs) {
        this.#windows.delete(reason);
      }
    }
    return out;
  }
}
