/**
 * @module proxy/replay — send the first client bytes again to another backend when one closes
 * or resets before answering (`retryOnEmptyResponse` on a pool; docs/mirroring.md).
 *
 * {@link ReplaySide} wraps the backend's relay side (relay-side.ts says how a decorator plugs
 * in). Until the backend's first byte it keeps a copy of what the client sent, up to
 * `maxBytes`. If the backend then ends, fails or closes without having sent anything, the
 * side does not tell the relay: it asks its owner (the connection) for another backend, which
 * counts against the listener's `retries` and records the failure for passive health as a
 * failed connect would, and once that backend is connected sends it the kept bytes (and the
 * client's FIN, if it came) and carries on as the backend side. Once the backend sent a byte,
 * or the client sent more than `maxBytes`, nothing is kept and nothing is replayed: a failure
 * reaches the relay as it would without this side.
 *
 * While the next backend is dialled the client is not read: client bytes the relay sends
 * meanwhile are kept (and the relay waits), within `maxBytes`; more gives the replay up.
 */
import type { RelayCore, RelaySide } from './relay-side.js';

/** What a replaying side needs from its connection (connection.ts implements it). */
export interface ReplayOwner {
  /**
   * The backend closed before answering: record the failure, pick another backend and dial it
   * (then {@link ReplaySide.attach} or {@link ReplaySide.giveUp}). False when there is none
   * left to try; the failure then goes to the relay.
   */
  replay(): boolean;
  /** The relay destroyed the side while a replay was dialling: stop the dial. */
  cancelReplay(): void;
}

/** How the backend that did not answer ended, to report when no replay happens after all. */
type Failure = { kind: 'ended' } | { kind: 'failed'; err: NodeJS.ErrnoException } | { kind: 'closed' };

/** A backend side that replays the kept client bytes to another backend on an empty response. */
export class ReplaySide implements RelaySide, RelayCore {
  #inner: RelaySide;
  #relay: RelayCore | undefined = undefined;
  readonly #owner: ReplayOwner;
  readonly #maxBytes: number;
  /** The client's bytes so far; undefined once nothing can be replayed any more. */
  #kept: Buffer[] | undefined = [];
  #keptBytes = 0;
  /** Dialling another backend: `#inner` is the one that failed. */
  #redialing = false;
  #failure: Failure | undefined = undefined;
  /** The failed inner side reported closed while the replay was dialling. */
  #innerClosed = false;
  /** The relay called end(): FIN the next backend after the kept bytes. */
  #wantEnd = false;
  #destroyed = false;
  /** The relay waits for writable(): a send() during the dial returned false. */
  #relayWaits = false;
  /** Times the kept bytes were sent again. */
  replays = 0;

  constructor(inner: RelaySide, maxBytes: number, owner: ReplayOwner) {
    this.#inner = inner;
    this.#maxBytes = maxBytes;
    this.#owner = owner;
  }

  /** The next backend is connected: it gets the kept bytes (and FIN) and takes over. */
  attach(side: RelaySide): void {
    const old = this.#inner;
    this.#inner = side;
    this.#redialing = false;
    this.#failure = undefined;
    this.replays++;
    // A failed side that already closed gives its buffers back now; else when it closes.
    if (this.#innerClosed) old.release();
    this.#innerClosed = false;
    // Taken before binding: a side may hand over bytes it read while connecting, and the first
    // byte from the backend ends the keeping.
    const kept = this.#kept!;
    const all = kept.length === 1 ? kept[0] : Buffer.concat(kept, this.#keptBytes);
    if (this.#keptBytes > 0) this.#kept = [all];
    side.bind(this);
    if (this.#keptBytes > 0) side.send(all, all.length, true);
    if (this.#wantEnd) side.end();
    side.resumeReading();
    if (this.#relayWaits) {
      // Whatever the new side still has to write, the relay reads on: the bytes it waited
      // for are kept (and counted against maxBytes), and the new side's writable() is ignored.
      this.#relayWaits = false;
      this.#relay!.writable(this);
    }
  }

  /** No other backend could be connected: the failure reaches the relay as it happened. */
  giveUp(): void {
    if (!this.#redialing) return;
    this.#redialing = false;
    this.#kept = undefined;
    const f = this.#failure!;
    this.#failure = undefined;
    const relay = this.#relay!;
    if (f.kind === 'failed') relay.failed(this, f.err);
    else if (f.kind === 'ended') relay.ended(this);
    if (this.#innerClosed || f.kind === 'closed') relay.closed(this);
  }

  // --- RelaySide, towards the relay ---
  bind(relay: RelayCore): void {
    this.#relay = relay;
    this.#inner.bind(this);
  }
  resumeReading(): void {
    if (!this.#redialing) this.#inner.resumeReading();
  }
  send(buf: Buffer, n: number, owned: boolean): boolean {
    if (this.#kept !== undefined) this.#keep(buf, n, owned);
    if (!this.#redialing) return this.#inner.send(buf, n, owned);
    if (this.#kept === undefined) {
      // More than maxBytes before any backend answered: no replay. Those bytes had nowhere to
      // go anyway (the backend is gone), as after a failure without this side.
      this.#owner.cancelReplay();
      process.nextTick(giveUp, this);
      return true;
    }
    this.#relayWaits = true;
    return false;
  }
  end(): void {
    this.#wantEnd = true;
    if (!this.#redialing) this.#inner.end();
  }
  /** Passes a reset on (fault injection's reset_peer); while redialling there is no socket to reset. */
  reset(): void {
    if (this.#destroyed || this.#redialing || this.#inner.reset === undefined) return this.destroy();
    this.#destroyed = true;
    this.#inner.reset();
  }
  destroy(): void {
    if (this.#destroyed) return;
    this.#destroyed = true;
    if (!this.#redialing) return this.#inner.destroy();
    this.#owner.cancelReplay();
    this.#redialing = false;
    this.#kept = undefined;
    // The relay hears of the close once, and never from inside its own call.
    if (this.#innerClosed) process.nextTick(reportClosed, this);
    else this.#failure = undefined; // the failed side's own closed() is passed on
  }
  get destroyed(): boolean {
    return this.#destroyed || (!this.#redialing && this.#inner.destroyed);
  }
  get readEnded(): boolean {
    return !this.#redialing && this.#inner.readEnded;
  }
  get writeEnded(): boolean {
    return this.#destroyed || (this.#redialing ? this.#wantEnd : this.#inner.writeEnded);
  }
  release(): void {
    this.#inner.release();
  }

  // --- RelayCore, towards the backend's side ---
  read(from: RelaySide, n: number, buf: Buffer, owned: boolean): boolean {
    if (from !== this.#inner || this.#redialing) return true;
    // The backend answered: nothing is replayed from now on.
    this.#kept = undefined;
    return this.#relay!.read(this, n, buf, owned);
  }
  writable(side: RelaySide): void {
    if (side === this.#inner && !this.#redialing) this.#relay!.writable(this);
  }
  ended(side: RelaySide): void {
    if (side !== this.#inner || this.#redialing) return;
    if (!this.#tryReplay({ kind: 'ended' })) this.#relay!.ended(this);
  }
  failed(side: RelaySide, err: NodeJS.ErrnoException): void {
    if (side !== this.#inner || this.#redialing) return;
    if (!this.#tryReplay({ kind: 'failed', err })) this.#relay!.failed(this, err);
  }
  closed(side: RelaySide): void {
    if (side !== this.#inner) return side.release(); // a failed side replaced by the next one
    if (this.#redialing) {
      this.#innerClosed = true;
      return;
    }
    if (!this.#tryReplay({ kind: 'closed' })) this.#relay!.closed(this);
  }

  /** Reported once the failed side closed, when the relay destroyed this side meanwhile. */
  reportClosed(): void {
    this.#relay!.closed(this);
  }

  #keep(buf: Buffer, n: number, owned: boolean): void {
    if (this.#keptBytes + n > this.#maxBytes) {
      this.#kept = undefined;
      return;
    }
    this.#kept!.push(owned ? (n === buf.length ? buf : buf.subarray(0, n)) : Buffer.from(buf.subarray(0, n)));
    this.#keptBytes += n;
  }

  /** Starts a replay if one may happen; false when the failure is the relay's to hear. */
  #tryReplay(failure: Failure): boolean {
    if (this.#kept === undefined || this.#destroyed) return false;
    if (!this.#owner.replay()) {
      this.#kept = undefined;
      return false;
    }
    this.#redialing = true;
    this.#failure = failure;
    this.#innerClosed = failure.kind === 'closed';
    if (!this.#innerClosed) this.#inner.destroy();
    return true;
  }
}

function giveUp(s: ReplaySide): void {
  s.giveUp();
}
function reportClosed(s: ReplaySide): void {
  s.reportClosed();
}
