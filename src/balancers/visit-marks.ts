/**
 * @module balancers/visit-marks — remembers which backends one pick already offered to `accept`.
 *
 * The `Balancer` contract allows one `accept` call per backend per pick. Balancers that
 * jump around (hash walks, weighted draws) must remember whom they asked, and a pick runs
 * for every connection, so the set must not allocate: each backend slot holds the number
 * of the pick that last marked it, and starting a pick only bumps that number.
 * Not reentrant: an `accept` that calls `pick` on the same balancer would reset the marks.
 */

/** Epoch value after which the marks are cleared and counting starts over. */
const MAX_EPOCH = 0xffff_fffe;

/** An allocation-free "already asked" set over backend indexes 0..size-1, reset per pick. */
export class VisitMarks {
  readonly #marks: Uint32Array;
  #epoch = 0;

  constructor(size: number) {
    this.#marks = new Uint32Array(size);
  }

  /** Forgets every mark; O(1) except once every ~4 billion picks. */
  reset(): void {
    if (this.#epoch >= MAX_EPOCH) {
      this.#marks.fill(0);
      this.#epoch = 0;
    }
    this.#epoch++;
  }

  /** True when `index` was marked since the last `reset`. */
  has(index: number): boolean {
    return this.#marks[index] === this.#epoch;
  }

  /** Marks `index` as asked. */
  add(index: number): void {
    this.#marks[index] = this.#epoch;
  }
}
