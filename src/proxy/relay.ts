/**
 * @module proxy/relay — copy bytes both ways between a client and a backend socket.
 *
 * Guarantees (each has a test in test/relay.test.ts):
 * - Byte-exact, both directions at once, in order.
 * - Backpressure: when a write returns false the other side's reader pauses until
 *   'drain', so at most one socket's buffer (highWaterMark plus one read) is held per
 *   direction, whatever the speed difference.
 * - Half-close: a FIN from one side becomes `end()` towards the other (both sockets
 *   are allowHalfOpen), and the other direction keeps flowing until it ends too. A
 *   half-closed connection is bounded by the fin timeout (inactivity while half-closed).
 * - An error or reset on one side ends the other promptly: what was already read from
 *   the failed side is still flushed to the healthy side, then it is closed (bounded by
 *   the fin timeout, then destroyed).
 *
 * One inactivity timer serves both directions: every byte relayed is either read from
 * or written to the client socket, and a net.Socket's timeout is refreshed by both.
 */
import type net from 'node:net';

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

const RESET_CODES = new Set(['ECONNRESET', 'EPIPE', 'ECONNABORTED']);

/**
 * Relays between `client` and `backend` until both are closed, then calls `onDone`
 * once. `head` is client data already read (preread) to send to the backend first.
 * Returns a handle that can stop the relay (shutdown, admin action).
 */
export function relay(
  client: net.Socket,
  backend: net.Socket,
  timeouts: RelayTimeouts,
  onDone: (result: RelayResult) => void,
  head?: Buffer,
): { stop(reason: TerminationReason): void; readonly bytesUp: number; readonly bytesDown: number } {
  let bytesUp = 0;
  let bytesDown = 0;
  let clientEnded = false;
  let backendEnded = false;
  let clientClosed = false;
  let backendClosed = false;
  let finished = false;
  let closedFirst: RelayResult['closedFirst'] | undefined;
  let closeKind: RelayResult['closeKind'] = 'fin';
  let reason: TerminationReason | undefined;
  let lifetimeTimer: NodeJS.Timeout | undefined;
  let guardTimer: NodeJS.Timeout | undefined;

  let reasonIsFinal = false;
  /**
   * Records an ending. Who closed first and how is the first event; the reason is the
   * first abnormal event (reset, error, timeout), or else the first orderly FIN.
   */
  function mark(side: RelayResult['closedFirst'], kind: RelayResult['closeKind'], why: TerminationReason): void {
    if (closedFirst === undefined) {
      closedFirst = side;
      closeKind = kind;
    }
    if (reasonIsFinal) return;
    if (kind !== 'fin') {
      reason = why;
      reasonIsFinal = true;
    } else {
      reason ??= why;
    }
  }

  // --- data, both directions, with backpressure ---
  function onClientData(chunk: Buffer): void {
    bytesUp += chunk.length;
    if (!backend.write(chunk)) client.pause();
  }
  function onBackendData(chunk: Buffer): void {
    bytesDown += chunk.length;
    if (!client.write(chunk)) backend.pause();
  }
  function onBackendDrain(): void {
    if (!clientEnded) client.resume();
  }
  function onClientDrain(): void {
    if (!backendEnded) backend.resume();
  }

  // --- half-close ---
  function onClientEnd(): void {
    clientEnded = true;
    mark('client', 'fin', 'client_closed');
    backend.end();
    if (!backendEnded) armFinTimeout(timeouts.clientFinMs);
  }
  function onBackendEnd(): void {
    backendEnded = true;
    mark('backend', 'fin', 'backend_closed');
    client.end();
    if (!clientEnded) armFinTimeout(timeouts.serverFinMs);
  }
  function armFinTimeout(ms: number): void {
    // While half-closed, the inactivity timer becomes the fin timer.
    if (ms > 0) client.setTimeout(ms);
    else if (timeouts.idleMs <= 0) client.setTimeout(0);
  }
  function onClientTimeout(): void {
    if (clientEnded && !backendEnded) mark('proxy', 'timeout', 'client_fin_timeout');
    else if (backendEnded && !clientEnded) mark('proxy', 'timeout', 'server_fin_timeout');
    else mark('proxy', 'timeout', 'idle_timeout');
    destroyBoth();
  }

  // --- errors: close the failed side, flush then close the other ---
  function onClientError(err: NodeJS.ErrnoException): void {
    const reset = RESET_CODES.has(err.code ?? '');
    mark('client', 'rst', reset ? 'client_reset' : 'client_error');
    client.destroy();
    closeGracefully(backend);
  }
  function onBackendError(err: NodeJS.ErrnoException): void {
    const reset = RESET_CODES.has(err.code ?? '');
    mark('backend', 'rst', reset ? 'backend_reset' : 'backend_error');
    backend.destroy();
    closeGracefully(client);
  }
  function closeGracefully(sock: net.Socket): void {
    if (sock.destroyed) return;
    // Whatever was already read from the failed side reaches this side, then FIN.
    sock.end();
    sock.resume(); // discard further input so the socket can finish closing
    const ms = timeouts.clientFinMs > 0 ? timeouts.clientFinMs : 30_000;
    guardTimer ??= setTimeout(destroyBoth, ms);
  }

  function destroyBoth(): void {
    client.destroy();
    backend.destroy();
  }

  // A side that closes without a FIN (destroyed, or reset without an 'error') ends
  // the other gracefully: what it already sent is delivered, then FIN.
  function onClientClose(): void {
    clientClosed = true;
    if (!backendClosed && !clientEnded) {
      mark('client', 'rst', 'client_reset');
      closeGracefully(backend);
    }
    maybeFinish();
  }
  function onBackendClose(): void {
    backendClosed = true;
    if (!clientClosed && !backendEnded) {
      mark('backend', 'rst', 'backend_reset');
      closeGracefully(client);
    }
    maybeFinish();
  }
  function maybeFinish(): void {
    if (finished || !clientClosed || !backendClosed) return;
    finished = true;
    if (lifetimeTimer) clearTimeout(lifetimeTimer);
    if (guardTimer) clearTimeout(guardTimer);
    client.setTimeout(0);
    onDone({
      bytesUp,
      bytesDown,
      closedFirst: closedFirst ?? 'proxy',
      closeKind,
      reason: reason ?? 'client_closed',
    });
  }

  client.on('data', onClientData);
  backend.on('data', onBackendData);
  client.on('drain', onClientDrain);
  backend.on('drain', onBackendDrain);
  client.on('end', onClientEnd);
  backend.on('end', onBackendEnd);
  client.on('error', onClientError);
  backend.on('error', onBackendError);
  client.on('close', onClientClose);
  backend.on('close', onBackendClose);
  client.on('timeout', onClientTimeout);
  if (timeouts.idleMs > 0) client.setTimeout(timeouts.idleMs);
  if (timeouts.maxLifetimeMs > 0) {
    lifetimeTimer = setTimeout(() => {
      mark('proxy', 'timeout', 'max_lifetime');
      destroyBoth();
    }, timeouts.maxLifetimeMs);
  }
  if (head && head.length > 0) {
    bytesUp += head.length;
    if (!backend.write(head)) client.pause();
  }
  // The client may already have ended (it sent everything and a FIN during connect).
  if (client.readableEnded) onClientEnd();
  else client.resume();
  backend.resume();

  return {
    stop(why: TerminationReason) {
      mark('proxy', 'proxy', why);
      destroyBoth();
    },
    get bytesUp() {
      return bytesUp;
    },
    get bytesDown() {
      return bytesDown;
    },
  };
}
