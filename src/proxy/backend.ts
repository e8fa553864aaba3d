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
import type { AdminState, BackendConfig } from '../config/types.js';
import type { Candidate } from '../balancers/types.js';
import { isIP } from 'node:net';
import { formatHostPort } from '../util/address.js';

export type BackendState = 'up' | 'down' | 'draining' | 'disabled';

/** Minimum share of the weight at the start of a slow-start ramp. */
const SLOW_START_FLOOR = 0.1;

export class Backend implements Candidate {
  readonly name: string;
  readonly host: string;
  readonly port: number;
  readonly address: string;
  /** 4 or 6 when `host` is an IP address, 0 for a name (resolved when dialled). */
  readonly ipFamily: 0 | 4 | 6;
  backup: boolean;
  /** Configured weight. */
  configuredWeight: number;
  admin: AdminState;
  maxConnections: number;
  /** Whether the pool's active check probes this backend (BackendConfig.check). */
  check: boolean;

  /** Result of active checks (true when no active check is configured). */
  healthy = true;
  /** Passive ejection: not eligible until this time (ms since epoch); 0 = not ejected. */
  ejectedUntil = 0;
  /** Number of consecutive ejections (drives the growing backoff). */
  ejections = 0;
  /** Consecutive passive failures since the last success. */
  consecutiveFailures = 0;
  /** When the backend last became eligible; drives slow start. */
  upSince = 0;
  slowStartMs = 0;

  lastCheckAt = 0;
  lastCheckOk: boolean | undefined;
  lastError: string | undefined;

  active = 0;
  total = 0;
  failures = 0;
  bytesIn = 0;
  bytesOut = 0;
  /** UDP datagrams forwarded to this backend (client → backend). */
  datagramsIn = 0;
  /** UDP datagrams this backend sent back (backend → client). */
  datagramsOut = 0;
  /** Exponentially weighted average connect time in ms. */
  connectMsAvg = 0;

  constructor(cfg: BackendConfig, now = Date.now()) {
    this.name = cfg.name;
    this.host = cfg.host;
    this.port = cfg.port;
    this.address = formatHostPort(cfg.host, cfg.port);
    this.ipFamily = isIP(cfg.host) as 0 | 4 | 6;
    this.backup = cfg.backup;
    this.configuredWeight = cfg.weight;
    this.admin = cfg.state;
    this.maxConnections = cfg.maxConnections;
    this.check = cfg.check;
    this.upSince = now - 1e12; // no slow start for backends present at start
  }

  /** The state users see. */
  state(now = Date.now()): BackendState {
    if (this.admin === 'disabled') return 'disabled';
    if (this.admin === 'draining') return 'draining';
    if (!this.healthy || this.ejectedUntil > now) return 'down';
    return 'up';
  }

  /** True when the backend may take a new connection now (ignoring maxconn). */
  isAvailable(now = Date.now()): boolean {
    return this.admin === 'enabled' && this.healthy && this.ejectedUntil <= now;
  }

  /** True when the backend is at its per-backend connection cap. */
  isFull(): boolean {
    return this.maxConnections > 0 && this.active >= this.maxConnections;
  }

  /** Effective weight, lowered during slow start. Always > 0. */
  get weight(): number {
    if (this.slowStartMs <= 0) return this.configuredWeight;
    // An ejection that has run out counts as coming back up at its end.
    const elapsed = Date.now() - Math.max(this.upSince, this.ejectedUntil);
    if (elapsed >= this.slowStartMs) return this.configuredWeight;
    const share = SLOW_START_FLOOR + (1 - SLOW_START_FLOOR) * (elapsed / this.slowStartMs);
    return Math.max(this.configuredWeight * share, Number.EPSILON);
  }

  /** Records a connect result; the pool applies passive-health policy. */
  recordConnect(ok: boolean, connectMs: number): void {
    if (ok) {
      this.connectMsAvg = this.connectMsAvg === 0 ? connectMs : this.connectMsAvg * 0.8 + connectMs * 0.2;
    } else {
      this.failures++;
    }
  }

  /** The config this backend would be re-created from, with what the API changed since. */
  toConfig(): BackendConfig {
    return {
      name: this.name,
      host: this.host,
      port: this.port,
      weight: this.configuredWeight,
      backup: this.backup,
      state: this.admin,
      maxConnections: this.maxConnections,
      check: this.check,
    };
  }

  /** A plain snapshot for the admin API and IPC. */
  snapshot(now = Date.now()) {
    return {
      name: this.name,
      address: this.address,
      state: this.state(now),
      admin: this.admin,
      backup: this.backup,
      weight: this.configuredWeight,
      effectiveWeight: this.weight,
      healthy: this.healthy,
      check: this.check,
      ejectedUntil: this.ejectedUntil > now ? this.ejectedUntil : 0,
      lastCheckAt: this.lastCheckAt || undefined,
      lastCheckOk: this.lastCheckOk,
      lastError: this.lastError,
      active: this.active,
      total: this.total,
      failures: this.failures,
      bytesIn: this.bytesIn,
      bytesOut: this.bytesOut,
      // Only backends that carried UDP have datagram counts.
      ...((this.datagramsIn > 0 || this.datagramsOut > 0) && { datagramsIn: this.datagramsIn, datagramsOut: this.datagramsOut }),
      connectMsAvg: Math.round(this.connectMsAvg * 100) / 100,
    };
  }
}

export type BackendSnapshot = ReturnType<Backend['snapshot']>;
