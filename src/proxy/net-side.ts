/**
 * @module proxy/net-side — a net.Socket as a relay side, and the one function that makes the
 * relay side of any {@link DataSocket}.
 *
 * Raw sockets (raw-socket.ts) are relay sides themselves; a net.Socket (TLS, preread listeners,
 * and everything when the fast path is off) is wrapped in a {@link NetSide}. It reads through a
 * {@link SocketReader} when it has one (a backend dialled with `onread`, or an accepted plain
 * socket that node-internals.ts could attach one to), through 'data' events otherwise.
 */
import net from 'node:net';
import { attachReader } from './node-internals.js';
import { isRawSocket } from './raw-socket.js';
import { SocketReader, readerOf, type ReadSink } from './socket-reader.js';
import type { RelayCore, RelaySide } from './relay-side.js';
import type { DataSocket } from './data-socket.js';

/**
 * The relay side of `s`: the raw socket itself, or a NetSide around a net.Socket. Throws on
 * anything else (a DataSocket of a kind this module does not know yet).
 */
export function relaySideOf(s: DataSocket): RelaySide {
  if (isRawSocket(s)) return s;
  if (s instanceof net.Socket) return new NetSide(s);
  throw new TypeError('relaySideOf: not a raw socket nor a net.Socket');
}

const kSide = Symbol('l4lb.relaySide');
type SideSocket = net.Socket & { [kSide]?: NetSide };

/**
 * A net.Socket as a relay side. It reads through a {@link SocketReader} when it has one (a
 * backend dialled with `onread`, or an accepted plain socket that node-internals.ts could
 * attach one to), through 'data' events otherwise (TLS, or the fast path off).
 */
class NetSide implements RelaySide, ReadSink {
  readonly socket: SideSocket;
  relay!: RelayCore;
  reader: SocketReader | undefined = undefined;
  /** Writes of borrowed buffers issued and completed, to know when the last one is done. */
  #issued = 0;
  #completed = 0;
  #waitingWrite = false;
  #waitingDrain = false;
  readonly #afterWrite: () => void;

  constructor(socket: net.Socket) {
    this.socket = socket;
    this.#afterWrite = () => {
      this.#completed++;
      if (this.#waitingWrite && this.#completed === this.#issued) {
        this.#waitingWrite = false;
        this.relay.writable(this);
      }
    };
  }

  bind(relay: RelayCore): void {
    this.relay = relay;
    const s = this.socket;
    s[kSide] = this;
    // A backend's reader may hold bytes read while connecting: attaching hands them over (to
    // the other side, bound first) before anything below could start the socket reading.
    const dialled = readerOf(s);
    if (dialled) {
      this.reader = dialled;
      dialled.attach(this);
    } else {
      this.reader = attachReader(s, newReader);
      this.reader?.attach(this);
      // With a reader this never fires; it is there so that a Node release that stopped
      // honouring it would deliver 'data' rather than drop it. Accepted sockets are paused
      // here (pauseOnConnect, or by preread), so subscribing does not start reading.
      s.on('data', onData);
    }
    s.on('drain', onDrain);
    s.on('end', onEnd);
    s.on('error', onError);
    s.on('close', onClose);
  }

  onRead(n: number, buf: Buffer): boolean {
    return this.relay.read(this, n, buf, false);
  }

  resumeReading(): void {
    const s = this.socket;
    if (!s.destroyed && !s.readableEnded) s.resume();
  }

  send(buf: Buffer, n: number, owned: boolean): boolean {
    const s = this.socket;
    const data = n === buf.length ? buf : buf.subarray(0, n);
    if (owned) {
      // The chunk is ours to keep: let the socket buffer up to its high-water mark.
      if (s.write(data)) return true;
      this.#waitingDrain = true;
      return false;
    }
    this.#issued++;
    s.write(data, this.#afterWrite);
    // Nothing queued means the kernel took all of it: the buffer can be read into again.
    if (s.writableLength === 0) return true;
    this.#waitingWrite = true;
    return false;
  }

  end(): void {
    this.socket.end();
  }

  destroy(): void {
    this.socket.destroy();
  }

  reset(): void {
    const s = this.socket;
    if (s.destroyed) return;
    try {
      s.resetAndDestroy();
    } catch {
      // A TLS socket has no TCP handle of its own to reset (ERR_INVALID_HANDLE_TYPE).
      s.destroy();
    }
  }

  get destroyed(): boolean {
    return this.socket.destroyed;
  }

  get readEnded(): boolean {
    return this.socket.readableEnded;
  }

  get writeEnded(): boolean {
    return this.socket.writableEnded || this.socket.destroyed;
  }

  release(): void {
    this.reader?.release();
  }

  drained(): void {
    if (!this.#waitingDrain) return;
    this.#waitingDrain = false;
    this.relay.writable(this);
  }
}

function newReader(): SocketReader {
  return new SocketReader();
}

// --- net.Socket listeners, shared by every relay: `this` is the socket ---
function onData(this: SideSocket, chunk: Buffer): void {
  const side = this[kSide]!;
  if (!side.relay.read(side, chunk.length, chunk, true)) this.pause();
}
function onDrain(this: SideSocket): void {
  this[kSide]!.drained();
}
function onEnd(this: SideSocket): void {
  const side = this[kSide]!;
  side.relay.ended(side);
}
function onError(this: SideSocket, err: NodeJS.ErrnoException): void {
  const side = this[kSide]!;
  side.relay.failed(side, err);
}
function onClose(this: SideSocket): void {
  const side = this[kSide]!;
  side.relay.closed(side);
}
