/**
 * @module observability/line-writer — batched, bounded writes of log lines to a file or fd.
 *
 * Lines collect in one string and go out together, at most {@link LOG_FLUSH_MS} after the first
 * of them, or as soon as a batch is full ({@link LOG_FILE_BATCH_BYTES} for a file,
 * {@link LOG_BATCH_BYTES} for a pipe): no syscall and no thread-pool round trip per line (pino's
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
 *   write outstanding at a time, each at most {@link LOG_BATCH_BYTES} (PIPE_BUF) and cut at a
 *   line end, so lines of several processes sharing the pipe never interleave. When the
 *   reader is slower than the traffic, lines wait here up to {@link LOG_QUEUE_LIMIT}; past
 *   it they are dropped and counted, as HAProxy drops logs rather than stall.
 */
import fs from 'node:fs';
import type { Writable } from 'node:stream';

/** Largest batch handed to one write on a pipe: PIPE_BUF, the most a pipe writes atomically. */
export const LOG_BATCH_BYTES = 4096;
/** Characters that make a file's batch full: written at once, without waiting for the timer. */
export const LOG_FILE_BATCH_BYTES = 64 * 1024;
/** The longest a line waits in memory before it is written (when no batch filled before). */
export const LOG_FLUSH_MS = 20;
/** Characters of lines waiting for a slow pipe before new lines are dropped (about 1 MiB). */
export const LOG_QUEUE_LIMIT = 1 << 20;
/** After EAGAIN on a descriptor written synchronously, the next try comes this much later. */
const RETRY_MS = 10;

/** Where a writer sends its bytes. */
type Sink = { kind: 'sync'; fd: number } | { kind: 'stream'; fd: number; stream: Writable };

/** Counts the lines in `s` (each ends with '\n'). */
function countLines(s: string): number {
  let n = 0;
  for (let i = s.indexOf('\n'); i !== -1; i = s.indexOf('\n', i + 1)) n++;
  return n;
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

/** Batched writer of newline-terminated lines; see the module comment. */
export class LineWriter {
  #sink: Sink;
  readonly #path: string | undefined;
  /** Lines accepted and not yet handed to a write. */
  #pending = '';
  /** Characters that make a batch full (see the module comment). */
  readonly #batch: number;
  /** Armed while lines are pending; one Timeout, re-armed with refresh(). */
  #timer: NodeJS.Timeout | undefined = undefined;
  #scheduled = false;
  #inflight = false;
  #retry: NodeJS.Timeout | undefined;
  #closed = false;
  /** The batch the stream is writing (stream sink), counted as dropped if that write fails. */
  #inflightChunk = '';
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
    if (err) {
      this.lastError = err;
      this.dropped += countLines(this.#inflightChunk);
    }
    this.#inflightChunk = '';
    if (this.#pending.length > 0) this.#flush();
  };

  private constructor(sink: Sink, path?: string) {
    this.#sink = sink;
    this.#path = path;
    this.#batch = sink.kind === 'sync' ? LOG_FILE_BATCH_BYTES : LOG_BATCH_BYTES;
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

  /** Characters accepted and not yet written. */
  get pendingChars(): number {
    return this.#pending.length;
  }

  /**
   * Queues one line (ending with '\n'). False when it was dropped: the queue for a slow pipe
   * is full or the writer is closed.
   */
  write(line: string): boolean {
    if (this.#closed || this.#pending.length + line.length > LOG_QUEUE_LIMIT) {
      this.dropped++;
      return false;
    }
    this.#pending += line;
    if (this.#pending.length >= this.#batch) this.#flush();
    else if (!this.#scheduled) this.#schedule();
    return true;
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
    if (this.#pending.length === 0) return;
    if (this.#sink.kind === 'sync') {
      if (this.#retry === undefined) this.#writeSync(this.#sink.fd);
      return;
    }
    if (this.#inflight) return;
    let chunk = this.#pending;
    if (chunk.length > LOG_BATCH_BYTES) {
      const cut = chunk.lastIndexOf('\n', LOG_BATCH_BYTES - 1) + 1;
      chunk = chunk.slice(0, cut > 0 ? cut : LOG_BATCH_BYTES);
    }
    this.#pending = this.#pending.slice(chunk.length);
    this.#inflight = true;
    this.#inflightChunk = chunk;
    this.#sink.stream.write(chunk, this.#onWritten);
  }

  /** Writes all pending lines to a synchronous sink; keeps the rest after EAGAIN. */
  #writeSync(fd: number): void {
    const text = this.#pending;
    this.#pending = '';
    let buf: Buffer | undefined;
    let done = 0;
    try {
      done = fs.writeSync(fd, text);
      const total = Buffer.byteLength(text);
      while (done < total) {
        buf ??= Buffer.from(text);
        done += fs.writeSync(fd, buf, done);
      }
    } catch (err) {
      const rest = buf ? buf.subarray(done).toString() : done === 0 ? text : Buffer.from(text).subarray(done).toString();
      if ((err as NodeJS.ErrnoException).code === 'EAGAIN') {
        this.#pending = rest + this.#pending;
        this.#retry = setTimeout(() => {
          this.#retry = undefined;
          this.#flush();
        }, RETRY_MS);
        this.#retry.unref();
        return;
      }
      this.dropped += countLines(rest);
      this.lastError = err as Error;
    }
  }

  /**
   * Writes every pending line now, blocking if it must (shutdown, drain, reopen, exit). On a
   * pipe whose stream still holds an earlier batch, what is pending goes behind it instead.
   */
  flushSync(): void {
    if (this.#pending.length === 0) return;
    const sink = this.#sink;
    if (sink.kind === 'sync') {
      if (this.#retry !== undefined) clearTimeout(this.#retry);
      this.#retry = undefined;
      this.#writeSync(sink.fd);
      return;
    }
    if (this.#inflight || sink.stream.writableLength > 0) {
      // Writing around the stream would reorder lines; it flushes them after its own.
      sink.stream.write(this.#pending);
      this.#pending = '';
      return;
    }
    try {
      const n = fs.writeSync(sink.fd, this.#pending);
      if (n < Buffer.byteLength(this.#pending)) {
        const rest = Buffer.from(this.#pending).subarray(n).toString();
        this.#pending = '';
        sink.stream.write(rest);
      } else this.#pending = '';
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EAGAIN') {
        sink.stream.write(this.#pending);
      } else {
        this.dropped += countLines(this.#pending);
        this.lastError = err as Error;
      }
      this.#pending = '';
    }
  }

  /**
   * Calls `cb` once every line accepted so far has left the process (at once for a file or
   * terminal; for a pipe, when its reader has taken them). Callers bound the wait themselves.
   */
  whenWritten(cb: () => void): void {
    this.flushSync();
    const sink = this.#sink;
    if (sink.kind === 'sync' || (!this.#inflight && this.#pending.length === 0 && sink.stream.writableLength === 0)) {
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
