/**
 * @module proxy/node-internals — the one module that reaches into Node's internals. Everything
 * l4lb takes from them is found here, checked once at first use, and handed out typed:
 *
 * - `process.binding('tcp_wrap')` (TCP, TCPConnectWrap) and `process.binding('stream_wrap')`
 *   (WriteWrap, ShutdownWrap, streamBaseState and its indices): the handle classes net.Socket
 *   itself is built on, which raw sockets (raw-socket.ts) drive. process.binding is deprecated
 *   (DEP0111, documentation-only).
 * - A listening net.Server's `_handle.onconnection(err, clientHandle)` callback
 *   ({@link onAcceptedHandle}), and its `setNoDelay` ({@link listenerNoDelay}).
 * - Handle methods `readStart`, `readStop`, `useUserBuffer`, `writeBuffer`, `shutdown`, `close`,
 *   `getpeername`, `getsockname`, `setNoDelay`, `connect`, `connect6`, and the `onread` /
 *   `oncomplete` callbacks with the argument order net.js uses.
 * - `close()` without a callback calls no JavaScript later; a ShutdownWrap without `oncomplete`
 *   reports nothing; `readStart()` works on a handle that is still connecting.
 * - net.Socket keeping its `onread` state in three own symbol-keyed properties (kBuffer,
 *   kBufferCb, kBufferGen), found by identity on probe sockets built with the public option
 *   ({@link attachReader}: an accepted net.Socket that preread or TLS needed reads into a
 *   buffer of its own, as `new net.Socket({ onread })` would).
 *
 * - For UDP (udp/): `process.binding('udp_wrap')` (UDP, SendWrap), the handle methods `bind`,
 *   `bind6`, `connect`, `connect6`, `send`, `send6`, `recvStart`, `close`, the
 *   `onmessage(nread, handle, buf, rinfo)` callback, `send` returning the bytes sent plus one
 *   when it sent at once (0: queued, the request is kept until done; < 0: an error), and a
 *   dgram.Socket keeping its handle in a symbol-keyed state object ({@link udpInternals}).
 * - `net._createServerHandle(address, port, family)`: the function node:cluster's primary binds
 *   a shared listening socket with; it returns a bound TCP handle that does not listen (or a
 *   negative errno). cluster/ports.ts holds a port with it ({@link bindWithoutListening}). It
 *   does not belong to the fast path: `L4LB_FAST_PATH=0` leaves it in use, and without it the
 *   primary holds no port (see cluster/ports.ts).
 *
 * Present and identical in Node 20 to 26. When any of it is missing, or `L4LB_FAST_PATH=0` is
 * set, nothing here is used: listeners hand out net.Sockets, backends are dialled with
 * net.connect and its public `onread` option, and accepted sockets are read through 'data'
 * events. The test suite runs the data-path tests both ways
 * (test/proxy/data-path-fallback.test.ts) and asserts that the fast path is available on the
 * supported Node versions, so a Node release that moves these internals fails the tests rather
 * than silently slowing l4lb down.
 */
import dgram from 'node:dgram';
import net from 'node:net';
import type { SocketReader } from './socket-reader.js';
import type { Logger } from '../observability/log.js';

/** Set `L4LB_FAST_PATH=0` to use public APIs only (slower; for diagnosis and tests). */
export const FAST_PATH_ENV = 'L4LB_FAST_PATH';

// --- what is taken from Node's internals, with the shapes l4lb expects ---
/** A libuv TCP handle; `owner` (set by its user, type `O`) leads its callbacks back to it. */
export interface TcpHandle<O> {
  onread: ((this: TcpHandle<O>) => Buffer | undefined) | null;
  owner: O | undefined;
  readStart(): number;
  readStop(): number;
  useUserBuffer(buf: Uint8Array): void;
  writeBuffer(req: object, buf: Uint8Array): number;
  shutdown(req: object): number;
  close(cb?: (this: TcpHandle<O>) => void): void;
  /** uv_tcp_close_reset: closes with a RST (Node's TCPWrap.reset, behind resetAndDestroy()). */
  reset(cb: () => void): number;
  getpeername(out: AddressInfo): number;
  getsockname(out: AddressInfo): number;
  setNoDelay(on: boolean): number;
  connect(req: object, address: string, port: number): number;
  connect6(req: object, address: string, port: number): number;
}
export interface AddressInfo {
  address?: string;
  port?: number;
  family?: string;
}
/** A connect, write or shutdown request; `owner` as for {@link TcpHandle}. */
export interface Req<O> {
  oncomplete: (this: Req<O>, status: number) => void;
  owner: O | undefined;
  buffer?: Uint8Array;
}
/** The internals, typed for a user whose handles and requests point back to an `O`. */
export interface Bindings<O> {
  TCP: new (type: number) => TcpHandle<O>;
  TCPConnectWrap: new () => Req<O>;
  WriteWrap: new () => Req<O>;
  ShutdownWrap: new () => Req<O>;
  SOCKET: number;
  state: Int32Array;
  kReadBytesOrError: number;
  kLastWriteWasAsync: number;
  /** The symbols behind net.Socket's public `onread` option. */
  kBuffer: symbol;
  kBufferCb: symbol;
  kBufferGen: symbol;
}

type Slots = Record<symbol, unknown>;

/** Finds the internals; a string says why they are unusable. */
function probe(): Bindings<unknown> | string {
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
      TCP: tcp.TCP as Bindings<unknown>['TCP'],
      TCPConnectWrap: tcp.TCPConnectWrap as Bindings<unknown>['TCPConnectWrap'],
      WriteWrap: stream.WriteWrap as Bindings<unknown>['WriteWrap'],
      ShutdownWrap: stream.ShutdownWrap as Bindings<unknown>['ShutdownWrap'],
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

/**
 * Internals found by a probe, looked for once, on first use (process.env is slow to read on a
 * hot path): the bindings, or why they are not used (`L4LB_FAST_PATH=0`, or what the probe
 * found missing).
 */
class Probed<T> {
  readonly #probe: () => T | string;
  #value: T | undefined = undefined;
  #why: string | undefined = undefined;

  constructor(probe: () => T | string) {
    this.#probe = probe;
  }

  get(): T | undefined {
    if (this.#value === undefined && this.#why === undefined) {
      const r = process.env[FAST_PATH_ENV] === '0' ? `${FAST_PATH_ENV}=0` : this.#probe();
      if (typeof r === 'string') this.#why = r;
      else this.#value = r;
    }
    return this.#value;
  }

  /** Why the internals are not used; undefined when they are. */
  why(): string | undefined {
    this.get();
    return this.#why;
  }
}

const tcpInternals = new Probed<Bindings<unknown>>(probe);

/**
 * The internals, or undefined when the fast path is off. `O` is what the caller's handles
 * point back to: the internals are untyped, this is where they are given the caller's type.
 */
export function nodeInternals<O>(): Bindings<O> | undefined {
  return tcpInternals.get() as Bindings<O> | undefined;
}

/** Whether the fast path is on; when not, why (see {@link reportFastPath}). */
export function fastPathStatus(): { enabled: boolean; reason?: string } {
  const reason = tcpInternals.why();
  return reason === undefined ? { enabled: true } : { enabled: false, reason };
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

/**
 * Sets TCP_NODELAY on `server`'s listening socket, which Linux copies to every socket it accepts
 * (so they need no setsockopt each). False when it could not (no native TCP handle: a cluster
 * worker's handle in round-robin mode, whose sockets the primary accepts; not Linux).
 */
export function listenerNoDelay(server: net.Server): boolean {
  if (process.platform !== 'linux') return false;
  const handle = (server as unknown as { _handle?: { setNoDelay?: unknown } | null })._handle;
  if (!handle || typeof handle.setNoDelay !== 'function') return false;
  return (handle.setNoDelay as (on: boolean) => number).call(handle, true) === 0;
}

/**
 * Makes `server` hand accepted TCP handles to `onHandle` while `want()` says so; other
 * connections go through net.Server's own path to its 'connection' listeners. Call once the
 * server listens. Returns false (nothing changed) when the fast path is off or the server has
 * no handle.
 */
export function onAcceptedHandle<O>(server: net.Server, want: () => boolean, onHandle: (h: TcpHandle<O>) => void): boolean {
  const k = nodeInternals<O>();
  const handle = (server as unknown as { _handle?: { onconnection?: unknown } | null })._handle;
  if (k === undefined || !handle || typeof handle.onconnection !== 'function') return false;
  const original = handle.onconnection as (this: unknown, err: number, client: unknown) => void;
  handle.onconnection = function onconnection(this: unknown, err: number, client: unknown): void {
    if (err !== 0 || !(client instanceof k.TCP) || !want()) return original.call(this, err, client);
    onHandle(client);
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
  const k = nodeInternals();
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

// --- UDP: the handle under dgram.Socket (udp/raw-udp.ts drives it) ---

/** The sender of a datagram, as udp_wrap reports it. */
export interface UdpRemote {
  address: string;
  port: number;
}

/** A libuv UDP handle; `owner` (set by its user, type `O`) leads its callbacks back to it. */
export interface UdpHandle<O> {
  onmessage: ((this: UdpHandle<O>, nread: number, handle: UdpHandle<O>, buf?: Buffer, rinfo?: UdpRemote) => void) | null;
  owner: O | undefined;
  bind(address: string, port: number, flags: number): number;
  bind6(address: string, port: number, flags: number): number;
  connect(address: string, port: number): number;
  connect6(address: string, port: number): number;
  /** Unconnected: to `address:port`. */
  send(req: object, list: Uint8Array[], count: number, port: number, address: string, hasCallback: boolean): number;
  /** Connected: to the peer. */
  send(req: object, list: Uint8Array[], count: number, hasCallback: boolean): number;
  send6(req: object, list: Uint8Array[], count: number, port: number, address: string, hasCallback: boolean): number;
  send6(req: object, list: Uint8Array[], count: number, hasCallback: boolean): number;
  recvStart(): number;
  close(cb?: () => void): void;
}

/** The UDP internals, typed for a user whose handles point back to an `O`. */
export interface UdpBindings<O> {
  UDP: new () => UdpHandle<O>;
  SendWrap: new () => object;
  /** Where a dgram.Socket keeps its state (`{ handle, bindState, … }`). */
  kState: symbol;
}

function probeUdp(): UdpBindings<unknown> | string {
  try {
    const binding = (process as unknown as { binding(name: string): Record<string, unknown> }).binding;
    const udp = binding('udp_wrap') as { UDP?: unknown; SendWrap?: unknown };
    if (typeof udp.UDP !== 'function' || typeof udp.SendWrap !== 'function') return 'udp_wrap bindings are missing';
    const proto = (udp.UDP as { prototype: Record<string, unknown> }).prototype;
    for (const m of ['bind', 'bind6', 'connect', 'connect6', 'send', 'send6', 'recvStart', 'close']) {
      if (typeof proto[m] !== 'function') return `UDP handles have no ${m}()`;
    }
    // dgram.Socket's state, found by shape on a probe socket (never bound, closed at once).
    const probe = dgram.createSocket('udp4');
    const slots = probe as unknown as Slots;
    const keys = Object.getOwnPropertySymbols(probe).filter((k) => {
      const v = slots[k] as { handle?: unknown } | null;
      return typeof v === 'object' && v !== null && v.handle instanceof (udp.UDP as new () => object);
    });
    probe.close();
    if (keys.length !== 1) return 'dgram.Socket keeps its handle elsewhere';
    return { UDP: udp.UDP as UdpBindings<unknown>['UDP'], SendWrap: udp.SendWrap as UdpBindings<unknown>['SendWrap'], kState: keys[0] };
  } catch (err) {
    return `udp probe failed: ${(err as Error).message}`;
  }
}

const udpProbed = new Probed<UdpBindings<unknown>>(probeUdp);

/**
 * The UDP internals, or undefined when the fast path is off (`L4LB_FAST_PATH=0`, or Node lacks
 * them: then UDP goes through dgram.Socket alone).
 */
export function udpInternals<O>(): UdpBindings<O> | undefined {
  return udpProbed.get() as UdpBindings<O> | undefined;
}

/** The handle of a bound dgram.Socket, or undefined (fast path off, not bound, closed). */
export function dgramHandle<O>(socket: dgram.Socket): UdpHandle<O> | undefined {
  const k = udpInternals<O>();
  if (k === undefined) return undefined;
  const state = (socket as unknown as Slots)[k.kState] as { handle?: UdpHandle<O> | null } | undefined;
  return state?.handle ?? undefined;
}

/** A TCP handle bound to a port but not listening: it takes no connection. */
export interface BoundHandle {
  getsockname(out: AddressInfo): number;
  close(): void;
}

/**
 * Binds a TCP socket to `address:port` (`address` null: `::`, else `0.0.0.0`, as node:cluster
 * does) without listening, the way node:cluster's primary binds the socket it shares with
 * workers. Returns the handle, a negative errno when the bind fails, or undefined when this
 * Node has no such function.
 */
export function bindWithoutListening(address: string | null, port: number, family: 4 | 6): BoundHandle | number | undefined {
  const create = (net as unknown as { _createServerHandle?: unknown })._createServerHandle;
  if (typeof create !== 'function') return undefined;
  const h = (create as (address: string | null, port: number, family: number) => unknown)(address, port, family);
  if (typeof h === 'number') return h;
  const handle = h as Partial<BoundHandle> | null;
  if (typeof handle?.getsockname !== 'function' || typeof handle.close !== 'function') return undefined;
  return handle as BoundHandle;
}
