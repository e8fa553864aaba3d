/**
 * @module balancers — the balancing algorithms by name.
 *
 * Pools are configured with a {@link BalancerName}; this maps the name to its factory.
 * Each algorithm lives in its own file and implements the `Balancer` interface of types.ts.
 */
import { BALANCER_NAMES, type BalancerName } from '../config/types.js';
import { ErrorCodes, L4lbError } from '../errors.js';
import type { Balancer, BalancerFactory, BalancerOptions, Candidate } from './types.js';
import { leastConnections } from './least-connections.js';
import { maglev } from './maglev.js';
import { powerOfTwoChoices } from './power-of-two-choices.js';
import { weightedRandom } from './random.js';
import { roundRobin } from './round-robin.js';
import { sourceIpHash } from './source-ip-hash.js';
import { weightedRoundRobin } from './weighted-round-robin.js';

export type { Balancer, BalancerFactory, BalancerOptions, Candidate, PickContext } from './types.js';

// A Record keyed by BalancerName: the compiler rejects a name without a factory.
const factories: Readonly<Record<BalancerName, BalancerFactory>> = {
  'round-robin': roundRobin,
  'weighted-round-robin': weightedRoundRobin,
  'least-connections': leastConnections,
  random: weightedRandom,
  'power-of-two-choices': powerOfTwoChoices,
  'source-ip-hash': sourceIpHash,
  maglev,
};

/** Every algorithm name, in documentation order. */
export const balancerNames: readonly BalancerName[] = BALANCER_NAMES;

/** True when `s` names a balancing algorithm. */
export function isBalancerName(s: unknown): s is BalancerName {
  return typeof s === 'string' && Object.hasOwn(factories, s);
}

/**
 * Builds the named balancer over `backends` (rebuild it when the backend set changes).
 * Throws an `L4lbError` (`L4LB_ERR_CONFIG_INVALID`) for an unknown name; the config loader
 * is expected to have rejected it already.
 */
export function createBalancer<B extends Candidate>(
  name: BalancerName,
  backends: readonly B[],
  options?: BalancerOptions,
): Balancer<B> {
  if (!isBalancerName(name)) {
    throw new L4lbError(
      ErrorCodes.CONFIG_INVALID,
      'internal',
      `unknown balancer "${String(name)}"; expected one of: ${balancerNames.join(', ')}`,
    );
  }
  return factories[name](backends, options);
}
