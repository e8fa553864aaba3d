/**
 * @module observability/line-writer — batched, bounded writes of log lines to a file or fd.
 *
 * Lines collect as bytes in a batch buffer and go out together, at most {@link LOG_FLUSH_MS}
 * after the first of them, or as soon as a batch is full ({@link LOG_FILE_BATCH_BYTES} for a
 * file, {@link LOG_BATCH_BYTES} for a pipe; a batch ends at a line end): no syscall and no thread-pool round trip per line (pino's
 * asynchronous destination paid one `fs.write` on the thread pool per line when lines came one
 * at a time; docs/performance.md, "Fifth pass"). A write per event-loop turn, as in the fifth
 * pass, still cost a write (and its inode update) per line or two at a high connection rate:
 * a turn rarely closes more (docs/performance.md, "Sixth pass"). Drain, close, reopen and the
 * process's exit write out what is pending first.
 *
 * Two ways out, chosen by what the descriptor is:
 * - a regular file, a terminal or a character device: `fs.writeSync` on the event loop, like
 *   HAProxy writing to a file. The page cache absorbs it; nothing waits in memory.
 * - a pipe or a socket (stderr read by a supervisor): through Node's non-blocking stream, one
 *   write outstanding at a time, each at most {@link LOG_BATCH_BYTES} (PIPE_BUF) of whole
 *   lines, so lines of several processes sharing the pipe never interleave. When the
 *   reader is slower than the traffic, lines wait here up to {@link LOG_QUEUE_LIMIT}; past
 *   it they are dropped and counted, as HAProxy drops logs rather than stall.
 */
import fs from 'node:fs';
import type { Writable } from 'node:stream';

/** Largest batch handed to one write on a pipe: PIPE_BUF, the most a pipe writes atomically. */
export const LOG_BATCH_BYTES = 4096;
/** Bytes of a file's batch: written once full, without waiting for the timer. */
export const LOG_FILE_BATCH_BYTES = 64 * 1024;
/** The longest a line waits in memory before it is written (when no batch filled before). */
export const LOG_FLUSH_MS = 20;
/** Bytes of lines waiting for a slow pipe before new lines are dropped (1 MiB). */
export const LOG_QUEUE_LIMIT = 1 << 20;
/** Written batch buffers kept for later batches (a pipe's queue of batches can be longer). */
const MAX_SPARE = 4;
/** After EAGAIN on a descriptor written synchronously, the next try comes this much later. */
const RETRY_MS = 10;

/** Where a writer sends its bytes. */
type Sink = { kind: 'sync'; fd: number } | { kind: 'stream'; fd: number; stream: Writable };

/**
 * Writes one line (ending with '\n') into `buf` from `at`, at most the bound it was given with
 * (see {@link LineWriter.writeWith}); returns where the line ends.
 */
export type LineFill<T> = (buf: Buffer, at: number, arg: T) => number;

/** Lines no longer than this are formatted in one buffer kept for it when a batch lacks room. */
const SCRATCH_BYTES = 16 * 1024;
let scratch: Buffer | undefined;

/** A buffer of at least `n` bytes to format one line in before it is copied into a batch. */
function scratchFor(n: number): Buffer {
  if (n > SCRATCH_BYTES) return Buffer.allocUnsafe(n);
  return (scratch ??= Buffer.allocUnsafeSlow(SCRATCH_BYTES));
}

/** Counts the lines in `b` (each ends with '\n'). */
function countLines(b: Uint8Array): number {
  let n = 0;
  for (let i = b.indexOf(0x0a); i !== -1; i = b.indexOf(0x0a, i + 1)) n++;
  return n;
}

function fillString(buf: Buffer, at: number, s: string): number {
  return at + buf.write(s, at);
}

/** A sink for `fd`: synchronous writes unless it is a pipe or a socket. */
function sinkFor(fd: number, stream: () => Writable): Sink {
  let st: fs.Stats | undefined;
  try {
    st = fs.fstatSync(fd);
  } catch {
    // A closed descriptor: writes fail and their lines are counted as dropped.
  }
  return st && (st.isFIFO() || st.isSocket()) ? { kind: 'stream', fd, stream: stream() } : { kind: 'sync', fd };
}

/**
 * Batched writer of newline-terminated lines; see the module comment. Lines are bytes in a
 * batch buffer from the start: a formatter writes its line straight into the batch
 * ({@link writeWith}), so a line is never a string to concatenate, flatten and encode, and
 * what waits for the disk or a pipe is off the JavaScript heap (docs/performance.md,
 * "Seventh pass").
 */
export class LineWriter {
  #sink: Sink;
  readonly #path: string | undefined;
  /** Bytes of a batch: a batch is written when the next line does not fit (see the module comment). */
  readonly #batch: number;
  /** The batch being filled: `#buf[0, #len)` holds lines accepted and not yet queued or written. */
  #buf: Buffer;
  #len = 0;
  /** Whole batches not written yet (a pipe's write in flight, a retry after EAGAIN), oldest first. */
  #queue: Buffer[] = [];
  /** Bytes in `#queue`. */
  #queued = 0;
  /** Batch buffers whose bytes were written, for the next batches. */
  readonly #spare: Buffer[] = [];
  /** Armed while lines are pending; one Timeout, re-armed with refresh(). */
  #timer: NodeJS.Timeout | undefined = undefined;
  #scheduled = false;
  #inflight = false;
  #retry: NodeJS.Timeout | undefined;
  #closed = false;
  /** The batch the stream is writing (stream sink), counted as dropped if that write fails. */
  #inflightChunk: Buffer | undefined = undefined;
  /** Lines dropped: queue full, or the write failed. */
  dropped = 0;
  /** The last write error (for the caller's warning), cleared when read. */
  lastError: Error | undefined;
  readonly #onTimer = () => {
    this.#scheduled = false;
    this.#flush();
  };
  readonly #onWritten = (err?: Error | null) => {
    this.#inflight = false;
    const chunk = this.#inflightChunk!;
    this.#inflightChunk = undefined;
    if (err) {
      this.lastError = err;
      this.dropped += countLines(chunk);
    }
    this.#recycle(chunk);
    if (this.#len > 0 || this.#queued > 0) this.#flush();
  };

  private constructor(sink: Sink, path?: string) {
    this.#sink = sink;
    this.#path = path;
    this.#batch = sink.kind === 'sync' ? LOG_FILE_BATCH_BYTES : LOG_BATCH_BYTES;
    this.#buf = Buffer.allocUnsafeSlow(this.#batch);
    // A dead reader (EPIPE) costs the log, not the process; the failed batch is counted.
    if (sink.kind === 'stream' && !sink.stream.listeners('error').includes(ignoreStreamError)) sink.stream.on('error', ignoreStreamError);
    if (!exitHooked) process.on('exit', flushAllAtExit);
    exitHooked = true;
    live.add(this);
  }

  /** A writer appending to `path` (created with its directory when missing). */
  static forFile(path: string): LineWriter {
    return new LineWriter({ kind: 'sync', fd: openAppend(path) }, path);
  }

  /** A writer for `fd` (2: the process's stderr, through `process.stderr` when a pipe). */
  static forFd(fd: number, stream: () => Writable): LineWriter {
    return new LineWriter(sinkFor(fd, stream));
  }

  /** Bytes accepted and not yet written (characters, for the ASCII lines l4lb writes). */
  get pendingChars(): number {
    return this.#queued + this.#len;
  }

  /**
   * Queues one line (ending with '\n'). False when it was dropped: the queue for a slow pipe
   * is full or the writer is closed.
   */
  write(line: string): boolean {
    // UTF-8 takes at most 3 bytes per UTF-16 unit.
    return this.writeWith(line.length * 3, fillString, line);
  }

  /**
   * Queues the line `fill(buf, at, arg)` writes, which is at most `bound` bytes: straight into
   * the batch when it has that much room, else through a scratch buffer. False when it was
   * dropped (as {@link write}).
   */
  writeWith<T>(bound: number, fill: LineFill<T>, arg: T): boolean {
    if (this.#closed) return this.#drop();
    const len = this.#len;
    if (len + bound <= this.#buf.length && this.#queued + len + bound <= LOG_QUEUE_LIMIT) {
      this.#len = fill(this.#buf, len, arg);
    } else {
      const s = scratchFor(bound);
      const n = fill(s, 0, arg);
      if (this.#queued + len + n > LOG_QUEUE_LIMIT) return this.#drop();
      this.#append(s, n);
    }
    if (!this.#scheduled) this.#schedule();
    return true;
  }

  #drop(): false {
    this.dropped++;
    return false;
  }

  /** Copies a line of `n` bytes from `src` into the batch, writing the batch first when it is full. */
  #append(src: Buffer, n: number): void {
    if (this.#len + n > this.#buf.length) {
      this.#seal();
      this.#flush();
    }
    if (n <= this.#buf.length) {
      this.#len += src.copy(this.#buf, this.#len, 0, n);
      return;
    }
    // Longer than a batch: batches of its own, as long as a batch may be.
    const own = Buffer.allocUnsafeSlow(n);
    src.copy(own, 0, 0, n);
    for (let at = 0; at < n; at += this.#batch) this.#queue.push(own.subarray(at, Math.min(n, at + this.#batch)));
    this.#queued += n;
    this.#flush();
  }

  /** Moves the batch being filled to the queue; a spare buffer takes its place. */
  #seal(): void {
    if (this.#len === 0) return;
    this.#queue.push(this.#buf.subarray(0, this.#len));
    this.#queued += this.#len;
    this.#buf = this.#spare.pop() ?? Buffer.allocUnsafeSlow(this.#batch);
    this.#len = 0;
  }

  /** Keeps the buffer of a written batch for a later one (a batch buffer, not a long line's). */
  #recycle(chunk: Buffer): void {
    if (chunk.byteOffset === 0 && chunk.buffer.byteLength === this.#batch && this.#spare.length < MAX_SPARE) {
      this.#spare.push(Buffer.from(chunk.buffer, 0, this.#batch));
    }
  }

  /** Flushes {@link LOG_FLUSH_MS} from now; the timer does not keep the process alive (exit flushes). */
  #schedule(): void {
    this.#scheduled = true;
    if (this.#timer === undefined) {
      this.#timer = setTimeout(this.#onTimer, LOG_FLUSH_MS);
      this.#timer.unref();
    } else this.#timer.refresh();
  }

  /** Writes what can be written now, without blocking on a pipe. */
  #flush(): void {
    if (this.#len === 0 && this.#queued === 0) return;
    if (this.#sink.kind === 'sync') {
      if (this.#retry === undefined) this.#writeSync(this.#sink.fd);
      return;
    }
    if (this.#inflight) return;
    this.#seal();
    const chunk = this.#queue.shift()!;
    this.#queued -= chunk.length;
    this.#inflight = true;
    this.#inflightChunk = chunk;
    this.#sink.stream.write(chunk, this.#onWritten);
  }

  /** Writes all pending lines to a synchronous sink; keeps the rest after EAGAIN. */
  #writeSync(fd: number): void {
    this.#seal();
    const q = this.#queue;
    while (q.length > 0) {
      const chunk = q[0];
      let rest = chunk;
      try {
        while (rest.length > 0) rest = rest.subarray(fs.writeSync(fd, rest));
      } catch (err) {
        this.#queued -= chunk.length - rest.length;
        q[0] = rest;
        if ((err as NodeJS.ErrnoException).code === 'EAGAIN') {
          this.#retry = setTimeout(() => {
            this.#retry = undefined;
            this.#flush();
          }, RETRY_MS);
          this.#retry.unref();
          return;
        }
        for (const c of q) this.dropped += countLines(c);
        this.#queue = [];
        this.#queued = 0;
        this.lastError = err as Error;
        return;
      }
      q.shift();
      this.#queued -= chunk.length;
      this.#recycle(chunk);
    }
  }

  /**
   * Writes every pending line now, blocking if it must (shutdown, drain, reopen, exit). On a
   * pipe whose stream still holds an earlier batch, what is pending goes behind it instead.
   */
  flushSync(): void {
    if (this.#len === 0 && this.#queued === 0) return;
    const sink = this.#sink;
    if (sink.kind === 'sync') {
      if (this.#retry !== undefined) clearTimeout(this.#retry);
      this.#retry = undefined;
      this.#writeSync(sink.fd);
      return;
    }
    this.#seal();
    const q = this.#queue;
    this.#queue = [];
    this.#queued = 0;
    // Writing around the stream would reorder lines; it writes them after its own.
    let i = 0;
    if (!this.#inflight && sink.stream.writableLength === 0) {
      try {
        for (; i < q.length; i++) {
          const n = fs.writeSync(sink.fd, q[i]);
          if (n < q[i].length) {
            q[i] = q[i].subarray(n);
            break;
          }
        }
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EAGAIN') {
          for (; i < q.length; i++) this.dropped += countLines(q[i]);
          this.lastError = err as Error;
        }
      }
    }
    for (; i < q.length; i++) sink.stream.write(q[i]);
  }

  /**
   * Calls `cb` once every line accepted so far has left the process (at once for a file or
   * terminal; for a pipe, when its reader has taken them). Callers bound the wait themselves.
   */
  whenWritten(cb: () => void): void {
    this.flushSync();
    const sink = this.#sink;
    if (sink.kind === 'sync' || (!this.#inflight && this.#len === 0 && this.#queued === 0 && sink.stream.writableLength === 0)) {
      cb();
      return;
    }
    // The stream writes in order: an empty write completes after everything before it.
    sink.stream.write('', () => cb());
  }

  /** Flushes, then opens the file again (logrotate moved it: SIGUSR1). No-op for a descriptor. */
  reopen(): void {
    if (this.#path === undefined || this.#closed) return;
    this.flushSync();
    const old = this.#sink.fd;
    this.#sink = { kind: 'sync', fd: openAppend(this.#path) };
    fs.closeSync(old);
  }

  /** Flushes and closes a file writer; later lines are dropped. */
  close(): void {
    if (this.#closed) return;
    this.flushSync();
    this.#closed = true;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    live.delete(this);
    if (this.#path !== undefined) fs.closeSync(this.#sink.fd);
  }
}

/** Writers not closed yet: what is pending in them is written when the process exits. */
const live = new Set<LineWriter>();
let exitHooked = false;

function flushAllAtExit(): void {
  for (const w of live) w.flushSync();
}

function ignoreStreamError(): void {}

function openAppend(path: string): number {
  const dir = path.slice(0, Math.max(0, path.lastIndexOf('/')));
  if (dir) fs.mkdirSync(dir, { recursive: true });
  return fs.openSync(path, 'a');
}

let stderrWriter: LineWriter | undefined;

/** The process's one writer for stderr: the process log and the stderr access log share it. */
export function stderrLines(): LineWriter {
  stderrWriter ??= LineWriter.forFd(2, () => process.stderr);
  return stderrWriter;
}
