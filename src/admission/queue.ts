/**
 * @module admission/queue — a pool's wait queue for connections when every backend is full.
 *
 * As in HAProxy: a backend at its `maxConnections` is skipped, so connections overflow to the
 * other backends; when every usable backend is full, the connection waits (its client socket
 * still paused, nothing read) in the pool's FIFO queue until a backend slot frees, for at most
 * `timeoutMs` (then it is closed with `queue_timeout`). A full queue closes newcomers with
 * `queue_full`; `size: 0` means no queue at all.
 *
 * The queue knows nothing about backends: a waiter's `retry()` tries to take a slot and says
 * whether it is done waiting. `wake()` is called whenever a slot may have freed (a connection
 * to one of the pool's backends ended, the config changed, a newcomer arrived) and retries
 * waiters oldest first, stopping at the first that must keep waiting, so order is kept.
 */

/** One connection waiting in a {@link BackendQueue}. */
export interface QueueWaiter {
  /**
   * Tries to take a backend slot now. Returns true when it no longer waits (it got a backend,
   * or it gave up for another reason), false to stay at its place in the queue.
   */
  retry(): boolean;
  /** Called once when the waiter is dropped without being served: its time ran out, or the pool went away. */
  expire(reason: 'queue_timeout' | 'no_backend'): void;
}

/** Queue limits, as in PoolConfig.queue. */
export interface QueueLimits {
  /** Waiters allowed at once; 0 = no queue. */
  size: number;
  /** Longest wait, ms. */
  timeoutMs: number;
}

interface Entry {
  waiter: QueueWaiter;
  timer: NodeJS.Timeout | undefined;
}

/** A bounded FIFO of connections waiting for a backend slot, each with a timeout. */
export class BackendQueue {
  limits: QueueLimits;
  /** Insertion-ordered, so iteration is FIFO and removal of any waiter is O(1). */
  readonly #entries = new Map<QueueWaiter, Entry>();
  #waking = false;
  #again = false;
  /** Connections that ever waited. */
  total = 0;
  /** Connections refused because the queue was full. */
  overflowed = 0;
  /** Connections closed because they waited `timeoutMs`. */
  timedOut = 0;

  constructor(limits: QueueLimits) {
    this.limits = limits;
  }

  /** Waiters right now. */
  get length(): number {
    return this.#entries.size;
  }

  /** Adds `waiter` at the end; false when the queue is full (or disabled with size 0). */
  enqueue(waiter: QueueWaiter): boolean {
    if (this.#entries.size >= this.limits.size) {
      this.overflowed++;
      return false;
    }
    const entry: Entry = { waiter, timer: undefined };
    if (this.limits.timeoutMs > 0) {
      entry.timer = setTimeout(() => {
        this.#entries.delete(waiter);
        this.timedOut++;
        waiter.expire('queue_timeout');
      }, this.limits.timeoutMs);
    }
    this.#entries.set(waiter, entry);
    this.total++;
    return true;
  }

  /** Removes `waiter` (its connection was stopped or went away); no callback. */
  remove(waiter: QueueWaiter): void {
    const e = this.#entries.get(waiter);
    if (!e) return;
    if (e.timer) clearTimeout(e.timer);
    this.#entries.delete(waiter);
  }

  /** Retries waiters oldest first until one has to keep waiting. */
  wake(): void {
    // A retry can end a connection, which frees a slot and calls wake() again: remember it
    // and go round once more instead of recursing.
    if (this.#waking) {
      this.#again = true;
      return;
    }
    this.#waking = true;
    try {
      do {
        this.#again = false;
        // Deleting entries while iterating a Map is safe; the waiter being retried keeps its
        // place (and its deadline) unless it is done waiting.
        for (const waiter of this.#entries.keys()) {
          if (!waiter.retry()) break;
          this.remove(waiter);
        }
      } while (this.#again && this.#entries.size > 0);
    } finally {
      this.#waking = false;
    }
  }

  /** Drops every waiter with `reason` (the pool was removed). */
  clear(reason: 'queue_timeout' | 'no_backend' = 'no_backend'): void {
    const all = [...this.#entries.values()];
    this.#entries.clear();
    for (const e of all) {
      if (e.timer) clearTimeout(e.timer);
      e.waiter.expire(reason);
    }
  }
}
