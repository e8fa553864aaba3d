/**
 * @module balancers/random — weighted random choice.
 *
 * Each backend is drawn with probability `weight / total`, weights read at every pick.
 * When `accept` refuses the drawn backend it is set aside and another is drawn from the
 * rest (weighted again), so every backend is offered at most once and a refused one's
 * share spreads over the others in proportion to their weights. O(N) per draw.
 */
import type { Balancer, BalancerFactory, BalancerOptions, Candidate, PickContext } from './types.js';
import { loadWeights } from './weights.js';
import { VisitMarks } from './visit-marks.js';

/** Weighted random choice without repeats. */
export class RandomBalancer<B extends Candidate> implements Balancer<B> {
  readonly #backends: readonly B[];
  readonly #weights: Float64Array;
  readonly #asked: VisitMarks;
  readonly #random: () => number;

  constructor(backends: readonly B[], options: BalancerOptions = {}) {
    this.#backends = backends.slice();
    this.#weights = new Float64Array(this.#backends.length);
    this.#asked = new VisitMarks(this.#backends.length);
    this.#random = options.random ?? Math.random;
  }

  pick(_ctx: PickContext, accept: (backend: B) => boolean): B | undefined {
    const backends = this.#backends;
    const n = backends.length;
    if (n <= 1) return n === 1 && accept(backends[0]) ? backends[0] : undefined;

    const weights = this.#weights;
    let total = loadWeights(backends, weights);
    const asked = this.#asked;
    asked.reset();
    for (let askedCount = 0; askedCount < n; askedCount++) {
      let r = this.#random() * total;
      let chosen = -1;
      for (let i = 0; i < n; i++) {
        if (asked.has(i)) continue;
        chosen = i;
        r -= weights[i];
        // When rounding leaves r >= 0 after the last one, the last unasked backend wins.
        if (r < 0) break;
      }
      if (accept(backends[chosen])) return backends[chosen];
      asked.add(chosen);
      total -= weights[chosen];
    }
    return undefined;
  }
}

/** Builds a {@link RandomBalancer} (the `random` algorithm). */
export const weightedRandom: BalancerFactory = (backends, options) => new RandomBalancer(backends, options);
