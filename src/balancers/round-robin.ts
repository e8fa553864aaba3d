/**
 * @module balancers/round-robin — plain rotation over the backends, weights ignored.
 *
 * A cursor names the backend to offer first; after a pick it moves just past the backend
 * taken (not just past where the pick started), so a refused backend's turns are shared
 * by the next picks instead of all landing on its neighbour: with `b` refused, a, b, c
 * gives a, c, a, c. O(1) per pick when the first candidate is accepted.
 *
 * The cursor starts at a random backend (`options.random`) so that worker processes,
 * each with its own balancer, do not all send their first connections to the same backend.
 */
import type { Balancer, BalancerFactory, BalancerOptions, Candidate, PickContext } from './types.js';

/** Round robin: each pick offers the backends in list order, starting after the last one taken. */
export class RoundRobinBalancer<B extends Candidate> implements Balancer<B> {
  readonly #backends: readonly B[];
  #next: number;

  constructor(backends: readonly B[], options: BalancerOptions = {}) {
    this.#backends = backends.slice();
    const n = this.#backends.length;
    const random = options.random ?? Math.random;
    this.#next = n > 0 ? Math.floor(random() * n) % n : 0;
  }

  pick(_ctx: PickContext, accept: (backend: B) => boolean): B | undefined {
    const backends = this.#backends;
    const n = backends.length;
    let i = this.#next;
    for (let asked = 0; asked < n; asked++) {
      const backend = backends[i];
      i = i + 1 === n ? 0 : i + 1;
      if (accept(backend)) {
        this.#next = i;
        return backend;
      }
    }
    return undefined;
  }
}

/** Builds a {@link RoundRobinBalancer}. */
export const roundRobin: BalancerFactory = (backends, options) => new RoundRobinBalancer(backends, options);
