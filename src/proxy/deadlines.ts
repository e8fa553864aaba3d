/**
 * @module proxy/deadlines — inactivity deadlines for many connections with one timer per
 * duration, no allocation per connection and no work per byte.
 *
 * A Node Timeout per connection costs an object (~120 bytes held while the connection is
 * idle), a timer-list insert and remove, and a new one each time the limit changes (idle →
 * fin timeout). Connections here are nodes of an intrusive list per duration instead: all
 * entries of a list share the duration, so appending at the tail keeps it sorted by deadline
 * and one Node timer, armed for the head, serves the whole list.
 *
 * Activity is recorded lazily: an entry keeps the time of its last activity; when its deadline
 * comes and it was active since, it is moved to where its new deadline sorts (rare: once per
 * timeout period of an active connection), otherwise it expires. Deadlines fire within a
 * millisecond or two of (lastActive + duration), as socket.setTimeout does.
 */

/** A member of a {@link DeadlineList}: the dl* fields are the list's, the callback the owner's. */
export interface DeadlineEntry {
  dlPrev: DeadlineEntry | undefined;
  dlNext: DeadlineEntry | undefined;
  dlList: DeadlineList | undefined;
  /** When the entry was (re)queued: its place in the list is dlArmed + the list's duration. */
  dlArmed: number;
  /** performance.now() of the last activity, set by the owner; the real deadline is this + duration. */
  dlLastActive: number;
  /** The deadline passed without activity; the entry is already out of its list. */
  onDeadline(): void;
}

/** The list's fields of a {@link DeadlineEntry}, for classes to extend. */
export abstract class DeadlineEntryBase implements DeadlineEntry {
  dlPrev: DeadlineEntry | undefined = undefined;
  dlNext: DeadlineEntry | undefined = undefined;
  dlList: DeadlineList | undefined = undefined;
  dlArmed = 0;
  dlLastActive = 0;
  abstract onDeadline(): void;
}

/** Entries with the same inactivity limit, sorted by armed deadline. */
export class DeadlineList {
  readonly ms: number;
  #head: DeadlineEntry | undefined = undefined;
  #tail: DeadlineEntry | undefined = undefined;
  #size = 0;
  #timer: NodeJS.Timeout | undefined = undefined;
  /** When the armed timer fires (performance.now() time). */
  #timerAt = Infinity;

  constructor(ms: number) {
    this.ms = ms;
  }

  get size(): number {
    return this.#size;
  }

  /** Whether a Node timer is armed for this list (for tests and diagnostics). */
  get armed(): boolean {
    return this.#timer !== undefined;
  }

  /** Adds `e` (in no list) with its last activity now. */
  add(e: DeadlineEntry, now = performance.now()): void {
    e.dlArmed = e.dlLastActive = now;
    this.#insert(e);
    if (this.#head === e) this.#arm();
  }

  /** Takes `e` out of this list (a no-op if it is not in it). */
  remove(e: DeadlineEntry): void {
    if (e.dlList !== this) return;
    if (e.dlPrev) e.dlPrev.dlNext = e.dlNext;
    else this.#head = e.dlNext;
    if (e.dlNext) e.dlNext.dlPrev = e.dlPrev;
    else this.#tail = e.dlPrev;
    e.dlPrev = e.dlNext = e.dlList = undefined;
    this.#size--;
    // The timer stays armed when the head leaves, even when the list empties: firing early it
    // re-arms for the new head, or not at all. Re-arming on removal would cost a Node timer
    // per connection where connections come and go faster than the limit (connect timeouts).
  }

  /** Sorted insert, walking from the tail: new entries (armed now) land there at once. */
  #insert(e: DeadlineEntry): void {
    const armed = e.dlArmed;
    let after = this.#tail;
    while (after !== undefined && after.dlArmed > armed) after = after.dlPrev;
    e.dlList = this;
    e.dlPrev = after;
    e.dlNext = after ? after.dlNext : this.#head;
    if (e.dlNext) e.dlNext.dlPrev = e;
    else this.#tail = e;
    if (after) after.dlNext = e;
    else this.#head = e;
    this.#size++;
  }

  /** Arms the timer for the head, unless it is armed for that time or earlier already. */
  #arm(): void {
    const head = this.#head;
    if (head === undefined) return;
    const at = head.dlArmed + this.ms;
    if (this.#timer !== undefined && this.#timerAt <= at) return;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timerAt = at;
    this.#timer = setTimeout(fire, Math.max(1, Math.ceil(at - performance.now())), this);
    // Like socket timeouts, deadlines alone do not keep the process alive.
    this.#timer.unref();
  }

  /** @internal The timer fired: expire what is due, requeue what was active since, re-arm. */
  fire(): void {
    this.#timer = undefined;
    this.#timerAt = Infinity;
    // Timers fire on whole milliseconds of loop time: allow one for rounding.
    const due = performance.now() + 1;
    for (let e = this.#head; e !== undefined && e.dlArmed + this.ms <= due; e = this.#head) {
      this.remove(e);
      if (e.dlLastActive + this.ms <= due) {
        e.onDeadline();
      } else {
        e.dlArmed = e.dlLastActive;
        this.#insert(e);
      }
    }
    this.#arm();
  }
}

function fire(list: DeadlineList): void {
  list.fire();
}

const lists = new Map<number, DeadlineList>();

/** The shared list for inactivity limit `ms` (a handful exist: one per configured timeout). */
export function deadlineList(ms: number): DeadlineList {
  let l = lists.get(ms);
  if (l === undefined) {
    l = new DeadlineList(ms);
    lists.set(ms, l);
  }
  return l;
}
