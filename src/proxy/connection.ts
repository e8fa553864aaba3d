/**
 * @module proxy/connection — the path of one connection, start to end:
 *
 *   accept → admit → preread → route → balance → connect → relay → close
 *
 * Each stage is a plain step below; stages that are not configured cost nothing (no
 * preread buffer without PROXY/SNI, no TLS without certificates, no timer without a
 * timeout). Every way out goes through `finishEarly` or `relayDone`, which count it and write
 * the access-log line (built only when someone reads it).
 */
import type net from 'node:net';
import tls from 'node:tls';
import type { Backend } from './backend.js';
import type { Pool } from './pool.js';
import type { ListenerRuntime, ListenerPolicy } from './listener.js';
import { dial, ENDED_SOCKET, type Dial, type DialOptions, type DialOwner } from './connect.js';
import { relay, type RelayHandle, type RelayOwner, type RelayResult, type TerminationReason } from './relay.js';
import { preread, type PrereadFailure, type PrereadResult } from './preread.js';
import type { ConnectError } from '../errors.js';
import { ErrorCodes } from '../errors.js';
import {
  encodeProxyV1, encodeProxyV2, proxyInfoFor, PP2_TYPE_ALPN, PP2_TYPE_AUTHORITY, PP2_TYPE_SSL, PP2_TYPE_UNIQUE_ID, type ProxyTlv,
} from '../protocol/proxy-protocol.js';
import type { PickContext } from '../balancers/types.js';
import type { BackendQueue, QueueWaiter } from '../admission/queue.js';
import { isFdExhausted } from './limits.js';

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
}

/**
 * TLVs of a received PROXY v2 header passed on to backends in the v2 header l4lb sends: what
 * the sender knew of the client's connection (server name, protocol, TLS, request id). The
 * CRC32C and NOOP TLVs belong to one header and are not copied; l4lb's own authority and ALPN
 * (from its own TLS handling) win over received ones.
 */
const FORWARDED_TLVS = new Set([PP2_TYPE_ALPN, PP2_TYPE_AUTHORITY, PP2_TYPE_UNIQUE_ID, PP2_TYPE_SSL]);

/** The stable error code of each early ending (docs/errors.md). */
const EARLY_CODES: Partial<Record<EarlyReason, string>> = {
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

/** Handles one accepted client socket. */
export function handleConnection(l: ListenerRuntime, socket: net.Socket): void {
  new Connection(l, socket).admit();
}

/**
 * One connection, from accept to close. A class rather than a function with closures: its
 * methods are shared, so a connection costs one object (and the few callbacks the sockets
 * and timers need), not twenty closures (docs/performance.md, "Per connection, second pass").
 *
 * It is also what the listener tracks ({@link LiveConnection}), what balancers read
 * ({@link PickContext}), what waits in a pool's queue ({@link QueueWaiter}), and what a
 * backend dial and the relay report to ({@link DialOwner}, {@link RelayOwner}).
 */
class Connection implements LiveConnection, PickContext, QueueWaiter, DialOwner, RelayOwner {
  readonly l: ListenerRuntime;
  readonly policy: ListenerPolicy;
  socket: net.Socket;
  /** The client side: `socket`, or the TLS socket over it when l4lb terminates TLS. */
  client: net.Socket;
  readonly start = performance.now();
  /** The backend relayed to (set when relaying starts; LiveConnection). */
  backend: Backend | undefined = undefined;
  // The client's address is read when first used (a getpeername() and a string per
  // connection otherwise), or replaced by the one a PROXY header names.
  #address: string | undefined = undefined;
  #port = 0;
  /**
   * The address the client connected to: ours, or the one a PROXY header names (as HAProxy
   * does, so a chain of proxies tells the backend the client's original destination).
   * Read only when a PROXY header is sent: a getsockname() per connection otherwise.
   */
  destAddress: string | undefined = undefined;
  destPort: number | undefined = undefined;
  /** Counted once, as rejected or as closed (accepted = rejected + closed + active). */
  rejected = false;
  releaseSource: (() => void) | undefined = undefined;
  pool: Pool | undefined = undefined;
  serverName: string | undefined = undefined;
  alpn: string[] | undefined = undefined;
  /** Client bytes read during preread, for the backend first. */
  head: Buffer | undefined = undefined;
  /** TLVs of a received PROXY v2 header that l4lb passes on in the v2 header it sends. */
  forwardTlvs: ProxyTlv[] | undefined = undefined;
  readonly tried: Backend[] = [];
  connectMs = 0;
  /** Cancels the current preread or TLS handshake stage. */
  cancel: (() => void) | undefined = undefined;
  /** The backend dial in flight. */
  dialing: Dial | undefined = undefined;
  dialStart = 0;
  lastError: ConnectError | null = null;
  stopped = false;
  done = false;
  relayHandle: RelayHandle | undefined = undefined;
  reportedUp = 0;
  reportedDown = 0;
  /** The pool queue this connection waits in while every backend is full. */
  queued: BackendQueue | undefined = undefined;
  /** The client's 'error' listener until the relay takes over. */
  readonly onEarlyClientError: () => void;

  constructor(l: ListenerRuntime, socket: net.Socket) {
    this.l = l;
    this.policy = l.policy;
    this.socket = socket;
    this.client = socket;
    this.onEarlyClientError = () => {
      // The client went away before relaying started.
      this.stopped = true;
      this.failEarly('client_aborted');
    };
  }

  get clientAddress(): string {
    if (this.#address === undefined) this.#readPeer();
    return this.#address!;
  }

  get clientPort(): number {
    if (this.#address === undefined) this.#readPeer();
    return this.#port;
  }

  #readPeer(): void {
    this.#address = this.socket.remoteAddress ?? '';
    this.#port = this.socket.remotePort ?? 0;
  }

  // --- admit (1): limits, and the ACL on the socket's own address ---
  admit(): void {
    const { l, policy, socket } = this;
    const stats = l.stats;
    stats.accepted++;
    // A client that reset before we got here has no peer address left (getpeername fails;
    // HAProxy's health checks do this): it left, it was not refused — no rejection, no
    // warning. Checked when something reads the address anyway; otherwise the relay finds
    // the reset on its first read.
    if ((policy.needsClientAddress || l.logsAccess) && socket.remoteAddress === undefined) {
      socket.on('error', noop);
      socket.destroy();
      stats.countClosed('client_aborted');
      return;
    }
    if (policy.proxyTrusted) {
      if (!policy.proxyTrusted.allows(this.clientAddress)) return this.refuse('proxy_untrusted');
    } else if (policy.acl && !policy.acl.allows(this.clientAddress)) {
      return this.refuse('acl');
    }
    const limited = l.admitLimits();
    if (limited) return this.refuse(limited.reason);
    if (!policy.proxyTrusted && !this.admitSource()) return;

    stats.active++;
    l.connections.add(this);
    socket.on('error', this.onEarlyClientError);
    if (policy.proxyTrusted || policy.peekClientHello) this.preread();
    else this.afterPreread();
  }

  admitSource(): boolean {
    const limits = this.policy.sourceLimits;
    if (!limits) return true;
    const a = limits.tryAdmit(this.clientAddress);
    if (a.ok) {
      this.releaseSource = a.release;
      return true;
    }
    if (!this.policy.proxyTrusted) this.refuse(a.reason);
    else {
      this.countRejected(a.reason);
      this.l.reject(a.reason, { client: this.clientAddress }).log();
    }
    return false;
  }

  // --- preread: PROXY header and/or TLS ClientHello (bounded in size and time) ---
  preread(): void {
    const { policy } = this;
    this.cancel = preread(
      this.socket,
      { proxy: policy.proxyTrusted !== undefined, clientHello: policy.peekClientHello, timeoutMs: this.l.config.timeouts.prereadMs },
      (err, res) => this.onPreread(err, res),
    );
  }

  onPreread(err: PrereadFailure | null, res: PrereadResult | null): void {
    const { l, policy } = this;
    this.cancel = undefined;
    if (err) {
      if (err.kind === 'timeout') {
        // Slow-loris defence: counted and logged like a bad header, so a flood shows up.
        this.countRejected('preread_timeout');
        l.reject('preread_timeout', { client: this.clientAddress, timeoutMs: l.config.timeouts.prereadMs }, 'preread timeout').log();
        return this.failEarly('preread_timeout', 'preread timeout');
      }
      if (err.kind === 'closed') return this.failEarly('client_aborted', 'client closed during preread');
      const reason = err.error.code === ErrorCodes.PROXY_HEADER ? 'bad_proxy_header' : 'bad_client_hello';
      this.countRejected(reason);
      l.reject(reason, { client: this.clientAddress, detail: err.error.reason }, err.error.message).log();
      return this.failEarly(reason, err.error.message);
    }
    const r = res!;
    if (r.proxy && r.proxy.command === 'PROXY' && (r.proxy.family === 'tcp4' || r.proxy.family === 'tcp6')) {
      this.#address = r.proxy.sourceAddress!;
      this.#port = r.proxy.sourcePort!;
      this.destAddress = r.proxy.destAddress;
      this.destPort = r.proxy.destPort;
      const tlvs = r.proxy.tlvs.filter((x) => FORWARDED_TLVS.has(x.type));
      if (tlvs.length > 0) this.forwardTlvs = tlvs;
    }
    this.serverName = r.serverName;
    this.alpn = r.alpn;
    this.head = r.head.length > 0 ? r.head : undefined;
    // --- admit (2): with PROXY, the ACL and source limits see the real client ---
    if (policy.proxyTrusted) {
      if (policy.acl && !policy.acl.allows(this.clientAddress)) return this.rejectLate('acl');
      if (!this.admitSource()) return this.rejectLate('source');
    }
    this.afterPreread();
  }

  afterPreread(): void {
    if (this.policy.certificates) this.terminateTls();
    else this.route();
  }

  // --- TLS termination: the handshake picks a certificate by SNI; routing follows ---
  terminateTls(): void {
    const { l, socket } = this;
    const certs = this.policy.certificates!;
    if (this.head) socket.unshift(this.head);
    this.head = undefined;
    const t = new tls.TLSSocket(socket, {
      isServer: true,
      secureContext: certs.defaultContext,
      SNICallback: (name, cb) => cb(null, certs.contextFor(name)),
    });
    this.client = t;
    // One deadline from accept for PROXY header and handshake together, so a slow client
    // cannot spend the preread time twice.
    const prereadMs = l.config.timeouts.prereadMs;
    const left = Math.max(1, prereadMs - (performance.now() - this.start));
    const timer = prereadMs > 0 ? setTimeout(() => onTlsError(new Error('handshake timeout')), left) : undefined;
    this.cancel = () => {
      if (timer) clearTimeout(timer);
      t.destroy();
    };
    const onTlsError = (err: Error): void => {
      if (timer) clearTimeout(timer);
      this.cancel = undefined;
      if (this.done) return;
      t.destroy();
      socket.destroy();
      const reason = err.message === 'handshake timeout' ? 'preread_timeout' : 'tls_handshake_failed';
      this.countRejected(reason);
      l.reject(reason, { client: this.clientAddress }, `TLS handshake failed: ${err.message}`).log();
      this.finishEarly(reason, err.message);
    };
    t.on('error', onTlsError);
    t.once('secure', () => {
      if (timer) clearTimeout(timer);
      this.cancel = undefined;
      t.removeListener('error', onTlsError);
      t.on('error', this.onEarlyClientError);
      t.pause();
      this.serverName = (t as tls.TLSSocket & { servername?: string | false }).servername || undefined;
      const proto = t.alpnProtocol;
      this.alpn = proto ? [proto] : [];
      this.route();
    });
  }

  // --- route: SNI/ALPN routes, else the listener's pool ---
  route(): void {
    if (this.stopped) return;
    const router = this.policy.router;
    if (router) {
      this.pool = this.l.pool(router.route(this.serverName, this.alpn ?? []));
      if (!this.pool) return this.failEarly('no_route', `no route for server name ${this.serverName ?? '(none)'}`);
    } else {
      this.pool = this.l.defaultPool();
    }
    this.tryNext();
  }

  // --- balance + connect, retrying the next backend; wait in the pool's queue when all are full ---
  pickBackend(state: { full: boolean }): Backend | undefined {
    const { pool, tried } = this;
    return pool && tried.length < this.l.maxTries(pool) ? pool.pick(this, tried, state) : undefined;
  }

  tryNext(): void {
    if (this.stopped) return;
    const { l, pool, tried, lastError } = this;
    const queue = pool ? l.backendQueue(pool) : undefined;
    // Newcomers line up behind the connections already waiting for a slot (HAProxy's order).
    if (queue && queue.length > 0 && tried.length === 0) {
      queue.wake();
      if (queue.length > 0) return this.wait(queue);
    }
    const state = { full: false };
    const backend = this.pickBackend(state);
    if (!backend) {
      if (state.full && queue) return this.wait(queue);
      const reason: EarlyReason =
        tried.length === 0 || !lastError
          ? 'no_backend'
          : lastError.code === ErrorCodes.CONNECT_TIMEOUT
            ? 'backend_connect_timeout'
            : lastError.code === ErrorCodes.CONNECT_REFUSED
              ? 'backend_connect_refused'
              : 'backend_connect_failed';
      if (reason === 'no_backend') l.reject('no_backend', { pool: pool?.name }, 'no backend available').log();
      return this.failEarly(reason, lastError?.message);
    }
    this.connectTo(backend);
  }

  wait(queue: BackendQueue): void {
    if (queue.enqueue(this)) {
      this.queued = queue;
      return;
    }
    this.l.reject('queue_full', { pool: this.pool?.name }, 'every backend is at maxConnections and the queue is full').log();
    this.failEarly('queue_full', 'every backend is at maxConnections and the queue is full');
  }

  /** QueueWaiter: a slot may have freed. */
  retry(): boolean {
    if (this.done || this.stopped) return true;
    const state = { full: false };
    const backend = this.pickBackend(state);
    if (!backend && state.full) return false;
    this.queued = undefined;
    if (backend) this.connectTo(backend);
    else this.failEarly('no_backend', this.lastError?.message);
    return true;
  }

  /** QueueWaiter: dropped from the queue unserved. */
  expire(reason: 'queue_timeout' | 'no_backend'): void {
    this.queued = undefined;
    if (reason === 'queue_timeout') this.l.reject('queue_timeout', { pool: this.pool?.name }, 'gave up waiting for a backend slot').log();
    this.failEarly(reason, reason === 'queue_timeout' ? 'every backend stayed at maxConnections for the queue timeout' : undefined);
  }

  connectTo(backend: Backend): void {
    const { l, tried } = this;
    if (tried.length > 0) l.stats.retries++;
    tried.push(backend);
    backend.active++; // counted from the attempt so least-connections sees dials in flight
    this.dialStart = performance.now();
    this.dialing = dial(backend, l.config.timeouts.connectMs, this.dialOptions(this.pool!), this);
  }

  /** DialOwner: the attempt on the last backend tried is over. */
  dialed(err: ConnectError | null, sock: net.Socket | null): void {
    const { l } = this;
    const backend = this.dialing!.backend;
    const p = this.pool!;
    this.dialing = undefined;
    this.connectMs = performance.now() - this.dialStart;
    if (err && isFdExhausted(err)) {
      // l4lb's own shortage, not the backend's: no health penalty, and another backend
      // would fail the same way. Counted and logged (rate-limited) by the host.
      this.releaseBackend(backend);
      this.lastError = err;
      l.fdExhausted(err);
      return this.failEarly('fd_exhausted', err.message);
    }
    p.recordConnectResult(backend, err === null, this.connectMs);
    if (err) {
      this.releaseBackend(backend);
      this.lastError = err;
      l.logBackendError(backend, p, err);
      return this.tryNext();
    }
    l.stats.connectMs.observe(this.connectMs);
    this.startRelay(backend, sock!);
  }

  /** Gives back a slot on `backend`; a connection waiting in the pool's queue may take it. */
  releaseBackend(backend: Backend): void {
    backend.active--;
    if (this.pool) this.l.backendReleased(this.pool);
  }

  dialOptions(p: Pool): DialOptions | undefined {
    const pp = p.config.proxyProtocol;
    const ptls = p.config.tls;
    if (!pp && !ptls?.enabled) return undefined;
    const opts: DialOptions = {};
    if (pp) {
      const { socket } = this;
      const info = proxyInfoFor(this.clientAddress, this.clientPort, this.destAddress ?? socket.localAddress, this.destPort ?? socket.localPort);
      if (pp === 'v1') opts.header = encodeProxyV1(info);
      else {
        // PP2_TYPE_ALPN is the protocol in use. In passthrough only the client's offer is
        // known (the backend picks), so it is sent only when l4lb terminated TLS.
        const alpn = this.policy.certificates && this.alpn && this.alpn.length > 0 ? this.alpn[0] : undefined;
        const authority = this.serverName || undefined;
        // What a received v2 header said that l4lb does not know better passes on unchanged.
        const tlvs = this.forwardTlvs?.filter(
          (x) => !(x.type === PP2_TYPE_AUTHORITY && authority !== undefined) && !(x.type === PP2_TYPE_ALPN && alpn !== undefined),
        );
        opts.header = encodeProxyV2({ ...info, authority, alpn, tlvs });
      }
    }
    if (ptls?.enabled) opts.tls = ptls;
    return opts;
  }

  // --- relay ---
  startRelay(backend: Backend, sock: net.Socket): void {
    const { client, socket } = this;
    client.removeListener('error', this.onEarlyClientError);
    socket.removeListener('error', this.onEarlyClientError);
    if (client !== socket) socket.on('error', noop); // errors surface on the TLS socket
    backend.total++;
    this.backend = backend;
    this.relayHandle = relay(client, sock, this.l.config.timeouts, this, this.head);
  }

  // --- LiveConnection ---
  stop(reason: TerminationReason): void {
    if (this.relayHandle) return this.relayHandle.stop(reason);
    this.stopped = true;
    this.failEarly('shutdown');
  }

  flushBytes(): void {
    const r = this.relayHandle;
    if (!r || this.done) return;
    const b = this.backend!;
    const up = r.bytesUp - this.reportedUp;
    const down = r.bytesDown - this.reportedDown;
    this.reportedUp += up;
    this.reportedDown += down;
    b.bytesIn += up;
    b.bytesOut += down;
    this.l.stats.bytesUp += up;
    this.l.stats.bytesDown += down;
  }

  // --- refusals ---
  countRejected(reason: string): void {
    this.rejected = true;
    this.l.stats.countRejected(reason);
  }

  /** Refused at accept: counted as rejected, closed, logged (rate-limited). */
  refuse(reason: string): void {
    this.countRejected(reason);
    this.socket.on('error', noop);
    this.socket.destroy();
    this.l.reject(reason, { client: this.clientAddress }).log();
  }

  /** Refused after the PROXY header named the real client. */
  rejectLate(kind: 'acl' | 'source'): void {
    if (kind === 'acl') {
      this.countRejected('acl');
      this.l.reject('acl', { client: this.clientAddress }).log();
    }
    this.failEarly(kind === 'acl' ? 'acl' : 'source_limit', `rejected by ${kind}`);
  }

  // --- close ---
  failEarly(reason: EarlyReason, error?: string): void {
    this.cancel?.();
    this.cancel = undefined;
    if (this.queued) {
      this.queued.remove(this);
      this.queued = undefined;
    }
    if (this.dialing) {
      this.dialing.abort();
      this.releaseBackend(this.dialing.backend);
      this.dialing = undefined;
    }
    this.client.destroy();
    this.socket.destroy();
    this.finishEarly(reason, error);
  }

  finishEarly(reason: EarlyReason, error?: string): void {
    if (this.done) return;
    this.done = true;
    const { l, tried } = this;
    this.releaseSource?.();
    l.stats.active--;
    if (!this.rejected) l.stats.countClosed(reason);
    l.connections.delete(this);
    if (l.logsAccess) {
      this.logAccess(tried.length ? tried[tried.length - 1] : undefined, 0, {
        bytesUp: 0,
        bytesDown: 0,
        closedFirst: 'proxy',
        closeKind: 'proxy',
        reason,
        code: EARLY_CODES[reason],
        error: error ?? this.lastError?.message,
      });
    }
    l.released();
  }

  /** RelayOwner: both sides are closed. */
  relayDone(res: RelayResult): void {
    if (this.done) return;
    this.done = true;
    const backend = this.backend!;
    const { l } = this;
    const stats = l.stats;
    this.releaseSource?.();
    backend.active--;
    // Only what earlier snapshots did not already count (see flushBytes).
    backend.bytesIn += res.bytesUp - this.reportedUp;
    backend.bytesOut += res.bytesDown - this.reportedDown;
    stats.active--;
    stats.bytesUp += res.bytesUp - this.reportedUp;
    stats.bytesDown += res.bytesDown - this.reportedDown;
    stats.countClosed(res.reason);
    l.connections.delete(this);
    if (l.logsAccess) {
      this.logAccess(backend, Math.round(this.connectMs * 100) / 100, {
        bytesUp: res.bytesUp,
        bytesDown: res.bytesDown,
        closedFirst: res.closedFirst,
        closeKind: res.closeKind,
        reason: res.reason,
      });
    }
    if (this.pool) l.backendReleased(this.pool);
    l.released();
    // Let go of the relay and the sockets, as the relay does (Relay.letGo in relay.ts says why).
    this.relayHandle = undefined;
    this.socket = this.client = ENDED_SOCKET;
  }

  /** One access-log line: what every ending shares, and `how` it ended. */
  logAccess(backend: Backend | undefined, connectMs: number, how: Pick<AccessRecord, 'bytesUp' | 'bytesDown' | 'closedFirst' | 'closeKind' | 'reason' | 'code' | 'error'>): void {
    const { l, tried } = this;
    l.accessLog({
      listener: l.config.name,
      client: this.clientAddress,
      clientPort: this.clientPort,
      pool: this.pool?.name,
      backend: backend?.name,
      backendAddress: backend?.address,
      serverName: this.serverName,
      tries: tried.length,
      retries: Math.max(0, tried.length - 1),
      connectMs,
      durationMs: Math.round(performance.now() - this.start),
      ...how,
    });
  }
}

function noop(): void {}
