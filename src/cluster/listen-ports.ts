/**
 * @module cluster/listen-ports — the primary's hold on the listening ports (see cluster/ports.ts
 * for why it binds them before the workers do).
 *
 * At start and when a reload adds or moves a listener, each address is test-bound once here,
 * so what would fail in every worker fails once, before any worker changes anything. Port-0
 * listeners get their port here; workers bind that port. In `reuseport` mode the socket of a
 * port-0 listener stays open until the workers have bound next to it ({@link release}). In
 * `shared` mode the socket of a TCP port-0 listener is bound without listening and kept while
 * the port is in force (until a reload drops the listener, or {@link close}), so that no one
 * can take the port before node:cluster binds it, nor while every worker is down and
 * restarting. `protocol: udp` listeners are bound with UDP sockets (TCP and UDP ports are
 * separate spaces), and a reload keeps a listener's port only for a listener of the same
 * protocol.
 */
import type { ListenerConfig } from '../config/types.js';
import type { BoundAddress } from '../proxy/proxy.js';
import { matchListeners } from '../proxy/listener-match.js';
import { formatHostPort } from '../util/address.js';
import { holdFreePort, reservePort, type PortHold } from './ports.js';

export class ListenPorts {
  readonly #reuse: boolean;
  /** Resolved ports of port-0 listeners, by listener name, for the config in force. */
  #ports = new Map<string, number>();
  /** Sockets held for port-0 listeners until the workers have bound (reuseport mode). */
  #holds: PortHold[] = [];
  /** Shared mode: bound, not listening sockets of TCP port-0 listeners, by port, kept while in force. */
  #kept = new Map<number, PortHold>();

  /** `reuse`: the workers bind with SO_REUSEPORT (ports of port-0 listeners are held). */
  constructor(reuse: boolean) {
    this.#reuse = reuse;
  }

  /** Resolved ports of port-0 listeners of the config in force, by listener name. */
  get ports(): ReadonlyMap<string, number> {
    return this.#ports;
  }

  /** Test-binds every listener of the first config. On failure, releases what it bound. */
  async reserve(listeners: readonly ListenerConfig[]): Promise<void> {
    try {
      for (const lc of listeners) {
        const h = await this.#bind(lc);
        if (lc.port === 0) this.#ports.set(lc.name, h.port);
      }
    } catch (err) {
      await this.close();
      throw err;
    }
  }

  /**
   * The resolved ports for `next`, binding what a reload from `current` adds or moves
   * (held until {@link release}); listeners that keep their socket keep their port (the rule
   * of proxy/listener-match.ts). Does not change the ports in force: {@link use} does.
   */
  async reserveFor(next: readonly ListenerConfig[], current: readonly ListenerConfig[]): Promise<Map<string, number>> {
    const ports = new Map<string, number>();
    const match = matchByProtocol(next, current, this.#ports);
    try {
      for (const [i, lc] of next.entries()) {
        const m = match[i];
        if (m !== undefined) {
          if (lc.port === 0) ports.set(lc.name, m.port || this.#ports.get(m.name)!);
          continue;
        }
        const h = await this.#bind(lc);
        if (lc.port === 0) ports.set(lc.name, h.port);
      }
    } catch (err) {
      await this.release();
      throw err;
    }
    return ports;
  }

  /** Makes `ports` (from {@link reserveFor}) the ports in force. */
  use(ports: Map<string, number>): void {
    this.#ports = ports;
  }

  /** Addresses as configured, with resolved ports (when no worker could report them). */
  expectedAddresses(listeners: readonly ListenerConfig[]): BoundAddress[] {
    return listeners.map((lc) => {
      const port = this.#ports.get(lc.name) ?? lc.port;
      const udp = lc.protocol === 'udp';
      const host = lc.host || (udp ? '::' : '0.0.0.0');
      return { name: lc.name, host, port, address: formatHostPort(host, port), ...(udp && { protocol: 'udp' as const }) };
    });
  }

  /**
   * Ends a reservation (once the workers have bound, or when giving up): closes the sockets
   * held for it, except, in shared mode, those of ports still in force ({@link use}).
   */
  async release(): Promise<void> {
    const holds = this.#holds;
    this.#holds = [];
    const inForce = new Set(this.#ports.values());
    for (const [port, h] of this.#kept) {
      if (inForce.has(port)) continue;
      this.#kept.delete(port);
      holds.push(h);
    }
    await Promise.all(holds.map((h) => h.release()));
  }

  /** Closes every socket held (the cluster is closing or failed to start). */
  async close(): Promise<void> {
    this.#ports = new Map();
    await this.release();
  }

  async #bind(lc: ListenerConfig): Promise<PortHold> {
    if (lc.port === 0 && !this.#reuse && lc.protocol !== 'udp') {
      const h = await holdFreePort(lc.host);
      if (h !== undefined) {
        this.#kept.set(h.port, h);
        return h;
      }
    }
    const hold = this.#reuse && lc.port === 0;
    const h = await reservePort(lc.host, lc.port, hold, hold, lc.protocol === 'udp');
    this.#holds.push(h);
    return h;
  }
}

/**
 * For each listener of `next`, the listener of `current` whose socket (and port) it keeps:
 * {@link matchListeners} within each protocol, so a TCP listener never takes a UDP one's port.
 */
function matchByProtocol(
  next: readonly ListenerConfig[],
  current: readonly ListenerConfig[],
  resolved: ReadonlyMap<string, number>,
): (ListenerConfig | undefined)[] {
  const out: (ListenerConfig | undefined)[] = next.map(() => undefined);
  for (const udp of [false, true]) {
    const same = (l: ListenerConfig) => (l.protocol === 'udp') === udp;
    const nextIdx = next.flatMap((l, i) => (same(l) ? [i] : []));
    const cur = current.filter(same);
    const match = matchListeners(
      nextIdx.map((i) => next[i]),
      cur.map((l) => ({ name: l.name, host: l.host, port: l.port, boundPort: l.port || resolved.get(l.name) })),
    );
    match.forEach((m, k) => {
      if (m !== undefined) out[nextIdx[k]] = cur[m];
    });
  }
  return out;
}
