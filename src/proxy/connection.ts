/**
 * @module proxy/connection — the path of one connection, start to end:
 *
 *   accept → admit → preread → route → balance → connect → relay → close
 *
 * Each stage is a plain step in `handleConnection`; stages that are not configured
 * cost nothing (no preread buffer without PROXY/SNI, no timer without a timeout).
 */
import type net from 'node:net';
import type { Backend } from './backend.js';
import type { Pool } from './pool.js';
import type { ListenerRuntime } from './listener.js';
import { dial } from './connect.js';
import { relay, type RelayResult, type TerminationReason } from './relay.js';
import type { ConnectError } from '../errors.js';
import { ErrorCodes } from '../errors.js';

/** A live proxied connection, as the listener tracks it (for drain and shutdown). */
export interface LiveConnection {
  /** Stops the connection now (both sides destroyed). */
  stop(reason: TerminationReason): void;
  readonly backend: Backend | undefined;
}

/** Why a connection ended before relaying, in access-log words. */
type EarlyReason =
  | 'no_backend'
  | 'backend_connect_timeout'
  | 'backend_connect_refused'
  | 'backend_connect_failed'
  | 'client_aborted'
  | 'shutdown';

/** Handles one accepted client socket. */
export function handleConnection(l: ListenerRuntime, client: net.Socket): void {
  const start = Date.now();
  const clientAddress = client.remoteAddress ?? '';
  const clientPort = client.remotePort ?? 0;
  const stats = l.stats;
  stats.accepted++;

  // --- admit ---
  const rejection = l.admit(clientAddress);
  if (rejection !== null) {
    stats.countRejected(rejection.reason);
    client.on('error', noop);
    client.destroy();
    rejection.log();
    return;
  }
  stats.active++;

  // --- route ---
  const pool: Pool | undefined = l.defaultPool();
  const ctx = { clientAddress, clientPort };
  const tried: Backend[] = [];
  const maxTries = l.maxTries(pool);
  let connectMs = 0;
  let abortDial: (() => void) | undefined;
  let stopped: TerminationReason | undefined;
  let lastError: ConnectError | null = null;

  const live: LiveConnection & { backend: Backend | undefined; relayStop?: (r: TerminationReason) => void } = {
    backend: undefined,
    stop(reason) {
      if (this.relayStop) this.relayStop(reason);
      else {
        stopped = reason;
        cancelDial();
        client.destroy();
        finishEarly('shutdown');
      }
    },
  };
  l.connections.add(live);
  client.on('error', onEarlyClientError);

  // --- balance + connect (with retries on the next backend) ---
  tryNext();

  function tryNext(): void {
    if (stopped) return;
    const state = { full: false };
    const backend = tried.length < maxTries && pool ? pool.pick(ctx, tried, state) : undefined;
    if (!backend) {
      const reason: EarlyReason =
        tried.length === 0 || !lastError
          ? 'no_backend'
          : lastError.code === ErrorCodes.CONNECT_TIMEOUT
            ? 'backend_connect_timeout'
            : lastError.code === ErrorCodes.CONNECT_REFUSED
              ? 'backend_connect_refused'
              : 'backend_connect_failed';
      client.destroy();
      finishEarly(reason);
      return;
    }
    if (tried.length > 0) stats.retries++;
    tried.push(backend);
    backend.active++; // counted from the attempt so least-connections sees in-flight dials
    const t0 = performance.now();
    abortDial = dial(backend, l.config.timeouts.connectMs, (err, sock) => {
      abortDial = undefined;
      connectMs = performance.now() - t0;
      pool!.recordConnectResult(backend, err === null, connectMs);
      if (err) {
        backend.active--;
        lastError = err;
        l.logBackendError(backend, pool!, err);
        tryNext();
        return;
      }
      stats.connectMs.observe(connectMs);
      startRelay(backend, sock!);
    });
  }

  // --- relay ---
  function startRelay(backend: Backend, sock: net.Socket): void {
    client.removeListener('error', onEarlyClientError);
    live.backend = backend;
    backend.total++;
    const r = relay(client, sock, l.config.timeouts, (res) => finish(backend, res));
    live.relayStop = r.stop;
  }

  function onEarlyClientError(): void {
    // The client went away while we were still connecting.
    stopped = 'client_reset';
    cancelDial();
    client.destroy();
    finishEarly('client_aborted');
  }

  function cancelDial(): void {
    if (!abortDial) return;
    abortDial();
    abortDial = undefined;
    tried[tried.length - 1].active--;
  }

  // --- close ---
  let done = false;
  function finishEarly(reason: EarlyReason): void {
    if (done) return;
    done = true;
    stats.active--;
    stats.countClosed(reason);
    l.connections.delete(live);
    l.accessLog({
      listener: l.config.name,
      client: clientAddress,
      clientPort,
      pool: pool?.name,
      backend: tried.length ? tried[tried.length - 1].address : undefined,
      tries: tried.length,
      connectMs: 0,
      durationMs: Date.now() - start,
      bytesUp: 0,
      bytesDown: 0,
      closedFirst: 'proxy',
      closeKind: 'proxy',
      reason,
      error: lastError?.message,
    });
  }

  function finish(backend: Backend, res: RelayResult): void {
    if (done) return;
    done = true;
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
      tries: tried.length,
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

/** The fields of one access-log line. */
export interface AccessRecord {
  listener: string;
  client: string;
  clientPort: number;
  pool: string | undefined;
  backend: string | undefined;
  tries: number;
  connectMs: number;
  durationMs: number;
  bytesUp: number;
  bytesDown: number;
  closedFirst: string;
  closeKind: string;
  reason: string;
  error?: string;
}
