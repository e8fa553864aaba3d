/**
 * @module proxy/fast-path — the one place l4lb relies on Node internals. Two things live here:
 *
 * 1. **Raw sockets** ({@link RawSocket}): plain TCP connections driven on their libuv handle,
 *    without a net.Socket (no stream state machines, no per-write stream bookkeeping). Listeners
 *    without preread or TLS accept onto them ({@link installFastAccept}) and plain backends are
 *    dialled with them ({@link connectRaw}). A net.Socket costs roughly as much CPU per
 *    connection as everything else l4lb does (docs/performance.md, "Profiles").
 * 2. **Readers for accepted net.Sockets** ({@link attachReader}): a net.Socket that preread or
 *    TLS needed reads into a buffer of its own, as `new net.Socket({ onread })` would.
 *
 * What this relies on (present and identical in Node 20 to 24, checked at load):
 * - `process.binding('tcp_wrap')` (TCP, TCPConnectWrap) and `process.binding('stream_wrap')`
 *   (WriteWrap, ShutdownWrap, streamBaseState and its indices): the handle classes net.Socket
 *   itself is built on. process.binding is deprecated (DEP0111, documentation-only).
 * - A listening net.Server's `_handle.onconnection(err, clientHandle)` callback.
 * - Handle methods `readStart`, `readStop`, `useUserBuffer`, `writeBuffer`, `shutdown`, `close`,
 *   `getpeername`, `getsockname`, `setNoDelay`, `connect`, `connect6`, and the `onread` /
 *   `oncomplete` callbacks with the argument order net.js uses.
 * - `close()` without a callback calls no JavaScript later; a ShutdownWrap without `oncomplete`
 *   reports nothing; `readStart()` works on a handle that is still connecting.
 * - net.Socket keeping its `onread` state in three own symbol-keyed properties (kBuffer,
 *   kBufferCb, kBufferGen), found by identity on probe sockets built with the public option.
 *
 * When any of it is missing, or `L4LB_FAST_PATH=0` is set, nothing here is used: listeners hand
 * out net.Sockets, backends are dialled with net.connect and its public `onread` option, and
 * accepted sockets are read through 'data' events. The test suite runs the data-path tests both
 * ways (test/proxy/data-path-fallback.test.ts) and asserts that the fast path is available on
 * the supported Node versions, so a Node release that moves these internals fails the tests
 * rather than silently slowing l4lb down.
 */
import net from 'node:net';
import { getSystemErrorName } from 'node:util';
import { nextReadBuffer, takeReadBuffer, giveReadBuffer, type SocketReader } from './socket-reader.js';
import type { RelayCore, RelaySide } from './relay.js';
import type { Logger } from '../observability/log.js';

/** Set `L4LB_FAST_PATH=0` to use public APIs only (slower; for diagnosis and tests). */
export const FAST_PATH_ENV = 'L4LB_FAST_PATH';

// --- what is taken from Node's internals, with the shapes this module expects ---
interface TcpHandle {
  onread: ((this: TcpHandle) => Buffer | undefined) | null;
  owner: RawSocket | undefined;
  readStart(): number;
  readStop(): number;
  useUserBuffer(buf: Uint8Array): void;
  writeBuffer(req: object, buf: Uint8Array): number;
  shutdown(req: object): number;
  close(cb?: (this: TcpHandle) => void): void;
  getpeername(out: AddressInfo): number;
  getsockname(out: AddressInfo): number;
  setNoDelay(on: boolean): number;
  connect(req: object, address: string, port: number): number;
  connect6(req: object, address: string, port: number): number;
}
interface AddressInfo {
  address?: string;
  port?: number;
  family?: string;
}
interface Req {
  oncomplete: (this: Req, status: number) => void;
  /** The socket it is for (cleared once a connect completes: see #afterConnect). */
  owner: RawSocket | undefined;
  buffer?: Uint8Array;
}
interface Bindings {
  TCP: new (type: number) => TcpHandle;
  TCPConnectWrap: new () => Req;
  WriteWrap: new () => Req;
  ShutdownWrap: new () => Req;
  SOCKET: number;
  state: Int32Array;
  kReadBytesOrError: number;
  kLastWriteWasAsync: number;
  /** The symbols behind net.Socket's public `onread` option. */
  kBuffer: symbol;
  kBufferCb: symbol;
  kBufferGen: symbol;
}

const UV_EOF = -4095;
const UV_ECONNABORTED = -103;

type Slots = Record<symbol, unknown>;

/** Finds the internals; a string says why they are unusable. */
function probe(): Bindings | string {
  try {
    const binding = (process as unknown as { binding(name: string): Record<string, unknown> }).binding;
    const tcp = binding('tcp_wrap') as { TCP?: unknown; TCPConnectWrap?: unknown; constants?: { SOCKET?: unknown } };
    const stream = binding('stream_wrap') as Record<string, unknown>;
    const fns = [tcp.TCP, tcp.TCPConnectWrap, stream.WriteWrap, stream.ShutdownWrap];
    if (fns.some((f) => typeof f !== 'function')) return 'tcp_wrap/stream_wrap bindings are missing';
    if (!(stream.streamBaseState instanceof Int32Array)) return 'streamBaseState is missing';
    if (typeof stream.kReadBytesOrError !== 'number' || typeof stream.kLastWriteWasAsync !== 'number') return 'streamBaseState indices are missing';
    if (typeof tcp.constants?.SOCKET !== 'number') return 'TCP constants are missing';
    const proto = (tcp.TCP as { prototype: Record<string, unknown> }).prototype;
    for (const m of ['readStart', 'readStop', 'useUserBuffer', 'writeBuffer', 'shutdown', 'close', 'getpeername', 'getsockname', 'setNoDelay', 'connect', 'connect6']) {
      if (typeof proto[m] !== 'function') return `TCP handles have no ${m}()`;
    }
    // The onread state of net.Socket, found by identity: the properties holding the probe values.
    const buf = Buffer.alloc(1);
    const gen = () => buf;
    const cb = () => true;
    const withBuffer = new net.Socket({ onread: { buffer: buf, callback: cb } } as net.SocketConstructorOpts) as unknown as Slots;
    const withGen = new net.Socket({ onread: { buffer: gen, callback: cb } } as net.SocketConstructorOpts) as unknown as Slots;
    const find = (o: Slots, v: unknown) => Object.getOwnPropertySymbols(o).filter((s) => o[s] === v);
    const [kBuffer, kBufferCb, kBufferGen] = [find(withBuffer, buf), find(withBuffer, cb), find(withGen, gen)];
    if (kBuffer.length !== 1 || kBufferCb.length !== 1 || kBufferGen.length !== 1) return 'net.Socket keeps its onread state elsewhere';
    if (withBuffer[kBufferGen[0]] !== null || withGen[kBuffer[0]] !== true) return 'net.Socket onread state has another shape';
    return {
      TCP: tcp.TCP as Bindings['TCP'],
      TCPConnectWrap: tcp.TCPConnectWrap as Bindings['TCPConnectWrap'],
      WriteWrap: stream.WriteWrap as Bindings['WriteWrap'],
      ShutdownWrap: stream.ShutdownWrap as Bindings['ShutdownWrap'],
      SOCKET: tcp.constants.SOCKET,
      state: stream.streamBaseState,
      kReadBytesOrError: stream.kReadBytesOrError,
      kLastWriteWasAsync: stream.kLastWriteWasAsync,
      kBuffer: kBuffer[0],
      kBufferCb: kBufferCb[0],
      kBufferGen: kBufferGen[0],
    };
  } catch (err) {
    return `probe failed: ${(err as Error).message}`;
  }
}

let b: Bindings | undefined;
let unavailable: string | undefined;

/** Read once, on first use (process.env is slow to read on a hot path). */
function bindings(): Bindings | undefined {
  if (b === undefined && unavailable === undefined) {
    const r = process.env[FAST_PATH_ENV] === '0' ? `${FAST_PATH_ENV}=0` : probe();
    if (typeof r === 'string') unavailable = r;
    else b = r;
  }
  return b;
}

/** Whether the fast path is on; when not, why (see {@link reportFastPath}). */
export function fastPathStatus(): { enabled: boolean; reason?: string } {
  bindings();
  return unavailable === undefined ? { enabled: true } : { enabled: false, reason: unavailable };
}

let reported = false;

/**
 * Says once per process when the fast path is off: a warning when Node lacks what it relies on
 * (l4lb still works, more slowly), an info line when `L4LB_FAST_PATH=0` asked for it.
 */
export function reportFastPath(logger: Logger): void {
  if (reported) return;
  reported = true;
  const st = fastPathStatus();
  if (st.enabled) return;
  const fields = { reason: st.reason, node: process.version };
  if (process.env[FAST_PATH_ENV] === '0') logger.info(fields, 'fast data path off: using public Node APIs only');
  else logger.warn(fields, 'fast data path unavailable on this Node version: using public Node APIs only (slower); see docs/performance.md');
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
 * A TCP connection on its bare libuv handle.
 *
 * Before the relay it stands in for a net.Socket in the connection pipeline and implements
 * that part of net.Socket: the address getters, `destroy()`, `destroyed`, `write(buf)` (the
 * PROXY header), and the events 'error' and 'close' (after destroy()); a dial reports to its
 * {@link DialWatcher} instead of emitting 'connect' and 'error'. It is not read before the
 * relay binds it (as a paused net.Socket). Once bound it is a {@link RelaySide}: reads go into
 * pooled buffers of its own and to the relay, which writes each read through before reading
 * again.
 *
 * Closing: once its peer's FIN was read and its own writes and FIN were handed to libuv; when
 * end() finds the read side finished and nothing queued, close() sends the FIN itself, saving
 * a shutdown. 'close' (before the relay) and `relay.closed()` come on the next tick.
 */
export class RawSocket implements RelaySide {
  readonly #h: TcpHandle;
  #relay: RelayCore | undefined = undefined;
  /** The buffer libuv reads into (pooled, see socket-reader.ts); taken at connect (dialled) or when the relay binds (accepted). */
  #buffer: Buffer | undefined = undefined;
  /** READING | READ_ENDED | WRITE_ENDED | CLOSED | WAITING */
  #flags = 0;
  #pendingWrites = 0;
  /** The last view written from (see #viewOf) and the buffer it looks into. */
  #view: Buffer | undefined = undefined;
  #viewSrc: Buffer | undefined = undefined;
  #peer: AddressInfo | null | undefined = undefined;
  #local: AddressInfo | null | undefined = undefined;

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
  off(event: string, fn: Listener): this {
    return this.removeListener(event, fn);
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
    return this.#peerInfo()?.address;
  }
  get remotePort(): number | undefined {
    return this.#peerInfo()?.port;
  }
  get remoteFamily(): string | undefined {
    return this.#peerInfo()?.family;
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
    if (this.#buffer === undefined) this.#prepareRead();
  }

  #prepareRead(): void {
    this.#buffer = takeReadBuffer();
    this.#h.onread = RawSocket.#onRead;
    this.#h.useUserBuffer(this.#buffer);
  }

  resumeReading(): void {
    if (this.#is(READING) || this.#is(READ_ENDED) || this.#is(CLOSED)) return;
    this.#flags |= READING;
    const err = this.#h.readStart();
    if (err !== 0) this.#fail(err, 'read');
  }

  pauseReading(): void {
    if (!this.#is(READING)) return;
    this.#flags &= ~READING;
    if (!this.#is(CLOSED)) this.#h.readStop();
  }

  send(buf: Buffer, n: number, _owned: boolean): boolean {
    if (this.#is(WRITE_ENDED)) return true;
    const data = n === buf.length ? buf : this.#viewOf(buf, n);
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

  /** The first `n` bytes of `buf`: the last such view when it matches (requests of one size repeat). */
  #viewOf(buf: Buffer, n: number): Buffer {
    const v = this.#view;
    if (v !== undefined && v.length === n && this.#viewSrc === buf) return v;
    this.#viewSrc = buf;
    return (this.#view = buf.subarray(0, n));
  }

  #is(bit: number): boolean {
    return (this.#flags & bit) !== 0;
  }

  #peerInfo(): AddressInfo | undefined {
    if (this.#peer === undefined) {
      const out: AddressInfo = {};
      this.#peer = this.#is(CLOSED) || this.#h.getpeername(out) !== 0 ? null : out;
    }
    return this.#peer ?? undefined;
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
   * of the close on the next tick, never from inside its own calls; the sockets closed in one
   * tick share one nextTick (usually both sides of a connection).
   */
  #close(): void {
    if (this.#is(CLOSED)) return;
    this.#flags = (this.#flags | CLOSED | WRITE_ENDED) & ~READING;
    const h = this.#h;
    h.owner = undefined;
    h.close();
    rawOpen--;
    // A dial that never reached the relay gives its read buffer back here (libuv reads into
    // it no more); a relayed socket's buffer goes back through release().
    if (this.#relay === undefined) this.release();
    if (RawSocket.#closing.push(this) === 1) process.nextTick(RawSocket.#drainClosing);
  }

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
    const s = this.owner!;
    const n = b!.state[b!.kReadBytesOrError];
    if (s.#relay === undefined) {
      // Cannot happen: a dialled socket reads from its connect on, but libuv reports no read
      // in the loop turn that completes the connect, and the relay binds in that turn's
      // connect callback. Should it ever, the connection fails loudly rather than drop bytes.
      s.#fail(UV_ECONNABORTED, 'read');
      return undefined;
    }
    if (n > 0) {
      const buf = s.#buffer!;
      if (!s.#relay!.read(s, n, buf, false)) {
        // The buffer is being written from: no read until the relay resumes this socket.
        if (s.#is(READING)) {
          s.#flags &= ~READING;
          this.readStop();
        }
        return undefined;
      }
      // The buffer is free: the next read may go into one of another size.
      const next = nextReadBuffer(buf, n);
      if (next === buf) return undefined;
      s.#buffer = next;
      return next;
    }
    if (n === 0 || s.#is(CLOSED)) return undefined;
    if (n !== UV_EOF) {
      s.#fail(n, 'read');
      return undefined;
    }
    s.#flags = (s.#flags | READ_ENDED) & ~READING;
    this.readStop();
    s.#relay!.ended(s);
    s.#maybeClose();
    return undefined;
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
    // Told: let go of the relay and the last view (see Relay.letGo in relay.ts).
    s.#relay = undefined;
    s.#view = s.#viewSrc = undefined;
    relay.closed(s);
  }

  static #afterConnect(this: Req, status: number): void {
    const s = this.owner!;
    // Let go of the socket (see Relay.letGo in relay.ts: a request promoted while the connect
    // was in flight would otherwise keep the socket's younger objects alive).
    this.owner = undefined;
    const w = s.#takeWatcher();
    if (s.#is(CLOSED)) return; // aborted
    if (status < 0) {
      s.#close();
      w.failed(errnoError(status, 'connect'));
      return;
    }
    s.#h.setNoDelay(true);
    w.connected();
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
    const req = new b!.TCPConnectWrap();
    req.oncomplete = RawSocket.#afterConnect;
    req.owner = s;
    const err = family === 6 ? h.connect6(req, host, port) : h.connect(req, host, port);
    if (err !== 0) {
      // As net.connect does: the error arrives later, once the caller holds the socket.
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

  /** @internal Wraps an accepted handle (with TCP_NODELAY, as l4lb's listeners set it). */
  static accepted(handle: TcpHandle): RawSocket {
    handle.setNoDelay(true);
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
 * nothing after destroy(). The socket is typed as net.Socket for the dial and connection
 * code, which only use the part RawSocket implements (see its doc).
 */
export function connectRaw(host: string, port: number, family: 0 | 4 | 6, watcher: DialWatcher): net.Socket | undefined {
  if (family === 0 || bindings() === undefined) return undefined;
  return RawSocket.connect(host, port, family, watcher) as unknown as net.Socket;
}

let rawOpen = 0;

/** Raw sockets not yet closed (for tests and diagnostics). */
export function rawSocketsOpen(): number {
  return rawOpen;
}

/** Whether `s` is a raw socket (relay() drives those directly). */
export function isRawSocket(s: unknown): s is RawSocket {
  return s instanceof RawSocket;
}

/**
 * Makes `server` accept onto raw sockets (with TCP_NODELAY) while `wantRaw()` says so, passing
 * them to `onSocket` (typed as net.Socket, as for {@link connectRaw}); other connections go
 * through net.Server's own path to its 'connection' listeners. Call once the server listens.
 * Returns false (nothing changed) when the fast path is off or the server has no handle.
 */
export function installFastAccept(server: net.Server, wantRaw: () => boolean, onSocket: (s: net.Socket) => void): boolean {
  const k = bindings();
  const handle = (server as unknown as { _handle?: { onconnection?: unknown } | null })._handle;
  if (k === undefined || !handle || typeof handle.onconnection !== 'function') return false;
  const original = handle.onconnection as (this: unknown, err: number, client: unknown) => void;
  handle.onconnection = function onconnection(this: unknown, err: number, client: unknown): void {
    if (err !== 0 || !(client instanceof k.TCP) || !wantRaw()) return original.call(this, err, client);
    onSocket(RawSocket.accepted(client) as unknown as net.Socket);
  };
  return true;
}

/**
 * Makes an accepted plain TCP net.Socket read through a reader made by `make` from its next
 * read on, as if it had been created with that reader's `onread`. The socket must have nothing
 * buffered; it may be paused or reading. Returns undefined, leaving the socket untouched, when
 * the fast path is off or does not apply (TLS socket, no native handle, data buffered).
 */
export function attachReader(socket: net.Socket, make: () => SocketReader): SocketReader | undefined {
  const k = bindings();
  if (k === undefined) return undefined;
  const s = socket as unknown as Slots & { _handle?: { useUserBuffer?: (b: Uint8Array) => void } | null };
  const handle = s._handle;
  if (
    handle == null ||
    typeof handle.useUserBuffer !== 'function' ||
    s[k.kBuffer] !== null || // already reading into a user buffer (or not a net.Socket)
    socket.readableLength !== 0 ||
    socket.readableEnded ||
    socket.destroyed ||
    'encrypted' in socket
  ) {
    return undefined;
  }
  const reader = make();
  const onread = reader.onread;
  // The same steps as net.Socket's constructor and initSocketHandle() for `onread.buffer` given
  // as a function: the generator is asked for each next buffer after every read.
  const first = onread.buffer();
  s[k.kBufferGen] = onread.buffer;
  s[k.kBufferCb] = onread.callback;
  s[k.kBuffer] = first;
  handle.useUserBuffer(first);
  return reader;
}
