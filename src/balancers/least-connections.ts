/**
 * @module balancers/least-connections — weighted least connections.
 *
 * Picks the backend with the lowest `(active + 1) / weight`, like HAProxy's `leastconn`
 * (which keys servers on `(served + 1) / eweight`). The `+ 1` scores a backend by the load
 * it would carry *with* this connection: with plain `active / weight` every idle backend
 * ties at 0 whatever its weight, while with `+ 1` an idle weight-2 backend is preferred to
 * an idle weight-1 one and, as connections pile up, backends converge to loads in
 * proportion to their weights.
 *
 * Ties rotate: each scan starts just after the backend taken last, and the first of the
 * equal scores in scan order wins, so equal backends share load round-robin instead of
 * the first one in the list taking every short-lived connection. `active` and `weight`
 * are read at every pick. O(N) per pick; each refusal costs one more scan.
 */
import type { Balancer, BalancerFactory, Candidate, PickContext } from './types.js';
import { VisitMarks } from './visit-marks.js';

/** Weighted least connections with round-robin tie-breaking. */
export class LeastConnectionsBalancer<B extends Candidate> implements Balancer<B> {
  readonly #backends: readonly B[];
  readonly #asked: VisitMarks;
  /** Where the next scan starts: just after the last backend taken. */
  #next = 0;

  constructor(backends: readonly B[]) {
    this.#backends = backends.slice();
    this.#asked = new VisitMarks(this.#backends.length);
  }

  pick(_ctx: PickContext, accept: (backend: B) => boolean): B | undefined {
    const n = this.#backends.length;
    if (n === 0) return undefined;
    let best = this.#scan(false);
    if (this.#take(best, accept)) return this.#backends[best];
    if (n === 1) return undefined;

    const asked = this.#asked;
    asked.reset();
    for (let askedCount = 1; askedCount < n; askedCount++) {
      asked.add(best);
      best = this.#scan(true);
      if (this.#take(best, accept)) return this.#backends[best];
    }
    return undefined;
  }

  /** Index of the least loaded backend (skipping asked ones when `skipAsked`), ties to the first in rotated order. */
  #scan(skipAsked: boolean): number {
    const backends = this.#backends;
    const n = backends.length;
    let best = -1;
    let bestLoad = 0;
    let bestWeight = 1;
    for (let k = 0, i = this.#next; k < n; k++, i = i + 1 === n ? 0 : i + 1) {
      if (skipAsked && this.#asked.has(i)) continue;
      const backend = backends[i];
      const load = backend.active + 1;
      const weight = backend.weight;
      // load/weight < bestLoad/bestWeight, without dividing by a possibly tiny weight.
      if (best < 0 || load * bestWeight < bestLoad * weight) {
        best = i;
        bestLoad = load;
        bestWeight = weight;
      }
    }
    return best;
  }

  #take(index: number, accept: (backend: B) => boolean): boolean {
    if (!accept(this.#backends[index])) return false;
    this.#next = index + 1 === this.#backends.length ? 0 : index + 1;
    return true;
  }
}

/** Builds a {@link LeastConnectionsBalancer}. */
export const leastConnections: BalancerFactory = (backends) => new LeastConnectionsBalancer(backends);
