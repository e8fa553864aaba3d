/**
 * @module discovery/dns — a pool's backends from DNS: the A/AAAA records of one name (all
 * on one port), or the SRV records of a service (each with its own target, port, priority
 * and weight), looked up again when the records' TTL runs out.
 *
 * Choices (see docs/deployment.md, "DNS discovery"):
 * - A backend is one address and port, named `IP:PORT` (`[IPv6]:PORT`). Names are the
 *   identity Pool.setBackends keeps Backend objects by, and the key hash balancers build
 *   their tables on, so every l4lb instance that gets the same answer names the same
 *   backends the same way. An SRV target with several addresses gives one backend each.
 * - Refresh: after a good answer, the smallest TTL among the records, clamped to
 *   [minTtl, maxTtl]. Node's resolveSrv reports no TTL, so for SRV the TTL is the smallest
 *   among the targets' A/AAAA records (served by the same zone in practice: Kubernetes,
 *   Consul); SRV records whose targets are IP literals have no TTL at all and are read
 *   again after {@link DnsDefaults.noTtlRefreshMs} (clamped).
 * - SRV priority: the records with the lowest priority value are the primary backends,
 *   all others are backups (used only when no primary is available). l4lb has two tiers,
 *   so priorities beyond the second lowest share the backup tier.
 * - SRV weight: split evenly over the target's addresses. Backend weights must be > 0:
 *   when every record of a tier has weight 0 they all count as 1 (RFC 2782: equal
 *   chances); otherwise a weight-0 record gets {@link DnsDefaults.srvZeroWeightShare} of
 *   the tier's smallest positive weight (RFC 2782: "a very small chance").
 * - A failed lookup (resolver timeout or unreachable, SERVFAIL, REFUSED) and an empty
 *   answer (NXDOMAIN, or no address at all) are both failures: with `keepLastOnFailure`
 *   (the default) the pool keeps its last good set, otherwise it is emptied. A failure is
 *   logged (warn) and counted in {@link DnsDiscoveryStats}; lookups are retried after
 *   minTtl, doubling per failure in a row up to min(maxTtl, 30s).
 * - For SRV, a target whose name does not resolve (NXDOMAIN/NODATA) is left out; a
 *   target lookup that fails outright fails the whole lookup, so a flaky resolver never
 *   shrinks the pool.
 * - A backend's admin state (drain/disable through the admin API) survives a change of
 *   the record set; added backends go through the pool's `onBackendsAdded` (the active
 *   health checker starts them down until they pass `rise` checks), removed ones stop
 *   being picked while their open connections run on (they hold their Backend object).
 */
import { promises as dnsPromises } from 'node:dns';
import { isIP } from 'node:net';
import type { BackendConfig, DnsDiscoveryConfig } from '../config/types.js';
import type { Pool } from '../proxy/pool.js';
import type { Logger } from '../observability/log.js';
import { LogFields } from '../observability/log.js';
import { ErrorCodes, L4lbError } from '../errors.js';
import { formatHostPort } from '../util/address.js';

/** Defaults of DNS discovery not set in the config. */
export const DnsDefaults = {
  /** Time a resolver gets to answer one query attempt (c-ares doubles it per retry). */
  queryTimeoutMs: 2_000,
  /** Attempts per query and resolver before it fails. */
  tries: 2,
  /** Longest wait between retries after failures, when maxTtl is longer. */
  maxFailureRetryMs: 30_000,
  /** Refresh interval when no record carried a TTL (SRV with IP-literal targets). */
  noTtlRefreshMs: 30_000,
  /** Weight of a weight-0 SRV record, as a share of the smallest positive weight of its tier. */
  srvZeroWeightShare: 0.01,
} as const;

/** Counters and last results of one pool's discovery, for the admin API and metrics. */
export interface DnsDiscoveryStats {
  /** Lookups completed (successful or failed). */
  resolutions: number;
  /** Lookups that failed (resolver error, NXDOMAIN, no addresses). */
  failures: number;
  /** Failures since the last good answer. */
  consecutiveFailures: number;
  /** Good answers that changed the backend set (or a weight or tier). */
  changes: number;
  /** Message of the last failure, cleared by the next good answer. */
  lastError: string | undefined;
  /** When the last failure happened (ms since the epoch); 0 = never. */
  lastFailureAt: number;
  /** When the last good answer came (ms since the epoch); 0 = never. */
  lastSuccessAt: number;
  /** When the backend set last changed (ms since the epoch); 0 = never. */
  lastChangeAt: number;
  /** Backends in the last applied set. */
  backends: number;
  /** TTL-derived refresh interval after the last good answer, in ms. */
  refreshMs: number;
  /** When the next lookup is due (ms since the epoch); 0 = none scheduled. */
  nextLookupAt: number;
}

/** Options of {@link DnsDiscovery}. */
export interface DnsDiscoveryOptions {
  /** Per-attempt query timeout. Default {@link DnsDefaults.queryTimeoutMs}. */
  queryTimeoutMs?: number;
  /** Attempts per query. Default {@link DnsDefaults.tries}. */
  tries?: number;
  /** Called after every completed lookup (metrics hook). */
  onLookup?: (ok: boolean, stats: Readonly<DnsDiscoveryStats>) => void;
}

/** Why a lookup yielded no backends. */
type LookupFailureKind = 'nxdomain' | 'nodata' | 'resolver';

/** A lookup that failed; `kind` tells an empty answer from a resolver failure. */
export class DnsLookupError extends L4lbError {
  readonly kind: LookupFailureKind;
  /** The resolver's code (`ENOTFOUND`, `ETIMEOUT`, `ECONNREFUSED`...), when there is one. */
  readonly dnsCode: string | undefined;

  constructor(kind: LookupFailureKind, message: string, dnsCode?: string, options?: { cause?: unknown }) {
    super(ErrorCodes.DNS, 'backend', message, options);
    this.name = 'DnsLookupError';
    this.kind = kind;
    this.dnsCode = dnsCode;
  }
}

/** One address answer with its TTL in seconds. */
interface AddressRecord {
  address: string;
  ttl: number;
}

/** An SRV record as Node returns it. */
export interface SrvRecordLike {
  name: string;
  port: number;
  priority: number;
  weight: number;
}

/** The backends of one good answer and the refresh time its TTLs allow. */
interface Answer {
  backends: BackendConfig[];
  /** Smallest record TTL in ms; undefined when no record carried one. */
  ttlMs: number | undefined;
}

/** Clamps `value` into [min, max] (min wins when they cross). */
function clamp(value: number, min: number, max: number): number {
  return Math.max(min, Math.min(value, max));
}

/** Refresh delay after a good answer whose smallest TTL was `ttlMs`. */
export function refreshDelay(ttlMs: number | undefined, cfg: Pick<DnsDiscoveryConfig, 'minTtlMs' | 'maxTtlMs'>): number {
  return clamp(ttlMs ?? DnsDefaults.noTtlRefreshMs, cfg.minTtlMs, cfg.maxTtlMs);
}

/** Retry delay after the `failuresInRow`-th failure in a row (1-based): minTtl doubling. */
export function retryDelay(failuresInRow: number, cfg: Pick<DnsDiscoveryConfig, 'minTtlMs' | 'maxTtlMs'>): number {
  const cap = Math.min(cfg.maxTtlMs, DnsDefaults.maxFailureRetryMs);
  const grown = cfg.minTtlMs * 2 ** Math.min(Math.max(failuresInRow - 1, 0), 30);
  return Math.max(cfg.minTtlMs, Math.min(grown, cap));
}

/** A new backend as discovery builds it; admin state and maxconn are defaults. */
function backendConfig(host: string, port: number, weight: number, backup: boolean): BackendConfig {
  return { name: formatHostPort(host, port), host, port, weight, backup, state: 'enabled', maxConnections: 0, check: true };
}

/** Orders backends the same way whatever order the answer came in (primary first, by name). */
function sortBackends(list: BackendConfig[]): BackendConfig[] {
  return list.sort((a, b) => Number(a.backup) - Number(b.backup) || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/** Backends of an A/AAAA answer: every address on `port`, with the configured weight. */
export function addressBackends(addresses: readonly string[], port: number, weight: number): BackendConfig[] {
  const seen = new Map<string, BackendConfig>();
  for (const a of addresses) {
    const b = backendConfig(a, port, weight, false);
    seen.set(b.name, b);
  }
  return sortBackends([...seen.values()]);
}

/**
 * Backends of an SRV answer, given each target's addresses (targets missing from the map
 * or with no address are left out). Lowest priority = primary, the rest backups; weights
 * as described in the module doc; an address reached by several records keeps its best
 * tier and the sum of that tier's shares.
 */
export function srvBackends(records: readonly SrvRecordLike[], addressesOf: ReadonlyMap<string, readonly string[]>): BackendConfig[] {
  const usable = records.filter((r) => (addressesOf.get(normalizeTarget(r.name))?.length ?? 0) > 0);
  if (usable.length === 0) return [];
  let primaryPriority = Infinity;
  for (const r of usable) primaryPriority = Math.min(primaryPriority, r.priority);
  const tierWeight = new Map<boolean, { allZero: boolean; minPositive: number }>();
  for (const r of usable) {
    const backup = r.priority !== primaryPriority;
    const t = tierWeight.get(backup) ?? { allZero: true, minPositive: Infinity };
    if (r.weight > 0) {
      t.allZero = false;
      t.minPositive = Math.min(t.minPositive, r.weight);
    }
    tierWeight.set(backup, t);
  }
  const out = new Map<string, BackendConfig>();
  for (const r of usable) {
    const backup = r.priority !== primaryPriority;
    const t = tierWeight.get(backup)!;
    const weight = t.allZero ? 1 : r.weight > 0 ? r.weight : t.minPositive * DnsDefaults.srvZeroWeightShare;
    const addresses = [...new Set(addressesOf.get(normalizeTarget(r.name))!)];
    const share = weight / addresses.length;
    for (const a of addresses) {
      const b = backendConfig(a, r.port, share, backup);
      const prev = out.get(b.name);
      if (!prev || (prev.backup && !backup)) out.set(b.name, b);
      else if (prev.backup === backup) prev.weight += share;
    }
  }
  return sortBackends([...out.values()]);
}

/** SRV targets compare without the trailing dot and case-insensitively. */
function normalizeTarget(name: string): string {
  return name.replace(/\.$/, '').toLowerCase();
}

/** True when two backend lists (sorted) carry the same backends, weights and tiers. */
function sameBackends(a: readonly BackendConfig[], b: readonly BackendConfig[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) {
    if (a[i].name !== b[i].name || a[i].backup !== b[i].backup || Math.abs(a[i].weight - b[i].weight) > 1e-9) return false;
  }
  return true;
}

/** The code of a resolver error (`ENOTFOUND`, `ENODATA`, `ETIMEOUT`...). */
function dnsCode(err: unknown): string | undefined {
  const c = (err as { code?: unknown } | null)?.code;
  return typeof c === 'string' ? c : undefined;
}

/** Keeps one pool's backend set in line with DNS; `start()` / `stop()` bound its life. */
export class DnsDiscovery {
  /** The config this discovery runs with (the proxy compares it on reload). */
  readonly config: DnsDiscoveryConfig;
  readonly stats: DnsDiscoveryStats = {
    resolutions: 0,
    failures: 0,
    consecutiveFailures: 0,
    changes: 0,
    lastError: undefined,
    lastFailureAt: 0,
    lastSuccessAt: 0,
    lastChangeAt: 0,
    backends: 0,
    refreshMs: 0,
    nextLookupAt: 0,
  };
  readonly #pool: Pool;
  readonly #log: Logger;
  readonly #resolver: dnsPromises.Resolver;
  readonly #onLookup: DnsDiscoveryOptions['onLookup'];
  #running = false;
  #timer: NodeJS.Timeout | undefined;
  #inFlight: Promise<void> | undefined;
  /** The set applied last (sorted); undefined until the first good answer or emptying. */
  #applied: BackendConfig[] | undefined;

  constructor(pool: Pool, cfg: DnsDiscoveryConfig, logger: Logger, options: DnsDiscoveryOptions = {}) {
    if ((cfg.name === undefined) === (cfg.srv === undefined)) {
      throw new L4lbError(ErrorCodes.DNS, 'internal', `pool "${pool.name}": dns needs exactly one of name or srv`);
    }
    if (cfg.name !== undefined && cfg.port === undefined) {
      throw new L4lbError(ErrorCodes.DNS, 'internal', `pool "${pool.name}": dns.name needs dns.port`);
    }
    this.config = cfg;
    this.#pool = pool;
    this.#log = logger.child({ [LogFields.pool]: pool.name, dns: cfg.srv ?? cfg.name });
    this.#onLookup = options.onLookup;
    this.#resolver = new dnsPromises.Resolver({
      timeout: options.queryTimeoutMs ?? DnsDefaults.queryTimeoutMs,
      tries: options.tries ?? DnsDefaults.tries,
    });
    if (cfg.resolvers.length > 0) {
      try {
        this.#resolver.setServers(cfg.resolvers);
      } catch (err) {
        throw new L4lbError(ErrorCodes.DNS, 'internal', `pool "${pool.name}": bad dns.resolvers: ${(err as Error).message}`, { cause: err });
      }
    }
  }

  /** True between start() and stop(). */
  get running(): boolean {
    return this.#running;
  }

  /** The backend set applied last (empty before the first good answer). */
  get backends(): readonly BackendConfig[] {
    return this.#applied ?? [];
  }

  /**
   * Starts discovery: looks the records up now and keeps them fresh. Resolves when the
   * first lookup has finished, good or bad (never rejects); the pool keeps whatever
   * backends it has until a good answer comes.
   */
  start(): Promise<void> {
    if (this.#running) return this.#inFlight ?? Promise.resolve();
    this.#running = true;
    return this.#lookupNow();
  }

  /** Stops every timer and cancels queries in flight; the pool keeps its backends. */
  stop(): void {
    if (!this.#running) return;
    this.#running = false;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.stats.nextLookupAt = 0;
    this.#resolver.cancel();
  }

  /** Looks the records up now (admin "refresh"); joins a lookup already in flight. */
  refresh(): Promise<void> {
    if (!this.#running) return Promise.resolve();
    if (this.#inFlight) return this.#inFlight;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    return this.#lookupNow();
  }

  #lookupNow(): Promise<void> {
    const p = this.#lookup().finally(() => {
      if (this.#inFlight === p) this.#inFlight = undefined;
    });
    this.#inFlight = p;
    return p;
  }

  async #lookup(): Promise<void> {
    let answer: Answer;
    try {
      answer = await (this.config.srv !== undefined ? this.#lookupSrv(this.config.srv) : this.#lookupName(this.config.name!));
    } catch (err) {
      if (!this.#running) return;
      this.#failed(err);
      return;
    }
    if (!this.#running) return;
    this.#succeeded(answer);
  }

  #succeeded(answer: Answer): void {
    const s = this.stats;
    const now = Date.now();
    s.resolutions++;
    if (s.consecutiveFailures > 0) {
      this.#log.info({ failures: s.consecutiveFailures, backends: answer.backends.length }, 'dns discovery recovered');
    }
    s.consecutiveFailures = 0;
    s.lastError = undefined;
    s.lastSuccessAt = now;
    this.#apply(answer.backends, now);
    s.refreshMs = refreshDelay(answer.ttlMs, this.config);
    this.#schedule(s.refreshMs);
    this.#onLookup?.(true, s);
  }

  #failed(err: unknown): void {
    const s = this.stats;
    const now = Date.now();
    s.resolutions++;
    s.failures++;
    s.consecutiveFailures++;
    s.lastFailureAt = now;
    s.lastError = err instanceof Error ? err.message : String(err);
    const keep = this.config.keepLastOnFailure;
    const delay = retryDelay(s.consecutiveFailures, this.config);
    this.#log.warn(
      {
        [LogFields.err]: s.lastError,
        code: dnsCode(err) ?? (err instanceof DnsLookupError ? err.dnsCode : undefined),
        failuresInRow: s.consecutiveFailures,
        backends: this.#pool.backends.length,
        retryInMs: delay,
      },
      keep ? 'dns lookup failed; keeping the last good backend set' : 'dns lookup failed; pool emptied (keepLastOnFailure: false)',
    );
    if (!keep) this.#apply([], now);
    this.#schedule(delay);
    this.#onLookup?.(false, s);
  }

  /** Applies a backend set to the pool when it differs from the one applied last. */
  #apply(next: BackendConfig[], now: number): void {
    const prev = this.#applied;
    if (prev !== undefined && sameBackends(prev, next)) return;
    // Admin state and maxconn belong to the operator, not to DNS: keep them for backends that stay.
    const list = next.map((b) => {
      const cur = this.#pool.find(b.name);
      return cur && cur.host === b.host && cur.port === b.port
        ? { ...b, state: cur.admin, maxConnections: cur.maxConnections }
        : { ...b };
    });
    const before = new Set(this.#pool.backends.map((b) => b.name));
    const after = new Set(list.map((b) => b.name));
    const added = list.filter((b) => !before.has(b.name)).map((b) => b.name);
    const removed = [...before].filter((n) => !after.has(n));
    this.#pool.setBackends(list);
    this.#applied = next;
    this.stats.backends = next.length;
    this.stats.changes++;
    this.stats.lastChangeAt = now;
    this.#log.info({ backends: next.length, added, removed }, 'dns discovery: backend set changed');
  }

  #schedule(delayMs: number): void {
    if (!this.#running) return;
    if (this.#timer) clearTimeout(this.#timer);
    this.stats.nextLookupAt = Date.now() + delayMs;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      if (this.#running) void this.#lookupNow();
    }, delayMs);
    // Discovery alone must not keep a process alive once its listeners are closed.
    this.#timer.unref();
  }

  /** A and AAAA records of `name` (either may be NODATA); all on the configured port. */
  async #lookupName(name: string): Promise<Answer> {
    const { records, nxdomain } = await this.#addresses(name);
    if (nxdomain) throw new DnsLookupError('nxdomain', `${name}: NXDOMAIN (no such name)`, 'ENOTFOUND');
    if (records.length === 0) throw new DnsLookupError('nodata', `${name}: no A or AAAA records`, 'ENODATA');
    return {
      backends: addressBackends(records.map((r) => r.address), this.config.port!, this.config.weight),
      ttlMs: minTtlMs(records),
    };
  }

  /** SRV records of `name`, then the addresses of their targets. */
  async #lookupSrv(name: string): Promise<Answer> {
    let records: SrvRecordLike[];
    try {
      records = await this.#resolver.resolveSrv(name);
    } catch (err) {
      throw this.#classify(name, 'SRV', err);
    }
    // RFC 2782: a target of "." means the service is decidedly not available here.
    records = records.filter((r) => normalizeTarget(r.name) !== '');
    if (records.length === 0) throw new DnsLookupError('nodata', `${name}: no SRV records`, 'ENODATA');

    const targets = [...new Set(records.map((r) => normalizeTarget(r.name)))];
    const addressesOf = new Map<string, string[]>();
    const all: AddressRecord[] = [];
    const missing: string[] = [];
    await Promise.all(
      targets.map(async (t) => {
        if (isIP(t) !== 0) {
          addressesOf.set(t, [t]);
          return;
        }
        const { records: addrs } = await this.#addresses(t);
        if (addrs.length === 0) missing.push(t);
        addressesOf.set(t, addrs.map((a) => a.address));
        all.push(...addrs);
      }),
    );
    if (missing.length > 0) this.#log.warn({ targets: missing.sort() }, 'dns discovery: SRV targets without addresses left out');
    const backends = srvBackends(records, addressesOf);
    if (backends.length === 0) throw new DnsLookupError('nodata', `${name}: no SRV target has an address`, 'ENODATA');
    return { backends, ttlMs: minTtlMs(all) };
  }

  /**
   * A and AAAA records of `name`, asked together. NXDOMAIN and NODATA give no records
   * (the caller decides whether that is a failure; `nxdomain` is set when both queries
   * said the name does not exist). When one family fails otherwise (a server that answers
   * REFUSED for the family it has no record for: dnsmasq when not authoritative), what the
   * other family answered is used and the failure logged at debug level; the lookup fails
   * only when no family gave records.
   */
  async #addresses(name: string): Promise<{ records: AddressRecord[]; nxdomain: boolean }> {
    const results = await Promise.allSettled([
      this.#resolver.resolve4(name, { ttl: true }),
      this.#resolver.resolve6(name, { ttl: true }),
    ]);
    const records: AddressRecord[] = [];
    const failed: DnsLookupError[] = [];
    let nxdomain = 0;
    for (const [i, r] of results.entries()) {
      if (r.status === 'fulfilled') {
        records.push(...r.value);
        continue;
      }
      const code = dnsCode(r.reason);
      if (code === 'ENODATA') continue;
      if (code === 'ENOTFOUND') {
        nxdomain++;
        continue;
      }
      failed.push(this.#classify(name, i === 0 ? 'A' : 'AAAA', r.reason));
    }
    if (failed.length > 0) {
      if (records.length === 0) throw failed[0];
      for (const err of failed) this.#log.debug({ name, code: err.dnsCode, err: err.message }, 'dns discovery: one address family failed; using the other');
    }
    return { records, nxdomain: records.length === 0 && nxdomain === results.length };
  }

  #classify(name: string, type: string, err: unknown): DnsLookupError {
    const code = dnsCode(err);
    if (code === 'ENOTFOUND') return new DnsLookupError('nxdomain', `${name}: NXDOMAIN (no such name)`, code, { cause: err });
    if (code === 'ENODATA') return new DnsLookupError('nodata', `${name}: no ${type} records`, code, { cause: err });
    const what = err instanceof Error ? err.message : String(err);
    return new DnsLookupError('resolver', `${type} lookup of ${name} failed: ${code ?? what}`, code, { cause: err });
  }
}

/** Smallest TTL of `records` in ms; undefined when there are none. */
function minTtlMs(records: readonly AddressRecord[]): number | undefined {
  if (records.length === 0) return undefined;
  let min = Infinity;
  for (const r of records) min = Math.min(min, r.ttl);
  return min * 1000;
}
