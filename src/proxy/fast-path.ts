/**
 * @module proxy/fast-path — the one place l4lb relies on Node internals: reading ACCEPTED
 * sockets into buffers of their own.
 *
 * Node offers that mode publicly only to sockets it creates for you, through the `onread`
 * option of net.connect / new net.Socket; net.Server has no such option for the sockets it
 * accepts. This module gives an accepted socket exactly the state `new net.Socket({ onread })`
 * would have given it, so from then on Node's own code paths (onStreamRead, pause, resume)
 * treat it as a public `onread` socket. It relies on:
 *
 * 1. net.Socket keeping its `onread` state in three own symbol-keyed properties (in Node 20–24:
 *    kBuffer, kBufferCb, kBufferGen). They are found by identity, not by name: two probe
 *    sockets are built with the public option and the properties holding the probe values are
 *    the ones used.
 * 2. The native stream handle's `useUserBuffer(buffer)` method (`socket._handle`), which is what
 *    net.Socket itself calls for `onread`.
 *
 * When either is missing, or `L4LB_FAST_PATH=0` is set, {@link attachReader} returns false and
 * the relay reads that socket through 'data' events (public API, slower). The test suite runs
 * the data-path tests both ways and asserts the fast path engages on the supported Node
 * versions, so a Node release that breaks it fails the tests instead of silently slowing down.
 */
import net from 'node:net';
import type { SocketReader } from './socket-reader.js';

/** Set `L4LB_FAST_PATH=0` to read accepted sockets through 'data' events only. */
export const FAST_PATH_ENV = 'L4LB_FAST_PATH';

interface Internals {
  kBuffer: symbol;
  kBufferCb: symbol;
  kBufferGen: symbol;
}

type Slots = Record<symbol, unknown>;
type HandleLike = { useUserBuffer?: (b: Uint8Array) => void; reading?: boolean };

/** The symbols behind the public `onread` option, found by identity on probe sockets. */
function probe(): Internals | string {
  try {
    const buf = Buffer.alloc(1);
    const gen = () => buf;
    const cb = () => true;
    const withBuffer = new net.Socket({ onread: { buffer: buf, callback: cb } } as net.SocketConstructorOpts) as unknown as Slots;
    const withGen = new net.Socket({ onread: { buffer: gen, callback: cb } } as net.SocketConstructorOpts) as unknown as Slots;
    const find = (o: Slots, v: unknown) => Object.getOwnPropertySymbols(o).filter((s) => o[s] === v);
    const kBuffer = find(withBuffer, buf);
    const kBufferCb = find(withBuffer, cb);
    const kBufferGen = find(withGen, gen);
    if (kBuffer.length !== 1 || kBufferCb.length !== 1 || kBufferGen.length !== 1) {
      return 'net.Socket does not keep its onread state where expected';
    }
    if (withBuffer[kBufferGen[0]] !== null || withGen[kBuffer[0]] !== true) {
      return 'net.Socket onread state has an unexpected shape';
    }
    return { kBuffer: kBuffer[0], kBufferCb: kBufferCb[0], kBufferGen: kBufferGen[0] };
  } catch (err) {
    return `probe failed: ${(err as Error).message}`;
  }
}

let internals: Internals | undefined;
let unavailable: string | undefined;

/** Read once, on first use: process.env is slow to read on a hot path. */
function resolve(): Internals | undefined {
  if (internals === undefined && unavailable === undefined) {
    const r = process.env[FAST_PATH_ENV] === '0' ? `${FAST_PATH_ENV}=0` : probe();
    if (typeof r === 'string') unavailable = r;
    else internals = r;
  }
  return internals;
}

/** Whether the fast path is on; when not, why (for the startup log and docs). */
export function fastPathStatus(): { enabled: boolean; reason?: string } {
  resolve();
  return unavailable === undefined ? { enabled: true } : { enabled: false, reason: unavailable };
}

/**
 * Makes an accepted plain TCP socket read through a reader made by `make` from its next read
 * on, as if it had been created with that reader's `onread`. The socket must have nothing
 * buffered; it may be paused or reading. Returns undefined, leaving the socket untouched,
 * when the fast path is off or does not apply (TLS socket, no native handle, data buffered).
 */
export function attachReader(socket: net.Socket, make: () => SocketReader): SocketReader | undefined {
  const k = resolve();
  if (k === undefined) return undefined;
  const s = socket as unknown as Slots & { _handle?: HandleLike | null };
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
