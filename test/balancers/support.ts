/**
 * @module test/balancers/support — what the balancer suites share: a plain backend and a
 * seeded random source, so every run draws the same numbers.
 */

/** A backend as balancers see it. */
export interface TestBackend {
  name: string;
  weight: number;
  active: number;
}

/** mulberry32: a small seeded PRNG, so every run draws the same numbers. */
export function seededRandom(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
