/**
 * @module proxy/connection-set — the set of a listener's live connections, without a hash table.
 *
 * Why not a `Set`: a Set that lives long enough to be in V8's old generation allocates every
 * rehashed table there too, and a Set with connections coming and going rehashes every few
 * hundred adds. Each obsolete table keeps pointing at the connections that were live when it
 * was replaced; until the next full GC those dead tables count as roots for young-generation
 * GCs, so the connections they point at — and everything a connection references — are
 * promoted instead of dying young. Measured: at 7,000 connections/s every young GC promoted
 * ~2 MB and took ~5 ms instead of ~0.8 ms (docs/performance.md, "Profiles").
 *
 * An array with swap-remove has no obsolete tables in steady state: removing clears the slot,
 * and the backing store is only replaced when the array grows past its largest size so far.
 * Each member records its slot in a symbol-keyed property.
 */

const kSlot = Symbol('l4lb.connectionSlot');
type Slotted = { [kSlot]?: number };

/**
 * A set of objects with O(1) add and delete and the part of the Set API the proxy uses. An
 * object belongs to one ConnectionSet at a time (its slot is stored on it).
 */
export class ConnectionSet<T extends object> implements Iterable<T> {
  readonly #items: T[] = [];

  get size(): number {
    return this.#items.length;
  }

  add(item: T): this {
    const s = item as T & Slotted;
    if (s[kSlot] !== undefined) return this;
    s[kSlot] = this.#items.length;
    this.#items.push(item);
    return this;
  }

  has(item: T): boolean {
    const i = (item as T & Slotted)[kSlot];
    return i !== undefined && this.#items[i] === item;
  }

  delete(item: T): boolean {
    const s = item as T & Slotted;
    const i = s[kSlot];
    if (i === undefined || this.#items[i] !== item) return false;
    s[kSlot] = undefined;
    const last = this.#items.pop()!;
    if (last !== item) {
      this.#items[i] = last;
      (last as T & Slotted)[kSlot] = i;
    }
    return true;
  }

  /** Iterates over a copy: members may be added or deleted meanwhile (stop() deletes). */
  [Symbol.iterator](): Iterator<T> {
    return this.#items.slice()[Symbol.iterator]();
  }
}
