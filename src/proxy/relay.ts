/**
 * @module proxy/relay — copy bytes both ways between a client and a backend socket.
 *
 * Guarantees (tested in test/proxy/data-path.test.ts, backpressure.test.ts and
 * test/lifecycle/timeouts.test.ts, with and without the fast path):
 * - Byte-exact, both directions at once, in order.
 * - Backpressure: a socket is not read while what was read from it has not been written
 *   out, so memory per direction is bounded whatever the speed difference.
 * - Half-close: a FIN from one side becomes `end()` towards the other (both sockets
 *   are allowHalfOpen), and the other direction keeps flowing until it ends too. A
 *   half-closed connection is bounded by the fin timeout (inactivity while half-closed).
 * - An error or reset on one side ends the other promptly: what was already read from
 *   the failed side is still flushed to the healthy side, then it is closed (bounded by
 *   the fin timeout, then destroyed).
 *
 * Each direction reads its source one of two ways:
 * - into a buffer the source socket owns (socket-reader.ts): a read is written out at once
 *   and the next read waits until that write has left the process. Backends get this
 *   through net.connect's public `onread` option (connect.ts); accepted client sockets
 *   through fast-path.ts. This is the fast way (docs/performance.md).
 * - 'data' events, pausing the source while the sink's write() returns false until its
 *   'drain': TLS sockets, and clients when the fast path is off or unavailable.
 *
 * One inactivity timer serves both directions: every byte relayed is either read from
 * or written to the client socket, and a net.Socket's timeout is refreshed by both.
 *
 * Per-connection state lives in one Relay object; the socket listeners are shared
 * functions that find it through the socket, so a connection allocates no closures
 * beyond two write callbacks.
 */
import type net from 'node:net';
import { attachReader } from './fast-path.js';
import { SocketReader, readerOf, type ReadSink } from './socket-reader.js';

/** How the relay ended, in words users read in the access log. */
export type TerminationReason =
  | 'client_closed'
  | 'backend_closed'
  | 'client_reset'
  | 'backend_reset'
  | 'client_error'
  | 'backend_error'
  | 'idle_timeout'
  | 'client_fin_timeout'
  | 'server_fin_timeout'
  | 'max_lifetime'
  | 'shutdown'
  | 'admin_closed';

export interface RelayTimeouts {
  idleMs: number;
  clientFinMs: number;
  serverFinMs: number;
  maxLifetimeMs: number;
}

export interface RelayResult {
  bytesUp: number;
  bytesDown: number;
  /** Who ended first: the client or the backend. */
  closedFirst: 'client' | 'backend' | 'proxy';
  /** Whether the first close was an orderly FIN or a reset/error. */
  closeKind: 'fin' | 'rst' | 'timeout' | 'proxy';
  reason: TerminationReason;
}

/** What relay() returns: stop the relay (shutdown, admin action) and read its counters. */
export interface RelayHandle {
  stop(reason: TerminationReason): void;
  readonly bytesUp: number;
  readonly bytesDown: number;
}

const RESET_CODES = new Set(['ECONNRESET', 'EPIPE', 'ECONNABORTED']);
/** How long a side closed after an error on the other may take to flush, without a fin timeout. */
const DEFAULT_GRACE_MS = 30_000;

const kRelay = Symbol('l4lb.relay');
type RelaySocket = net.Socket & { [kRelay]?: Relay };

/** One direction: what is read from `source` is written to `sink`. */
class Flow implements ReadSink {
  bytes = 0;
  readonly source: net.Socket;
  readonly sink: net.Socket;
  /** The source reads into its own buffer (rather than through 'data' events). */
  reader: SocketReader | undefined;
  /** A write from the reader's buffer is pending: the source must not read until it completes. */
  #waiting = false;
  #issued = 0;
  #completed = 0;
  readonly #afterWrite: () => void;

  constructor(source: net.Socket, sink: net.Socket) {
    this.source = source;
    this.sink = sink;
    // Write callbacks run in order, so the write being waited for is the last one issued.
    this.#afterWrite = () => {
      this.#completed++;
      if (this.#waiting && this.#completed === this.#issued) {
        this.#waiting = false;
        this.resumeSource();
      }
    };
  }

  /** A read into the reader's buffer: true when the buffer is free again. */
  onRead(n: number, buf: Buffer): boolean {
    this.bytes += n;
    const sink = this.sink;
    // The other side failed or was ended: what still arrives is discarded, so the source
    // can read on to its FIN and close.
    if (sink.destroyed || sink.writableEnded) return true;
    this.#issued++;
    sink.write(n === buf.length ? buf : buf.subarray(0, n), this.#afterWrite);
    // Nothing queued means the kernel took all of it: the buffer can be read into again.
    if (sink.writableLength === 0) return true;
    this.#waiting = true;
    return false;
  }

  /** A chunk from a 'data' event (the chunk is ours to keep: no copy, no wait). */
  onData(chunk: Buffer): void {
    this.bytes += chunk.length;
    const sink = this.sink;
    if (sink.destroyed || sink.writableEnded) return;
    if (!sink.write(chunk)) this.source.pause();
  }

  /** Lets the source read again, unless a write from its buffer is still pending. */
  resumeSource(): void {
    if (this.#waiting) return;
    const s = this.source;
    if (!s.destroyed && !s.readableEnded) s.resume();
  }
}

/** The state of one relayed connection (and the handle relay() returns). */
class Relay implements RelayHandle {
  readonly client: net.Socket;
  readonly backend: net.Socket;
  readonly timeouts: RelayTimeouts;
  readonly onDone: (result: RelayResult) => void;
  /** client → backend */
  readonly up: Flow;
  /** backend → client */
  readonly down: Flow;
  clientEnded = false;
  backendEnded = false;
  clientClosed = false;
  backendClosed = false;
  finished = false;
  closedFirst: RelayResult['closedFirst'] | undefined = undefined;
  closeKind: RelayResult['closeKind'] = 'fin';
  reason: TerminationReason | undefined = undefined;
  reasonIsFinal = false;
  lifetimeTimer: NodeJS.Timeout | undefined = undefined;
  guardTimer: NodeJS.Timeout | undefined = undefined;

  constructor(client: net.Socket, backend: net.Socket, timeouts: RelayTimeouts, onDone: (r: RelayResult) => void) {
    this.client = client;
    this.backend = backend;
    this.timeouts = timeouts;
    this.onDone = onDone;
    this.up = new Flow(client, backend);
    this.down = new Flow(backend, client);
  }

  /**
   * Records an ending. Who closed first and how is the first event; the reason is the
   * first abnormal event (reset, error, timeout), or else the first orderly FIN.
   */
  mark(side: RelayResult['closedFirst'], kind: RelayResult['closeKind'], why: TerminationReason): void {
    if (this.closedFirst === undefined) {
      this.closedFirst = side;
      this.closeKind = kind;
    }
    if (this.reasonIsFinal) return;
    if (kind !== 'fin') {
      this.reason = why;
      this.reasonIsFinal = true;
    } else {
      this.reason ??= why;
    }
  }

  onClientEnd(): void {
    this.clientEnded = true;
    this.mark('client', 'fin', 'client_closed');
    this.backend.end();
    if (!this.backendEnded) this.armFinTimeout(this.timeouts.clientFinMs);
  }

  onBackendEnd(): void {
    this.backendEnded = true;
    this.mark('backend', 'fin', 'backend_closed');
    this.client.end();
    if (!this.clientEnded) this.armFinTimeout(this.timeouts.serverFinMs);
  }

  armFinTimeout(ms: number): void {
    // While half-closed, the inactivity timer becomes the fin timer.
    if (ms > 0) this.client.setTimeout(ms);
    else if (this.timeouts.idleMs <= 0) this.client.setTimeout(0);
  }

  onTimeout(): void {
    if (this.clientEnded && !this.backendEnded) this.mark('proxy', 'timeout', 'client_fin_timeout');
    else if (this.backendEnded && !this.clientEnded) this.mark('proxy', 'timeout', 'server_fin_timeout');
    else this.mark('proxy', 'timeout', 'idle_timeout');
    this.destroyBoth();
  }

  /** An error on one side: close it, flush then close the other. */
  onError(fromClient: boolean, err: NodeJS.ErrnoException): void {
    const reset = RESET_CODES.has(err.code ?? '');
    if (fromClient) {
      this.mark('client', 'rst', reset ? 'client_reset' : 'client_error');
      this.client.destroy();
      this.closeGracefully(this.backend);
    } else {
      this.mark('backend', 'rst', reset ? 'backend_reset' : 'backend_error');
      this.backend.destroy();
      this.closeGracefully(this.client);
    }
  }

  closeGracefully(sock: net.Socket): void {
    if (sock.destroyed) return;
    // Whatever was already read from the failed side reaches this side, then FIN.
    sock.end();
    sock.resume(); // discard further input so the socket can finish closing
    const ms = this.timeouts.clientFinMs > 0 ? this.timeouts.clientFinMs : DEFAULT_GRACE_MS;
    this.guardTimer ??= setTimeout(destroyBoth, ms, this);
  }

  destroyBoth(): void {
    this.client.destroy();
    this.backend.destroy();
  }

  // A side that closes without a FIN (destroyed, or reset without an 'error') ends
  // the other gracefully: what it already sent is delivered, then FIN.
  onClientClose(): void {
    this.clientClosed = true;
    if (!this.backendClosed && !this.clientEnded) {
      this.mark('client', 'rst', 'client_reset');
      this.closeGracefully(this.backend);
    }
    this.maybeFinish();
  }

  onBackendClose(): void {
    this.backendClosed = true;
    if (!this.clientClosed && !this.backendEnded) {
      this.mark('backend', 'rst', 'backend_reset');
      this.closeGracefully(this.client);
    }
    this.maybeFinish();
  }

  stop(why: TerminationReason): void {
    this.mark('proxy', 'proxy', why);
    this.destroyBoth();
  }

  get bytesUp(): number {
    return this.up.bytes;
  }

  get bytesDown(): number {
    return this.down.bytes;
  }

  maybeFinish(): void {
    if (this.finished || !this.clientClosed || !this.backendClosed) return;
    this.finished = true;
    if (this.lifetimeTimer) clearTimeout(this.lifetimeTimer);
    if (this.guardTimer) clearTimeout(this.guardTimer);
    this.client.setTimeout(0);
    // Both handles are closed: libuv neither reads into nor writes from the buffers any more.
    this.up.reader?.release();
    this.down.reader?.release();
    this.onDone({
      bytesUp: this.up.bytes,
      bytesDown: this.down.bytes,
      closedFirst: this.closedFirst ?? 'proxy',
      closeKind: this.closeKind,
      reason: this.reason ?? 'client_closed',
    });
  }
}

// --- socket listeners, shared by every relay: `this` is the socket ---
function onData(this: RelaySocket, chunk: Buffer): void {
  const r = this[kRelay]!;
  (this === r.client ? r.up : r.down).onData(chunk);
}
function onDrain(this: RelaySocket): void {
  const r = this[kRelay]!;
  // The client drained: the backend may read again (and vice versa).
  if (this === r.client) {
    if (!r.backendEnded) r.down.resumeSource();
  } else if (!r.clientEnded) {
    r.up.resumeSource();
  }
}
function onEnd(this: RelaySocket): void {
  const r = this[kRelay]!;
  if (this === r.client) r.onClientEnd();
  else r.onBackendEnd();
}
function onError(this: RelaySocket, err: NodeJS.ErrnoException): void {
  const r = this[kRelay]!;
  r.onError(this === r.client, err);
}
function onClose(this: RelaySocket): void {
  const r = this[kRelay]!;
  if (this === r.client) r.onClientClose();
  else r.onBackendClose();
}
function onTimeout(this: RelaySocket): void {
  this[kRelay]!.onTimeout();
}
function newReader(): SocketReader {
  return new SocketReader();
}
function destroyBoth(r: Relay): void {
  r.destroyBoth();
}
function onLifetime(r: Relay): void {
  r.mark('proxy', 'timeout', 'max_lifetime');
  r.destroyBoth();
}

/**
 * Relays between `client` and `backend` until both are closed, then calls `onDone`
 * once. `head` is client data already read (preread) to send to the backend first.
 * Returns a handle that can stop the relay (shutdown, admin action).
 */
export function relay(
  client: net.Socket,
  backend: net.Socket,
  timeouts: RelayTimeouts,
  onDone: (result: RelayResult) => void,
  head?: Buffer,
): RelayHandle {
  const r = new Relay(client, backend, timeouts, onDone);
  (client as RelaySocket)[kRelay] = r;
  (backend as RelaySocket)[kRelay] = r;

  // How each source is read. The backend's reader (if dial gave it one) may hold bytes read
  // during connect; attaching writes them to the client first, before any listener below
  // could resume the backend.
  let backendWaits = false;
  const backendReader = readerOf(backend);
  if (backendReader) {
    r.down.reader = backendReader;
    backendWaits = !backendReader.attach(r.down);
  } else {
    backend.on('data', onData);
  }
  const clientReader = attachReader(client, newReader);
  if (clientReader) {
    r.up.reader = clientReader;
    clientReader.attach(r.up);
  }
  // With a reader this listener never fires; it is there so that a Node release that
  // stopped honouring the reader would deliver 'data' rather than drop it. The client is
  // paused here (pauseOnConnect, or by preread), so adding it does not start reading.
  client.on('data', onData);

  client.on('drain', onDrain);
  backend.on('drain', onDrain);
  client.on('end', onEnd);
  backend.on('end', onEnd);
  client.on('error', onError);
  backend.on('error', onError);
  client.on('close', onClose);
  backend.on('close', onClose);
  client.on('timeout', onTimeout);
  if (timeouts.idleMs > 0) client.setTimeout(timeouts.idleMs);
  if (timeouts.maxLifetimeMs > 0) r.lifetimeTimer = setTimeout(onLifetime, timeouts.maxLifetimeMs, r);

  let clientWaits = false;
  if (head && head.length > 0) {
    r.up.bytes += head.length;
    clientWaits = !backend.write(head);
  }
  // The client may already have ended (it sent everything and a FIN during preread).
  if (client.readableEnded) r.onClientEnd();
  else if (!clientWaits) client.resume();
  if (!backendWaits) backend.resume();

  return r;
}
