/**
 * @module proxy/socket-reader — read a socket into buffers of its own (the `onread` mode of
 * net.Socket) instead of one freshly allocated Buffer per read.
 *
 * Why: with 'data' events every read allocates a new 64 KiB buffer; at bulk rates glibc keeps
 * growing and trimming its heap (a `brk` for every few reads) and the kernel zeroes the new
 * pages, which cost more CPU than the copy itself (docs/performance.md, "Profiles"). A buffer
 * owned by the socket is allocated once and stays warm.
 *
 * The rule that makes reuse safe: a buffer is read into again only once everything written
 * from it has left the process. The relay returns `false` from the read callback when its
 * write did not complete at once (Node then stops reading) and resumes when the write's
 * callback runs. A buffer shared between sockets could not follow that rule: a partly
 * completed write still reads from it while another socket would read into it.
 *
 * Buffers come in three sizes from slab pools: every socket starts with a tiny one; a read that
 * fills it moves the socket to a small one, and a read that fills that to a large one, while
 * the process holds fewer than {@link MAX_LARGE_BUFFERS}; a short read moves it back down (to
 * tiny when it fitted a tiny buffer). Slab memory that is never read into is never touched, so
 * it costs address space, not resident memory; what a socket holds between messages is what
 * it read into last. HAProxy holds no buffer at all between messages; a libuv handle reads
 * into the buffer it was given before the data came, so a socket read this way must always
 * hold one, and the tiny size keeps that near HAProxy's rule: eight sockets' tiny buffers share
 * a page (docs/performance.md, "Fifth pass"). Raw sockets (raw-socket.ts), the common case,
 * follow the rule itself: they read into one buffer shared by all and copy each read out of it
 * into a small buffer from here, held only until it is written ("Seventh pass: keep-alive memory").
 *
 * Public API only: backends get this through `net.connect({ onread })`; accepted sockets through
 * node-internals.ts, which is where the one dependency on Node internals lives.
 */
import type net from 'node:net';

/**
 * Size of the buffer every socket starts with, and returns to after a read that fitted it:
 * eight share a page. A larger message costs one more read (and one more write) when it
 * arrives on a tiny buffer; after that the socket reads it into 16 KiB.
 */
export const TINY_BUFFER_SIZE = 512;
/** Size of the buffer of a socket whose last read filled a tiny one. */
export const SMALL_BUFFER_SIZE = 16 * 1024;
/** Size of the buffer of a socket whose reads fill its small one (bulk transfer). */
export const LARGE_BUFFER_SIZE = 512 * 1024;
/** Memory the process gives large buffers at most; beyond, sockets keep small ones. */
const LARGE_BUFFERS_CAP_BYTES = 256 * 1024 * 1024;
/** Large buffers the process hands out at most (512: the cap over the buffer size). */
export const MAX_LARGE_BUFFERS = LARGE_BUFFERS_CAP_BYTES / LARGE_BUFFER_SIZE;

/** Buffers per slab (one ArrayBuffer each): 256 KiB of tiny ones, 1 MiB of small ones, 8 MiB of large ones. */
const TINY_PER_SLAB = 512;
const SMALL_PER_SLAB = 64;
const LARGE_PER_SLAB = 16;

/**
 * Fixed-size buffers carved out of larger slabs. Freed buffers are reused last-in first-out,
 * so a busy process keeps reusing the same few warm buffers. Slabs are kept for the life of
 * the process: their untouched pages cost no resident memory.
 */
export class BufferPool {
  readonly size: number;
  readonly #perSlab: number;
  readonly #max: number;
  readonly #free: Buffer[] = [];
  #allocated = 0;

  constructor(size: number, perSlab: number, max = Infinity) {
    this.size = size;
    this.#perSlab = perSlab;
    this.#max = max;
  }

  /** Buffers handed out and not yet given back. */
  get inUse(): number {
    return this.#allocated - this.#free.length;
  }

  /** Buffers carved from slabs so far (slabs are never freed). */
  get allocated(): number {
    return this.#allocated;
  }

  /** A buffer, or undefined when the pool is at its maximum. */
  take(): Buffer | undefined {
    const b = this.#free.pop();
    if (b !== undefined) return b;
    if (this.#allocated >= this.#max) return undefined;
    const n = Math.min(this.#perSlab, this.#max - this.#allocated);
    // allocUnsafeSlow: a slab of its own, not zeroed (never read before being written).
    const slab = Buffer.allocUnsafeSlow(this.size * n);
    for (let i = n - 1; i > 0; i--) this.#free.push(slab.subarray(i * this.size, (i + 1) * this.size));
    this.#allocated += n;
    return slab.subarray(0, this.size);
  }

  give(b: Buffer): void {
    this.#free.push(b);
  }
}

const tinyPool = new BufferPool(TINY_BUFFER_SIZE, TINY_PER_SLAB);
const smallPool = new BufferPool(SMALL_BUFFER_SIZE, SMALL_PER_SLAB);
const largePool = new BufferPool(LARGE_BUFFER_SIZE, LARGE_PER_SLAB, MAX_LARGE_BUFFERS);

/** How many pooled read buffers are in use (for tests and diagnostics). */
export function readBuffersInUse(): { tiny: number; small: number; large: number } {
  return { tiny: tinyPool.inUse, small: smallPool.inUse, large: largePool.inUse };
}

/** Each pool's buffer size, buffers in use and buffers allocated (for the bench's memory probe). */
export function readBufferPools(): Array<{ size: number; inUse: number; allocated: number }> {
  return [tinyPool, smallPool, largePool].map((p) => ({ size: p.size, inUse: p.inUse, allocated: p.allocated }));
}

/** A small buffer (raw-socket.ts copies a read out of the shared buffer into one). */
export function takeSmallReadBuffer(): Buffer {
  return smallPool.take()!;
}

/** The buffer a socket starts reading into. */
export function takeReadBuffer(): Buffer {
  return tinyPool.take()!;
}

function poolOf(b: Buffer): BufferPool {
  return b.length === TINY_BUFFER_SIZE ? tinyPool : b.length === SMALL_BUFFER_SIZE ? smallPool : largePool;
}

/** Gives a read buffer back (its socket is closed and nothing written from it is pending). */
export function giveReadBuffer(b: Buffer): void {
  poolOf(b).give(b);
}

/**
 * The buffer for a socket's next read, given its current one (which must be free: nothing
 * written from it is pending) and the size of its last read: a read that filled its buffer
 * moves the socket one size up (to large only while the pool has some); a read that would
 * have fitted a tiny buffer moves it back to tiny, and a large buffer's read that would have
 * fitted a small one back to small.
 */
export function nextReadBuffer(cur: Buffer, lastRead: number): Buffer {
  const size = cur.length;
  let next: Buffer | undefined;
  if (lastRead === size) {
    if (size === TINY_BUFFER_SIZE) next = smallPool.take()!;
    else if (size === SMALL_BUFFER_SIZE) next = largePool.take();
  } else if (lastRead <= TINY_BUFFER_SIZE) {
    if (size !== TINY_BUFFER_SIZE) next = tinyPool.take()!;
  } else if (size === LARGE_BUFFER_SIZE && lastRead < SMALL_BUFFER_SIZE) {
    next = smallPool.take()!;
  }
  if (next === undefined) return cur;
  poolOf(cur).give(cur);
  return next;
}

/** Receives what a {@link SocketReader} reads. */
export interface ReadSink {
  /**
   * `n` bytes were read into `buf` (from offset 0). Return true when `buf` may be read into
   * again at once; false stops reading until the source socket is resumed.
   */
  onRead(n: number, buf: Buffer): boolean;
}

/** The `onread` option of net.connect / net.Socket, as Node takes it. */
export interface OnReadOption {
  buffer: () => Buffer;
  callback: (n: number, buf: Buffer) => boolean;
}

/**
 * Reads one socket into its own buffer and hands each read to a sink. Reads that arrive
 * before a sink is attached stop the socket and wait (a backend's banner during connect).
 */
export class SocketReader {
  #buffer: Buffer;
  #sink: ReadSink | undefined;
  /** Bytes read before a sink was attached (at the start of the buffer). */
  #pending = 0;
  /** What the last read's callback returned: false means the buffer is still in use. */
  #free = true;
  #lastRead = 0;
  #released = false;
  #onread: OnReadOption | undefined = undefined;

  constructor() {
    this.#buffer = takeReadBuffer();
  }

  /** Pass as `onread` to net.connect (or to node-internals.ts for accepted sockets). */
  get onread(): OnReadOption {
    // Made on first use: raw sockets call read() and next() directly and never need it.
    this.#onread ??= { buffer: () => this.next(), callback: (n) => this.read(n) };
    return this.#onread;
  }

  /** Starts handing reads to `sink`; returns false when the bytes read so far are still being written. */
  attach(sink: ReadSink): boolean {
    this.#sink = sink;
    if (this.#pending === 0) return true;
    const n = this.#pending;
    this.#pending = 0;
    this.#free = sink.onRead(n, this.#buffer);
    return this.#free;
  }

  /**
   * Gives the buffers back to the pools. Only once the socket is closed (libuv reads into
   * the buffer until then) and nothing written from them is pending (the peer is closed too).
   */
  release(): void {
    if (this.#released) return;
    this.#released = true;
    giveReadBuffer(this.#buffer);
  }

  /** `n` bytes were read into the current buffer: hands them to the sink; false stops reading. */
  read(n: number): boolean {
    this.#lastRead = n;
    const sink = this.#sink;
    if (sink === undefined) {
      this.#pending = n;
      this.#free = false;
      return false;
    }
    this.#free = sink.onRead(n, this.#buffer);
    return this.#free;
  }

  /**
   * The buffer for the next read, asked for right after each read (as Node does with a
   * function `onread.buffer`). The size moves only while the current buffer is free.
   */
  next(): Buffer {
    if (this.#free && !this.#released) this.#buffer = nextReadBuffer(this.#buffer, this.#lastRead);
    return this.#buffer;
  }
}

/**
 * Where relay() finds the reader dial() gave a backend socket: a property on the socket, not a
 * WeakMap, whose hash table churning with connections would keep them alive through young GCs
 * (see connection-set.ts).
 */
const kReader = Symbol('l4lb.reader');
type WithReader = net.Socket & { [kReader]?: SocketReader };

/** Records that `socket` reads through `reader` (it was created with `reader.onread`). */
export function setReader(socket: net.Socket, reader: SocketReader): void {
  (socket as WithReader)[kReader] = reader;
}

/** The reader `socket` was created with, if any. */
export function readerOf(socket: net.Socket): SocketReader | undefined {
  return (socket as WithReader)[kReader];
}
