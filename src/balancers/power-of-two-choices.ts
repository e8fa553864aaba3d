/**
 * @module balancers/power-of-two-choices — "power of two random choices" (Mitzenmacher).
 *
 * Draws two distinct backends at random, each with probability proportional to its
 * weight, and offers first the one with the lower `active / weight`. On a tie the first
 * draw goes first, so with no load at all the choice is plain weighted random and the
 * weights are honoured exactly; under load the comparison steers connections to the less
 * loaded backend. (Uniform draws would cost O(1) instead of O(N), but then an idle heavy
 * backend would win every pair it appears in and take more than its weight's share.)
 *
 * When both are refused, the remaining backends are offered in list order starting
 * after the second draw, so a pick still tries everything before giving up.
 */
import type { Balancer, BalancerFactory, BalancerOptions, Candidate, PickContext } from './types.js';
import { loadWeights } from './weights.js';

/** Power of two choices with weighted draws. */
export class PowerOfTwoChoicesBalancer<B extends Candidate> implements Balancer<B> {
  readonly #backends: readonly B[];
  readonly #weights: Float64Array;
  readonly #random: () => number;

  constructor(backends: readonly B[], options: BalancerOptions = {}) {
    this.#backends = backends.slice();
    this.#weights = new Float64Array(this.#backends.length);
    this.#random = options.random ?? Math.random;
  }

  pick(_ctx: PickContext, accept: (backend: B) => boolean): B | undefined {
    const backends = this.#backends;
    const n = backends.length;
    if (n <= 1) return n === 1 && accept(backends[0]) ? backends[0] : undefined;

    const weights = this.#weights;
    const total = loadWeights(backends, weights);
    let first = this.#draw(total, -1);
    let second = this.#draw(total - weights[first], first);
    const a = backends[first];
    const b = backends[second];
    // b.active/b.weight < a.active/a.weight, cross-multiplied.
    if (b.active * a.weight < a.active * b.weight) {
      const t = first;
      first = second;
      second = t;
    }
    if (accept(backends[first])) return backends[first];
    if (accept(backends[second])) return backends[second];
    for (let k = 1, i = second + 1 === n ? 0 : second + 1; k < n; k++, i = i + 1 === n ? 0 : i + 1) {
      if (i !== first && i !== second && accept(backends[i])) return backends[i];
    }
    return undefined;
  }

  /** Weighted draw among all backends but `exclude`; `total` is their weight sum. */
  #draw(total: number, exclude: number): number {
    const weights = this.#weights;
    let r = this.#random() * total;
    let chosen = -1;
    for (let i = 0; i < weights.length; i++) {
      if (i === exclude) continue;
      chosen = i;
      r -= weights[i];
      // When rounding leaves r >= 0 after the last one, the last candidate wins.
      if (r < 0) break;
    }
    return chosen;
  }
}

/** Builds a {@link PowerOfTwoChoicesBalancer}. */
export const powerOfTwoChoices: BalancerFactory = (backends, options) => new PowerOfTwoChoicesBalancer(backends, options);
