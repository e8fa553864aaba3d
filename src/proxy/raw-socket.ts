/**
 * @module proxy/raw-socket — plain TCP connections driven on their bare libuv handle, without a
 * net.Socket (no stream state machines, no per-write stream bookkeeping). Listeners without
 * preread or TLS accept onto them ({@link installFastAccept}) and plain backends are dialled with
 * them ({@link connectRaw}). A net.Socket costs roughly as much CPU per connection as everything
 * else l4lb does (docs/performance.md, "Profiles").
 *
 * The handles come from node-internals.ts, the one module that knows where Node keeps them and
 * that can switch them off (`L4LB_FAST_PATH=0`); when it does, nothing here is used.
 */
import type net from 'node:net';
import { getSystemErrorName } from 'node:util';
import { nextReadBuffer, giveReadBuffer, SMALL_BUFFER_SIZE, takeSmallReadBuffer } from './socket-reader.js';
import { listenerNoDelay, nodeInternals, onAcceptedHandle, type AddressInfo, type Bindings, type Req as ReqOf, type TcpHandle as HandleOf } from './node-internals.js';
import type { RelayCore, RelaySide } from './relay-side.js';
import type { DataSocket } from './data-socket.js';
import { noop } from '../util/noop.js';

type TcpHandle = HandleOf<RawSocket>;
type Req = ReqOf<RawSocket> & { buffer?: Uint8Array };

const UV_EOF = -4095;
const UV_ECONNABORTED = -103;

/** The internals, set by the first dial or accept (nothing here runs before one). */
let b: Bindings<RawSocket> | undefined;

function internals(): Bindings<RawSocket> | undefined {
  return (b ??= nodeInternals<RawSocket>());
}

function errnoError(status: number, syscall: string): NodeJS.ErrnoException {
  let code: string;
  try {
    code = getSystemErrorName(status);
  } catch {
    code = `E${-status}`;
  }
  const err: NodeJS.ErrnoException = new Error(`${syscall} ${code}`);
  err.errno = status;
  err.code = code;
  err.syscall = syscall;
  return err;
}

// RawSocket state bits.
const READING = 1;
const READ_ENDED = 2;
const WRITE_ENDED = 4;
const CLOSED = 16;
/** Someone waits for the pending writes to finish (the relay, to read on). */
const WAITING = 32;

type Listener = (...args: any[]) => void;

/**
 * Views kept for reuse (see RawSocket.#viewOf): enough for the few buffers reads are copied
 * into that a busy process keeps reusing, with requests and answers of a few sizes each.
 */
const VIEW_CACHE_SIZE = 8;
/**
 * Reads shorter than this are copied out of the shared buffer through a view of its first `n`
 * bytes kept per size (at most this many views, ≈ 100 bytes each); longer ones make a view
 * each time (a copy of that size costs more than the view).
 */
const SHARED_VIEWS = 1024;

/** Filled by getpeername (see RawSocket#readPeer): the properties Node sets, present from the start. */
const peerOut: AddressInfo = { address: undefined, family: undefined, port: undefined };

/**
 * A TCP connection on its bare libuv handle.
 *
 * Before the relay it is a {@link DataSocket}, as a net.Socket is: the address getters,
 * `destroy()`, `destroyed`, `write(buf)` (the PROXY header), and the events 'error' and 'close'
 * (after destroy()); a dial reports to its {@link DialWatcher} instead of emitting 'connect'
 * and 'error'. It is not read before the
 * relay binds it (as a paused net.Socket). Once bound it is a {@link RelaySide}: it reads into
 * one buffer all raw sockets share, and what it read is copied into a pooled buffer for the
 * relay, which writes it through before the socket reads again. A socket whose write did not
 * complete at once, or whose read filled the shared buffer (bulk), reads into pooled buffers
 * of its own until a read shorter than {@link SMALL_BUFFER_SIZE} was written at once; between
 * messages it holds no buffer (see #read).
 *
 * Closing: once its peer's FIN was read and its own writes and FIN were handed to libuv; when
 * end() finds the read side finished and nothing queued, close() sends the FIN itself, saving
 * a shutdown. 'close' (before the relay) and `relay.closed()` come after the call that closed
 * it: at the end of the read callback, or on the next tick (see #close).
 */
export class RawSocket implements DataSocket, RelaySide {
  readonly #h: TcpHandle;
  #relay: RelayCore | undefined = undefined;
  /**
   * The buffer of its own libuv reads into (pooled, see socket-reader.ts); undefined while the
   * socket reads into the shared one ({@link RawSocket.#shared}), which is between messages.
   */
  #buffer: Buffer | undefined = undefined;
  /** READING | READ_ENDED | WRITE_ENDED | CLOSED | WAITING */
  #flags = 0;
  #pendingWrites = 0;
  /** Whether reading was set up (the handle's onread and buffer): at connect (dialled) or when the relay binds. */
  #readPrepared = false;
  /** The peer's address (null: getpeername failed), read on first use; see #readPeer. */
  #peerAddress: string | null | undefined = undefined;
  #peerPort = 0;
  #local: AddressInfo | null | undefined = undefined;

  /** The request of a successful connect, until it can serve another (see #recycleConnect). */
  #connectReq: Req | undefined = undefined;

  /** Who hears how the dial of a dialled socket ends (instead of 'connect'/'error' listeners). */
  #watcher: DialWatcher | undefined = undefined;
  /** Listeners of 'error' and 'close', made on first use. */
  #listeners: Array<{ event: string; fn: Listener; once: boolean }> | undefined = undefined;

  constructor(handle: TcpHandle) {
    this.#h = handle;
    handle.owner = this;
    rawOpen++;
  }

  // --- the part of net.Socket the pipeline uses ---
  // A minimal emitter (not EventEmitter, whose per-object state is most of a raw socket's
  // memory): the pipeline only adds and removes a few listeners before the relay.
  on(event: string, fn: Listener): this {
    (this.#listeners ??= []).push({ event, fn, once: false });
    return this;
  }
  once(event: string, fn: Listener): this {
    (this.#listeners ??= []).push({ event, fn, once: true });
    return this;
  }
  removeListener(event: string, fn: Listener): this {
    const l = this.#listeners;
    if (l === undefined) return this;
    for (let i = l.length - 1; i >= 0; i--) {
      if (l[i].event === event && l[i].fn === fn) {
        // Order matters for emit(): shift the rest down (a list of two or three).
        for (let j = i; j < l.length - 1; j++) l[j] = l[j + 1];
        l.pop();
        break;
      }
    }
    return this;
  }
  listenerCount(event: string): number {
    let n = 0;
    for (const r of this.#listeners ?? []) if (r.event === event) n++;
    return n;
  }
  emit(event: string, ...args: unknown[]): boolean {
    const l = this.#listeners;
    if (l === undefined) return false;
    let called = false;
    for (const r of l.slice()) {
      if (r.event !== event) continue;
      if (r.once) this.removeListener(event, r.fn);
      r.fn.apply(this, args);
      called = true;
    }
    return called;
  }

  get remoteAddress(): string | undefined {
    if (this.#peerAddress === undefined) this.#readPeer();
    return this.#peerAddress ?? undefined;
  }
  get remotePort(): number | undefined {
    if (this.#peerAddress === undefined) this.#readPeer();
    return this.#peerAddress === null ? undefined : this.#peerPort;
  }
  get localAddress(): string | undefined {
    return this.#localInfo()?.address;
  }
  get localPort(): number | undefined {
    return this.#localInfo()?.port;
  }
  get destroyed(): boolean {
    return this.#is(CLOSED);
  }

  /** Queues `data` (the PROXY header before the relay): written in order before relayed bytes. */
  write(data: Buffer): boolean {
    this.send(data, data.length, true);
    return true;
  }

  // --- RelaySide ---
  get readEnded(): boolean {
    return this.#is(READ_ENDED);
  }
  get writeEnded(): boolean {
    return this.#is(WRITE_ENDED);
  }

  bind(relay: RelayCore): void {
    this.#relay = relay;
    if (!this.#readPrepared) this.#prepareRead();
  }

  #prepareRead(): void {
    this.#readPrepared = true;
    this.#h.onread = RawSocket.#onRead;
    this.#h.useUserBuffer(RawSocket.#shared);
  }

  resumeReading(): void {
    if (this.#is(READING) || this.#is(READ_ENDED) || this.#is(CLOSED)) return;
    this.#flags |= READING;
    const err = this.#h.readStart();
    if (err !== 0) this.#fail(err, 'read');
  }

  send(buf: Buffer, n: number, owned: boolean): boolean {
    if (this.#is(WRITE_ENDED)) return true;
    // An owned buffer is not written from again: no view of it worth keeping.
    const data = n === buf.length ? buf : owned ? buf.subarray(0, n) : RawSocket.#viewOf(buf, n);
    // A write that completes at once leaves its request object untouched (Node binds it to a
    // native write request only when the write goes async), so one serves every such write.
    const req = RawSocket.#spareWrite ?? RawSocket.#newWrite();
    const err = this.#h.writeBuffer(req, data);
    if (err !== 0) {
      RawSocket.#spareWrite = undefined;
      this.#fail(err, 'write');
      return true;
    }
    if (b!.state[b!.kLastWriteWasAsync] === 0) {
      RawSocket.#spareWrite = req;
      return true;
    }
    // In flight: the request is the write's own now. libuv still reads from `data`: keep it
    // referenced until the write completes.
    RawSocket.#spareWrite = undefined;
    req.owner = this;
    req.buffer = data;
    this.#pendingWrites++;
    this.#flags |= WAITING;
    return false;
  }

  end(): void {
    if (this.#is(WRITE_ENDED)) return;
    this.#flags |= WRITE_ENDED;
    if (this.#is(READ_ENDED) && this.#pendingWrites === 0) return this.#close();
    // libuv sends the FIN once the queued writes are out. No completion callback (Node calls
    // none for a request without `oncomplete`): the socket closes when its read side ends
    // and its writes are out (#maybeClose), whether or not the FIN has left yet — close()
    // sends it then, and a peer that resets shows on the read side.
    const err = this.#h.shutdown(new b!.ShutdownWrap());
    if (err !== 0) this.#fail(err, 'shutdown');
  }

  destroy(): this {
    this.#close();
    return this;
  }

  /** Closes now with a TCP RST (SO_LINGER 0), as net.Socket's resetAndDestroy(). */
  reset(): void {
    this.#close(true);
  }

  release(): void {
    if (this.#buffer === undefined) return;
    giveReadBuffer(this.#buffer);
    this.#buffer = undefined;
  }

  // --- internals ---
  /** The request object for the next write (see send()). */
  static #spareWrite: Req | undefined = undefined;

  static #newWrite(): Req {
    const req = new b!.WriteWrap();
    req.oncomplete = RawSocket.#afterWrite;
    req.owner = undefined;
    return req;
  }

  /**
   * The one buffer raw sockets read into between messages: a read is copied out of it at once
   * (see #read), so it is free again when the read callback returns, and every socket's libuv
   * handle can point at it. Only its pages are touched by the reads of idle connections.
   */
  static readonly #shared: Buffer = Buffer.allocUnsafeSlow(SMALL_BUFFER_SIZE);
  /** Views of the shared buffer's first `n` bytes, by `n` (see {@link SHARED_VIEWS}). */
  static readonly #sharedViews: Array<Buffer | undefined> = new Array<Buffer | undefined>(SHARED_VIEWS).fill(undefined);

  /** The first `n` bytes of the shared buffer. */
  static #sharedView(n: number): Buffer {
    if (n >= SHARED_VIEWS) return n === SMALL_BUFFER_SIZE ? RawSocket.#shared : RawSocket.#shared.subarray(0, n);
    return (RawSocket.#sharedViews[n] ??= RawSocket.#shared.subarray(0, n));
  }

  /** Views recently made by #viewOf, with the buffers they look into (parallel, round-robin). */
  static readonly #views: Buffer[] = [];
  static readonly #viewSrcs: Buffer[] = [];
  static #viewNext = 0;

  /**
   * The first `n` bytes of `buf`, as a view made before when one matches: reads of one size
   * repeat (requests, answers), and so do the buffers they are read and copied into. Shared by
   * all sockets, so a connection keeps no view between messages.
   */
  static #viewOf(buf: Buffer, n: number): Buffer {
    const views = RawSocket.#views;
    const srcs = RawSocket.#viewSrcs;
    for (let i = 0; i < views.length; i++) if (srcs[i] === buf && views[i].length === n) return views[i];
    const v = buf.subarray(0, n);
    if (views.length < VIEW_CACHE_SIZE) {
      views.push(v);
      srcs.push(buf);
    } else {
      const i = RawSocket.#viewNext;
      views[i] = v;
      srcs[i] = buf;
      RawSocket.#viewNext = (i + 1) % VIEW_CACHE_SIZE;
    }
    return v;
  }

  #is(bit: number): boolean {
    return (this.#flags & bit) !== 0;
  }

  /**
   * getpeername into one object shared by all sockets, shaped in advance: Node fills it with
   * three property stores, which on a fresh `{}` each were map transitions (and an object) per
   * connection that logs its client.
   */
  #readPeer(): void {
    const out = peerOut;
    if (this.#is(CLOSED) || this.#h.getpeername(out) !== 0 || out.address === undefined) {
      this.#peerAddress = null;
      return;
    }
    this.#peerAddress = out.address;
    this.#peerPort = out.port ?? 0;
    out.address = out.family = out.port = undefined;
  }

  #localInfo(): AddressInfo | undefined {
    if (this.#local === undefined) {
      const out: AddressInfo = {};
      this.#local = this.#is(CLOSED) || this.#h.getsockname(out) !== 0 ? null : out;
    }
    return this.#local ?? undefined;
  }

  #fail(status: number, syscall: string): void {
    if (this.#is(CLOSED)) return;
    const err = errnoError(status, syscall);
    if (this.#relay) return this.#relay.failed(this, err);
    // Before the relay (a PROXY header write): as net.Socket, closed now and the error
    // emitted on the next tick; a relay bound meanwhile sees the close as a reset.
    this.#close();
    process.nextTick(emitError, this, err);
  }

  /**
   * Closes the socket: uv_close() closes the descriptor at once (a queued FIN or write is
   * dropped; close() itself sends the FIN when nothing is unread). Only the handle's memory
   * is freed later, and no JavaScript needs to run then: no close callback is passed (it
   * would cost a property set and a callback into JavaScript per socket). The relay hears
   * of the close never from inside its own calls: when the read callback that caused it
   * returns (the usual case: a FIN read ends the connection), otherwise on the next tick; the
   * sockets closed meanwhile are told together (usually both sides of a connection).
   */
  #close(reset = false): void {
    if (this.#is(CLOSED)) return;
    this.#flags = (this.#flags | CLOSED | WRITE_ENDED) & ~READING;
    const h = this.#h;
    h.owner = undefined;
    // libuv refuses a reset once a FIN is queued (UV_EINVAL): the handle is closed instead.
    if (!reset || h.reset(noop) !== 0) h.close();
    rawOpen--;
    if (RawSocket.#closing.push(this) === 1 && !RawSocket.#inRead) process.nextTick(RawSocket.#drainClosing);
  }

  /**
   * A read callback is running: sockets it closes are told at its end rather than through a
   * nextTick (a tick object and a pass through Node's tick queue per connection).
   */
  static #inRead = false;

  /** Sockets closed since the last tick, and an empty list to swap in while they are told. */
  static #closing: RawSocket[] = [];
  static #closingSpare: RawSocket[] = [];

  static #drainClosing(): void {
    const q = RawSocket.#closing;
    // Closes caused by telling these queue into the other list, for the next tick.
    RawSocket.#closing = RawSocket.#closingSpare;
    for (let i = 0; i < q.length; i++) RawSocket.#closed(q[i]);
    q.length = 0;
    RawSocket.#closingSpare = q;
  }

  /** Both directions are done: the FIN read, and everything (FIN included) handed to libuv. */
  #maybeClose(): void {
    if (this.#is(READ_ENDED) && this.#is(WRITE_ENDED) && this.#pendingWrites === 0) this.#close();
  }

  // Native callbacks: `this` is the handle or the request, which point back to the socket.
  static #onRead(this: TcpHandle): Buffer | undefined {
    RawSocket.#inRead = true;
    try {
      return RawSocket.#read(this);
    } finally {
      RawSocket.#inRead = false;
      if (RawSocket.#closing.length > 0) RawSocket.#drainClosing();
    }
  }

  static #read(h: TcpHandle): Buffer | undefined {
    const s = h.owner!;
    if (s.#connectReq !== undefined) RawSocket.#recycleConnect(s);
    const n = b!.state[b!.kReadBytesOrError];
    if (s.#relay === undefined) {
      // Cannot happen: a dialled socket reads from its connect on, but libuv reports no read
      // in the loop turn that completes the connect, and the relay binds in that turn's
      // connect callback. Should it ever, the connection fails loudly rather than drop bytes.
      s.#fail(UV_ECONNABORTED, 'read');
      return undefined;
    }
    if (n > 0) {
      const own = s.#buffer;
      if (own === undefined) return RawSocket.#readShared(s, h, n);
      if (!s.#relay!.read(s, n, own, false)) {
        // The buffer is being written from: no read until the relay resumes this socket.
        RawSocket.#stopReading(s, h);
        return undefined;
      }
      // The buffer is free. A read that did not fill a small buffer ends a message, as far as
      // can be told: back to the shared buffer (HAProxy's rule: no buffer between messages).
      if (n < SMALL_BUFFER_SIZE) {
        s.#buffer = undefined;
        giveReadBuffer(own);
        return RawSocket.#shared;
      }
      // Bulk: the next read may go into a larger buffer.
      const next = nextReadBuffer(own, n);
      if (next === own) return undefined;
      s.#buffer = next;
      return next;
    }
    if (n === 0 || s.#is(CLOSED)) return undefined;
    if (n !== UV_EOF) {
      s.#fail(n, 'read');
      return undefined;
    }
    // libuv stopped reading itself when it read the FIN (no readStop() call needed).
    s.#flags = (s.#flags | READ_ENDED) & ~READING;
    s.#relay!.ended(s);
    s.#maybeClose();
    return undefined;
  }

  /**
   * `n` bytes were read into the shared buffer: copied into a pooled buffer for the relay
   * before anything else runs, since any socket's next read goes into the shared buffer. The
   * copy goes back to its pool when the relay wrote it at once. Otherwise it stays the
   * socket's own until it is written, and so does one that a read filled (bulk: no copies
   * from then on): the handle is pointed at it, the socket reads into it from now on.
   */
  static #readShared(s: RawSocket, h: TcpHandle, n: number): Buffer | undefined {
    const copy = takeSmallReadBuffer();
    copy.set(RawSocket.#sharedView(n));
    if (!s.#relay!.read(s, n, copy, false)) {
      RawSocket.#stopReading(s, h);
      s.#buffer = copy;
      return copy;
    }
    if (n === SMALL_BUFFER_SIZE) {
      s.#buffer = copy;
      return copy;
    }
    giveReadBuffer(copy);
    return undefined;
  }

  static #stopReading(s: RawSocket, h: TcpHandle): void {
    if (s.#is(READING)) {
      s.#flags &= ~READING;
      h.readStop();
    }
  }

  static #afterWrite(this: Req, status: number): void {
    const s = this.owner!;
    s.#pendingWrites--;
    if (status < 0) return s.#fail(status, 'write');
    if (s.#pendingWrites === 0) {
      if (s.#is(WAITING)) {
        s.#flags &= ~WAITING;
        s.#relay?.writable(s);
      }
      s.#maybeClose();
    }
  }

  static #closed(s: RawSocket): void {
    const relay = s.#relay;
    if (relay === undefined) return void s.emit('close', false);
    // Told: let go of the relay (see Relay.letGo in relay.ts).
    s.#relay = undefined;
    relay.closed(s);
  }

  static #afterConnect(this: Req, status: number): void {
    const s = this.owner!;
    // Let go of the socket (see Relay.letGo in relay.ts: a request promoted while the connect
    // was in flight would otherwise keep the socket's younger objects alive).
    this.owner = undefined;
    const w = s.#takeWatcher();
    if (s.#is(CLOSED) || status < 0) s.#connectReq = undefined; // not reused: see #recycleConnect
    if (s.#is(CLOSED)) return; // aborted
    if (status < 0) {
      s.#close();
      w.failed(errnoError(status, 'connect'));
      return;
    }
    s.#h.setNoDelay(true);
    w.connected();
  }

  /** A connect request object not in use: one serves connect after connect. */
  static #spareConnect: Req | undefined = undefined;

  static #newConnect(): Req {
    const req = new b!.TCPConnectWrap();
    req.oncomplete = RawSocket.#afterConnect;
    req.owner = undefined;
    return req;
  }

  /**
   * Offers the connect request of `s` for the next connect. Not from the connect callback itself:
   * Node releases the native request bound to the object only once that callback has returned,
   * and a connect made meanwhile (a retry) would bind a second one. The socket's first read is
   * later for sure.
   */
  static #recycleConnect(s: RawSocket): void {
    RawSocket.#spareConnect ??= s.#connectReq;
    s.#connectReq = undefined;
  }

  static #connectFailed(s: RawSocket, err: NodeJS.ErrnoException): void {
    s.#takeWatcher().failed(err);
  }

  /** The dial's watcher, told once: the socket forgets it. */
  #takeWatcher(): DialWatcher {
    const w = this.#watcher!;
    this.#watcher = undefined;
    return w;
  }

  /** @internal Dials `host:port` (an IP address) on a new handle; see {@link connectRaw}. */
  static connect(host: string, port: number, family: 4 | 6, watcher: DialWatcher): RawSocket {
    const h = new b!.TCP(b!.SOCKET);
    const s = new RawSocket(h);
    s.#watcher = watcher;
    const req = RawSocket.#spareConnect ?? RawSocket.#newConnect();
    RawSocket.#spareConnect = undefined;
    req.owner = s;
    s.#connectReq = req;
    const err = family === 6 ? h.connect6(req, host, port) : h.connect(req, host, port);
    if (err !== 0) {
      // As net.connect does: the error arrives later, once the caller holds the socket.
      s.#connectReq = undefined;
      s.#close();
      process.nextTick(RawSocket.#connectFailed, s, errnoError(err, 'connect'));
      return s;
    }
    // Reading from now on keeps the socket in epoll through the connect: libuv would otherwise
    // drop its interest when the connect completes and re-add it for the relay's first read
    // (an EPOLL_CTL_ADD that fails with EEXIST, then a MOD: one more syscall per connection).
    s.#prepareRead();
    if (h.readStart() === 0) s.#flags |= READING;
    return s;
  }

  /**
   * @internal Wraps an accepted handle; sets TCP_NODELAY (as l4lb's listeners ask) unless the
   * socket has it from its listener already (`inherited`, see {@link listenerNoDelay}).
   */
  static accepted(handle: TcpHandle, inherited: boolean): RawSocket {
    if (!inherited) handle.setNoDelay(true);
    return new RawSocket(handle);
  }
}

/** An error for whoever listens; none listening is not a crash (a net.Socket would be destroyed too). */
function emitError(s: RawSocket, err: Error): void {
  if (s.listenerCount('error') > 0) s.emit('error', err);
}

/** Hears once how a {@link connectRaw} dial ended (never from inside connectRaw itself). */
export interface DialWatcher {
  connected(): void;
  failed(err: NodeJS.ErrnoException): void;
}

/**
 * Dials `host:port` on a raw socket when the fast path is on and `host` is an IP address of
 * `family` (`net.isIP(host)`, known in advance: 0 for a name); undefined otherwise (the
 * caller uses net.connect). Tells `watcher` once whether it connected (a method call rather
 * than the 'connect' and 'error' events of a net.Socket: no listener records per dial);
 * nothing after destroy().
 */
export function connectRaw(host: string, port: number, family: 0 | 4 | 6, watcher: DialWatcher): RawSocket | undefined {
  if (family === 0 || internals() === undefined) return undefined;
  return RawSocket.connect(host, port, family, watcher);
}

let rawOpen = 0;

/** Raw sockets not yet closed (for tests and diagnostics). */
export function rawSocketsOpen(): number {
  return rawOpen;
}

/** Whether `s` is a raw socket (a relay side of its own; a net.Socket needs a NetSide). */
export function isRawSocket(s: DataSocket): s is RawSocket {
  return s instanceof RawSocket;
}

/**
 * Makes `server` accept onto raw sockets (with TCP_NODELAY) while `wantRaw()` says so, passing
 * them to `onSocket`; other connections go through net.Server's own path to its 'connection'
 * listeners. Call once the server listens. Returns false (nothing changed) when the fast path
 * is off or the server has no handle.
 */
export function installFastAccept(server: net.Server, wantRaw: () => boolean, onSocket: (s: RawSocket) => void): boolean {
  if (internals() === undefined) return false;
  // One setsockopt on the listener instead of one per accepted socket.
  const inherited = listenerNoDelay(server);
  return onAcceptedHandle<RawSocket>(server, wantRaw, (h) => onSocket(RawSocket.accepted(h, inherited)));
}
