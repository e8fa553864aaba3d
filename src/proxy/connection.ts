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

/** A live proxied connection, as the listener tracks it (for drain and shutdown). */
export interface LiveConnection {
  /** Stops the connection now (both sides destroyed). */
  stop(reason: TerminationReason): void;
  readonly backend: Backend | undefined;
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
  error?: string;
}

/** Handles one accepted client socket. */
export function handleConnection(l: ListenerRuntime, socket: net.Socket): void {
  const start = Date.now();
  const stats = l.stats;
  const policy = l.policy;
  stats.accepted++;
  let clientAddress = socket.remoteAddress ?? '';
  let clientPort = socket.remotePort ?? 0;

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

  const live: LiveConnection = {
    get backend() {
      return relayStop ? tried[tried.length - 1] : undefined;
    },
    stop(reason) {
      if (relayStop) return relayStop(reason);
      stopped = true;
      failEarly('shutdown');
    },
  };
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
      if (err.kind === 'timeout') return failEarly('preread_timeout', 'preread timeout');
      if (err.kind === 'closed') return failEarly('client_aborted', 'client closed during preread');
      const reason = err.error.code === ErrorCodes.PROXY_HEADER ? 'bad_proxy_header' : 'bad_client_hello';
      stats.countRejected(reason);
      l.reject(reason, { client: clientAddress, detail: err.error.reason }, err.error.message).log();
      return failEarly(reason, err.error.message);
    }
    const r = res!;
    if (r.proxy && r.proxy.command === 'PROXY' && (r.proxy.family === 'tcp4' || r.proxy.family === 'tcp6')) {
      clientAddress = r.proxy.sourceAddress!;
      clientPort = r.proxy.sourcePort!;
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
    const timer = l.config.timeouts.prereadMs > 0 ? setTimeout(() => onTlsError(new Error('handshake timeout')), l.config.timeouts.prereadMs) : undefined;
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
      const timeout = err.message === 'handshake timeout';
      if (!timeout) l.reject('tls_handshake_failed', { client: clientAddress }, `TLS handshake failed: ${err.message}`).log();
      finishEarly(timeout ? 'preread_timeout' : 'tls_handshake_failed', err.message);
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
    if (alpn && alpn.length > 0) proxyHeaderTlv.alpn = alpn[0];
    tryNext();
  }

  // --- balance + connect, retrying the next backend ---
  function tryNext(): void {
    if (stopped) return;
    const maxTries = l.maxTries(pool);
    const backend = tried.length < maxTries && pool ? pool.pick({ clientAddress, clientPort }, tried) : undefined;
    if (!backend) {
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
    if (tried.length > 0) stats.retries++;
    tried.push(backend);
    backend.active++; // counted from the attempt so least-connections sees dials in flight
    const t0 = performance.now();
    const p = pool!;
    abortDial = dial(backend, l.config.timeouts.connectMs, dialOptions(p), (err, sock) => {
      abortDial = undefined;
      connectMs = performance.now() - t0;
      p.recordConnectResult(backend, err === null, connectMs);
      if (err) {
        backend.active--;
        lastError = err;
        l.logBackendError(backend, p, err);
        return tryNext();
      }
      stats.connectMs.observe(connectMs);
      startRelay(backend, sock!);
    });
  }

  function dialOptions(p: Pool): DialOptions | undefined {
    const pp = p.config.proxyProtocol;
    const ptls = p.config.tls;
    if (!pp && !ptls?.enabled) return undefined;
    const opts: DialOptions = {};
    if (pp) {
      const info = proxyInfoFor(clientAddress, clientPort, socket.localAddress, socket.localPort);
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
    relayStop = r.stop;
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
    tried[tried.length - 1].active--;
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
      stats.countRejected(a.reason);
      l.reject(a.reason, { client: clientAddress }).log();
    }
    return false;
  }

  /** Refused at accept: counted as rejected, closed, logged (rate-limited). */
  function refuse(reason: string): void {
    stats.countRejected(reason);
    socket.on('error', noop);
    socket.destroy();
    l.reject(reason, { client: clientAddress }).log();
  }

  /** Refused after the PROXY header named the real client. */
  function rejectLate(kind: 'acl' | 'source'): void {
    if (kind === 'acl') {
      stats.countRejected('acl');
      l.reject('acl', { client: clientAddress }).log();
    }
    failEarly(kind === 'acl' ? 'acl' : 'source_limit', `rejected by ${kind}`);
  }

  // --- close ---
  function failEarly(reason: EarlyReason, error?: string): void {
    cancel?.();
    cancel = undefined;
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
    stats.countClosed(reason);
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
      error: error ?? lastError?.message,
    });
  }

  function finish(backend: Backend, res: RelayResult): void {
    if (done) return;
    done = true;
    releaseSource?.();
    backend.active--;
    backend.bytesIn += res.bytesUp;
    backend.bytesOut += res.bytesDown;
    stats.active--;
    stats.bytesUp += res.bytesUp;
    stats.bytesDown += res.bytesDown;
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
  }
}

function noop(): void {}
