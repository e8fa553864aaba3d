/**
 * @module proxy/connection — the path of one connection, start to end:
 *
 *   accept → admit → preread → route → balance → connect → relay → close
 *
 * Each stage is a plain step below; stages that are not configured cost nothing (no
 * preread buffer without PROXY/SNI, no TLS without certificates, no timer without a
 * timeout). Every way out, refused at accept or closed after relaying, goes through one
 * method, `#finish`, which counts it (accepted = rejected + closed + active), gives back
 * what the connection held (its source-limit slot, its backend slot, its place in the live
 * set) and writes the access-log line (built only when someone reads it).
 */
import net from 'node:net';
import type { Backend } from './backend.js';
import type { Pool } from './pool.js';
import type { ListenerConfig } from '../config/types.js';
import type { ListenerStats } from '../observability/stats.js';
import type { ConnectionSet } from './connection-set.js';
import type { Acl } from '../admission/acl.js';
import type { SourceLimits } from '../admission/source-limits.js';
import type { SniRouter } from '../protocol/sni-router.js';
import type { CertificateStore } from './tls.js';
import type { DataSocket } from './data-socket.js';
import { dial, ENDED_SOCKET, type Dial, type DialOptions, type DialOwner } from './connect.js';
import { relay, type RelayHandle, type RelayOwner, type RelayResult, type TerminationReason } from './relay.js';
import { relaySideOf } from './net-side.js';
import type { RelaySide } from './relay-side.js';
import type { Mirror, MirrorSource, MirrorTee } from './mirror.js';
import { ReplaySide, type ReplayOwner } from './replay.js';
import type { ListenerFaults } from '../faults/table.js';
import type { FaultLink } from '../faults/fault-side.js';
import { preread, type PrereadFailure, type PrereadResult } from './preread.js';
import { TlsTermination, type TlsTerminationOwner } from './tls-termination.js';
import { forwardedTlvs, proxyHeader } from './proxy-header.js';
import type { ConnectError } from '../errors.js';
import { ErrorCodes } from '../errors.js';
import type { ProxyTlv } from '../protocol/proxy-protocol.js';
import type { PickContext } from '../balancers/types.js';
import type { BackendQueue, QueueWaiter } from '../admission/queue.js';
import { isFdExhausted } from './limits.js';
import { noop } from '../util/noop.js';

/** A live proxied connection, as the listener tracks it (for drain and shutdown). */
export interface LiveConnection {
  /** Stops the connection now (both sides destroyed). */
  stop(reason: TerminationReason): void;
  readonly backend: Backend | undefined;
  /**
   * Adds the bytes relayed since the last call to the listener's and backend's counters,
   * so counters (and the dashboard's throughput) include connections still open. Called
   * once per stats snapshot, never per chunk.
   */
  flushBytes(): void;
}

/** Why a connection ended before relaying, in access-log words. */
export type EarlyReason =
  | 'no_backend'
  | 'no_route'
  | 'backend_connect_timeout'
  | 'backend_connect_refused'
  | 'backend_connect_failed'
  | 'client_aborted'
  | 'preread_timeout'
  | 'bad_proxy_header'
  | 'bad_client_hello'
  | 'tls_handshake_failed'
  | 'acl'
  | 'source_limit'
  | 'queue_full'
  | 'queue_timeout'
  | 'fd_exhausted'
  | 'shutdown';

/** The fields of one access-log line. */
export interface AccessRecord {
  listener: string;
  client: string;
  clientPort: number;
  pool: string | undefined;
  /** The backend's name, as the admin API, metrics and events call it. */
  backend: string | undefined;
  /** The backend's HOST:PORT. */
  backendAddress: string | undefined;
  serverName?: string;
  tries: number;
  retries: number;
  connectMs: number;
  durationMs: number;
  bytesUp: number;
  bytesDown: number;
  closedFirst: string;
  closeKind: string;
  reason: string;
  /** Stable error code (docs/errors.md) when the connection ended before relaying. */
  code?: string;
  error?: string;
  /** Mirrored connections: client bytes written to the mirror backend when this line was written. */
  mirrorBytes?: number;
  /** Mirrored connections: why the mirror was dropped, if it was (docs/mirroring.md). */
  mirrorDropped?: string;
  /** Pools with `retryOnEmptyResponse`: times the kept client bytes were sent again to another backend. */
  replays?: number;
  /** The injected faults (toxic names) that affected the connection (docs/faults.md). */
  faults?: string[];
}

/**
 * A listener's config compiled for the hot path (listener.ts compiles it). Stages that are not
 * configured are `undefined`, so a plain listener pays one property check per stage.
 */
export interface ConnectionPolicy {
  /** allow/deny list, checked first (on the PROXY header's address when accepting PROXY). */
  acl: Acl | undefined;
  /** Sources allowed to send a PROXY header; others are rejected. */
  proxyTrusted: Acl | undefined;
  /** Per-source limits: local, or counted in a shared store. */
  sourceLimits: SourceLimits | undefined;
  /** Read a ClientHello before routing (passthrough SNI routing). */
  peekClientHello: boolean;
  router: SniRouter<string> | undefined;
  certificates: CertificateStore | undefined;
  /** Admission reads the client's address (ACL, trusted PROXY sources, source limits). */
  needsClientAddress: boolean;
  /** A stage reads a net.Socket (preread, TLS termination): raw sockets are not for this listener. */
  needsNetSocket: boolean;
  /** The listener's fault table (faults/table.ts) when faults are possible there; see docs/faults.md. */
  faults: ListenerFaults | undefined;
}

/** A connection refused at admission, with a logger to call (rate-limited by the caller). */
export interface Rejection {
  reason: string;
  log(): void;
}

/**
 * What a connection needs from its listener (listener.ts implements it). Owned here so that
 * the connection does not depend on the listener that creates it.
 */
export interface ConnectionHost {
  readonly config: ListenerConfig;
  readonly policy: ConnectionPolicy;
  readonly stats: ListenerStats;
  /** The live connections (admitted and not yet finished). */
  readonly connections: ConnectionSet<LiveConnection>;
  /** Whether closed connections write an access-log line (else none is built). */
  readonly logsAccess: boolean;
  /** Process and listener limits: null when admitted, otherwise why not. */
  admitLimits(): Rejection | null;
  /** A rejection whose log line is rate-limited per reason. */
  reject(reason: string, fields?: Record<string, unknown>, message?: string): Rejection;
  defaultPool(): Pool | undefined;
  pool(name: string | undefined): Pool | undefined;
  maxTries(pool: Pool | undefined): number;
  backendQueue(pool: Pool): BackendQueue | undefined;
  backendReleased(pool: Pool): void;
  fdExhausted(err: unknown): void;
  logBackendError(backend: Backend, pool: Pool, err: ConnectError): void;
  accessLog(rec: AccessRecord): void;
  /** An admitted connection ended (its slot may go to a held connection). */
  released(): void;
}

/** The stable error code of each early ending (docs/errors.md). */
const EARLY_CODES: Partial<Record<string, string>> = {
  no_backend: ErrorCodes.NO_BACKEND,
  no_route: ErrorCodes.NO_BACKEND,
  queue_full: ErrorCodes.NO_BACKEND,
  queue_timeout: ErrorCodes.NO_BACKEND,
  backend_connect_timeout: ErrorCodes.CONNECT_TIMEOUT,
  backend_connect_refused: ErrorCodes.CONNECT_REFUSED,
  backend_connect_failed: ErrorCodes.CONNECT_FAILED,
  preread_timeout: ErrorCodes.PREREAD_TIMEOUT,
  bad_proxy_header: ErrorCodes.PROXY_HEADER,
  bad_client_hello: ErrorCodes.TLS_CLIENT_HELLO,
};

/** What a pick reports besides the backend; pick() is synchronous, so one object serves every pick. */
interface PickState {
  full: boolean;
}
const pickState: PickState = { full: false };
const NONE_TRIED: readonly Backend[] = Object.freeze([]);

/** Handles one accepted client socket. */
export function handleConnection(l: ConnectionHost, socket: DataSocket): void {
  Connection.accept(l, socket);
}

/**
 * One connection, from accept to close. A class rather than a function with closures: its
 * methods are shared, so a connection costs one object (and the few callbacks the sockets
 * and timers need), not twenty closures (docs/performance.md, "Per connection, second pass").
 *
 * It is also what the listener tracks ({@link LiveConnection}), what balancers read
 * ({@link PickContext}), what waits in a pool's queue ({@link QueueWaiter}), and what a
 * backend dial, a TLS handshake and the relay report to ({@link DialOwner},
 * {@link TlsTerminationOwner}, {@link RelayOwner}); those methods are its only public ones.
 */
class Connection implements LiveConnection, PickContext, QueueWaiter, DialOwner, TlsTerminationOwner, RelayOwner, MirrorSource, ReplayOwner {
  readonly #l: ConnectionHost;
  /** The listener's policy when the connection came: a reload does not change it midway. */
  readonly #policy: ConnectionPolicy;
  /** The accepted socket. */
  #socket: DataSocket;
  /** The client side: `#socket`, or the TLS socket over it when l4lb terminates TLS. */
  #client: DataSocket;
  readonly #start = performance.now();
  /** The backend relayed to (set when relaying starts). */
  #backend: Backend | undefined = undefined;
  // The client's address is read when first used (a getpeername() and a string per
  // connection otherwise), or replaced by the one a PROXY header names.
  #address: string | undefined = undefined;
  #port = 0;
  /**
   * The address the client connected to: ours, or the one a PROXY header names (as HAProxy
   * does, so a chain of proxies tells the backend the client's original destination).
   * Read only when a PROXY header is sent: a getsockname() per connection otherwise.
   */
  #destAddress: string | undefined = undefined;
  #destPort: number | undefined = undefined;
  /** Admitted: counted active and in the live set until `#finish`. */
  #admitted = false;
  /** Counted as rejected (so not as closed when it finishes). */
  #rejected = false;
  #releaseSource: (() => void) | undefined = undefined;
  #pool: Pool | undefined = undefined;
  #serverName: string | undefined = undefined;
  #alpn: string[] | undefined = undefined;
  /** Client bytes read during preread, for the backend first. */
  #head: Buffer | undefined = undefined;
  /** TLVs of a received PROXY v2 header that l4lb passes on in the v2 header it sends. */
  #forwardTlvs: ProxyTlv[] | undefined = undefined;
  /** The backends tried, in order: a shared empty list until the first dial (see #connectTo). */
  #tried: readonly Backend[] = NONE_TRIED;
  #connectMs = 0;
  /** Cancels the current preread or TLS handshake stage. */
  #cancel: (() => void) | undefined = undefined;
  /** The backend dial in flight. */
  #dialing: Dial | undefined = undefined;
  #dialStart = 0;
  #lastError: ConnectError | null = null;
  #stopped = false;
  #done = false;
  #relay: RelayHandle | undefined = undefined;
  /** The copy of the client's bytes to a mirror pool, for the sampled share of connections. */
  #mirror: MirrorTee | undefined = undefined;
  /** The backend side keeping the first client bytes for a replay (`retryOnEmptyResponse`). */
  #replay: ReplaySide | undefined = undefined;
  /** The toxics around the relay's sides, when the listener has a fault table. */
  #faults: FaultLink | undefined = undefined;
  #reportedUp = 0;
  #reportedDown = 0;
  /** The pool queue this connection waits in while every backend is full. */
  #queued: BackendQueue | undefined = undefined;
  /** The client's 'error' listener until the relay takes over (a net.Socket client only). */
  #onEarlyClientError: (() => void) | undefined = undefined;

  private constructor(l: ConnectionHost, socket: DataSocket) {
    this.#l = l;
    this.#policy = l.policy;
    this.#socket = socket;
    this.#client = socket;
  }

  /**
   * Listens for the client going away before relaying starts. Only a net.Socket needs it: a
   * raw socket reports errors from its reads and writes, and before the relay it has made
   * neither (so a raw client costs no listener and no closure here).
   */
  #watchEarlyErrors(s: DataSocket): void {
    if (!(s instanceof net.Socket)) return;
    this.#onEarlyClientError ??= () => {
      this.#stopped = true;
      this.#failEarly('client_aborted');
    };
    s.on('error', this.#onEarlyClientError);
  }

  static accept(l: ConnectionHost, socket: DataSocket): void {
    new Connection(l, socket).#admit();
  }

  // --- PickContext ---
  get clientAddress(): string {
    if (this.#address === undefined) this.#readPeer();
    return this.#address!;
  }

  get clientPort(): number {
    if (this.#address === undefined) this.#readPeer();
    return this.#port;
  }

  #readPeer(): void {
    this.#address = this.#socket.remoteAddress ?? '';
    this.#port = this.#socket.remotePort ?? 0;
  }

  // --- admit (1): limits, and the ACL on the socket's own address ---
  #admit(): void {
    const l = this.#l;
    const policy = this.#policy;
    const socket = this.#socket;
    l.stats.accepted++;
    // A client that reset before we got here has no peer address left (getpeername fails;
    // HAProxy's health checks do this): it left, it was not refused — no rejection, no
    // warning. Checked when something reads the address anyway; otherwise the relay finds
    // the reset on its first read.
    if ((policy.needsClientAddress || l.logsAccess) && socket.remoteAddress === undefined) return this.#failEarly('client_aborted');
    // Preread and TLS read a net.Socket. A raw socket meets such a policy only when it was
    // held over a limit while a reload changed its plain listener (listener.ts accepts raw
    // sockets on plain listeners only).
    if (policy.needsNetSocket && !(socket instanceof net.Socket)) return this.#reject('listener_changed');
    if (policy.proxyTrusted) {
      if (!policy.proxyTrusted.allows(this.clientAddress)) return this.#reject('proxy_untrusted');
    } else if (policy.acl && !policy.acl.allows(this.clientAddress)) {
      return this.#reject('acl');
    }
    const limited = l.admitLimits();
    if (limited) return this.#reject(limited.reason);
    if (!policy.proxyTrusted && !this.#admitSource()) return;

    this.#admitted = true;
    l.stats.active++;
    l.connections.add(this);
    this.#watchEarlyErrors(socket);
    if ((policy.proxyTrusted || policy.peekClientHello) && socket instanceof net.Socket) this.#preread(socket);
    else this.#afterPreread();
  }

  /** Takes a slot of the per-source limits; refuses the connection when there is none. */
  #admitSource(): boolean {
    const limits = this.#policy.sourceLimits;
    if (!limits) return true;
    const a = limits.tryAdmit(this.clientAddress);
    if (a.ok) {
      this.#releaseSource = a.release;
      return true;
    }
    this.#reject(a.reason, undefined, undefined, 'source_limit', 'rejected by source');
    return false;
  }

  // --- preread: PROXY header and/or TLS ClientHello (bounded in size and time) ---
  #preread(socket: net.Socket): void {
    const policy = this.#policy;
    this.#cancel = preread(
      socket,
      { proxy: policy.proxyTrusted !== undefined, clientHello: policy.peekClientHello, timeoutMs: this.#l.config.timeouts.prereadMs },
      (err, res) => this.#onPreread(err, res),
    );
  }

  #onPreread(err: PrereadFailure | null, res: PrereadResult | null): void {
    const policy = this.#policy;
    this.#cancel = undefined;
    if (err) {
      // Slow-loris defence: a timeout is counted and logged like a bad header, so a flood shows up.
      if (err.kind === 'timeout') {
        return this.#reject('preread_timeout', { timeoutMs: this.#l.config.timeouts.prereadMs }, 'preread timeout', 'preread_timeout', 'preread timeout');
      }
      if (err.kind === 'closed') return this.#failEarly('client_aborted', 'client closed during preread');
      const reason = err.error.code === ErrorCodes.PROXY_HEADER ? 'bad_proxy_header' : 'bad_client_hello';
      return this.#reject(reason, { detail: err.error.reason }, err.error.message, reason, err.error.message);
    }
    const r = res!;
    if (r.proxy && r.proxy.command === 'PROXY' && (r.proxy.family === 'tcp4' || r.proxy.family === 'tcp6')) {
      this.#address = r.proxy.sourceAddress!;
      this.#port = r.proxy.sourcePort!;
      this.#destAddress = r.proxy.destAddress;
      this.#destPort = r.proxy.destPort;
      this.#forwardTlvs = forwardedTlvs(r.proxy.tlvs);
    }
    this.#serverName = r.serverName;
    this.#alpn = r.alpn;
    this.#head = r.head.length > 0 ? r.head : undefined;
    // --- admit (2): with PROXY, the ACL and source limits see the real client ---
    if (policy.proxyTrusted) {
      if (policy.acl && !policy.acl.allows(this.clientAddress)) return this.#reject('acl', undefined, undefined, 'acl', 'rejected by acl');
      if (!this.#admitSource()) return;
    }
    this.#afterPreread();
  }

  #afterPreread(): void {
    const certs = this.#policy.certificates;
    const s = this.#socket;
    if (certs && s instanceof net.Socket) this.#terminateTls(s, certs);
    else this.#route();
  }

  // --- TLS termination (tls-termination.ts): the handshake picks a certificate by SNI ---
  #terminateTls(socket: net.Socket, certs: CertificateStore): void {
    // One deadline from accept for PROXY header and handshake together, so a slow client
    // cannot spend the preread time twice.
    const prereadMs = this.#l.config.timeouts.prereadMs;
    const left = prereadMs > 0 ? Math.max(1, prereadMs - (performance.now() - this.#start)) : 0;
    const t = new TlsTermination(socket, this.#head, certs, left, this);
    this.#head = undefined;
    this.#client = t.socket;
    this.#cancel = () => t.cancel();
  }

  /** TlsTerminationOwner: the handshake is done; routing follows. */
  handshakeDone(serverName: string | undefined, alpn: string[]): void {
    this.#cancel = undefined;
    this.#watchEarlyErrors(this.#client);
    this.#serverName = serverName;
    this.#alpn = alpn;
    this.#route();
  }

  /** TlsTerminationOwner: the handshake failed or timed out. */
  handshakeFailed(err: Error, timedOut: boolean): void {
    this.#cancel = undefined;
    const reason = timedOut ? 'preread_timeout' : 'tls_handshake_failed';
    this.#reject(reason, undefined, `TLS handshake failed: ${err.message}`, reason, err.message);
  }

  // --- route: SNI/ALPN routes, else the listener's pool ---
  #route(): void {
    if (this.#stopped) return;
    const router = this.#policy.router;
    if (router) {
      this.#pool = this.#l.pool(router.route(this.#serverName, this.#alpn ?? []));
      if (!this.#pool) return this.#failEarly('no_route', `no route for server name ${this.#serverName ?? '(none)'}`);
    } else {
      this.#pool = this.#l.defaultPool();
    }
    this.#tryNext();
  }

  // --- balance + connect, retrying the next backend; wait in the pool's queue when all are full ---
  #pickBackend(state: PickState): Backend | undefined {
    const pool = this.#pool;
    const tried = this.#tried;
    return pool && tried.length < this.#l.maxTries(pool) ? pool.pick(this, tried, state) : undefined;
  }

  #tryNext(): void {
    if (this.#stopped) return;
    const l = this.#l;
    const pool = this.#pool;
    const tried = this.#tried;
    const lastError = this.#lastError;
    const queue = pool ? l.backendQueue(pool) : undefined;
    // Newcomers line up behind the connections already waiting for a slot (HAProxy's order).
    if (queue && queue.length > 0 && tried.length === 0) {
      queue.wake();
      if (queue.length > 0) return this.#wait(queue);
    }
    const state = pickState;
    state.full = false;
    const backend = this.#pickBackend(state);
    if (!backend) {
      if (state.full && queue) return this.#wait(queue);
      const reason: EarlyReason =
        tried.length === 0 || !lastError
          ? 'no_backend'
          : lastError.code === ErrorCodes.CONNECT_TIMEOUT
            ? 'backend_connect_timeout'
            : lastError.code === ErrorCodes.CONNECT_REFUSED
              ? 'backend_connect_refused'
              : 'backend_connect_failed';
      if (reason === 'no_backend') l.reject('no_backend', { pool: pool?.name }, 'no backend available').log();
      return this.#failEarly(reason, lastError?.message);
    }
    this.#connectTo(backend);
  }

  #wait(queue: BackendQueue): void {
    if (queue.enqueue(this)) {
      this.#queued = queue;
      return;
    }
    this.#l.reject('queue_full', { pool: this.#pool?.name }, 'every backend is at maxConnections and the queue is full').log();
    this.#failEarly('queue_full', 'every backend is at maxConnections and the queue is full');
  }

  /** QueueWaiter: a slot may have freed. */
  retry(): boolean {
    if (this.#done || this.#stopped) return true;
    const state = pickState;
    state.full = false;
    const backend = this.#pickBackend(state);
    if (!backend && state.full) return false;
    this.#queued = undefined;
    if (backend) this.#connectTo(backend);
    else this.#failEarly('no_backend', this.#lastError?.message);
    return true;
  }

  /** QueueWaiter: dropped from the queue unserved. */
  expire(reason: 'queue_timeout' | 'no_backend'): void {
    this.#queued = undefined;
    if (reason === 'queue_timeout') this.#l.reject('queue_timeout', { pool: this.#pool?.name }, 'gave up waiting for a backend slot').log();
    this.#failEarly(reason, reason === 'queue_timeout' ? 'every backend stayed at maxConnections for the queue timeout' : undefined);
  }

  #connectTo(backend: Backend): void {
    const l = this.#l;
    const tried = this.#tried;
    // A one-element array for the usual single try (an empty array grown by push() would
    // reserve room for 16); retries copy.
    if (tried.length > 0) l.stats.retries++;
    this.#tried = tried.length === 0 ? [backend] : [...tried, backend];
    backend.acquire(); // counted from the attempt so least-connections sees dials in flight
    this.#dialStart = performance.now();
    this.#dialing = dial(backend, l.config.timeouts.connectMs, this.dialOptions(this.#pool!), this);
  }

  /** DialOwner: the attempt on the last backend tried is over. */
  dialed(err: ConnectError | null, sock: DataSocket | null): void {
    const l = this.#l;
    const backend = this.#dialing!.backend;
    const p = this.#pool!;
    this.#dialing = undefined;
    this.#connectMs = performance.now() - this.#dialStart;
    if (this.#replay !== undefined) return this.#redialed(backend, err, sock);
    if (err && isFdExhausted(err)) {
      // l4lb's own shortage, not the backend's: no health penalty, and another backend
      // would fail the same way. Counted and logged (rate-limited) by the host.
      this.#releaseBackend(backend);
      this.#lastError = err;
      l.fdExhausted(err);
      return this.#failEarly('fd_exhausted', err.message);
    }
    p.recordConnectResult(backend, err === null, this.#connectMs);
    if (err) {
      this.#releaseBackend(backend);
      this.#lastError = err;
      l.logBackendError(backend, p, err);
      return this.#tryNext();
    }
    l.stats.connectMs.observe(this.#connectMs);
    this.#startRelay(backend, sock!);
  }

  /** Gives back a slot on `backend`; a connection waiting in the pool's queue may take it. */
  #releaseBackend(backend: Backend): void {
    backend.release();
    if (this.#pool) this.#l.backendReleased(this.#pool);
  }

  /** How to dial a backend of `p` (a mirror dials with it too). */
  dialOptions(p: Pool): DialOptions | undefined {
    const pp = p.config.proxyProtocol;
    const ptls = p.config.tls;
    if (!pp && !ptls?.enabled) return undefined;
    const opts: DialOptions = {};
    if (pp) {
      const alpn = this.#alpn;
      opts.header = proxyHeader(pp, {
        clientAddress: this.clientAddress,
        clientPort: this.clientPort,
        destAddress: this.#destAddress ?? this.#socket.localAddress,
        destPort: this.#destPort ?? this.#socket.localPort,
        serverName: this.#serverName,
        // PP2_TYPE_ALPN is the protocol in use. In passthrough only the client's offer is
        // known (the backend picks), so it is sent only when l4lb terminated TLS.
        alpn: this.#policy.certificates && alpn && alpn.length > 0 ? alpn[0] : undefined,
        forward: this.#forwardTlvs,
      });
    }
    if (ptls?.enabled) opts.tls = ptls;
    return opts;
  }

  // --- relay ---
  /**
   * The one place relay sides are made: a decorator (fault injection, a mirror) wraps
   * `relaySideOf(...)` here; see relay-side.ts.
   */
  #startRelay(backend: Backend, sock: DataSocket): void {
    const client = this.#client;
    const socket = this.#socket;
    const onError = this.#onEarlyClientError;
    if (onError !== undefined) {
      client.removeListener('error', onError);
      socket.removeListener('error', onError);
      this.#onEarlyClientError = undefined;
    }
    if (client !== socket) socket.on('error', noop); // errors surface on the TLS socket
    backend.countRelayed();
    this.#backend = backend;
    const pool = this.#pool!;
    let clientSide = relaySideOf(client);
    let backendSide = relaySideOf(sock);
    if (pool.mirror) clientSide = this.#teeToMirror(pool.mirror, clientSide);
    if (pool.config.retryOnEmptyResponse) backendSide = this.#replay = new ReplaySide(backendSide, pool.config.retryOnEmptyResponse.maxBytes, this);
    if (this.#policy.faults) ({ client: clientSide, backend: backendSide } = this.#faults = this.#policy.faults.link(clientSide, backendSide));
    this.#relay = relay(clientSide, backendSide, this.#l.config.timeouts, this, this.#head);
  }

  // --- replay (replay.ts): the backend closed before answering ---
  /** ReplayOwner: counts the failure as a failed connect and dials the next backend, within `retries`. */
  replay(): boolean {
    const p = this.#pool!;
    p.recordConnectResult(this.#backend!, false, this.#connectMs);
    const next = this.#pickBackend({ full: false });
    if (next === undefined) return false;
    // The failed backend keeps its slot until the next one is connected (or the connection ends).
    this.#connectTo(next);
    return true;
  }

  /** ReplayOwner: the relay closed the backend side while the next backend was dialled. */
  cancelReplay(): void {
    const d = this.#dialing;
    if (d === undefined) return;
    this.#dialing = undefined;
    d.abort();
    this.#releaseBackend(d.backend);
  }

  /** A replay's dial is over: the next backend takes over, or the one after it is tried. */
  #redialed(backend: Backend, err: ConnectError | null, sock: DataSocket | null): void {
    const l = this.#l;
    const p = this.#pool!;
    const side = this.#replay!;
    if (err) {
      this.#releaseBackend(backend);
      this.#lastError = err;
      if (isFdExhausted(err)) {
        l.fdExhausted(err);
        return side.giveUp();
      }
      p.recordConnectResult(backend, false, this.#connectMs);
      l.logBackendError(backend, p, err);
      const next = this.#pickBackend({ full: false });
      if (next === undefined) return side.giveUp();
      return this.#connectTo(next);
    }
    p.recordConnectResult(backend, true, this.#connectMs);
    l.stats.connectMs.observe(this.#connectMs);
    // What was relayed so far went to the backend that failed.
    const r = this.#relay!;
    this.#countBytes(r.bytesUp, r.bytesDown);
    this.#releaseBackend(this.#backend!);
    backend.countRelayed();
    this.#backend = backend;
    l.stats.replays++;
    side.attach(relaySideOf(sock!));
  }

  /** The client side, copying to a mirror connection when this connection is in the mirrored share. */
  #teeToMirror(mirror: Mirror, clientSide: RelaySide): RelaySide {
    this.#mirror = mirror.tee(clientSide, this, this.#l.config.timeouts, this.#head);
    return this.#mirror ?? clientSide;
  }

  // --- LiveConnection ---
  get backend(): Backend | undefined {
    return this.#backend;
  }

  stop(reason: TerminationReason): void {
    if (this.#relay) return this.#relay.stop(reason);
    this.#stopped = true;
    this.#failEarly('shutdown');
  }

  flushBytes(): void {
    const r = this.#relay;
    if (r && !this.#done) this.#countBytes(r.bytesUp, r.bytesDown);
  }

  /** Counts the bytes relayed so far (totals) that earlier calls did not already count. */
  #countBytes(up: number, down: number): void {
    const b = this.#backend!;
    const stats = this.#l.stats;
    const dUp = up - this.#reportedUp;
    const dDown = down - this.#reportedDown;
    this.#reportedUp = up;
    this.#reportedDown = down;
    b.addBytes(dUp, dDown);
    stats.bytesUp += dUp;
    stats.bytesDown += dDown;
  }

  // --- the ways out ---
  /**
   * Refused: counted as rejected under `reason`, logged (rate-limited, with the client and
   * `fields`), closed. Access-logged under `accessReason` when it was admitted (a refusal
   * decided after the PROXY header or during preread).
   */
  #reject(reason: string, fields?: Record<string, unknown>, message?: string, accessReason = reason, error?: string): void {
    this.#rejected = true;
    this.#l.stats.countRejected(reason);
    this.#l.reject(reason, { client: this.clientAddress, ...fields }, message).log();
    this.#failEarly(accessReason, error);
  }

  /** Ends the connection before relaying: stops the stage in progress and closes both sockets. */
  #failEarly(reason: string, error?: string): void {
    if (this.#done) return;
    this.#cancel?.();
    this.#cancel = undefined;
    if (this.#queued) {
      this.#queued.remove(this);
      this.#queued = undefined;
    }
    if (this.#dialing) {
      this.#dialing.abort();
      this.#releaseBackend(this.#dialing.backend);
      this.#dialing = undefined;
    }
    this.#socket.on('error', noop);
    this.#client.destroy();
    this.#socket.destroy();
    this.#finish(reason, undefined, error);
  }

  /** RelayOwner: both sides are closed. */
  relayDone(res: RelayResult): void {
    this.#finish(res.reason, res);
  }

  /**
   * The one way out: every connection ends here exactly once, refused at accept or closed
   * after relaying. Counts it (accepted = rejected + closed + active), gives back what it
   * held, writes its access-log line, and lets go of its relay and sockets (Relay.letGo in
   * relay.ts says why).
   */
  #finish(reason: string, res: RelayResult | undefined, error?: string): void {
    if (this.#done) return;
    this.#done = true;
    const l = this.#l;
    const stats = l.stats;
    if (!this.#rejected) stats.countClosed(reason);
    if (this.#admitted) {
      this.#releaseSource?.();
      stats.active--;
      l.connections.delete(this);
      const backend = this.#backend;
      if (backend !== undefined) {
        backend.release();
        this.#countBytes(res!.bytesUp, res!.bytesDown);
      }
      // Refused before admission: no access line (a rate-limited warning instead).
      if (l.logsAccess) l.accessLog(this.#accessRecord(reason, res, error));
      if (backend !== undefined && this.#pool) l.backendReleased(this.#pool);
      l.released();
    }
    this.#relay = this.#mirror = this.#replay = undefined;
    this.#faults = undefined;
    this.#socket = this.#client = ENDED_SOCKET;
  }

  /** One access-log line: what every ending shares, and how it ended. */
  #accessRecord(reason: string, res: RelayResult | undefined, error: string | undefined): AccessRecord {
    const l = this.#l;
    const tried = this.#tried;
    if (res !== undefined) {
      return {
        listener: l.config.name,
        client: this.clientAddress,
        clientPort: this.clientPort,
        pool: this.#pool?.name,
        backend: this.#backend!.name,
        backendAddress: this.#backend!.address,
        serverName: this.#serverName,
        tries: tried.length,
        retries: Math.max(0, tried.length - 1),
        connectMs: Math.round(this.#connectMs * 100) / 100,
        durationMs: Math.round(performance.now() - this.#start),
        bytesUp: res.bytesUp,
        bytesDown: res.bytesDown,
        closedFirst: res.closedFirst,
        closeKind: res.closeKind,
        reason,
        ...(this.#mirror !== undefined && { mirrorBytes: this.#mirror.bytes, mirrorDropped: this.#mirror.dropped }),
        ...(this.#replay !== undefined && { replays: this.#replay.replays }),
        faults: this.#faults?.names(),
      };
    }
    return {
      listener: l.config.name,
      client: this.clientAddress,
      clientPort: this.clientPort,
      pool: this.#pool?.name,
      backend: tried.length ? tried[tried.length - 1].name : undefined,
      backendAddress: tried.length ? tried[tried.length - 1].address : undefined,
      serverName: this.#serverName,
      tries: tried.length,
      retries: Math.max(0, tried.length - 1),
      connectMs: 0,
      durationMs: Math.round(performance.now() - this.#start),
      bytesUp: 0,
      bytesDown: 0,
      closedFirst: 'proxy',
      closeKind: 'proxy',
      reason,
      code: EARLY_CODES[reason],
      error: error ?? this.#lastError?.message,
    };
  }
}
