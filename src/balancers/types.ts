/**
 * @module balancers/types — the one interface every balancing algorithm implements.
 *
 * Selection is kept apart from health (as in Pingora's `select_with`): a balancer is
 * built from a pool's backends and, on `pick`, walks its candidates in its own order,
 * asking `accept` whether each one may be used. The pool's `accept` says no to backends
 * that are down, draining, full, or already tried for this connection. A balancer never
 * learns why a candidate was refused.
 */

/** What a balancer may read of a backend. */
export interface Candidate {
  /** Stable identity (pool-unique name); hash balancers key their tables on it. */
  readonly name: string;
  /** Current effective weight (> 0; slow start may lower it below the configured one). */
  readonly weight: number;
  /** Connections currently open to this backend (read by least-connections, P2C). */
  readonly active: number;
  /**
   * The weight as configured, without slow start. Hash balancers (source-ip-hash,
   * maglev) build their tables from it when present, so that a backend ramping up
   * never moves clients between backends.
   */
  readonly configuredWeight?: number;
}

/** What a balancer may read of the connection being placed. */
export interface PickContext {
  /** Client IP address (after a PROXY header, if any). */
  readonly clientAddress: string;
  readonly clientPort: number;
}

export interface Balancer<B extends Candidate = Candidate> {
  /**
   * Returns the first candidate, in this algorithm's preference order, that `accept`
   * takes; `undefined` when it takes none. Must call `accept` at most once per backend
   * per pick and must terminate even when `accept` refuses every backend.
   */
  pick(ctx: PickContext, accept: (backend: B) => boolean): B | undefined;
}

export interface BalancerOptions {
  /** For hash balancers: hash the client port too. Default false. */
  hashPort?: boolean;
  /** Random source in [0, 1); tests inject a seeded one. Default Math.random. */
  random?: () => number;
}

/** Builds a balancer over a fixed backend list (rebuilt when the list changes). */
export type BalancerFactory = <B extends Candidate>(backends: readonly B[], options?: BalancerOptions) => Balancer<B>;
