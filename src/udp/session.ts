/**
 * @module udp/session — one UDP session: a client address and port, the backend chosen for it,
 * and a connected UDP socket towards that backend.
 *
 *   datagram ─► admit ─► session lookup ─► (new) balance ─► session socket ─► forward ─► end
 *
 * The socket is connected (`connect(2)`), so the kernel delivers only that backend's replies to
 * it and reports an ICMP port-unreachable as ECONNREFUSED on it: that is the passive-health
 * signal UDP has instead of a refused connect. Replies go back to the client from the
 * listener's own socket, so the client sees them come from the address it sent to.
 *
 * A datagram is forwarded as one datagram, never merged or split (Node hands over whole
 * datagrams, and `send` sends one). The socket (udp/raw-udp.ts) is a bare libuv handle, bound
 * and connected at once, when Node's internals are there and the backend is an IP; otherwise a
 * dgram.Socket, connected asynchronously: until then datagrams wait in a small bounded list
 * ({@link MAX_PENDING_DATAGRAMS}); beyond it they are dropped and counted (`pending_full`).
 *
 * Every end goes through {@link UdpSession.end}: it closes the socket, gives back the
 * admission slots and counts the session once, with one access-log line.
 */
import type { Backend } from '../proxy/backend.js';
import type { Pool } from '../proxy/pool.js';
import type { PickContext } from '../balancers/types.js';
import type { AccessRecord } from '../proxy/connection.js';
import { ErrorCodes } from '../errors.js';
import { connectBackend, type BackendPeer, type BackendSocket } from './raw-udp.js';

/** Datagrams held while the session socket connects; more are dropped (`pending_full`). */
export const MAX_PENDING_DATAGRAMS = 16;

/** Why a session ended, in access-log and metric words. */
export type UdpEndReason =
  | 'idle_timeout'
  | 'responses_done'
  | 'response_timeout'
  | 'backend_unreachable'
  | 'backend_error'
  | 'shutdown';

/** An access-log record of a UDP session: the TCP record's fields plus datagram counts. */
export interface UdpAccessRecord extends AccessRecord {
  protocol: 'udp';
  datagramsUp: number;
  datagramsDown: number;
}

/** What a session needs from its listener. */
export interface SessionOwner {
  /** The listener's name (access log). */
  readonly name: string;
  /** Coarse clock (ms), advanced by the listener's sweep: reading it costs nothing. */
  readonly clock: number;
  /** Sends a reply to the client from the listener's socket. */
  reply(msg: Buffer, port: number, address: string): void;
  /** Counts a dropped datagram. */
  drop(reason: string): void;
  /** Counts a datagram forwarded client → backend. */
  countUp(): void;
  /** A session ended: forget it, count it, log it. */
  ended(s: UdpSession, reason: UdpEndReason, error?: string): void;
}

const CLOSE_SIDE: Record<UdpEndReason, Pick<AccessRecord, 'closedFirst' | 'closeKind'>> = {
  idle_timeout: { closedFirst: 'proxy', closeKind: 'timeout' },
  response_timeout: { closedFirst: 'proxy', closeKind: 'timeout' },
  responses_done: { closedFirst: 'backend', closeKind: 'fin' },
  backend_unreachable: { closedFirst: 'backend', closeKind: 'rst' },
  backend_error: { closedFirst: 'backend', closeKind: 'rst' },
  shutdown: { closedFirst: 'proxy', closeKind: 'proxy' },
};

const END_CODES: Partial<Record<UdpEndReason, string>> = {
  backend_unreachable: ErrorCodes.CONNECT_REFUSED,
  response_timeout: ErrorCodes.UDP_RESPONSE_TIMEOUT,
};

/** One client's session. Also the {@link PickContext} balancers read. */
export class UdpSession implements PickContext, BackendPeer {
  readonly clientAddress: string;
  readonly clientPort: number;
  /** The next session of the listener's table with the same client port (udp/listener.ts). */
  samePort: UdpSession | undefined = undefined;
  readonly pool: Pool;
  readonly backend: Backend;
  readonly #owner: SessionOwner;
  /** Set by {@link connect}. */
  #socket: BackendSocket | undefined = undefined;
  /** Datagrams waiting for the connect; undefined once connected. */
  #pending: Buffer[] | undefined = undefined;
  /** Replies expected per client datagram (nginx `proxy_responses`); 0 = the session ends by idle timeout. */
  readonly #responses: number;
  /** Replies still owed for the datagrams forwarded so far. */
  #owed = 0;
  readonly #start = performance.now();
  /** Clock time of the last datagram either way. */
  lastActive: number;
  /** Clock time of the first datagram sent that no reply has answered yet; 0 = none. */
  awaitingSince = 0;
  #firstReply = true;
  datagramsUp = 0;
  datagramsDown = 0;
  bytesUp = 0;
  bytesDown = 0;
  /** Bytes already added to the listener's and backend's counters (flushBytes). */
  #flushedUp = 0;
  #flushedDown = 0;
  /** Gives back the per-source session slot. */
  releaseSource: (() => void) | undefined = undefined;
  ended = false;

  constructor(owner: SessionOwner, address: string, port: number, pool: Pool, backend: Backend, responses: number) {
    this.#owner = owner;
    this.clientAddress = address;
    this.clientPort = port;
    this.pool = pool;
    this.backend = backend;
    this.#responses = responses;
    this.lastActive = owner.clock;
  }

  /**
   * Takes the backend slot and opens the socket; called once the listener counts the session
   * (a socket that fails at once ends it from in here).
   */
  connect(): void {
    const b = this.backend;
    b.acquire();
    b.countRelayed();
    const socket = connectBackend(b.ipFamily, b.host, b.port, this);
    if (this.ended) {
      socket.close();
      return;
    }
    this.#socket = socket;
    if (!socket.ready) this.#pending = [];
  }

  /** Forwards one client datagram to the backend. */
  forward(msg: Buffer): void {
    if (this.ended) return;
    this.lastActive = this.#owner.clock;
    if (this.#responses > 0) {
      if (this.#owed === 0) this.awaitingSince = this.lastActive;
      this.#owed += this.#responses;
    }
    const pending = this.#pending;
    if (pending !== undefined) {
      if (pending.length >= MAX_PENDING_DATAGRAMS) {
        this.#owner.drop('pending_full');
        return;
      }
      pending.push(msg);
      return;
    }
    this.#send(msg);
  }

  #send(msg: Buffer): void {
    this.datagramsUp++;
    this.bytesUp += msg.length;
    this.backend.countDatagram('in');
    this.#owner.countUp();
    this.#socket!.send(msg);
  }

  // --- BackendPeer: what the socket reports ---

  connected(): void {
    const pending = this.#pending;
    this.#pending = undefined;
    if (this.ended || pending === undefined) return;
    for (const msg of pending) this.#send(msg);
  }

  received(msg: Buffer): void {
    if (this.ended) return;
    const owner = this.#owner;
    this.lastActive = owner.clock;
    this.datagramsDown++;
    this.bytesDown += msg.length;
    this.backend.countDatagram('out');
    if (this.#firstReply) {
      this.#firstReply = false;
      // A reply is UDP's "connected": it clears the backend's passive-failure streak.
      this.pool.recordConnectResult(this.backend, true, performance.now() - this.#start);
    }
    owner.reply(msg, this.clientPort, this.clientAddress);
    if (this.#owed > 0) {
      // Every datagram forwarded is owed `responses` replies; the session ends when none is owed.
      if (--this.#owed === 0) this.end('responses_done');
      else this.awaitingSince = owner.clock;
    }
  }

  failed(code: string, message: string): void {
    if (this.ended) return;
    if (code === 'ECONNREFUSED') {
      // ICMP port unreachable: nothing listens there, as a refused TCP connect.
      this.pool.recordConnectResult(this.backend, false, 0);
      this.end('backend_unreachable', 'backend port unreachable (ICMP)');
    } else {
      this.end('backend_error', `${code}: ${message}`);
    }
  }

  /** The session got no reply within the response timeout: a passive-health failure. */
  timedOut(): void {
    this.pool.recordConnectResult(this.backend, false, 0);
    this.end('response_timeout', 'no reply within the response timeout');
  }

  /** Ends the session now (idempotent): socket closed, slots given back, counted once. */
  end(reason: UdpEndReason, error?: string): void {
    if (this.ended) return;
    this.ended = true;
    this.#pending = undefined;
    this.#socket?.close();
    this.#socket = undefined;
    this.backend.release();
    this.releaseSource?.();
    this.releaseSource = undefined;
    this.#owner.ended(this, reason, error);
  }

  /** Bytes since the last flush, for the listener's and backend's counters. */
  flushBytes(): { up: number; down: number } {
    const up = this.bytesUp - this.#flushedUp;
    const down = this.bytesDown - this.#flushedDown;
    this.#flushedUp = this.bytesUp;
    this.#flushedDown = this.bytesDown;
    return { up, down };
  }

  /** The access-log record of this (ended) session. */
  record(listener: string, reason: UdpEndReason, error: string | undefined): UdpAccessRecord {
    return {
      listener,
      client: this.clientAddress,
      clientPort: this.clientPort,
      pool: this.pool.name,
      backend: this.backend.name,
      backendAddress: this.backend.address,
      tries: 1,
      retries: 0,
      connectMs: 0,
      durationMs: Math.round((performance.now() - this.#start) * 1000) / 1000,
      bytesUp: this.bytesUp,
      bytesDown: this.bytesDown,
      ...CLOSE_SIDE[reason],
      reason,
      ...(END_CODES[reason] !== undefined && { code: END_CODES[reason] }),
      ...(error !== undefined && { error }),
      protocol: 'udp',
      datagramsUp: this.datagramsUp,
      datagramsDown: this.datagramsDown,
    };
  }
}
