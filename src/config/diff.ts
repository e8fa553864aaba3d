/**
 * @module config/diff — what changed between two resolved configs, for hot reload.
 *
 * Things are matched by name. A listener whose address changed is reported as removed and
 * added (its socket must be closed and a new one opened); likewise a backend whose address
 * changed. A listener that only changed its name, on the same configured address (not port
 * 0), is "renamed": reload keeps its socket (proxy/listener-match.ts). Everything else that
 * differs is "changed", so reload can update it in place and keep the connections, health
 * state and counters of what stayed.
 */
import type { BackendConfig, Config, ListenerConfig, PoolConfig } from './types.js';

/** Names added, removed and changed in one collection. */
export interface NamedChanges {
  /** In the new config only (in its order). */
  added: string[];
  /** In the old config only (in its order). */
  removed: string[];
  /** In both, with different settings (in the new config's order). */
  changed: string[];
}

/** Listener changes: names added, removed and changed, and listeners renamed in place. */
export interface ListenerChanges extends NamedChanges {
  /**
   * Listeners whose name changed while their address (host and a port other than 0) stayed:
   * they keep their socket. Not in `added` or `removed`; also in `changed` (by the new name)
   * when other settings differ too.
   */
  renamed: Array<{ from: string; to: string }>;
}

/** Pool changes, with the detail reload needs to keep backend state. */
export interface PoolChanges extends NamedChanges {
  /** For each pool in `changed`: its backends added, removed and changed (by name). */
  backends: Record<string, NamedChanges>;
  /** Pools in `changed` whose settings other than the backend list differ (balancer, health, TLS...). */
  settingsChanged: string[];
}

/** Top-level settings that can differ between two configs. */
export type TopLevelSetting = 'workers' | 'maxConnections' | 'shutdown' | 'log' | 'admin' | 'faults';

/** The result of {@link diffConfig}. */
export interface ConfigDiff {
  listeners: ListenerChanges;
  pools: PoolChanges;
  /** Top-level settings that differ. */
  settings: TopLevelSetting[];
  /** True when anything at all differs. */
  hasChanges: boolean;
}

const TOP_LEVEL: readonly TopLevelSetting[] = ['workers', 'maxConnections', 'shutdown', 'log', 'admin', 'faults'];

/** Compares two resolved configs (a pure function; `file` is ignored). */
export function diffConfig(oldCfg: Config, newCfg: Config): ConfigDiff {
  const listeners = withRenames(diffNamed(oldCfg.listeners, newCfg.listeners, sameListenerIdentity), oldCfg.listeners, newCfg.listeners);
  const poolsBase = diffNamed(oldCfg.pools, newCfg.pools, () => true);
  const oldPools = new Map(oldCfg.pools.map((p) => [p.name, p]));
  const backends: Record<string, NamedChanges> = {};
  const settingsChanged: string[] = [];
  for (const name of poolsBase.changed) {
    const before = oldPools.get(name) as PoolConfig;
    const after = newCfg.pools.find((p) => p.name === name) as PoolConfig;
    backends[name] = diffNamed(before.backends, after.backends, sameBackendIdentity);
    if (!deepEqual(withoutBackends(before), withoutBackends(after))) settingsChanged.push(name);
  }
  const settings = TOP_LEVEL.filter((key) => !deepEqual(oldCfg[key], newCfg[key]));
  const hasChanges =
    settings.length > 0 ||
    listeners.renamed.length > 0 ||
    [listeners, poolsBase].some((c) => c.added.length + c.removed.length + c.changed.length > 0);
  return { listeners, pools: { ...poolsBase, backends, settingsChanged }, settings, hasChanges };
}

function sameListenerIdentity(a: ListenerConfig, b: ListenerConfig): boolean {
  return a.host === b.host && a.port === b.port;
}

/**
 * Pairs each removed listener with an added one on the same configured address (port 0 aside:
 * any free port is not an address) and turns the pair into a rename.
 */
function withRenames(d: NamedChanges, before: readonly ListenerConfig[], after: readonly ListenerConfig[]): ListenerChanges {
  const renamed: ListenerChanges['renamed'] = [];
  const added = new Set(d.added);
  const removed = new Set(d.removed);
  const changed = new Set(d.changed);
  for (const lc of after) {
    if (!added.has(lc.name) || lc.port === 0 || before.some((o) => o.name === lc.name)) continue;
    const old = before.find((o) => removed.has(o.name) && !after.some((n) => n.name === o.name) && sameListenerIdentity(o, lc));
    if (old === undefined) continue;
    renamed.push({ from: old.name, to: lc.name });
    added.delete(lc.name);
    removed.delete(old.name);
    if (!deepEqual({ ...old, name: lc.name }, lc)) changed.add(lc.name);
  }
  return {
    added: d.added.filter((n) => added.has(n)),
    removed: d.removed.filter((n) => removed.has(n)),
    changed: after.map((l) => l.name).filter((n) => changed.has(n)),
    renamed,
  };
}

function sameBackendIdentity(a: BackendConfig, b: BackendConfig): boolean {
  return a.host === b.host && a.port === b.port;
}

function withoutBackends(p: PoolConfig): Omit<PoolConfig, 'backends'> {
  const { backends: _backends, ...rest } = p;
  return rest;
}

/** Diffs two named lists; items failing `sameIdentity` count as removed and added. */
function diffNamed<T extends { name: string }>(
  before: readonly T[],
  after: readonly T[],
  sameIdentity: (a: T, b: T) => boolean,
): NamedChanges {
  const oldByName = new Map(before.map((x) => [x.name, x]));
  const newByName = new Map(after.map((x) => [x.name, x]));
  const replaced = new Set<string>();
  const changed: string[] = [];
  const added: string[] = [];
  for (const item of after) {
    const old = oldByName.get(item.name);
    if (old === undefined) added.push(item.name);
    else if (!sameIdentity(old, item)) {
      replaced.add(item.name);
      added.push(item.name);
    } else if (!deepEqual(old, item)) changed.push(item.name);
  }
  const removed = before.filter((x) => !newByName.has(x.name) || replaced.has(x.name)).map((x) => x.name);
  return { added, removed, changed };
}

/** Structural equality for config values: plain objects, arrays, Buffers, primitives. Keys set to `undefined` count as absent. */
export function deepEqual(a: unknown, b: unknown): boolean {
  if (Object.is(a, b)) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Buffer.isBuffer(a) || Buffer.isBuffer(b)) return Buffer.isBuffer(a) && Buffer.isBuffer(b) && a.equals(b);
  if (Array.isArray(a) || Array.isArray(b)) {
    return Array.isArray(a) && Array.isArray(b) && a.length === b.length && a.every((x, i) => deepEqual(x, b[i]));
  }
  const ra = a as Record<string, unknown>;
  const rb = b as Record<string, unknown>;
  const keys = new Set([...Object.keys(ra), ...Object.keys(rb)]);
  for (const key of keys) {
    if (!deepEqual(ra[key], rb[key])) return false;
  }
  return true;
}
