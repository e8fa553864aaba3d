/**
 * @module cluster/state-sync — keeps the workers' backend sets and health equal to the
 * primary's (cluster/state.ts builds and applies the {@link ClusterState}).
 *
 * Health and backend sets change in the primary through several doors: active checks,
 * DNS discovery, admin actions, reloads, ejections the workers report. Admin actions and
 * reloads push and wait for every worker's acknowledgement; reported ejections push on the
 * next tick. The rest is caught by a look every {@link STATE_POLL_MS}, which is cheap: every
 * change to a backend goes through a `Backend` method that bumps its `revision`, and a list
 * change replaces the pool's `backends` array, so the look sums revisions and compares
 * identities, and builds and sends the state only when one differs. Looking, rather than a
 * hook on every door, means a new door (a new discovery kind, a new action) cannot forget to
 * push.
 */
import type { Logger } from '../observability/log.js';
import type { Backend } from '../proxy/backend.js';
import type { Pool } from '../proxy/pool.js';
import type { ClusterState } from './ipc.js';
import type { WorkerRequests } from './requests.js';
import { StateTracker } from './state.js';
import type { Slot } from './supervisor.js';

/** How often the primary looks for health/backend changes to push, ms. */
export const STATE_POLL_MS = 100;
/** How long an admin change waits for every worker to apply it, ms. */
export const ACK_TIMEOUT_MS = 2_000;

export class StateSync {
  readonly #tracker = new StateTracker();
  readonly #pools: () => Iterable<Pool>;
  readonly #live: () => Slot[];
  readonly #requests: WorkerRequests;
  readonly #logger: Logger;
  /** What the state was built from when it was last sent. */
  #seen: Fingerprint = { pools: [], lists: [], revisions: 0 };
  #timer: NodeJS.Timeout | undefined;
  #queued = false;
  #stopped = false;

  constructor(pools: () => Iterable<Pool>, live: () => Slot[], requests: WorkerRequests, logger: Logger) {
    this.#pools = pools;
    this.#live = live;
    this.#requests = requests;
    this.#logger = logger;
  }

  /** The shared state now. */
  current(): ClusterState {
    return this.#tracker.build(this.#pools());
  }

  /** Starts looking for changes (after the workers got their first state). */
  start(): void {
    this.#seen = this.#fingerprint();
    this.#timer = setInterval(() => this.#pushIfChanged(), STATE_POLL_MS);
    this.#timer.unref();
  }

  /** Stops pushing (drain, close). */
  stop(): void {
    this.#stopped = true;
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /** Pushes on the next tick when the state changed (coalesces bursts of changes). */
  soon(): void {
    if (this.#queued) return;
    this.#queued = true;
    setImmediate(() => {
      this.#queued = false;
      this.#pushIfChanged();
    });
  }

  /** Records the current state as sent to every worker (a reload carried it). */
  sent(): void {
    this.#seen = this.#fingerprint();
  }

  /**
   * Sends the current state to every worker and waits until each has applied it (or
   * {@link ACK_TIMEOUT_MS} passed): after an admin change, the API answers only once
   * every worker acts on it.
   */
  async pushAndWait(): Promise<void> {
    const state = this.current();
    this.sent();
    await Promise.all(
      this.#live().map((s) =>
        this.#requests.ask(s, (id) => ({ t: 'state', id, state }), ACK_TIMEOUT_MS).catch((err: Error) =>
          this.#logger.warn({ worker: s.id, err: err.message }, 'worker did not confirm a state change'),
        ),
      ),
    );
  }

  #pushIfChanged(): void {
    if (this.#stopped) return;
    const now = this.#fingerprint();
    if (sameFingerprint(now, this.#seen)) return;
    this.#seen = now;
    const state = this.current();
    for (const s of this.#live()) this.#requests.send(s, { t: 'state', id: 0, state });
  }

  #fingerprint(): Fingerprint {
    const f: Fingerprint = { pools: [], lists: [], revisions: 0 };
    for (const pool of this.#pools()) {
      f.pools.push(pool);
      f.lists.push(pool.backends);
      for (const b of pool.backends) f.revisions += b.revision;
    }
    return f;
  }
}

/** What a state is built from: the pools, their backend lists, and the backends' revisions. */
interface Fingerprint {
  pools: Pool[];
  lists: (readonly Backend[])[];
  /** Sum of the revisions (each only grows, so the sum changes when any one does). */
  revisions: number;
}

function sameFingerprint(a: Fingerprint, b: Fingerprint): boolean {
  return (
    a.revisions === b.revisions &&
    a.pools.length === b.pools.length &&
    a.pools.every((p, i) => p === b.pools[i]) &&
    a.lists.every((l, i) => l === b.lists[i])
  );
}
