/**
 * @module proxy/connection — the path of one connection, start to end:
 *
 *   accept → admit → preread → route → balance → connect → relay → close
 *
 * Each stage is a plain step below; stages that are not configured cost nothing (no
 * preread buffer without PROXY/SNI, no TLS without certificates, no timer without a
 * timeout). Every way out goes through `finish`, which writes the access-log line.
 */
import type net from 'node:net';
import tls from 'node:tls';
import type { Backend } from './backend.js';
import type { Pool } from './pool.js';
import type { ListenerRuntime } from './listener.js';
import { dial, type DialOptions } from './connect.js';
import { relay, type RelayResult, type TerminationReason } from './relay.js';
import { preread, type PrereadFailure, type PrereadResult } from './preread.js';
import type { ConnectError } from '../errors.js';
import { ErrorCodes } from '../errors.js';
import { encodeProxyV1, encodeProxyV2, proxyInfoFor } from '../protocol/proxy-protocol.js';
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
  backend: string | undefined;
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
  const start = Date.now();
  const stats = l.stats;
  const policy = l.policy;
  stats.accepted++;
  // Each connection is counted once, as rejected or as closed (accepted = rejected + closed + active).
  let rejected = false;
  const countRejected = (reason: string): void => {
    rejected = true;
    stats.countRejected(reason);
  };
  let clientAddress = socket.remoteAddress ?? '';
  let clientPort = socket.remotePort ?? 0;
  // The address the client connected to: ours, or the one a PROXY header names (as HAProxy
  // does, so a chain of proxies tells the backend the client's original destination).
  // Read only when a PROXY header is sent: a getsockname() per connection otherwise.
  let destAddress: string | undefined;
  let destPort: number | undefined;

  // A client that reset before we got here has no peer address left (getpeername fails;
  // HAProxy's health checks do this): it left, it was not refused — no rejection, no warning.
  if (socket.remoteAddress === undefined) {
    socket.on('error', noop);
    socket.destroy();
    stats.countClosed('client_aborted');
    return;
  }

  // --- admit (1): limits, and the ACL on the socket's own address ---
  if (policy.proxyTrusted) {
    if (!policy.proxyTrusted.allows(clientAddress)) return refuse('proxy_untrusted');
  } else if (policy.acl && !policy.acl.allows(clientAddress)) {
    return refuse('acl');
  }
  const limited = l.admitLimits();
  if (limited) return refuse(limited.reason);

  let releaseSource: (() => void) | undefined;
  if (!policy.proxyTrusted && !admitSource()) return;

  stats.active++;
  let client: net.Socket = socket;
  let pool: Pool | undefined;
  let serverName: string | undefined;
  let alpn: string[] | undefined;
  let proxyHeaderTlv: { authority?: string; alpn?: string } = {};
  let head: Buffer | undefined;
  const tried: Backend[] = [];
  let connectMs = 0;
  /** Cancels the current preread or TLS handshake stage. */
  let cancel: (() => void) | undefined;
  /** Aborts the backend dial in flight. */
  let abortDial: (() => void) | undefined;
  let stopped = false;
  let lastError: ConnectError | null = null;
  let done = false;
  let relayStop: ((r: TerminationReason) => void) | undefined;
  let relayHandle: { readonly bytesUp: number; readonly bytesDown: number } | undefined;
  let reportedUp = 0;
  let reportedDown = 0;
  /** The pool queue this connection waits in while every backend is full. */
  let queued: BackendQueue | undefined;
  const waiter: QueueWaiter = {
    retry() {
      if (done || stopped) return true;
      const state = { full: false };
      const backend = pickBackend(state);
      if (!backend && state.full) return false;
      queued = undefined;
      if (backend) connectTo(backend);
      else failEarly('no_backend', lastError?.message);
      return true;
    },
    expire(reason) {
      queued = undefined;
      if (reason === 'queue_timeout') l.reject('queue_timeout', { pool: pool?.name }, 'gave up waiting for a backend slot').log();
      failEarly(reason, reason === 'queue_timeout' ? 'every backend stayed at maxConnections for the queue timeout' : undefined);
    },
  };

  // `backend` is a data property set when relaying starts, not a getter: every object literal
  // with a getter closure gets a map of its own, and those maps (old generation) keep each
  // connection's objects alive through young-generation GCs (docs/performance.md, "Profiles").
  const live = {
    backend: undefined as Backend | undefined,
    flushBytes() {
      if (!relayHandle || done) return;
      const b = tried[tried.length - 1];
      const up = relayHandle.bytesUp - reportedUp;
      const down = relayHandle.bytesDown - reportedDown;
      reportedUp += up;
      reportedDown += down;
      b.bytesIn += up;
      b.bytesOut += down;
      stats.bytesUp += up;
      stats.bytesDown += down;
    },
    stop(reason: TerminationReason) {
      if (relayStop) return relayStop(reason);
      stopped = true;
      failEarly('shutdown');
    },
  } satisfies LiveConnection;
  l.connections.add(live);
  socket.on('error', onEarlyClientError);

  // --- preread: PROXY header and/or TLS ClientHello (bounded in size and time) ---
  if (policy.proxyTrusted || policy.peekClientHello) {
    cancel = preread(
      socket,
      { proxy: policy.proxyTrusted !== undefined, clientHello: policy.peekClientHello, timeoutMs: l.config.timeouts.prereadMs },
      onPreread,
    );
  } else {
    afterPreread();
  }

  function onPreread(err: PrereadFailure | null, res: PrereadResult | null): void {
    cancel = undefined;
    if (err) {
      if (err.kind === 'timeout') {
        // Slow-loris defence: counted and logged like a bad header, so a flood shows up.
        countRejected('preread_timeout');
        l.reject('preread_timeout', { client: clientAddress, timeoutMs: l.config.timeouts.prereadMs }, 'preread timeout').log();
        return failEarly('preread_timeout', 'preread timeout');
      }
      if (err.kind === 'closed') return failEarly('client_aborted', 'client closed during preread');
      const reason = err.error.code === ErrorCodes.PROXY_HEADER ? 'bad_proxy_header' : 'bad_client_hello';
      countRejected(reason);
      l.reject(reason, { client: clientAddress, detail: err.error.reason }, err.error.message).log();
      return failEarly(reason, err.error.message);
    }
    const r = res!;
    if (r.proxy && r.proxy.command === 'PROXY' && (r.proxy.family === 'tcp4' || r.proxy.family === 'tcp6')) {
      clientAddress = r.proxy.sourceAddress!;
      clientPort = r.proxy.sourcePort!;
      destAddress = r.proxy.destAddress;
      destPort = r.proxy.destPort;
    }
    serverName = r.serverName;
    alpn = r.alpn;
    head = r.head.length > 0 ? r.head : undefined;
    // --- admit (2): with PROXY, the ACL and source limits see the real client ---
    if (policy.proxyTrusted) {
      if (policy.acl && !policy.acl.allows(clientAddress)) return rejectLate('acl');
      if (!admitSource()) return rejectLate('source');
    }
    afterPreread();
  }

  function afterPreread(): void {
    if (policy.certificates) return terminateTls();
    route();
  }

  // --- TLS termination: the handshake picks a certificate by SNI; routing follows ---
  function terminateTls(): void {
    const certs = policy.certificates!;
    if (head) socket.unshift(head);
    head = undefined;
    const t = new tls.TLSSocket(socket, {
      isServer: true,
      secureContext: certs.defaultContext,
      SNICallback: (name, cb) => cb(null, certs.contextFor(name)),
    });
    client = t;
    // One deadline from accept for PROXY header and handshake together, so a slow client
    // cannot spend the preread time twice.
    const prereadMs = l.config.timeouts.prereadMs;
    const left = Math.max(1, prereadMs - (Date.now() - start));
    const timer = prereadMs > 0 ? setTimeout(() => onTlsError(new Error('handshake timeout')), left) : undefined;
    cancel = () => {
      if (timer) clearTimeout(timer);
      t.destroy();
    };
    t.on('error', onTlsError);
    t.once('secure', () => {
      if (timer) clearTimeout(timer);
      cancel = undefined;
      t.removeListener('error', onTlsError);
      t.on('error', onEarlyClientError);
      t.pause();
      serverName = (t as tls.TLSSocket & { servername?: string | false }).servername || undefined;
      const proto = t.alpnProtocol;
      alpn = proto ? [proto] : [];
      route();
    });
    function onTlsError(err: Error): void {
      if (timer) clearTimeout(timer);
      cancel = undefined;
      if (done) return;
      t.destroy();
      socket.destroy();
      const reason = err.message === 'handshake timeout' ? 'preread_timeout' : 'tls_handshake_failed';
      countRejected(reason);
      l.reject(reason, { client: clientAddress }, `TLS handshake failed: ${err.message}`).log();
      finishEarly(reason, err.message);
    }
  }

  // --- route: SNI/ALPN routes, else the listener's pool ---
  function route(): void {
    if (stopped) return;
    if (policy.router) {
      const name = policy.router.route(serverName, alpn ?? []);
      pool = l.pool(name);
      if (!pool) return failEarly('no_route', `no route for server name ${serverName ?? '(none)'}`);
    } else {
      pool = l.defaultPool();
    }
    if (serverName) proxyHeaderTlv.authority = serverName;
    // PP2_TYPE_ALPN is the protocol in use. In passthrough only the client's offer is known
    // (the backend picks), so it is sent only when l4lb terminated TLS and negotiated it.
    if (policy.certificates && alpn && alpn.length > 0) proxyHeaderTlv.alpn = alpn[0];
    tryNext();
  }

  // --- balance + connect, retrying the next backend; wait in the pool's queue when all are full ---
  function pickBackend(state: { full: boolean }): Backend | undefined {
    return tried.length < l.maxTries(pool) && pool ? pool.pick({ clientAddress, clientPort }, tried, state) : undefined;
  }

  function tryNext(): void {
    if (stopped) return;
    const queue = pool ? l.backendQueue(pool) : undefined;
    // Newcomers line up behind the connections already waiting for a slot (HAProxy's order).
    if (queue && queue.length > 0 && tried.length === 0) {
      queue.wake();
      if (queue.length > 0) return wait(queue);
    }
    const state = { full: false };
    const backend = pickBackend(state);
    if (!backend) {
      if (state.full && queue) return wait(queue);
      const reason: EarlyReason =
        tried.length === 0 || !lastError
          ? 'no_backend'
          : lastError.code === ErrorCodes.CONNECT_TIMEOUT
            ? 'backend_connect_timeout'
            : lastError.code === ErrorCodes.CONNECT_REFUSED
              ? 'backend_connect_refused'
              : 'backend_connect_failed';
      if (reason === 'no_backend') l.reject('no_backend', { pool: pool?.name }, 'no backend available').log();
      return failEarly(reason, lastError?.message);
    }
    connectTo(backend);
  }

  function wait(queue: BackendQueue): void {
    if (queue.enqueue(waiter)) {
      queued = queue;
      return;
    }
    l.reject('queue_full', { pool: pool?.name }, 'every backend is at maxConnections and the queue is full').log();
    failEarly('queue_full', 'every backend is at maxConnections and the queue is full');
  }

  function connectTo(backend: Backend): void {
    if (tried.length > 0) stats.retries++;
    tried.push(backend);
    backend.active++; // counted from the attempt so least-connections sees dials in flight
    const t0 = performance.now();
    const p = pool!;
    abortDial = dial(backend, l.config.timeouts.connectMs, dialOptions(p), (err, sock) => {
      abortDial = undefined;
      connectMs = performance.now() - t0;
      if (err && isFdExhausted(err)) {
        // l4lb's own shortage, not the backend's: no health penalty, and another backend
        // would fail the same way. Counted and logged (rate-limited) by the host.
        releaseBackend(backend);
        lastError = err;
        l.fdExhausted(err);
        return failEarly('fd_exhausted', err.message);
      }
      p.recordConnectResult(backend, err === null, connectMs);
      if (err) {
        releaseBackend(backend);
        lastError = err;
        l.logBackendError(backend, p, err);
        return tryNext();
      }
      stats.connectMs.observe(connectMs);
      startRelay(backend, sock!);
    });
  }

  /** Gives back a slot on `backend`; a connection waiting in the pool's queue may take it. */
  function releaseBackend(backend: Backend): void {
    backend.active--;
    if (pool) l.backendReleased(pool);
  }

  function dialOptions(p: Pool): DialOptions | undefined {
    const pp = p.config.proxyProtocol;
    const ptls = p.config.tls;
    if (!pp && !ptls?.enabled) return undefined;
    const opts: DialOptions = {};
    if (pp) {
      const info = proxyInfoFor(clientAddress, clientPort, destAddress ?? socket.localAddress, destPort ?? socket.localPort);
      opts.header = pp === 'v1' ? encodeProxyV1(info) : encodeProxyV2({ ...info, ...proxyHeaderTlv });
    }
    if (ptls?.enabled) opts.tls = ptls;
    return opts;
  }

  // --- relay ---
  function startRelay(backend: Backend, sock: net.Socket): void {
    client.removeListener('error', onEarlyClientError);
    socket.removeListener('error', onEarlyClientError);
    if (client !== socket) socket.on('error', noop); // errors surface on the TLS socket
    backend.total++;
    const r = relay(client, sock, l.config.timeouts, (res) => finish(backend, res), head);
    relayHandle = r;
    relayStop = (why) => r.stop(why);
    live.backend = backend;
  }

  function onEarlyClientError(): void {
    // The client went away before relaying started.
    stopped = true;
    failEarly('client_aborted');
  }

  function cancelDial(): void {
    if (!abortDial) return;
    abortDial();
    abortDial = undefined;
    releaseBackend(tried[tried.length - 1]);
  }

  function admitSource(): boolean {
    if (!policy.sourceLimits) return true;
    const a = policy.sourceLimits.tryAdmit(clientAddress);
    if (a.ok) {
      releaseSource = a.release;
      return true;
    }
    if (!policy.proxyTrusted) refuse(a.reason);
    else {
      countRejected(a.reason);
      l.reject(a.reason, { client: clientAddress }).log();
    }
    return false;
  }

  /** Refused at accept: counted as rejected, closed, logged (rate-limited). */
  function refuse(reason: string): void {
    countRejected(reason);
    socket.on('error', noop);
    socket.destroy();
    l.reject(reason, { client: clientAddress }).log();
  }

  /** Refused after the PROXY header named the real client. */
  function rejectLate(kind: 'acl' | 'source'): void {
    if (kind === 'acl') {
      countRejected('acl');
      l.reject('acl', { client: clientAddress }).log();
    }
    failEarly(kind === 'acl' ? 'acl' : 'source_limit', `rejected by ${kind}`);
  }

  // --- close ---
  function failEarly(reason: EarlyReason, error?: string): void {
    cancel?.();
    cancel = undefined;
    if (queued) {
      queued.remove(waiter);
      queued = undefined;
    }
    cancelDial();
    client.destroy();
    socket.destroy();
    finishEarly(reason, error);
  }

  function finishEarly(reason: EarlyReason, error?: string): void {
    if (done) return;
    done = true;
    releaseSource?.();
    stats.active--;
    if (!rejected) stats.countClosed(reason);
    l.connections.delete(live);
    l.accessLog({
      listener: l.config.name,
      client: clientAddress,
      clientPort,
      pool: pool?.name,
      backend: tried.length ? tried[tried.length - 1].address : undefined,
      serverName,
      tries: tried.length,
      retries: Math.max(0, tried.length - 1),
      connectMs: 0,
      durationMs: Date.now() - start,
      bytesUp: 0,
      bytesDown: 0,
      closedFirst: 'proxy',
      closeKind: 'proxy',
      reason,
      code: EARLY_CODES[reason],
      error: error ?? lastError?.message,
    });
    l.released();
  }

  function finish(backend: Backend, res: RelayResult): void {
    if (done) return;
    done = true;
    releaseSource?.();
    backend.active--;
    // Only what earlier snapshots did not already count (see flushBytes).
    backend.bytesIn += res.bytesUp - reportedUp;
    backend.bytesOut += res.bytesDown - reportedDown;
    stats.active--;
    stats.bytesUp += res.bytesUp - reportedUp;
    stats.bytesDown += res.bytesDown - reportedDown;
    stats.countClosed(res.reason);
    l.connections.delete(live);
    l.accessLog({
      listener: l.config.name,
      client: clientAddress,
      clientPort,
      pool: pool?.name,
      backend: backend.address,
      serverName,
      tries: tried.length,
      retries: tried.length - 1,
      connectMs: Math.round(connectMs * 100) / 100,
      durationMs: Date.now() - start,
      bytesUp: res.bytesUp,
      bytesDown: res.bytesDown,
      closedFirst: res.closedFirst,
      closeKind: res.closeKind,
      reason: res.reason,
    });
    if (pool) l.backendReleased(pool);
    l.released();
  }
}

function noop(): void {}
