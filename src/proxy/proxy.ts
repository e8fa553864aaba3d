/**
 * @module proxy/proxy — the running proxy: listeners, pools, health, reload, drain.
 *
 * `startProxy(config)` is the library entry point the CLI and tests use; it returns a
 * handle with the bound addresses, `reload`, `drain` and `close`.
 */
import type { Config, ListenerConfig } from '../config/types.js';
import { createLogger, type Logger } from '../observability/log.js';
import { ProcessStats } from '../observability/stats.js';
import { createAccessLog, type AccessLog } from '../observability/access-log.js';
import { formatHostPort } from '../util/address.js';
import { ActiveHealthChecker } from '../health/active.js';
import type { AccessRecord } from './connection.js';
import { ListenerRuntime, type ListenerHost } from './listener.js';
import { Pool } from './pool.js';

export interface StartOptions {
  /** Process logger; default: JSON lines on stderr at config.log.level. */
  logger?: Logger;
}

/** A bound listener's address. */
export interface BoundAddress {
  name: string;
  host: string;
  port: number;
  /** `HOST:PORT`, IPv6 in brackets. */
  address: string;
}

export class Proxy implements ListenerHost {
  config: Config;
  readonly logger: Logger;
  readonly pools = new Map<string, Pool>();
  readonly listeners = new Map<string, ListenerRuntime>();
  readonly stats = new ProcessStats();
  readonly #checkers = new Map<string, ActiveHealthChecker>();
  #access: AccessLog;
  /** Listeners removed by a reload whose connections are still draining. */
  readonly #retired = new Set<ListenerRuntime>();
  #closing = false;

  constructor(config: Config, options: StartOptions = {}) {
    this.config = config;
    this.logger = options.logger ?? createLogger(config.log.level);
    this.#access = createAccessLog(config.log.access, this.logger);
  }

  /** Creates pools and binds every listener; on a bind error, closes what it opened. */
  async start(): Promise<void> {
    for (const pc of this.config.pools) this.#addPool(pc);
    try {
      for (const lc of this.config.listeners) await this.#addListener(lc);
    } catch (err) {
      await this.close();
      throw err;
    }
    this.logger.info({ listeners: this.addresses().map((a) => a.address) }, 'l4lb started');
  }

  #addPool(pc: Config['pools'][number]): Pool {
    const pool = new Pool(pc);
    pool.onStateChange = (b, reason) =>
      this.logger.warn({ pool: pool.name, backend: b.address, state: b.state() }, reason);
    this.pools.set(pc.name, pool);
    if (pc.healthCheck) {
      const checker = new ActiveHealthChecker(pool, this.logger);
      this.#checkers.set(pc.name, checker);
      checker.start();
    }
    return pool;
  }

  #removePool(name: string): void {
    this.#checkers.get(name)?.stop();
    this.#checkers.delete(name);
    this.pools.delete(name);
  }

  async #addListener(lc: ListenerConfig): Promise<ListenerRuntime> {
    const l = new ListenerRuntime(lc, this);
    await l.listen();
    this.listeners.set(lc.name, l);
    return l;
  }

  /**
   * Applies a new config atomically. New (or moved) listeners are bound first; if any
   * bind fails, nothing changes and the error is thrown (the old config keeps serving).
   * Then, in one tick: pools are updated by name (backends keep their state by name),
   * listeners that stay keep their sockets and take the new settings for new
   * connections, removed listeners stop accepting and their connections drain.
   */
  async reload(next: Config): Promise<void> {
    const opened: ListenerRuntime[] = [];
    try {
      for (const lc of next.listeners) {
        const cur = this.listeners.get(lc.name);
        if (cur && cur.config.host === lc.host && cur.config.port === lc.port) continue;
        const l = new ListenerRuntime(lc, this);
        await l.listen();
        opened.push(l);
      }
    } catch (err) {
      await Promise.all(opened.map((l) => l.stopAccepting()));
      this.stats.reloadFailures++;
      throw err;
    }

    // --- from here on, synchronous: the switch is atomic for new connections ---
    const nextPools = new Set(next.pools.map((p) => p.name));
    for (const name of [...this.pools.keys()]) if (!nextPools.has(name)) this.#removePool(name);
    for (const pc of next.pools) {
      const pool = this.pools.get(pc.name);
      if (!pool) {
        this.#addPool(pc);
        continue;
      }
      const healthChanged = JSON.stringify(pool.config.healthCheck) !== JSON.stringify(pc.healthCheck);
      pool.update(pc);
      if (healthChanged) {
        this.#checkers.get(pc.name)?.stop();
        this.#checkers.delete(pc.name);
        if (pc.healthCheck) {
          const checker = new ActiveHealthChecker(pool, this.logger);
          this.#checkers.set(pc.name, checker);
          checker.start();
        }
      }
    }
    const nextListeners = new Map(next.listeners.map((l) => [l.name, l]));
    const retire: ListenerRuntime[] = [];
    for (const [name, l] of this.listeners) {
      const lc = nextListeners.get(name);
      if (lc && l.config.host === lc.host && l.config.port === lc.port) l.config = lc;
      else retire.push(l);
    }
    for (const l of retire) {
      this.listeners.delete(l.config.name);
      this.#retire(l);
    }
    for (const l of opened) this.listeners.set(l.config.name, l);
    // Keep config order.
    const ordered = next.listeners.map((lc) => [lc.name, this.listeners.get(lc.name)!] as const);
    this.listeners.clear();
    for (const [n, l] of ordered) this.listeners.set(n, l);
    if (next.log.access !== this.config.log.access) {
      this.#access.flush();
      this.#access = createAccessLog(next.log.access, this.logger);
    }
    if (next.log.level !== this.config.log.level) this.logger.level = next.log.level;
    this.config = next;
    this.stats.reloads++;
    this.logger.info(
      { listeners: this.addresses().map((a) => a.address), opened: opened.length, retired: retire.length },
      'config reloaded',
    );
  }

  #retire(l: ListenerRuntime): void {
    this.#retired.add(l);
    void l.stopAccepting();
    const check = setInterval(() => {
      if (l.connections.size === 0) {
        clearInterval(check);
        this.#retired.delete(l);
      }
    }, 250);
    check.unref();
  }

  /** Bound addresses, in config order. */
  addresses(): BoundAddress[] {
    return [...this.listeners.values()].map((l) => {
      const a = l.address!;
      return { name: l.config.name, host: a.host, port: a.port, address: formatHostPort(a.host, a.port) };
    });
  }

  // --- ListenerHost ---
  pool(name: string): Pool | undefined {
    return this.pools.get(name);
  }

  accessLog(rec: AccessRecord): void {
    this.#access.write(rec);
  }

  admitGlobal(): string | null {
    if (this.#closing) return 'shutdown';
    const max = this.config.maxConnections;
    if (max > 0 && this.activeConnections() >= max) return 'global_limit';
    return null;
  }

  countAcceptError(): void {
    this.stats.acceptErrors++;
  }

  /** Connections open right now, over all listeners (including retired ones). */
  activeConnections(): number {
    let n = 0;
    for (const l of this.listeners.values()) n += l.connections.size;
    for (const l of this.#retired) n += l.connections.size;
    return n;
  }

  /** Reopens the access-log file (SIGUSR1). */
  reopenLogs(): void {
    this.#access.reopen();
  }

  /**
   * Stops accepting, waits up to `timeoutMs` for connections to finish, then closes
   * the rest spread over `spreadMs` so clients don't all reconnect at once.
   */
  async drain(timeoutMs = this.config.shutdown.drainTimeoutMs, spreadMs = this.config.shutdown.closeSpreadMs): Promise<void> {
    this.#closing = true;
    await Promise.all([...this.listeners.values()].map((l) => l.stopAccepting()));
    for (const c of this.#checkers.values()) c.stop();
    const deadline = Date.now() + timeoutMs;
    while (this.activeConnections() > 0 && Date.now() < deadline) {
      await sleep(Math.min(100, Math.max(1, deadline - Date.now())));
    }
    const rest = this.#allConnections();
    if (rest.length > 0) {
      this.logger.info({ remaining: rest.length, spreadMs }, 'drain timeout reached, closing remaining connections');
      const step = rest.length > 1 ? spreadMs / rest.length : 0;
      for (let i = 0; i < rest.length; i++) {
        if (step > 0 && i > 0) await sleep(step);
        rest[i].stop('shutdown');
      }
    }
    this.#access.flush();
  }

  #allConnections() {
    const out = [];
    for (const l of this.listeners.values()) out.push(...l.connections);
    for (const l of this.#retired) out.push(...l.connections);
    return out;
  }

  /** Closes everything now: listeners, connections, health checks. */
  async close(): Promise<void> {
    this.#closing = true;
    for (const c of this.#checkers.values()) c.stop();
    this.#checkers.clear();
    await Promise.all([...this.listeners.values(), ...this.#retired].map((l) => l.stopAccepting()));
    for (const c of this.#allConnections()) c.stop('shutdown');
    this.#access.flush();
  }
}

/** Starts a proxy for `config`; resolves once every listener is bound. */
export async function startProxy(config: Config, options: StartOptions = {}): Promise<Proxy> {
  const proxy = new Proxy(config, options);
  await proxy.start();
  return proxy;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
