/**
 * @module discovery/manager — the discoveries of all of a proxy's pools: started with a
 * pool, restarted when its `dns` config changes on reload, stopped with it.
 *
 * A discovered pool's backends come from DNS, not from its config, so a reload must not
 * apply the config's (empty) backend list: the pool keeps the backends it has — with
 * their health and counters — until the next good answer replaces them. The same holds
 * when a reload turns a static pool into a discovered one: the static backends serve
 * until DNS answers.
 */
import type { BackendConfig, DnsDiscoveryConfig, PoolConfig } from '../config/types.js';
import type { Pool } from '../proxy/pool.js';
import type { Logger } from '../observability/log.js';
import { DnsDefaults, DnsDiscovery, type DnsDiscoveryOptions, type DnsDiscoveryStats } from './dns.js';

/** How long startup waits for the first DNS answers before listening anyway. */
export const DISCOVERY_START_WAIT_MS = DnsDefaults.queryTimeoutMs;

/** The backends a pool has now, as configs (to keep them across a config update). */
export function currentBackendConfigs(pool: Pool): BackendConfig[] {
  return pool.backends.map((b) => b.toConfig());
}

/** True when two dns configs ask the same thing the same way. */
function sameDns(a: DnsDiscoveryConfig, b: DnsDiscoveryConfig): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

/** Runs one {@link DnsDiscovery} per discovered pool. */
export class PoolDiscoveries {
  readonly #log: Logger;
  readonly #options: DnsDiscoveryOptions;
  readonly #dns = new Map<string, DnsDiscovery>();
  /** First lookups not finished yet (startup waits on them, briefly). */
  readonly #pending = new Set<Promise<void>>();

  constructor(logger: Logger, options: DnsDiscoveryOptions = {}) {
    this.#log = logger;
    this.#options = options;
  }

  /**
   * Starts discovery for a pool whose config has `dns`. Returns its first lookup (which
   * never rejects), or `undefined` for a static pool.
   */
  start(pool: Pool): Promise<void> | undefined {
    const cfg = pool.config.dns;
    if (!cfg) return undefined;
    this.stop(pool.name);
    const d = new DnsDiscovery(pool, cfg, this.#log, this.#options);
    this.#dns.set(pool.name, d);
    const first = d.start();
    this.#pending.add(first);
    void first.finally(() => this.#pending.delete(first));
    return first;
  }

  /**
   * Applies a reloaded config to an existing pool, in place of `pool.update(pc)`: a static
   * pool takes the config's backends; a discovered one keeps its current backends and its
   * discovery, which is restarted only when the `dns` settings changed.
   */
  update(pool: Pool, pc: PoolConfig): void {
    const cur = this.#dns.get(pc.name);
    if (!pc.dns) {
      if (cur) this.stop(pc.name);
      pool.update(pc);
      return;
    }
    pool.update(pc, currentBackendConfigs(pool));
    if (cur && cur.running && sameDns(cur.config, pc.dns)) return;
    void this.start(pool);
  }

  /** Stops the discovery of a pool (removed, or no longer discovered). */
  stop(name: string): void {
    this.#dns.get(name)?.stop();
    this.#dns.delete(name);
  }

  /** Stops every discovery (shutdown). */
  stopAll(): void {
    for (const d of this.#dns.values()) d.stop();
    this.#dns.clear();
  }

  /** The discovery of a pool, if it has one. */
  get(name: string): DnsDiscovery | undefined {
    return this.#dns.get(name);
  }

  /** Stats of every discovered pool, by pool name (admin API, metrics). */
  stats(): Record<string, Readonly<DnsDiscoveryStats>> {
    const out: Record<string, DnsDiscoveryStats> = {};
    for (const [name, d] of this.#dns) out[name] = { ...d.stats };
    return out;
  }

  /** Waits until the first lookups in flight are done, or `timeoutMs` passed. */
  async settled(timeoutMs: number): Promise<void> {
    if (this.#pending.size === 0) return;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.all([...this.#pending]),
      new Promise<void>((r) => {
        timer = setTimeout(r, timeoutMs);
      }),
    ]);
    clearTimeout(timer);
  }
}
