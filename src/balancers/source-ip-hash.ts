/**
 * @module balancers/source-ip-hash — client address hashed straight onto the backend list.
 *
 * The client address (and port, with `options.hashPort`) is hashed (see hash.ts) and
 * mapped onto the backends, ordered by name so that every worker and every restart with
 * the same backend set agrees. With equal weights the backend is `hash % N`; otherwise
 * the hash is a point in [0, total weight) looked up in the cumulative weights (binary
 * search), so a weight-2 backend gets twice the clients. Weights are read once, when the
 * balancer is built: a client must not move because slow start nudged a weight.
 *
 * A refused backend's clients are re-hashed (a fixed sequence derived from the first
 * hash) until an unrefused backend comes up, so they spread over the others rather than
 * all landing on one neighbour; after a few tries the rest are walked in order.
 * Any change of the backend set remaps most clients; use `maglev` when that matters.
 */
import type { Balancer, BalancerFactory, BalancerOptions, Candidate, PickContext } from './types.js';
import { hashClient, orderByName, rehash } from './hash.js';
import { VisitMarks } from './visit-marks.js';

/** Seed of the client-address hash (distinct from maglev's, so the two spread differently). */
const SOURCE_HASH_SEED = 0x5eed_0001;
/** Re-hash tries after a refusal before walking the remaining backends in order. */
const MAX_REHASH_TRIES = 16;
/** 2^32, to turn an unsigned 32-bit hash into a fraction of 1. */
const TWO_POW_32 = 0x1_0000_0000;

/** Source address hashing over a fixed, name-ordered backend list. */
export class SourceIpHashBalancer<B extends Candidate> implements Balancer<B> {
  readonly #backends: readonly B[];
  readonly #hashPort: boolean;
  /** Cumulative weights in name order; undefined when all weights are equal. */
  readonly #cumulative: Float64Array | undefined;
  readonly #totalWeight: number;
  readonly #asked: VisitMarks;

  constructor(backends: readonly B[], options: BalancerOptions = {}) {
    this.#backends = orderByName(backends);
    this.#hashPort = options.hashPort ?? false;
    this.#asked = new VisitMarks(this.#backends.length);
    const weights = this.#backends.map((b) => b.configuredWeight ?? b.weight);
    const valid = weights.every((w) => w > 0 && Number.isFinite(w));
    const equal = weights.every((w) => w === weights[0]);
    if (valid && !equal) {
      this.#cumulative = new Float64Array(weights.length);
      let sum = 0;
      weights.forEach((w, i) => {
        sum += w;
        this.#cumulative![i] = sum;
      });
      this.#totalWeight = sum;
    } else {
      this.#cumulative = undefined;
      this.#totalWeight = weights.length;
    }
  }

  pick(ctx: PickContext, accept: (backend: B) => boolean): B | undefined {
    const backends = this.#backends;
    const n = backends.length;
    if (n === 0) return undefined;
    let hash = hashClient(ctx.clientAddress, ctx.clientPort, this.#hashPort, SOURCE_HASH_SEED);
    let index = this.#slot(hash);
    if (accept(backends[index])) return backends[index];
    if (n === 1) return undefined;

    const asked = this.#asked;
    asked.reset();
    asked.add(index);
    let askedCount = 1;
    for (let tries = 0; tries < MAX_REHASH_TRIES && askedCount < n; tries++) {
      hash = rehash(hash);
      const next = this.#slot(hash);
      if (asked.has(next)) continue;
      if (accept(backends[next])) return backends[next];
      asked.add(next);
      askedCount++;
      index = next;
    }
    for (let k = 1, i = index + 1 === n ? 0 : index + 1; k < n && askedCount < n; k++, i = i + 1 === n ? 0 : i + 1) {
      if (asked.has(i)) continue;
      if (accept(backends[i])) return backends[i];
      asked.add(i);
      askedCount++;
    }
    return undefined;
  }

  /** Backend index for a hash: `hash % N`, or weighted by the cumulative weights. */
  #slot(hash: number): number {
    const cumulative = this.#cumulative;
    if (cumulative === undefined) return hash % this.#backends.length;
    const point = (hash / TWO_POW_32) * this.#totalWeight;
    // First index whose cumulative weight exceeds the point.
    let lo = 0;
    let hi = cumulative.length - 1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (cumulative[mid] > point) hi = mid;
      else lo = mid + 1;
    }
    return lo;
  }
}

/** Builds a {@link SourceIpHashBalancer}. */
export const sourceIpHash: BalancerFactory = (backends, options) => new SourceIpHashBalancer(backends, options);
