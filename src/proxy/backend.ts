/**
 * @module proxy/backend — one backend's runtime state: admin state, health, counters.
 *
 * State seen by users is one of `up | down | draining | disabled`:
 * - `disabled` and `draining` come from the admin (config or API) and win over health;
 * - otherwise `down` when the active check says so or passive detection ejected it;
 * - otherwise `up`.
 * Only `up` backends take new connections. Slow start lowers the effective weight for
 * `slowStartMs` after a backend comes (back) up.
 */
import type { AdminState, BackendConfig, PassiveHealthConfig } from '../config/types.js';
import type { Candidate } from '../balancers/types.js';
import { isIP } from 'node:net';
import { formatHostPort } from '../util/address.js';

export type BackendState = 'up' | 'down' | 'draining' | 'disabled';

/** Minimum share of the weight at the start of a slow-start ramp. */
const SLOW_START_FLOOR = 0.1;
/** Weight of the newest sample in the connect-time average. */
const CONNECT_MS_ALPHA = 0.2;

/** Health fields the cluster primary decides and shares with its workers. */
export interface SharedHealth {
  healthy: boolean;
  ejectedUntil: number;
  ejections: number;
  upSince: number;
}

/** Counters summed over a cluster's workers, shown in the primary's snapshots. */
export interface BackendTotals {
  active: number;
  total: number;
  failures: number;
  bytesIn: number;
  bytesOut: number;
  /** UDP datagrams forwarded to the backend and back from it (0 for TCP-only backends). */
  datagramsIn: number;
  datagramsOut: number;
  connectMsAvg: number;
}

/**
 * A backend's state. Every field is read-only from outside; each change goes through a
 * method named after what happened (a connect result, a health-check result, an admin
 * change), so one place holds each rule — passive ejection and its backoff above all.
 */
export class Backend implements Candidate {
  readonly name: string;
  readonly host: string;
  readonly port: number;
  readonly address: string;
  /** 4 or 6 when `host` is an IP address, 0 for a name (resolved when dialled). */
  readonly ipFamily: 0 | 4 | 6;
  #backup: boolean;
  #configuredWeight: number;
  #admin: AdminState;
  #maxConnections: number;
  #check: boolean;
  #slowStartMs = 0;

  #healthy = true;
  #ejectedUntil = 0;
  #ejections = 0;
  #consecutiveFailures = 0;
  #upSince: number;

  #lastCheckAt = 0;
  #lastCheckOk: boolean | undefined;
  #lastError: string | undefined;

  /** Bumped by every change to a field the cluster shares (settings, health). */
  #revision = 0;

  #active = 0;
  #total = 0;
  #failures = 0;
  #bytesIn = 0;
  #bytesOut = 0;
  #connectMsAvg = 0;
  #datagramsIn = 0;
  #datagramsOut = 0;

  constructor(cfg: BackendConfig, now = Date.now()) {
    this.name = cfg.name;
    this.host = cfg.host;
    this.port = cfg.port;
    this.address = formatHostPort(cfg.host, cfg.port);
    this.ipFamily = isIP(cfg.host) as 0 | 4 | 6;
    this.#backup = cfg.backup;
    this.#configuredWeight = cfg.weight;
    this.#admin = cfg.state;
    this.#maxConnections = cfg.maxConnections;
    this.#check = cfg.check;
    this.#upSince = now - 1e12; // no slow start for backends present at start
  }

  /** Used only when no primary backend of the pool is available. */
  get backup(): boolean {
    return this.#backup;
  }
  /** Configured weight (see {@link weight} for the effective one). */
  get configuredWeight(): number {
    return this.#configuredWeight;
  }
  /** Admin state, from the config or the admin API. */
  get admin(): AdminState {
    return this.#admin;
  }
  /** Per-backend connection cap; 0 = none. */
  get maxConnections(): number {
    return this.#maxConnections;
  }
  /** Whether the pool's active check probes this backend (BackendConfig.check). */
  get check(): boolean {
    return this.#check;
  }
  /** Length of the slow-start ramp, ms (0 = off). */
  get slowStartMs(): number {
    return this.#slowStartMs;
  }
  /** Result of active checks (true when no active check is configured). */
  get healthy(): boolean {
    return this.#healthy;
  }
  /** Passive ejection: not eligible until this time (ms since epoch); 0 = not ejected. */
  get ejectedUntil(): number {
    return this.#ejectedUntil;
  }
  /** Number of consecutive ejections (drives the growing backoff). */
  get ejections(): number {
    return this.#ejections;
  }
  /** Consecutive passive failures since the last success. */
  get consecutiveFailures(): number {
    return this.#consecutiveFailures;
  }
  /** When the backend last became eligible; drives slow start. */
  get upSince(): number {
    return this.#upSince;
  }
  get lastCheckAt(): number {
    return this.#lastCheckAt;
  }
  get lastCheckOk(): boolean | undefined {
    return this.#lastCheckOk;
  }
  get lastError(): string | undefined {
    return this.#lastError;
  }
  /**
   * Grows with every change to what the cluster primary shares with its workers (the
   * settings of {@link toConfig} and {@link sharedHealth}); never decreases.
   */
  get revision(): number {
    return this.#revision;
  }
  /** Connections open or being dialled now. */
  get active(): number {
    return this.#active;
  }
  /** Connections relayed (connected) so far. */
  get total(): number {
    return this.#total;
  }
  /** Failed connects so far. */
  get failures(): number {
    return this.#failures;
  }
  /** Bytes client → backend. */
  get bytesIn(): number {
    return this.#bytesIn;
  }
  /** Bytes backend → client. */
  get bytesOut(): number {
    return this.#bytesOut;
  }
  /** UDP datagrams forwarded to this backend (client → backend). */
  get datagramsIn(): number {
    return this.#datagramsIn;
  }
  /** UDP datagrams this backend sent back (backend → client). */
  get datagramsOut(): number {
    return this.#datagramsOut;
  }
  /** Exponentially weighted average connect time in ms. */
  get connectMsAvg(): number {
    return this.#connectMsAvg;
  }

  /** The state users see. */
  state(now = Date.now()): BackendState {
    if (this.#admin === 'disabled') return 'disabled';
    if (this.#admin === 'draining') return 'draining';
    if (!this.#healthy || this.#ejectedUntil > now) return 'down';
    return 'up';
  }

  /** True when the backend may take a new connection now (ignoring maxconn). */
  isAvailable(now = Date.now()): boolean {
    return this.#admin === 'enabled' && this.#healthy && this.#ejectedUntil <= now;
  }

  /** True when the backend is at its per-backend connection cap. */
  isFull(): boolean {
    return this.#maxConnections > 0 && this.#active >= this.#maxConnections;
  }

  /** Effective weight, lowered during slow start. Always > 0. */
  get weight(): number {
    if (this.#slowStartMs <= 0) return this.#configuredWeight;
    // An ejection that has run out counts as coming back up at its end.
    const elapsed = Date.now() - Math.max(this.#upSince, this.#ejectedUntil);
    if (elapsed >= this.#slowStartMs) return this.#configuredWeight;
    const share = SLOW_START_FLOOR + (1 - SLOW_START_FLOOR) * (elapsed / this.#slowStartMs);
    return Math.max(this.#configuredWeight * share, Number.EPSILON);
  }

  // --- settings (config, reload, admin API) ---

  /** Takes the settings of a config for the same name and address (reload, discovery). */
  configure(cfg: BackendConfig, slowStartMs: number): void {
    this.#revision++;
    this.#backup = cfg.backup;
    this.#configuredWeight = cfg.weight;
    this.#admin = cfg.state;
    this.#maxConnections = cfg.maxConnections;
    this.#check = cfg.check;
    this.#slowStartMs = slowStartMs;
  }

  /** Admin state change (API). */
  setAdmin(state: AdminState): void {
    this.#revision++;
    this.#admin = state;
  }

  /** Weight change (API); the pool rebuilds its balancers after it. */
  setWeight(weight: number): void {
    this.#revision++;
    this.#configuredWeight = weight;
  }

  // --- connections ---

  /** A connection attempt takes a slot (counted from the dial, so least-connections sees dials in flight). */
  acquire(): void {
    this.#active++;
  }

  /** The slot taken by {@link acquire} is free again. */
  release(): void {
    this.#active--;
  }

  /** A connection to this backend is established and relaying. */
  countRelayed(): void {
    this.#total++;
  }

  /** Bytes relayed since the last call: `up` client → backend, `down` backend → client. */
  addBytes(up: number, down: number): void {
    this.#bytesIn += up;
    this.#bytesOut += down;
  }

  /** One UDP datagram relayed: `in` client → backend, `out` backend → client. */
  countDatagram(direction: 'in' | 'out'): void {
    if (direction === 'in') this.#datagramsIn++;
    else this.#datagramsOut++;
  }

  // --- passive health ---

  /**
   * Records a connect result and applies passive health: `consecutiveFailures` failures
   * in a row eject the backend for a time that doubles with each ejection in a row
   * (Envoy's outlier detection). After the ejection it gets one more chance: a single
   * failure ejects it again, for longer. A success clears the streak. Returns the reason
   * when this result ejected the backend.
   */
  recordConnect(ok: boolean, connectMs: number, policy: PassiveHealthConfig, now = Date.now()): string | undefined {
    if (ok) {
      this.#connectMsAvg = this.#connectMsAvg === 0 ? connectMs : this.#connectMsAvg * (1 - CONNECT_MS_ALPHA) + connectMs * CONNECT_MS_ALPHA;
      this.#consecutiveFailures = 0;
      if (this.#ejections !== 0) {
        this.#ejections = 0;
        this.#revision++;
      }
      return undefined;
    }
    this.#failures++;
    if (policy.consecutiveFailures <= 0) return undefined;
    this.#consecutiveFailures++;
    if (this.#consecutiveFailures < policy.consecutiveFailures) return undefined;
    const ms = Math.min(policy.baseEjectionMs * 2 ** this.#ejections, policy.maxEjectionMs);
    this.#ejectedUntil = now + ms;
    this.#ejections++;
    this.#revision++;
    this.#consecutiveFailures = policy.consecutiveFailures - 1;
    return `ejected for ${ms}ms after ${policy.consecutiveFailures} consecutive connect failures`;
  }

  /**
   * Takes an ejection decided elsewhere (in a cluster, the primary merges those its workers
   * report): until `until` (ms since the epoch), as the `ejections`-th in a row. It never
   * shortens one already running. Returns true when the backend was not ejected before (a
   * new ejection, not an extension).
   */
  eject(until: number, ejections: number, now = Date.now()): boolean {
    if (until <= this.#ejectedUntil) return false;
    const fresh = this.#ejectedUntil <= now;
    this.#revision++;
    this.#ejectedUntil = until;
    this.#ejections = Math.max(this.#ejections, ejections);
    return fresh;
  }

  // --- active health ---

  /** A backend new to a checked pool stays down until its first checks pass. */
  awaitFirstCheck(): void {
    this.#revision++;
    this.#healthy = false;
    this.#lastCheckOk = undefined;
    this.#lastError = 'waiting for health checks';
  }

  /** Records one active-check result (the checker applies rise/fall). */
  recordCheck(ok: boolean, failure: string | undefined, now = Date.now()): void {
    this.#lastCheckAt = now;
    this.#lastCheckOk = ok;
    this.#lastError = failure;
  }

  /** The backend is no longer checked (`check: false`): no last result to show. */
  forgetCheckResult(): void {
    this.#lastCheckOk = undefined;
    this.#lastError = undefined;
  }

  /** Active checks say up (or no check runs any more): back in service. */
  markUp(now = Date.now()): void {
    this.#revision++;
    this.#healthy = true;
    this.clearEjection(now);
  }

  /** Active checks say down. */
  markDown(): void {
    this.#revision++;
    this.#healthy = false;
  }

  /** No active check holds the backend any more: healthy, with its passive state kept. */
  markUnchecked(): void {
    this.#revision++;
    this.#healthy = true;
  }

  /** Back in service: restart the slow-start ramp and forget the passive history. */
  clearEjection(now = Date.now()): void {
    this.#revision++;
    this.#upSince = now;
    this.#ejectedUntil = 0;
    this.#ejections = 0;
    this.#consecutiveFailures = 0;
  }

  // --- cluster ---

  /** The health fields the cluster primary shares with its workers. */
  sharedHealth(): SharedHealth {
    return { healthy: this.#healthy, ejectedUntil: this.#ejectedUntil, ejections: this.#ejections, upSince: this.#upSince };
  }

  /** Takes the health the cluster primary decided (in a worker). */
  applySharedHealth(s: SharedHealth): void {
    this.#revision++;
    // The primary lifted an ejection (its checks passed): the failure streak goes too.
    if (this.#ejectedUntil !== 0 && s.ejectedUntil === 0) this.#consecutiveFailures = 0;
    this.#healthy = s.healthy;
    this.#ejectedUntil = s.ejectedUntil;
    this.#ejections = s.ejections;
    this.#upSince = s.upSince;
  }

  /** The config this backend would be re-created from, with what the API changed since. */
  toConfig(): BackendConfig {
    return {
      name: this.name,
      host: this.host,
      port: this.port,
      weight: this.#configuredWeight,
      backup: this.#backup,
      state: this.#admin,
      maxConnections: this.#maxConnections,
      check: this.#check,
    };
  }

  /**
   * A plain snapshot for the admin API and IPC. `totals` replaces this object's own
   * counters (the cluster primary's backends carry no traffic; its workers' sums do).
   */
  snapshot(now = Date.now(), totals?: BackendTotals) {
    const c = totals ?? this;
    return {
      name: this.name,
      address: this.address,
      state: this.state(now),
      admin: this.#admin,
      backup: this.#backup,
      weight: this.#configuredWeight,
      effectiveWeight: this.weight,
      healthy: this.#healthy,
      check: this.#check,
      ejectedUntil: this.#ejectedUntil > now ? this.#ejectedUntil : 0,
      lastCheckAt: this.#lastCheckAt || undefined,
      lastCheckOk: this.#lastCheckOk,
      lastError: this.#lastError,
      active: c.active,
      total: c.total,
      failures: c.failures,
      bytesIn: c.bytesIn,
      bytesOut: c.bytesOut,
      // Only backends that carried UDP have datagram counts.
      ...((c.datagramsIn > 0 || c.datagramsOut > 0) && { datagramsIn: c.datagramsIn, datagramsOut: c.datagramsOut }),
      connectMsAvg: Math.round(c.connectMsAvg * 100) / 100,
    };
  }
}

export type BackendSnapshot = ReturnType<Backend['snapshot']>;
