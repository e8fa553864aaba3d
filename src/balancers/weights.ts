/**
 * @module balancers/weights — reading current weights for the weighted random balancers.
 */
import type { Candidate } from './types.js';

/**
 * Copies each backend's current weight into `into` (weights change with slow start, so
 * they are read at every pick) and returns their sum.
 */
export function loadWeights(backends: readonly Candidate[], into: Float64Array): number {
  let total = 0;
  for (let i = 0; i < backends.length; i++) {
    into[i] = backends[i].weight;
    total += into[i];
  }
  return total;
}
