/**
 * @module udp/listeners — the proxy's UDP listeners: start, atomic reload, drain, close.
 *
 * Kept apart from the TCP listeners so that proxy/proxy.ts only calls in at a few points.
 * Reload rules are the TCP ones: new (or moved) listeners are bound first and nothing changes
 * if one fails; listeners that stay keep their socket and live sessions (each on its backend)
 * and take the new settings for new sessions; removed ones stop taking sessions and close once
 * their last session has ended (they keep their socket until then: replies leave through it).
 */
import type { ListenerConfig } from '../config/types.js';
import { UdpListener, type UdpListenerHost } from './listener.js';

/** How often a retired listener checks whether its last session has gone. */
const RETIRED_CHECK_MS = 250;

/** A reload prepared by {@link UdpListeners.prepare}: commit applies it, abort undoes it. */
export interface PreparedUdpReload {
  commit(): { opened: number; retired: number };
  abort(): void;
}

export class UdpListeners {
  readonly #host: UdpListenerHost;
  /** Live listeners by name. */
  readonly map = new Map<string, UdpListener>();
  /** Listeners removed by a reload whose sessions are still running. */
  readonly #retired = new Map<UdpListener, NodeJS.Timeout>();

  constructor(host: UdpListenerHost) {
    this.#host = host;
  }

  /** Binds the UDP listeners of `configs` (the others are skipped); throws on a bind error. */
  async start(configs: readonly ListenerConfig[]): Promise<void> {
    for (const lc of configs) {
      if (lc.protocol !== 'udp') continue;
      const l = new UdpListener(lc, this.#host);
      this.map.set(lc.name, l);
      await l.listen();
    }
  }

  /** Binds what `next` adds and compiles what stays; throws (having closed what it bound) on failure. */
  async prepare(next: readonly ListenerConfig[]): Promise<PreparedUdpReload> {
    const wanted = next.filter((lc) => lc.protocol === 'udp');
    const opened: UdpListener[] = [];
    const compiled = new Map<UdpListener, { lc: ListenerConfig; policy: ReturnType<UdpListener['compile']> }>();
    try {
      for (const lc of wanted) {
        const cur = this.map.get(lc.name);
        if (cur && cur.config.host === lc.host && cur.config.port === lc.port) {
          compiled.set(cur, { lc, policy: cur.compile(lc) });
          continue;
        }
        const l = new UdpListener(lc, this.#host);
        opened.push(l);
        await l.listen();
      }
    } catch (err) {
      for (const l of opened) l.close();
      throw err;
    }
    return {
      abort: () => {
        for (const l of opened) l.close();
      },
      commit: () => {
        let retired = 0;
        for (const [name, l] of this.map) {
          const c = compiled.get(l);
          if (c) {
            l.apply(c.lc, c.policy);
            continue;
          }
          this.map.delete(name);
          this.#retire(l);
          retired++;
        }
        for (const l of opened) this.map.set(l.config.name, l);
        return { opened: opened.length, retired };
      },
    };
  }

  #retire(l: UdpListener): void {
    l.stopAccepting();
    const check = setInterval(() => {
      if (l.sessions.size > 0) return;
      clearInterval(check);
      this.#retired.delete(l);
      l.close();
    }, RETIRED_CHECK_MS);
    check.unref();
    this.#retired.set(l, check);
  }

  /** Every listener, retired ones included. */
  *all(): IterableIterator<UdpListener> {
    yield* this.map.values();
    yield* this.#retired.keys();
  }

  /** Live sessions over every listener. */
  sessionCount(): number {
    let n = 0;
    for (const l of this.all()) n += l.sessions.size;
    return n;
  }

  flushLiveBytes(): void {
    for (const l of this.all()) l.flushLiveBytes();
  }

  /** Drain: no new session anywhere. */
  stopAccepting(): void {
    for (const l of this.all()) l.stopAccepting();
  }

  /** Ends every live session now. */
  stopSessions(): void {
    for (const l of this.all()) l.stopSessions('shutdown');
  }

  /** Closes every listener and session. */
  close(): void {
    for (const [l, timer] of this.#retired) {
      clearInterval(timer);
      l.close();
    }
    this.#retired.clear();
    for (const l of this.map.values()) l.close();
  }
}
