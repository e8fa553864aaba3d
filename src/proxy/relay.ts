/**
 * @module proxy/relay — copy bytes both ways between a client and a backend.
 *
 * Guarantees (tested in test/proxy/data-path.test.ts, backpressure.test.ts, fast-path.test.ts
 * and test/lifecycle/timeouts.test.ts, with and without the fast path):
 * - Byte-exact, both directions at once, in order.
 * - Backpressure: a side is not read while what was read from it has not been written out
 *   (or, for 'data' chunks, while the other side's write buffer is full), so memory per
 *   direction is bounded whatever the speed difference.
 * - Half-close: a FIN from one side becomes a FIN towards the other, and the other direction
 *   keeps flowing until it ends too. A half-closed connection is bounded by the fin timeout
 *   (inactivity while half-closed).
 * - An error or reset on one side ends the other promptly: what was already read from the
 *   failed side is still flushed to the healthy side, then it is closed (bounded by the fin
 *   timeout, then destroyed).
 *
 * The relay drives two {@link RelaySide}s (relay-side.ts, which says how to add one): a raw
 * socket (raw-socket.ts: a bare libuv handle, for plain TCP when the fast path is on), a
 * net.Socket in a NetSide (net-side.ts: TLS, preread listeners, and everything when the fast
 * path is off), or a decorator around either. Sockets read into buffers of their own where they
 * can (socket-reader.ts): a read is written out at once and the side reads again only when
 * that write has left the process.
 *
 * One inactivity deadline per connection serves both directions and both timeouts (idle,
 * then fin once half-closed): an entry in a shared list (deadlines.ts), not a timer of its own;
 * a read records the time, nothing more.
 */
import { deadlineList, DeadlineEntryBase } from './deadlines.js';
import { ENDED_SIDE, type RelayCore, type RelaySide } from './relay-side.js';

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

/** Who hears, once, that both sides are closed. */
export interface RelayOwner {
  relayDone(result: RelayResult): void;
}

/** What relay() returns: stop the relay (shutdown, admin action) and read its counters. */
export interface RelayHandle {
  stop(reason: TerminationReason): void;
  readonly bytesUp: number;
  readonly bytesDown: number;
}

const RESET_CODES = new Set(['ECONNRESET', 'EPIPE', 'ECONNABORTED']);
/** How long a side closed after an error on the other may take to finish when its fin timeout is 0. */
const DEFAULT_GRACE_MS = 30_000;

/** The state of one relayed connection (and the handle relay() returns). */
/** The inactivity deadline (idle, or fin once half-closed) is a deadline-list entry. */
class Relay extends DeadlineEntryBase implements RelayCore, RelayHandle {
  /** The two sides, and the owner: let go of once finished (see letGo()). */
  client: RelaySide;
  backend: RelaySide;
  readonly timeouts: RelayTimeouts;
  owner: RelayOwner;
  bytesUp = 0;
  bytesDown = 0;
  /** The client waits for the backend's writes to finish before reading again (and vice versa). */
  clientWaits = false;
  backendWaits = false;
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

  constructor(client: RelaySide, backend: RelaySide, timeouts: RelayTimeouts, owner: RelayOwner) {
    super();
    this.client = client;
    this.backend = backend;
    this.timeouts = timeouts;
    this.owner = owner;
  }

  // --- RelayCore ---
  read(from: RelaySide, n: number, buf: Buffer, owned: boolean): boolean {
    if (this.dlList !== undefined) this.dlLastActive = performance.now();
    const up = from === this.client;
    if (up) this.bytesUp += n;
    else this.bytesDown += n;
    const to = up ? this.backend : this.client;
    // The other side failed or was ended: what still arrives is discarded, so this side can
    // read on to its FIN and close.
    if (to.writeEnded || to.send(buf, n, owned)) return true;
    if (up) this.clientWaits = true;
    else this.backendWaits = true;
    return false;
  }

  writable(to: RelaySide): void {
    if (to === this.backend) {
      if (!this.clientWaits) return;
      this.clientWaits = false;
      if (!this.clientEnded) this.client.resumeReading();
    } else {
      if (!this.backendWaits) return;
      this.backendWaits = false;
      if (!this.backendEnded) this.backend.resumeReading();
    }
  }

  ended(side: RelaySide): void {
    if (side === this.client) {
      this.clientEnded = true;
      this.mark('client', 'fin', 'client_closed');
      this.backend.end();
      if (!this.backendEnded) this.armFinTimeout(this.timeouts.clientFinMs);
    } else {
      this.backendEnded = true;
      this.mark('backend', 'fin', 'backend_closed');
      this.client.end();
      if (!this.clientEnded) this.armFinTimeout(this.timeouts.serverFinMs);
    }
  }

  /** An error on one side: close it, flush then close the other. */
  failed(side: RelaySide, err: NodeJS.ErrnoException): void {
    const reset = RESET_CODES.has(err.code ?? '');
    if (side === this.client) {
      this.mark('client', 'rst', reset ? 'client_reset' : 'client_error');
      this.client.destroy();
      this.closeGracefully(this.backend);
    } else {
      this.mark('backend', 'rst', reset ? 'backend_reset' : 'backend_error');
      this.backend.destroy();
      this.closeGracefully(this.client);
    }
  }

  // A side that closes without a FIN (destroyed, or reset without an error) ends the other
  // gracefully: what it already sent is delivered, then FIN.
  closed(side: RelaySide): void {
    if (side === this.client) {
      this.clientClosed = true;
      if (!this.backendClosed && !this.clientEnded) {
        this.mark('client', 'rst', 'client_reset');
        this.closeGracefully(this.backend);
      }
    } else {
      this.backendClosed = true;
      if (!this.clientClosed && !this.backendEnded) {
        this.mark('backend', 'rst', 'backend_reset');
        this.closeGracefully(this.client);
      }
    }
    this.maybeFinish();
  }

  // --- RelayHandle ---
  stop(why: TerminationReason): void {
    this.mark('proxy', 'proxy', why);
    this.destroyBoth();
  }

  // --- bookkeeping ---
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

  /** Sets the inactivity limit, counted from now (0 = none). */
  setInactivity(ms: number): void {
    this.dlList?.remove(this);
    if (ms > 0) deadlineList(ms).add(this);
  }

  onDeadline(): void {
    if (!this.finished) this.timedOut();
  }

  armFinTimeout(ms: number): void {
    // While half-closed, the inactivity timer becomes the fin timer (or stays the idle timer
    // when there is no fin timeout).
    if (ms > 0) this.setInactivity(ms);
  }

  timedOut(): void {
    if (this.clientEnded && !this.backendEnded) this.mark('proxy', 'timeout', 'client_fin_timeout');
    else if (this.backendEnded && !this.clientEnded) this.mark('proxy', 'timeout', 'server_fin_timeout');
    else this.mark('proxy', 'timeout', 'idle_timeout');
    this.destroyBoth();
  }

  closeGracefully(side: RelaySide): void {
    if (side.destroyed) return;
    // Whatever was already read from the failed side reaches this side, then FIN.
    side.end();
    // The failed side is closed: nothing reads from this side's buffer any more, and what
    // still arrives here is discarded, so it can read on to its FIN and close.
    if (side === this.client) this.clientWaits = false;
    else this.backendWaits = false;
    side.resumeReading();
    // The failed side ended first, as with a FIN from it: the client after a backend failure
    // gets the server-fin timeout to finish, the backend after a client failure the client-fin.
    const fin = side === this.client ? this.timeouts.serverFinMs : this.timeouts.clientFinMs;
    this.guardTimer ??= setTimeout(destroyBoth, fin > 0 ? fin : DEFAULT_GRACE_MS, this);
  }

  destroyBoth(): void {
    this.client.destroy();
    this.backend.destroy();
  }

  maybeFinish(): void {
    if (this.finished || !this.clientClosed || !this.backendClosed) return;
    this.finished = true;
    this.dlList?.remove(this);
    if (this.lifetimeTimer !== undefined) clearTimeout(this.lifetimeTimer);
    if (this.guardTimer !== undefined) clearTimeout(this.guardTimer);
    // Both sides are closed: nothing reads into or writes from their buffers any more.
    this.client.release();
    this.backend.release();
    this.owner.relayDone({
      bytesUp: this.bytesUp,
      bytesDown: this.bytesDown,
      closedFirst: this.closedFirst ?? 'proxy',
      closeKind: this.closeKind,
      reason: this.reason ?? 'client_closed',
    });
    this.letGo();
  }

  /**
   * A finished relay stops pointing at its sockets and owner. Should it have been promoted to
   * V8's old generation while it ran, it stays there, dead, until the next full GC, and every
   * young object it still pointed at would be kept alive (and promoted in turn) by each young
   * GC until then. Measured together with the connection, the dial and the connect request
   * letting go likewise: the bytes promoted per connection more than halved
   * (docs/performance.md, "Per connection, third pass").
   */
  letGo(): void {
    this.client = this.backend = ENDED_SIDE;
    this.owner = NO_OWNER;
  }
}

const NO_OWNER: RelayOwner = { relayDone() {} };

function destroyBoth(r: Relay): void {
  r.destroyBoth();
}
function onLifetime(r: Relay): void {
  r.mark('proxy', 'timeout', 'max_lifetime');
  r.destroyBoth();
}

/**
 * Relays between the sides `c` (the client) and `b` (the backend) until both are closed, then
 * tells `owner` once. `head` is client data already read (preread) to send to the backend
 * first. The returned handle stops the relay (shutdown, admin action).
 */
export function relay(c: RelaySide, b: RelaySide, timeouts: RelayTimeouts, owner: RelayOwner, head?: Buffer): RelayHandle {
  const r = new Relay(c, b, timeouts, owner);
  // The client first: binding the backend may hand over bytes it read while connecting.
  c.bind(r);
  b.bind(r);
  if (timeouts.idleMs > 0) r.setInactivity(timeouts.idleMs);
  if (timeouts.maxLifetimeMs > 0) r.lifetimeTimer = setTimeout(onLifetime, timeouts.maxLifetimeMs, r);

  if (head && head.length > 0) {
    r.bytesUp += head.length;
    if (!b.send(head, head.length, true)) r.clientWaits = true;
  }
  // The client may already have ended (it sent everything and a FIN during preread).
  if (c.readEnded) r.ended(c);
  else if (!r.clientWaits) c.resumeReading();
  if (!r.backendWaits) b.resumeReading();
  return r;
}
