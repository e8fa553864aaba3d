/**
 * @module balancers/weighted-round-robin — nginx's smooth weighted round robin.
 *
 * As in `ngx_http_upstream_get_peer`: at each pick every eligible backend's
 * `current` grows by its weight, the backend with the largest `current` wins (first in
 * list order on ties) and pays back the sum of the weights. Weights 5, 1, 1 give
 * a a b a c a a — the light backends are interleaved, never a burst of five a's.
 * `weight` is read at every pick, so slow start's ramp takes effect immediately.
 *
 * nginx knows which peers are down before it chooses; here only `accept` knows, and
 * `accept` may only be asked in preference order. So every backend is first assumed
 * eligible; a refused one gets its weight taken back and is left out of the total, so the
 * pick ends as nginx's would have, had it skipped that peer. (Before a refused backend is
 * asked it keeps gaining, where nginx would have frozen it.) A backend refused
 * for a long time ends up parked at the top of the order (asked first and refused, at the
 * cost of one `accept` call per pick) and, once it is back, takes one turn and then
 * rejoins the rotation, without a burst. O(N) per pick, O(N²) only when many are refused.
 */
import type { Balancer, BalancerFactory, Candidate, PickContext } from './types.js';
import { VisitMarks } from './visit-marks.js';

/** Smooth weighted round robin (nginx). */
export class WeightedRoundRobinBalancer<B extends Candidate> implements Balancer<B> {
  readonly #backends: readonly B[];
  /** nginx's `current_weight`, per backend. */
  readonly #current: Float64Array;
  /** Weights read at the start of the running pick, so that take-backs match the adds. */
  readonly #weights: Float64Array;
  readonly #asked: VisitMarks;

  constructor(backends: readonly B[]) {
    this.#backends = backends.slice();
    const n = this.#backends.length;
    this.#current = new Float64Array(n);
    this.#weights = new Float64Array(n);
    this.#asked = new VisitMarks(n);
  }

  pick(_ctx: PickContext, accept: (backend: B) => boolean): B | undefined {
    const backends = this.#backends;
    const n = backends.length;
    if (n <= 1) return n === 1 && accept(backends[0]) ? backends[0] : undefined;

    const current = this.#current;
    const weights = this.#weights;
    let total = 0;
    let best = 0;
    for (let i = 0; i < n; i++) {
      const w = backends[i].weight;
      weights[i] = w;
      current[i] += w;
      total += w;
      if (current[i] > current[best]) best = i;
    }
    if (accept(backends[best])) {
      current[best] -= total;
      return backends[best];
    }

    const asked = this.#asked;
    asked.reset();
    for (let askedCount = 1; ; askedCount++) {
      asked.add(best);
      current[best] -= weights[best];
      total -= weights[best];
      if (askedCount === n) return undefined;
      best = -1;
      for (let i = 0; i < n; i++) {
        if (!asked.has(i) && (best < 0 || current[i] > current[best])) best = i;
      }
      if (accept(backends[best])) {
        current[best] -= total;
        return backends[best];
      }
    }
  }
}

/** Builds a {@link WeightedRoundRobinBalancer}. */
export const weightedRoundRobin: BalancerFactory = (backends) => new WeightedRoundRobinBalancer(backends);
