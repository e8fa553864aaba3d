/**
 * @module admin/events — a bounded ring of recent notable events (backend state changes,
 * connect failures, reloads, admin actions) for the status API and the dashboard.
 */
import type { RecentEvent } from './status.js';

/** Events kept by default; old ones fall off. */
export const DEFAULT_EVENT_CAPACITY = 100;

/** A fixed-size ring buffer of {@link RecentEvent}s with increasing ids. */
export class EventRing {
  readonly capacity: number;
  readonly #items: RecentEvent[] = [];
  #start = 0;
  #nextId = 1;

  constructor(capacity = DEFAULT_EVENT_CAPACITY) {
    this.capacity = Math.max(1, capacity);
  }

  /** Adds an event, dropping the oldest when full; returns it. */
  push(e: Omit<RecentEvent, 'id' | 'at'> & { at?: number }): RecentEvent {
    const ev: RecentEvent = { id: this.#nextId++, at: e.at ?? Date.now(), level: e.level, message: e.message };
    if (e.pool !== undefined) ev.pool = e.pool;
    if (e.backend !== undefined) ev.backend = e.backend;
    if (this.#items.length < this.capacity) this.#items.push(ev);
    else {
      this.#items[this.#start] = ev;
      this.#start = (this.#start + 1) % this.capacity;
    }
    return ev;
  }

  /** The events, oldest first. */
  list(): RecentEvent[] {
    return [...this.#items.slice(this.#start), ...this.#items.slice(0, this.#start)];
  }

  get size(): number {
    return this.#items.length;
  }
}
