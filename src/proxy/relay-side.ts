/**
 * @module proxy/relay-side — the interface between the relay and what it relays between.
 *
 * The relay (relay.ts) drives two {@link RelaySide}s and hears from them through
 * {@link RelayCore}. It knows nothing else of them: a side may be a raw socket (raw-socket.ts),
 * a net.Socket wrapped in a NetSide (net-side.ts), or a decorator around either. This is the
 * plug point for behaviour between the relay and a socket (fault injection, a mirror tee):
 *
 * - A decorator implements RelaySide towards the relay and RelayCore towards the side it wraps.
 *   Its `bind(relay)` keeps `relay` and binds the inner side to itself; what the inner side
 *   reports (`read`, `writable`, `ended`, `failed`, `closed`) it passes on with itself as the
 *   side (the relay tells its sides apart by identity), after doing what it adds.
 * - Sides are made in one place, `Connection#startRelay` (connection.ts): wrap there. A
 *   connection without decorators hands the relay its sockets' sides unchanged, so the relay's
 *   per-chunk calls stay monomorphic on the fast path (two RawSockets).
 * - The contract a decorator keeps: a read's buffer may be reused once `read()` returns true or
 *   `writable()` was called; `send()` returning false must be followed by exactly one
 *   `writable()` once the bytes are out; `closed()` comes once, after `destroy()` or once both
 *   directions are done, and never from inside a relay call.
 */

/** One end of a relayed connection, as the relay drives it. */
export interface RelaySide {
  /** Called once, before anything else: from now on the side reports to `relay`. */
  bind(relay: RelayCore): void;
  /** Reads (again); a no-op once the read side ended or the side is closed. */
  resumeReading(): void;
  /**
   * Writes `buf[0, n)`. True: done, the caller may reuse `buf` and read on. False: wait for
   * `relay.writable(side)`. `owned` says the caller never reuses `buf` (a 'data' chunk).
   */
  send(buf: Buffer, n: number, owned: boolean): boolean;
  /** FIN once what is queued is written. */
  end(): void;
  /** Closes now (queued writes are dropped). */
  destroy(): void;
  /**
   * Closes now with a TCP RST (fault injection's reset_peer). Optional: a decorator that does
   * not pass it on is closed with destroy() instead.
   */
  reset?(): void;
  /** Closed or closing. */
  readonly destroyed: boolean;
  /** The peer's FIN was read. */
  readonly readEnded: boolean;
  /** end() or destroy() was called: nothing more goes out. */
  readonly writeEnded: boolean;
  /** Gives pooled buffers back; called once both sides are closed. */
  release(): void;
}

/** What a side reports to the relay. */
export interface RelayCore {
  /** `n` bytes read into `buf`: false stops the side reading until the relay resumes it. */
  read(from: RelaySide, n: number, buf: Buffer, owned: boolean): boolean;
  /** Everything `side` was asked to write is written (after send() returned false). */
  writable(side: RelaySide): void;
  /** The peer's FIN was read. */
  ended(side: RelaySide): void;
  failed(side: RelaySide, err: NodeJS.ErrnoException): void;
  /** The side is closed (its handle released). */
  closed(side: RelaySide): void;
}

/** What a finished relay points at instead of its sides: closed, and inert. */
export const ENDED_SIDE: RelaySide = {
  bind() {},
  resumeReading() {},
  send: () => true,
  end() {},
  destroy() {},
  destroyed: true,
  readEnded: true,
  writeEnded: true,
  release() {},
};
