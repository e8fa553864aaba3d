/**
 * @module admission/shared-source-limits — per-source limits counted in a shared store (Redis,
 * admission/source-store.ts) across every worker of every instance that uses the same store and
 * prefix, kept off the hot path with leases.
 *
 * - **Rate**: one token bucket per listener and source in the store. A process takes tokens in
 *   small batches (`leaseSize`, {@link autoLeaseSize} by default) and admits from its batch
 *   without asking again; tokens unused for {@link LEASE_HOLD_MS} go back to the bucket.
 * - **Concurrency**: slots per holder (process) in the store; a process takes slots in batches
 *   too and keeps at most `leaseSize` spare ones. Slots are leases: they stop counting when the
 *   process stops renewing its holder key (`leaseTtl`).
 * - **Waiting**: a connection whose source has no token or slot at hand waits for one answer of
 *   the store (at most `timeout`): {@link SharedSourceLimiter.prepare}, called at accept. Other
 *   connections of the same source arriving meanwhile wait for the same answer while it has room
 *   for them. When the store granted less than asked, the bucket is empty (or the source at its
 *   maximum): further connections of that source are refused without asking for 1/rate
 *   seconds (one token's refill), {@link SLOT_RETRY_MS} for slots — so a source being refused
 *   costs no round trip per connection either.
 * - **Away** (down, or slower than `timeout`): `onStoreFailure: open` decides with the local
 *   {@link SourceLimiter}, which counts every connection all along (so it takes over from what
 *   really happened); `closed` refuses limited connections (`source_store`). When the store is
 *   back, the live connections are registered under a new holder id (source-store.ts).
 *
 * Accuracy, computed (docs/deployment.md, "Running several instances"): tokens only ever leave
 * the bucket atomically, so over any window of W seconds the sources' admissions across all
 * processes are at most `burst + ratePerSecond × W` plus what processes held unused when the
 * window began: at most `leaseSize` per process. Concurrency never goes over `maxConnections`
 * while the store answers; spare slots held elsewhere can refuse a connection early.
 */
import { SourceLimiter, type SourceAdmission, type SourceLimitOptions, type SourceLimits } from './source-limits.js';
import type { SourceStore, StoreMember } from './source-store.js';

/** Tokens unused and spare slots are given back after a source was idle this long. */
export const LEASE_HOLD_MS = 1_000;
/** How often leases are looked at (give-backs, trimming, dropping idle sources). */
export const SWEEP_INTERVAL_MS = 250;
/** After the store said a source is at maxConnections, its connections are refused without asking for this long. */
export const SLOT_RETRY_MS = 100;
/** The automatic lease size is a tenth of the burst (or of maxConnections without a rate)... */
export const AUTO_LEASE_FRACTION = 10;
/** ...but at most this many. */
export const AUTO_LEASE_MAX = 10;

/** Default `leaseSize`: burst / 10 (maxConnections / 10 without a rate), rounded up, 1-10. */
export function autoLeaseSize(ratePerSecond: number, burst: number, maxConnections: number): number {
  const base = ratePerSecond > 0 ? burst : maxConnections;
  return Math.min(AUTO_LEASE_MAX, Math.max(1, Math.ceil(base / AUTO_LEASE_FRACTION)));
}

/** Options of a {@link SharedSourceLimiter}. */
export interface SharedSourceLimitOptions extends SourceLimitOptions {
  /** The listener: limits are counted per listener name and source. */
  listener: string;
  store: SourceStore;
  /** What to do while the store is away. */
  onStoreFailure: 'open' | 'closed';
  /** Tokens (and spare slots) taken at once; default {@link autoLeaseSize}. */
  leaseSize?: number;
}

/** One question to the store, shared by the connections waiting for it. */
interface Ask {
  wantT: number;
  wantS: number;
  claimT: number;
  claimS: number;
  done: Promise<void>;
}

/** What this process holds of one source in the store. */
interface Lease {
  bucketKey: string;
  slotKey: string;
  /** Tokens taken from the store and not used yet. */
  tokens: number;
  /** Slots this holder has in the store. */
  slots: number;
  /** Live connections of this source here (whichever way they were admitted). */
  active: number;
  /** The bucket was found empty: refuse without asking until then. */
  dryUntil: number;
  /** The source was found at its maximum: refuse without asking until then. */
  fullUntil: number;
  usedAt: number;
  /** Tokens and slots to give back at the next flush (already taken off `tokens` and `slots`). */
  giveT: number;
  giveS: number;
  ask: Ask | undefined;
  /** Store calls under way for this lease (it is not dropped meanwhile). */
  inFlight: number;
}

/** Per-source limits counted in a {@link SourceStore}; a {@link SourceLimiter} is the fall-back. */
export class SharedSourceLimiter implements SourceLimits, StoreMember {
  readonly #local: SourceLimiter;
  readonly #store: SourceStore;
  readonly #listener: string;
  readonly #max: number;
  readonly #rate: number;
  readonly #burst: number;
  readonly #lease: number;
  readonly #refuseWhenAway: boolean;
  readonly #clock: () => number;
  readonly #leases = new Map<string, Lease>();
  readonly #timer: NodeJS.Timeout;
  /** Leases with something to give back at the next flush. */
  readonly #giving = new Set<Lease>();
  #closing = false;

  /** Validates the options as {@link SourceLimiter} does; joins `store`. */
  constructor(opts: SharedSourceLimitOptions) {
    this.#local = new SourceLimiter(opts);
    this.#store = opts.store;
    this.#listener = opts.listener;
    this.#max = opts.maxConnections;
    this.#rate = opts.ratePerSecond;
    this.#burst = opts.burst ?? Math.max(1, this.#rate);
    this.#lease = opts.leaseSize ?? autoLeaseSize(this.#rate, this.#burst, this.#max);
    if (!Number.isInteger(this.#lease) || this.#lease < 1) throw new RangeError(`source limits: leaseSize must be an integer >= 1, got ${this.#lease}`);
    this.#refuseWhenAway = opts.onStoreFailure === 'closed';
    this.#clock = opts.clock ?? (() => performance.now());
    this.#store.join(this);
    this.#timer = setInterval(() => this.#sweep(), SWEEP_INTERVAL_MS);
    this.#timer.unref();
  }

  /** Tokens (and spare slots) taken from the store at once. */
  get leaseSize(): number {
    return this.#lease;
  }

  /** Sources with a lease or a live connection here (for tests). */
  get size(): number {
    return this.#leases.size;
  }

  keyOf(address: string): string {
    return this.#local.keyOf(address);
  }

  prepare(address: string | undefined): Promise<void> | undefined {
    if (address === undefined || this.#store.state !== 'up' || this.#closing) return undefined;
    const now = this.#clock();
    const e = this.#leaseOf(this.keyOf(address), now);
    const needT = this.#rate > 0 && e.tokens < 1;
    const needS = this.#max > 0 && e.active >= e.slots;
    if (!needT && !needS) return undefined;
    // Known empty or full: tryAdmit refuses without a round trip.
    if ((needT && now < e.dryUntil) || (needS && now < e.fullUntil)) return undefined;
    const a = e.ask;
    if (a && (!needT || a.claimT < a.wantT) && (!needS || a.claimS < a.wantS)) {
      if (needT) a.claimT++;
      if (needS) a.claimS++;
      return a.done;
    }
    return this.#ask(e, needT, needS).done;
  }

  tryAdmit(address: string): SourceAdmission {
    const now = this.#clock();
    if (this.#store.state !== 'up') {
      if (this.#refuseWhenAway) return { ok: false, reason: 'source_store' };
      return this.#admitLocally(address, now);
    }
    const e = this.#leaseOf(this.keyOf(address), now);
    const needS = this.#max > 0 && e.active >= e.slots;
    const needT = this.#rate > 0 && e.tokens < 1;
    if (needS || needT) {
      if (needS && now < e.fullUntil) return { ok: false, reason: 'source_concurrency' };
      if (needT && now < e.dryUntil) return { ok: false, reason: 'source_rate' };
      // Not prepared (a PROXY listener learns the address only after reading the header), or
      // what a wait brought went to others: ask for the next ones, and let the local limits
      // decide this one rather than make it wait a second time.
      if (e.ask === undefined) this.#ask(e, needT, needS);
      return this.#admitLocally(address, now);
    }
    if (this.#rate > 0) e.tokens--;
    e.usedAt = now;
    return this.#admitted(e, this.#local.record(address, now));
  }

  /** StoreMember: keys of the slots held, for the renewal of their expiry. */
  *slotKeys(): Iterable<string> {
    for (const e of this.#leases.values()) if (e.slots > 0) yield e.slotKey;
  }

  /** StoreMember: the store is back under a new holder; live connections become the slots held. */
  restart(): Array<[string, number]> {
    const out: Array<[string, number]> = [];
    for (const e of this.#leases.values()) {
      e.ask = undefined;
      e.dryUntil = 0;
      e.fullUntil = 0;
      e.slots = this.#max > 0 ? e.active : 0;
      if (e.slots > 0) out.push([e.slotKey, e.slots]);
    }
    return out;
  }

  /**
   * No new connections come here (a reload replaced this limiter, or the proxy closes): leases
   * are given back as the connections still counted end, then the limiter leaves the store.
   */
  close(): void {
    this.#closing = true;
    this.#sweep();
  }

  #leaseOf(key: string, now: number): Lease {
    let e = this.#leases.get(key);
    if (e === undefined) {
      const id = `${this.#listener}:${key}`;
      e = {
        bucketKey: this.#store.key('r', id),
        slotKey: this.#store.key('c', id),
        tokens: 0,
        slots: 0,
        active: 0,
        dryUntil: 0,
        fullUntil: 0,
        usedAt: now,
        giveT: 0,
        giveS: 0,
        ask: undefined,
        inFlight: 0,
      };
      this.#leases.set(key, e);
    }
    return e;
  }

  #ask(e: Lease, needT: boolean, needS: boolean): Ask {
    const wantT = this.#rate > 0 && needT ? this.#lease : 0;
    const wantS = this.#max > 0 && needS ? this.#lease : 0;
    const holder = this.#store.holder;
    const ask: Ask = { wantT, wantS, claimT: needT ? 1 : 0, claimS: needS ? 1 : 0, done: Promise.resolve() };
    e.ask = ask;
    e.inFlight++;
    ask.done = this.#store.lease(e.bucketKey, e.slotKey, wantT, this.#rate, this.#burst, wantS, this.#max).then((r) => {
      e.inFlight--;
      if (e.ask === ask) e.ask = undefined;
      if (r === undefined) return; // the store is away: the fall-back decides
      const now = this.#clock();
      e.tokens += r.tokens;
      // Slots granted to a holder that has since been replaced do not count any more.
      if (this.#store.holder === holder) e.slots += r.slots;
      if (r.tokens < wantT) e.dryUntil = now + 1000 / this.#rate;
      if (r.slots < wantS) e.fullUntil = now + SLOT_RETRY_MS;
    });
    return ask;
  }

  #admitLocally(address: string, now: number): SourceAdmission {
    const a = this.#local.tryAdmit(address, now);
    if (!a.ok) return a;
    // Counted here too: when the store is back, every live connection is registered.
    return this.#admitted(this.#leaseOf(this.keyOf(address), now), a.release);
  }

  #admitted(e: Lease, localRelease: () => void): SourceAdmission {
    e.active++;
    let released = false;
    return {
      ok: true,
      release: () => {
        if (released) return;
        released = true;
        localRelease();
        e.active--;
        e.usedAt = this.#clock();
        // Spare slots beyond one batch go back at once: a process that held many (its
        // connections registered when the store came back) must not reuse them all.
        const excess = e.slots - e.active - this.#lease;
        if (excess > 0) this.#give(e, 0, excess);
      },
    };
  }

  /** Takes `tokens` and `slots` off the lease now and gives them back to the store soon, batched. */
  #give(e: Lease, tokens: number, slots: number): void {
    e.tokens -= tokens;
    e.slots -= slots;
    e.giveT += tokens;
    e.giveS += slots;
    if (this.#giving.size === 0) setImmediate(() => this.#flush());
    this.#giving.add(e);
  }

  #flush(): void {
    for (const e of this.#giving) {
      const { giveT, giveS } = e;
      e.giveT = 0;
      e.giveS = 0;
      e.inFlight++;
      void this.#store.lease(e.bucketKey, e.slotKey, -giveT, this.#rate, this.#burst, -giveS, this.#max).then(() => e.inFlight--);
    }
    this.#giving.clear();
  }

  /** Gives back idle tokens and spare slots, trims batches, drops sources with nothing left. */
  #sweep(): void {
    const now = this.#clock();
    const up = this.#store.state === 'up';
    for (const [key, e] of this.#leases) {
      if (up) {
        const idle = e.active === 0 && now - e.usedAt >= LEASE_HOLD_MS;
        const spare = e.slots - e.active;
        const giveT = idle || this.#closing ? Math.floor(e.tokens) : Math.max(0, Math.floor(e.tokens) - this.#lease);
        const giveS = spare <= 0 ? 0 : idle || this.#closing ? spare : Math.max(0, spare - this.#lease);
        if (giveT > 0 || giveS > 0) {
          this.#give(e, giveT, giveS);
          continue;
        }
      } else if (e.active === 0) {
        // Away: what was held is given up (the holder is replaced when the store is back).
        e.tokens = 0;
        e.slots = 0;
      }
      if (e.active === 0 && e.inFlight === 0 && !this.#giving.has(e) && e.slots <= 0 && e.tokens < 1 && now >= e.dryUntil && now >= e.fullUntil) this.#leases.delete(key);
    }
    if (this.#closing && this.#leases.size === 0) {
      clearInterval(this.#timer);
      this.#store.leave(this);
    }
  }
}
