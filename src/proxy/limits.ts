/**
 * @module proxy/limits — connection limits at accept time, and running out of file descriptors.
 *
 * **Why an in-process accept queue.** HAProxy's `maxconn` stops polling the listening socket, so
 * new connections wait in the kernel's accept backlog. Node has no API for that. The tempting
 * `server._handle.readStop()/readStart()` does not work on a listening handle: libuv never marks a
 * listening stream as "reading", so `readStop()` returns 0 and changes nothing, and `readStart()`
 * fails with ENOTCONN (measured on Node 20 and 24). Closing and re-binding the listening socket
 * would drop everything in its backlog. So `overLimit: queue` accepts the connection and holds the
 * socket, paused (no read, no timer), in a bounded FIFO until a slot frees. To the client this is
 * what the kernel backlog gives: the TCP handshake completed, no byte read yet. The differences:
 * each held connection costs one file descriptor, and the queue is bounded by
 * {@link ACCEPT_QUEUE_MAX} per listener; beyond it connections are rejected (accepted and closed).
 *
 * **EMFILE.** When the process runs out of descriptors, libuv's accept path closes a reserved
 * descriptor, accepts each pending connection and closes it at once, then reopens the reserve
 * (the "EMFILE trick"). It does not spin and it does not tell Node: no 'error' event. What l4lb
 * does see is the outgoing side: a backend dial fails with EMFILE/ENFILE. Those are counted and
 * logged (rate-limited) here, and must not count against the backend's health. To catch the
 * silent case too, {@link FdPressure} looks at /proc/self/fd every few seconds (Linux) and warns
 * when nearly every descriptor is in use, as nginx warns that worker_connections are not enough.
 */
import { readFileSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import type { DataSocket } from './data-socket.js';
import { noop } from '../util/noop.js';
import type { Logger } from '../observability/log.js';
import { RateLimitedLog } from '../admission/source-limits.js';

/** Connections one listener may hold waiting for a slot (the default listen backlog is the same). */
export const ACCEPT_QUEUE_MAX = 4096;

/** One line per this interval at most for "out of file descriptors" (plus a count of the others). */
export const FD_LOG_INTERVAL_MS = 5_000;

/** How often descriptors in use are counted (Linux only; one readdir of /proc/self/fd). */
export const FD_CHECK_INTERVAL_MS = 5_000;

/** Share of the descriptor limit in use above which l4lb warns. */
export const FD_WARN_RATIO = 0.95;

/** Errno codes meaning the process or the system is out of file descriptors. */
const FD_EXHAUSTED = new Set(['EMFILE', 'ENFILE']);

/** True when `err` (or its cause) says the process or system ran out of file descriptors. */
export function isFdExhausted(err: unknown): boolean {
  const code = errnoCode(err);
  return code !== undefined && FD_EXHAUSTED.has(code);
}

/** The first errno-style code (`EMFILE`, not `L4LB_ERR_…`) in `err` or its causes. */
function errnoCode(err: unknown): string | undefined {
  for (let e = err as { code?: unknown; cause?: unknown } | undefined, depth = 0; e && depth < 4; e = e.cause as typeof e, depth++) {
    if (typeof e.code === 'string' && /^E[A-Z]+$/.test(e.code)) return e.code;
  }
  return undefined;
}

interface Held {
  socket: DataSocket;
  since: number;
}

/**
 * Accepted connections waiting, paused, for a free slot: a FIFO bounded by `max`. A held socket
 * is not read, so whatever the client sends waits in the kernel's receive buffer, and a client
 * that gives up is only noticed once the socket is served (as with the kernel backlog).
 */
export class AcceptQueue {
  readonly max: number;
  readonly #items: Held[] = [];
  #head = 0;
  /** Connections that were ever held. */
  total = 0;
  /** Connections refused because the queue was full. */
  overflowed = 0;

  constructor(max = ACCEPT_QUEUE_MAX) {
    this.max = max;
  }

  /** Number of connections waiting now. */
  get size(): number {
    return this.#items.length - this.#head;
  }

  /** When the oldest waiting connection was queued (ms since epoch), or Infinity when empty. */
  get oldestSince(): number {
    return this.size > 0 ? this.#items[this.#head].since : Infinity;
  }

  /** Holds `socket`; false (and nothing held) when the queue is full. */
  push(socket: DataSocket, now = Date.now()): boolean {
    if (this.size >= this.max) {
      this.overflowed++;
      return false;
    }
    // A reset while held must not become an unhandled 'error'; the path that serves the
    // socket later installs its own handlers.
    socket.on('error', noop);
    this.#items.push({ socket, since: now });
    this.total++;
    return true;
  }

  /** Takes the oldest waiting socket. */
  shift(): DataSocket | undefined {
    if (this.size === 0) return undefined;
    const { socket } = this.#items[this.#head];
    this.#items[this.#head] = undefined as unknown as Held;
    this.#head++;
    // Compact now and then so the array does not grow without bound.
    if (this.#head > 1024 && this.#head * 2 > this.#items.length) {
      this.#items.splice(0, this.#head);
      this.#head = 0;
    }
    socket.removeListener('error', noop);
    return socket;
  }

  /** Closes every waiting connection (shutdown: as closing the listening socket drops its backlog). */
  closeAll(): number {
    let n = 0;
    for (let s = this.shift(); s; s = this.shift()) {
      s.on('error', noop);
      s.destroy();
      n++;
    }
    return n;
  }
}

/**
 * Counts and logs running out of file descriptors, at most one line per
 * {@link FD_LOG_INTERVAL_MS} with the number of occurrences since the last line; and, once
 * started, counts the descriptors in use now and then and warns near the limit.
 */
export class FdPressure {
  /** Times an operation failed with EMFILE/ENFILE. */
  count = 0;
  /** Descriptors in use at the last check; undefined when not checked (not Linux, not started). */
  inUse: number | undefined;
  #limit: number | undefined;
  readonly #log = new RateLimitedLog({ perInterval: 1, intervalMs: FD_LOG_INTERVAL_MS });
  readonly #logger: Logger;
  #timer: NodeJS.Timeout | undefined;

  constructor(logger: Logger) {
    this.#logger = logger;
    this.#limit = fdSoftLimit();
  }

  /**
   * The soft descriptor limit, as last read (it can change at run time: `prlimit --pid`);
   * undefined where unknown.
   */
  get limit(): number | undefined {
    return this.#limit;
  }

  #refreshLimit(): void {
    // Reading /proc needs a descriptor too: when that fails, keep the last value.
    this.#limit = fdSoftLimit() ?? this.#limit;
  }

  /** Records one EMFILE/ENFILE from `where` ('accept', 'connect' or 'check'). */
  record(where: string, err: unknown): void {
    this.count++;
    const take = this.#log.take('emfile');
    if (!take) return;
    this.#refreshLimit();
    this.#logger.error(
      {
        where,
        code: errnoCode(err),
        suppressed: take.suppressed,
        total: this.count,
        fdLimit: this.limit,
      },
      'out of file descriptors: new connections are being closed until descriptors free up (raise the limit: ulimit -n / LimitNOFILE)',
    );
  }

  /** Starts the periodic count (no-op where the limit is unknown). */
  start(intervalMs = FD_CHECK_INTERVAL_MS): void {
    if (this.limit === undefined || this.#timer) return;
    this.#timer = setInterval(() => void this.check(), intervalMs);
    this.#timer.unref();
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /** Counts descriptors in use now; warns (rate-limited) near the limit. */
  async check(): Promise<void> {
    let n: number;
    try {
      n = (await readdir('/proc/self/fd')).length - 1; // minus the one readdir itself holds
    } catch (err) {
      // Cannot even open the directory: that is the answer.
      if (isFdExhausted(err)) this.record('check', err);
      return;
    }
    this.inUse = n;
    this.#refreshLimit();
    if (this.limit !== undefined && n >= this.limit * FD_WARN_RATIO) {
      const take = this.#log.take('near');
      if (take) {
        this.#logger.warn(
          { inUse: n, fdLimit: this.limit, suppressed: take.suppressed },
          'file descriptors nearly exhausted: new connections will be closed at the limit (raise it: ulimit -n / LimitNOFILE)',
        );
      }
    }
  }
}

/** The soft RLIMIT_NOFILE of this process, from /proc (Linux); undefined elsewhere. */
export function fdSoftLimit(): number | undefined {
  try {
    const m = /^Max open files\s+(\d+|unlimited)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
    return m && m[1] !== 'unlimited' ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

