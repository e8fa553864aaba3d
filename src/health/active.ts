/**
 * @module health/active — active health checks for one pool: every backend probed on
 * its own jittered timer, results turned into up/down with rise/fall hysteresis.
 *
 * Rules (see docs/health.md):
 * - A backend goes down after `fall` consecutive failed checks and comes up after `rise`
 *   consecutive successes, so one odd result never flips the state (HAProxy's rise/fall).
 * - Backends present when the checker starts keep their current state — fresh backends
 *   are up, so traffic flows at once (HAProxy's default) and they go down after `fall`
 *   failures. Backends added later (reload, admin API, discovery) start down and join
 *   after `rise` successes: a new backend must prove itself before it takes traffic.
 * - Coming up sets `upSince` (which drives slow start in Backend.weight) and clears any
 *   passive ejection. A backend that is up but passively ejected is un-ejected after
 *   `rise` successful checks counted from the ejection (Envoy's
 *   `successful_active_health_check_uneject_host`).
 * - The backend list and the check settings are re-read on every round, so reloads,
 *   discovery and API changes are followed; state of removed backends is dropped and
 *   their in-flight check aborted.
 * - Every backend is checked, whatever its admin state, so that re-enabling a disabled
 *   backend uses a current health state.
 * - State changes are reported through `pool.onStateChange` (the owner logs them and
 *   counts them); the checker itself logs only at debug level, to avoid duplicate lines.
 */
import type { Logger } from '../observability/log.js';
import { LogFields } from '../observability/log.js';
import { Defaults, type ActiveHealthConfig, type ExpectMatcher } from '../config/types.js';
import type { Backend } from '../proxy/backend.js';
import type { Pool } from '../proxy/pool.js';
import { compileMatcher, sendExpectCheck, tcpCheck, type CompiledMatcher } from './checks.js';
import { udpCheck } from './udp-check.js';
import { encodeProxyV1, encodeProxyV2 } from '../protocol/proxy-protocol.js';

/** Options of {@link ActiveHealthChecker}. */
export interface ActiveHealthCheckerOptions {
  /** Clock for `lastCheckAt`, `upSince` and ejection times; must agree with Date.now(),
   * which Backend.weight and Pool use. Default Date.now. */
  now?: () => number;
  /** Called after every check with its outcome, before any state change it causes
   * (metrics hook). */
  onCheck?: (backend: Backend, ok: boolean, reason: string | undefined) => void;
}

/** Check settings with defaults applied and values forced into range. */
export interface ResolvedHealthSettings {
  type: ActiveHealthConfig['type'];
  intervalMs: number;
  timeoutMs: number;
  rise: number;
  fall: number;
  jitter: number;
  send: Buffer;
  expect: ExpectMatcher | undefined;
}

const EMPTY = Buffer.alloc(0);

/**
 * What a check sends first to a pool that speaks PROXY protocol to its backends: a header
 * for the checker's own connection (v1 `PROXY UNKNOWN`, v2 `LOCAL`), as HAProxy's
 * `check-send-proxy` does, so that backends which require the header answer checks too.
 */
const CHECK_HEADERS = {
  v1: encodeProxyV1({ command: 'LOCAL', family: 'unknown' }),
  v2: encodeProxyV2({ command: 'LOCAL', family: 'unknown' }),
};

function checkPreamble(proxyProtocol: 'v1' | 'v2' | undefined): Buffer | undefined {
  return proxyProtocol ? CHECK_HEADERS[proxyProtocol] : undefined;
}
/** Smallest delay between two checks of one backend, whatever the jitter draws. */
const MIN_DELAY_MS = 1;

/**
 * Applies defaults to a health config. The loader already fills every field; this keeps
 * the checker safe with hand-built configs (embedders, tests) and caps the timeout at
 * the interval so checks of one backend never overlap.
 */
export function resolveHealthSettings(cfg: ActiveHealthConfig): ResolvedHealthSettings {
  const intervalMs = cfg.intervalMs > 0 ? cfg.intervalMs : Defaults.healthIntervalMs;
  const timeoutMs = Math.min(cfg.timeoutMs > 0 ? cfg.timeoutMs : Defaults.healthTimeoutMs, intervalMs);
  return {
    type: cfg.type,
    intervalMs,
    timeoutMs,
    rise: cfg.rise >= 1 ? Math.floor(cfg.rise) : Defaults.healthRise,
    fall: cfg.fall >= 1 ? Math.floor(cfg.fall) : Defaults.healthFall,
    jitter: Number.isFinite(cfg.jitter) ? Math.min(Math.max(cfg.jitter, 0), 1) : Defaults.healthJitter,
    send: cfg.send ?? EMPTY,
    expect: cfg.expect,
  };
}

/** Delay before the next check: interval × (1 ± jitter·random), never below 1 ms. */
export function nextCheckDelay(intervalMs: number, jitter: number, random: () => number = Math.random): number {
  return Math.max(MIN_DELAY_MS, intervalMs * (1 + jitter * (2 * random() - 1)));
}

/** Delay before a backend's first check: anywhere in the first interval, so that the
 * checks of many backends (and of many pools) do not all start together. */
export function firstCheckDelay(intervalMs: number, random: () => number = Math.random): number {
  return Math.max(MIN_DELAY_MS, intervalMs * random());
}

/** Per-backend check state. */
interface Tracked {
  readonly backend: Backend;
  timer: NodeJS.Timeout | undefined;
  abort: AbortController | undefined;
  successes: number;
  failures: number;
  /** The passive ejection (its end time) the success streak is being counted against. */
  ejectionSeen: number;
}

/** Runs the active health checks of one pool; `start()` / `stop()` bound its life. */
export class ActiveHealthChecker {
  readonly #pool: Pool;
  readonly #log: Logger;
  readonly #now: () => number;
  readonly #onCheck: ActiveHealthCheckerOptions['onCheck'];
  readonly #tracked = new Map<Backend, Tracked>();
  #running = false;
  /** Whether the previous reconcile saw a health check configured. */
  #enabled = false;
  #sweepTimer: NodeJS.Timeout | undefined;
  #hook: ((added: Backend[]) => void) | undefined;
  #previousHook: ((added: Backend[]) => void) | undefined;
  #matcher: { expect: ExpectMatcher; compiled: CompiledMatcher } | undefined;

  constructor(pool: Pool, logger: Logger, options: ActiveHealthCheckerOptions = {}) {
    this.#pool = pool;
    this.#log = logger.child({ [LogFields.pool]: pool.name });
    this.#now = options.now ?? Date.now;
    this.#onCheck = options.onCheck;
  }

  /** True between start() and stop(). */
  get running(): boolean {
    return this.#running;
  }

  /**
   * Starts checking. Backends already in the pool keep their state (fresh ones are up);
   * backends added afterwards start down. Chains any existing `pool.onBackendsAdded`.
   */
  start(): void {
    if (this.#running) return;
    this.#running = true;
    this.#enabled = false;
    this.#previousHook = this.#pool.onBackendsAdded;
    const previous = this.#previousHook;
    this.#hook = (added) => {
      this.#onAdded(added);
      previous?.(added);
    };
    this.#pool.onBackendsAdded = this.#hook;
    this.#sweep();
  }

  /** Stops every timer and aborts in-flight checks; no timer or socket survives it. */
  stop(): void {
    if (!this.#running) return;
    this.#running = false;
    if (this.#sweepTimer) clearTimeout(this.#sweepTimer);
    this.#sweepTimer = undefined;
    for (const t of this.#tracked.values()) this.#cancel(t);
    this.#tracked.clear();
    // Restore the hook unless someone chained on top of ours since; ours is inert now.
    if (this.#pool.onBackendsAdded === this.#hook) this.#pool.onBackendsAdded = this.#previousHook;
    this.#hook = undefined;
    this.#previousHook = undefined;
  }

  /**
   * Re-reads the pool's health config and backend list now. The checker notices both on
   * its own within one interval (2s when no check is configured); a reload calls this to
   * apply them at once.
   */
  refresh(): void {
    if (this.#running) this.#reconcile();
  }

  /** Periodic reconcile: follows config changes and backend lists changed without the hook. */
  #sweep(): void {
    this.#sweepTimer = undefined;
    if (!this.#running) return;
    this.#reconcile();
    const cfg = this.#pool.config.healthCheck;
    const interval = cfg ? resolveHealthSettings(cfg).intervalMs : Defaults.healthIntervalMs;
    this.#sweepTimer = setTimeout(() => this.#sweep(), interval);
  }

  #reconcile(): void {
    const cfg = this.#pool.config.healthCheck;
    if (!cfg) {
      for (const t of this.#tracked.values()) this.#cancel(t);
      this.#tracked.clear();
      // `healthy` belongs to the active check; with no check, nothing may hold it down.
      if (this.#enabled) {
        for (const b of this.#pool.backends) {
          if (!b.healthy) this.#markUp(b, 'active health check removed from config');
        }
      }
      this.#enabled = false;
      return;
    }
    // Backends marked `check: false` are not probed (HAProxy checks only servers marked
    // `check`); one that stops being checked is no longer held down by old results.
    const current = new Set(this.#pool.backends.filter((b) => b.check));
    for (const t of this.#tracked.values()) {
      if (!current.has(t.backend)) {
        this.#forget(t);
        if (t.backend.check || !this.#pool.backends.includes(t.backend)) continue;
        t.backend.lastCheckOk = undefined;
        t.backend.lastError = undefined;
        if (!t.backend.healthy) this.#markUp(t.backend, 'health check turned off for this backend (check: false)');
      }
    }
    // Untracked backends are "present at start" when checks were just turned on, and
    // "added" when they appeared while checks ran (a list changed without the hook).
    const mode = this.#enabled ? 'added' : 'present';
    for (const b of current) {
      if (!this.#tracked.has(b)) this.#track(b, mode, cfg);
    }
    this.#enabled = true;
  }

  #onAdded(added: Backend[]): void {
    if (!this.#running) return;
    const cfg = this.#pool.config.healthCheck;
    if (!cfg) return;
    for (const b of added) {
      if (b.check && !this.#tracked.has(b)) this.#track(b, 'added', cfg);
    }
    // The same list change may have removed backends: drop them now, not at the next sweep.
    this.#reconcile();
  }

  #track(backend: Backend, mode: 'present' | 'added', cfg: ActiveHealthConfig): void {
    if (mode === 'added') {
      backend.healthy = false;
      backend.lastCheckOk = undefined;
      backend.lastError = 'waiting for health checks';
      this.#log.debug({ [LogFields.backend]: backend.name, [LogFields.backendAddress]: backend.address }, 'backend added: down until its health check passes');
    }
    const t: Tracked = { backend, timer: undefined, abort: undefined, successes: 0, failures: 0, ejectionSeen: 0 };
    this.#tracked.set(backend, t);
    this.#schedule(t, firstCheckDelay(resolveHealthSettings(cfg).intervalMs));
  }

  #schedule(t: Tracked, delayMs: number): void {
    t.timer = setTimeout(() => this.#run(t), delayMs);
  }

  #cancel(t: Tracked): void {
    if (t.timer) clearTimeout(t.timer);
    t.timer = undefined;
    t.abort?.abort();
    t.abort = undefined;
  }

  #forget(t: Tracked): void {
    this.#cancel(t);
    this.#tracked.delete(t.backend);
  }

  #run(t: Tracked): void {
    t.timer = undefined;
    if (!this.#running || this.#tracked.get(t.backend) !== t) return;
    if (!this.#pool.backends.includes(t.backend)) {
      this.#forget(t);
      return;
    }
    const cfg = this.#pool.config.healthCheck;
    if (!cfg) {
      // Checks were just turned off: idle until the sweep drops this backend, or resume
      // if they are turned back on before it does.
      this.#schedule(t, Defaults.healthIntervalMs);
      return;
    }
    const s = resolveHealthSettings(cfg);
    const ac = new AbortController();
    t.abort = ac;
    const { host, port } = t.backend;
    let check: Promise<void>;
    try {
      // `send-expect` without an expectation (the loader rejects it) degrades to a connect check.
      const preamble = checkPreamble(this.#pool.config.proxyProtocol);
      check =
        s.type === 'udp'
          ? udpCheck(host, port, s.send, s.expect && this.#compiled(s.expect), s.timeoutMs, ac.signal)
          : s.type === 'send-expect' && s.expect
            ? sendExpectCheck(host, port, s.send, this.#compiled(s.expect), s.timeoutMs, ac.signal, preamble)
            : tcpCheck(host, port, s.timeoutMs, ac.signal, preamble);
    } catch (err) {
      // An invalid expectation the loader let through: every check fails with the reason.
      check = Promise.reject(err);
    }
    check.then(
      () => this.#done(t, ac, undefined),
      (err: unknown) => this.#done(t, ac, errorReason(err)),
    );
  }

  #compiled(expect: ExpectMatcher): CompiledMatcher {
    if (this.#matcher?.expect !== expect) this.#matcher = { expect, compiled: compileMatcher(expect) };
    return this.#matcher.compiled;
  }

  #done(t: Tracked, ac: AbortController, failure: string | undefined): void {
    if (ac.signal.aborted || !this.#running || this.#tracked.get(t.backend) !== t) return;
    t.abort = undefined;
    const cfg = this.#pool.config.healthCheck;
    if (!cfg) {
      this.#schedule(t, Defaults.healthIntervalMs);
      return;
    }
    const s = resolveHealthSettings(cfg);
    this.#record(t, failure, s);
    this.#schedule(t, nextCheckDelay(s.intervalMs, s.jitter));
  }

  /** Applies one result: bookkeeping, then rise/fall and un-ejection. */
  #record(t: Tracked, failure: string | undefined, s: ResolvedHealthSettings): void {
    const b = t.backend;
    const now = this.#now();
    const ok = failure === undefined;
    b.lastCheckAt = now;
    b.lastCheckOk = ok;
    b.lastError = failure;
    this.#onCheck?.(b, ok, failure);

    // A passive ejection that started since we last looked: successes before it do not
    // vouch for the backend after it.
    if (b.ejectedUntil > now && b.ejectedUntil !== t.ejectionSeen) {
      t.ejectionSeen = b.ejectedUntil;
      t.successes = 0;
    }

    if (ok) {
      t.failures = 0;
      t.successes++;
      if (t.successes >= s.rise) {
        if (!b.healthy) this.#markUp(b, `health check passed ${s.rise} time(s) in a row`);
        else if (b.ejectedUntil > now) this.#unEject(b, `ejection lifted: health check passed ${s.rise} time(s) in a row`);
      }
    } else {
      t.successes = 0;
      t.failures++;
      this.#log.debug({ [LogFields.backend]: b.name, [LogFields.backendAddress]: b.address, [LogFields.reason]: failure }, 'health check failed');
      if (b.healthy && t.failures >= s.fall) this.#markDown(b, `health check failed ${s.fall} time(s) in a row: ${failure}`);
    }
  }

  #markUp(b: Backend, reason: string): void {
    b.healthy = true;
    this.#clearEjection(b);
    this.#log.debug({ [LogFields.backend]: b.name, [LogFields.backendAddress]: b.address, [LogFields.reason]: reason }, 'backend up');
    this.#pool.onStateChange?.(b, reason);
  }

  #unEject(b: Backend, reason: string): void {
    this.#clearEjection(b);
    this.#log.debug({ [LogFields.backend]: b.name, [LogFields.backendAddress]: b.address, [LogFields.reason]: reason }, 'backend un-ejected');
    this.#pool.onStateChange?.(b, reason);
  }

  /** Back in service: restart the slow-start ramp and forget the passive history. */
  #clearEjection(b: Backend): void {
    b.upSince = this.#now();
    b.ejectedUntil = 0;
    b.ejections = 0;
    b.consecutiveFailures = 0;
  }

  #markDown(b: Backend, reason: string): void {
    b.healthy = false;
    this.#log.debug({ [LogFields.backend]: b.name, [LogFields.backendAddress]: b.address, [LogFields.reason]: reason }, 'backend down');
    this.#pool.onStateChange?.(b, reason);
  }
}

function errorReason(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
