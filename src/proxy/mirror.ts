/**
 * @module proxy/mirror — copy a connection's client bytes to a backend of another pool.
 *
 * A pool with `mirror: { pool, percent, bufferSize }` has a {@link Mirror}. For the sampled
 * share of its connections, `Connection#startRelay` wraps the client's relay side in a
 * {@link MirrorTee} (relay-side.ts says how a decorator plugs in): every byte read from the
 * client goes to the relay as before, and a copy goes to a second connection, to a backend the
 * mirror pool's own balancer picks (its health, its limits). What the mirror sends back is
 * read and thrown away.
 *
 * The mirror never slows, changes or breaks the primary connection:
 * - the tee never makes the relay wait: a copy the mirror socket cannot take at once waits in
 *   a queue of at most `bufferSize` bytes (counting what the socket has not written yet); a
 *   mirror further behind than that is dropped (`buffer_full`);
 * - a failed pick, connect or write drops the mirror (counted by reason, docs/mirroring.md),
 *   never the primary;
 * - the client's FIN (or its end, however it ends) becomes the mirror's FIN once the queue is
 *   written; once the primary connection is over, the mirror gets the primary's `serverFin`
 *   timeout (30 s when 0) to finish, then it is closed.
 *
 * Mirror connections are secondary: they do not count as active connections, so a drain does
 * not wait for them, and `Proxy.close()` closes those left ({@link MirrorConnections}).
 */
import type { MirrorConfig, TimeoutsConfig } from '../config/types.js';
import type { ConnectError } from '../errors.js';
import type { MirrorDropReason, MirrorStats } from '../observability/stats.js';
import type { PickContext } from '../balancers/types.js';
import type { Backend } from './backend.js';
import type { Pool } from './pool.js';
import type { DataSocket } from './data-socket.js';
import type { RelayCore, RelaySide } from './relay-side.js';
import { dial, type Dial, type DialOptions, type DialOwner } from './connect.js';
import { relaySideOf } from './net-side.js';
import { ConnectionSet } from './connection-set.js';
import { isFdExhausted } from './limits.js';

/** How long a mirror may take to finish after its primary ended, when `serverFin` is 0. */
const DEFAULT_MIRROR_GRACE_MS = 30_000;

/** What a mirror needs from the connection it copies (connection.ts implements it). */
export interface MirrorSource extends PickContext {
  /** How to dial a backend of `pool` (PROXY header out, TLS origination), as for the primary. */
  dialOptions(pool: Pool): DialOptions | undefined;
}

/** What a mirror needs from the process (proxy.ts). */
export interface MirrorHost {
  /** Every live mirror connection of the process, for shutdown. */
  readonly mirrors: MirrorConnections;
  /** A slot on one of `pool`'s backends was given back (a connection waiting for one may go). */
  backendReleased(pool: Pool): void;
}

/** The live mirror connections of a process. */
export class MirrorConnections {
  readonly #live = new ConnectionSet<MirrorTee>();

  add(t: MirrorTee): void {
    this.#live.add(t);
  }

  delete(t: MirrorTee): void {
    this.#live.delete(t);
  }

  get size(): number {
    return this.#live.size;
  }

  /** Closes every mirror connection now (shutdown): those not done count as dropped. */
  closeAll(): void {
    for (const t of this.#live) t.shutdown();
  }
}

/** A pool's mirror: its settings, the pool the copies go to, and its counters. */
export class Mirror {
  readonly config: MirrorConfig;
  readonly target: Pool;
  readonly stats: MirrorStats;
  readonly host: MirrorHost;

  constructor(config: MirrorConfig, target: Pool, stats: MirrorStats, host: MirrorHost) {
    this.config = config;
    this.target = target;
    this.stats = stats;
    this.host = host;
  }

  /**
   * For a sampled connection, a tee around its client side that copies to a new mirror
   * connection; undefined for the others. `head` is client data the relay sends first
   * (read during preread), copied too.
   */
  tee(client: RelaySide, source: MirrorSource, timeouts: TimeoutsConfig, head: Buffer | undefined): MirrorTee | undefined {
    if (Math.random() * 100 >= this.config.percent) return undefined;
    return new MirrorTee(this, client, source, timeouts, head);
  }
}

function copyOf(buf: Buffer, n: number): Buffer {
  const c = Buffer.allocUnsafe(n);
  buf.copy(c, 0, 0, n);
  return c;
}

/**
 * The client side of a mirrored connection: a pass-through decorator towards the relay, and
 * the driver of the mirror connection. It tells the reports of its two sockets apart by the
 * side they come from: `#inner` (the client) or `#out` (the mirror backend).
 */
export class MirrorTee implements RelaySide, RelayCore, DialOwner {
  readonly #inner: RelaySide;
  #relay: RelayCore | undefined = undefined;
  readonly #mirror: Mirror;
  readonly #bufferSize: number;
  readonly #graceMs: number;
  #dialing: Dial | undefined = undefined;
  #dialStart = 0;
  #backend: Backend | undefined = undefined;
  /** The mirror backend's side, once connected. */
  #out: RelaySide | undefined = undefined;
  /** Copies waiting for the mirror socket, oldest first from `#head`. */
  #queue: Buffer[] = [];
  #queueHead = 0;
  #queued = 0;
  /** Bytes the mirror socket took but has not written yet (its last send() returned false). */
  #inFlight = 0;
  /** Bytes handed to the mirror socket. */
  #sent = 0;
  /** The client is done sending: FIN the mirror once the queue is written. */
  #finWanted = false;
  #finSent = false;
  #dropped: MirrorDropReason | undefined = undefined;
  /** The mirror connection is over (closed, or never opened). */
  #over = false;
  #grace: NodeJS.Timeout | undefined = undefined;

  constructor(mirror: Mirror, inner: RelaySide, source: MirrorSource, timeouts: TimeoutsConfig, head: Buffer | undefined) {
    this.#mirror = mirror;
    this.#inner = inner;
    this.#bufferSize = mirror.config.bufferSize;
    this.#graceMs = timeouts.serverFinMs > 0 ? timeouts.serverFinMs : DEFAULT_MIRROR_GRACE_MS;
    const stats = mirror.stats;
    stats.started++;
    stats.active++;
    mirror.host.mirrors.add(this);
    if (head !== undefined && head.length > 0) this.#copy(head, head.length, true);
    const target = mirror.target;
    const backend = target.pick(source, []);
    if (backend === undefined) {
      this.#drop('no_backend');
      return;
    }
    backend.acquire();
    this.#backend = backend;
    this.#dialStart = performance.now();
    this.#dialing = dial(backend, timeouts.connectMs, source.dialOptions(target), this);
  }

  /** Client bytes written to the mirror backend so far. */
  get bytes(): number {
    return this.#sent;
  }

  /** Why the mirror was given up; undefined while it runs or once it finished. */
  get dropped(): MirrorDropReason | undefined {
    return this.#dropped;
  }

  // --- DialOwner: the mirror backend's dial ---
  dialed(err: ConnectError | null, sock: DataSocket | null): void {
    const backend = this.#backend!;
    const pool = this.#mirror.target;
    this.#dialing = undefined;
    // Out of descriptors is l4lb's shortage, not the backend's: no health penalty.
    if (!(err && isFdExhausted(err))) pool.recordConnectResult(backend, err === null, performance.now() - this.#dialStart);
    if (err) return this.#drop('connect_failed');
    backend.countRelayed();
    const out = relaySideOf(sock!);
    this.#out = out;
    out.bind(this);
    out.resumeReading();
    this.#flush();
  }

  // --- RelaySide, towards the relay: the client's side, passed through ---
  bind(relay: RelayCore): void {
    this.#relay = relay;
    this.#inner.bind(this);
  }
  resumeReading(): void {
    this.#inner.resumeReading();
  }
  send(buf: Buffer, n: number, owned: boolean): boolean {
    return this.#inner.send(buf, n, owned);
  }
  end(): void {
    this.#inner.end();
  }
  destroy(): void {
    this.#inner.destroy();
  }
  /** Passes a reset on (fault injection's reset_peer), so the client sees a RST, not a FIN. */
  reset(): void {
    const inner = this.#inner;
    if (inner.reset !== undefined) inner.reset();
    else inner.destroy();
  }
  get destroyed(): boolean {
    return this.#inner.destroyed;
  }
  get readEnded(): boolean {
    return this.#inner.readEnded;
  }
  get writeEnded(): boolean {
    return this.#inner.writeEnded;
  }
  /** Both primary sides are closed: the primary is over, the mirror finishes within its grace time. */
  release(): void {
    this.#inner.release();
    this.#finishSending();
    if (!this.#over) this.#grace = setTimeout(onGraceOver, this.#graceMs, this);
  }

  // --- RelayCore: reports of the client side (to the relay) and of the mirror side (ours) ---
  read(from: RelaySide, n: number, buf: Buffer, owned: boolean): boolean {
    if (from !== this.#inner) return true; // the mirror's answer: read and thrown away
    if (!this.#finWanted && this.#dropped === undefined) this.#copy(buf, n, owned);
    return this.#relay!.read(this, n, buf, owned);
  }
  writable(side: RelaySide): void {
    if (side === this.#inner) return this.#relay!.writable(this);
    this.#inFlight = 0;
    this.#flush();
  }
  ended(side: RelaySide): void {
    if (side !== this.#inner) return; // the mirror's FIN: the copy goes on until the client's
    this.#finishSending();
    this.#relay!.ended(this);
  }
  failed(side: RelaySide, err: NodeJS.ErrnoException): void {
    if (side === this.#inner) {
      this.#finishSending();
      return this.#relay!.failed(this, err);
    }
    if (this.#finSent) side.destroy();
    else this.#drop('error');
  }
  closed(side: RelaySide): void {
    if (side === this.#inner) {
      this.#finishSending();
      return this.#relay!.closed(this);
    }
    // Closed before everything (FIN included) was handed over: the mirror reset or was dropped.
    if (!this.#finSent) this.#drop('error');
    side.release();
    this.#end();
  }

  // --- the copy ---
  #copy(buf: Buffer, n: number, owned: boolean): void {
    if (this.#queued + this.#inFlight + n > this.#bufferSize) return this.#drop('buffer_full');
    // A borrowed buffer is read into again as soon as the relay is done with it: copy it. An
    // owned one ('data' chunks) is never written to again, so both sockets can send it.
    const data = owned ? (n === buf.length ? buf : buf.subarray(0, n)) : copyOf(buf, n);
    if (this.#out !== undefined && this.#inFlight === 0 && this.#queueHead === this.#queue.length) {
      this.#write(this.#out, data);
      return;
    }
    this.#queue.push(data);
    this.#queued += n;
  }

  /** Hands `data` to the mirror socket; false when it must be waited for. */
  #write(out: RelaySide, data: Buffer): boolean {
    const n = data.length;
    this.#sent += n;
    this.#mirror.stats.bytes += n;
    if (out.send(data, n, true)) return true;
    this.#inFlight = n;
    return false;
  }

  /** Writes what waits while the mirror socket takes it; then the FIN, when wanted. */
  #flush(): void {
    const out = this.#out;
    if (out === undefined || this.#dropped !== undefined) return;
    const q = this.#queue;
    while (this.#queueHead < q.length) {
      const data = q[this.#queueHead];
      q[this.#queueHead++] = EMPTY;
      this.#queued -= data.length;
      if (!this.#write(out, data)) break;
    }
    if (this.#queueHead === q.length) {
      this.#queue = [];
      this.#queueHead = 0;
      if (this.#finWanted && !this.#finSent && this.#inFlight === 0) {
        this.#finSent = true;
        out.end();
      }
    }
  }

  /** The client sends no more (FIN, error, close, or the primary is over): FIN the mirror after the queue. */
  #finishSending(): void {
    if (this.#finWanted) return;
    this.#finWanted = true;
    if (this.#inFlight === 0) this.#flush();
  }

  #drop(reason: MirrorDropReason): void {
    if (this.#dropped !== undefined || this.#over) return;
    this.#dropped = reason;
    this.#mirror.stats.countDropped(reason);
    this.#queue = [];
    this.#queueHead = this.#queued = 0;
    if (this.#dialing !== undefined) {
      this.#dialing.abort();
      this.#dialing = undefined;
      this.#end();
    } else if (this.#out !== undefined) {
      this.#out.destroy(); // closed() follows and ends it
    } else {
      this.#end();
    }
  }

  /** Grace time over: what is not written by now is dropped; a mirror that got everything is just closed. */
  timedOut(): void {
    this.#grace = undefined;
    if (this.#over) return;
    if (this.#finSent || this.#dropped !== undefined) this.#out?.destroy();
    else this.#drop('timeout');
  }

  /** The process shuts down: close now. */
  shutdown(): void {
    if (this.#over) return;
    if (this.#finSent) this.#out?.destroy();
    else this.#drop('shutdown');
  }

  /** The mirror connection is over: give back its backend slot and its place in the counters. */
  #end(): void {
    if (this.#over) return;
    this.#over = true;
    if (this.#grace !== undefined) clearTimeout(this.#grace);
    const m = this.#mirror;
    m.stats.active--;
    m.host.mirrors.delete(this);
    const backend = this.#backend;
    if (backend !== undefined) {
      backend.release();
      backend.addBytes(this.#sent, 0);
      m.host.backendReleased(m.target);
    }
    this.#queue = [];
  }
}

const EMPTY = Buffer.alloc(0);

function onGraceOver(t: MirrorTee): void {
  t.timedOut();
}
