/**
 * @module faults/registry — the process's fault tables, by listener name, and the listeners
 * the fault API made (Toxiproxy's "create proxy").
 *
 * Tables outlive reloads (a listener keeps its toxics when the file is reloaded), except that
 * a reload which changes a listener's `faults:` replaces that listener's toxics with the new
 * ones. Listeners the API made are added to every config the proxy applies, so a reload from
 * the file keeps them, unless the file now has a listener or pool of the same name (the file
 * wins).
 */
import type { Config, ListenerConfig, PoolConfig } from '../config/types.js';
import { ListenerFaults } from './table.js';
import type { ToxicSpec } from './toxics.js';

/** A listener made through the fault API, with its one-backend pool. */
export interface MadeProxy {
  listener: ListenerConfig;
  pool: PoolConfig;
  /** `upstream` as the client wrote it (shown back unchanged, as Toxiproxy does). */
  upstream: string;
}

/** Copies a toxic so that a table's changes never touch the config it came from. */
function copyToxic(t: ToxicSpec): ToxicSpec {
  return { ...t, attributes: { ...t.attributes } };
}

export class FaultRegistry {
  /** The fault API is on: every TCP listener carries a table, so toxics added later act on open connections. */
  readonly armed: boolean;
  readonly #tables = new Map<string, ListenerFaults>();
  readonly #made = new Map<string, MadeProxy>();
  /** The made configs merged into the config in force, to tell them from the file's. */
  readonly #merged = new WeakSet<object>();

  constructor(armed: boolean) {
    this.armed = armed;
  }

  /**
   * The table of a listener with config `lc` (ListenerRuntime), or undefined when no fault can
   * reach it: the API is off, its config has no `faults:` and it never had a table.
   */
  tableFor(lc: ListenerConfig): ListenerFaults | undefined {
    let t = this.#tables.get(lc.name);
    if (t === undefined) {
      if (!this.armed && lc.faults === undefined) return undefined;
      t = new ListenerFaults(lc.name);
      this.#tables.set(lc.name, t);
    }
    const configured = JSON.stringify(lc.faults ?? []);
    if (configured !== t.configured) {
      t.configured = configured;
      t.replace((lc.faults ?? []).map(copyToxic));
    }
    return t;
  }

  /** A listener's table, if it has one. */
  get(name: string): ListenerFaults | undefined {
    return this.#tables.get(name);
  }

  /** Every table, by listener name. */
  tables(): ReadonlyMap<string, ListenerFaults> {
    return this.#tables;
  }

  /** Forgets a listener's table (the API deleted the listener). */
  forget(name: string): void {
    this.#tables.delete(name);
  }

  /** A listener the API made, by name. */
  made(name: string): MadeProxy | undefined {
    return this.#made.get(name);
  }

  setMade(name: string, m: MadeProxy | undefined): void {
    if (m === undefined) this.#made.delete(name);
    else this.#made.set(name, m);
  }

  /**
   * `next` with the API's listeners and pools in it (Proxy#reload applies this). Those of an
   * earlier merge are replaced by the current ones; a name the config itself uses wins.
   */
  withMade(next: Config): Config {
    if (this.#made.size === 0 && !next.listeners.some((l) => this.#merged.has(l))) return next;
    const listeners = next.listeners.filter((l) => !this.#merged.has(l));
    const pools = next.pools.filter((p) => !this.#merged.has(p));
    for (const m of this.#made.values()) {
      if (listeners.some((l) => l.name === m.listener.name) || pools.some((p) => p.name === m.pool.name)) continue;
      this.#merged.add(m.listener);
      this.#merged.add(m.pool);
      listeners.push(m.listener);
      pools.push(m.pool);
    }
    return { ...next, listeners, pools };
  }
}
