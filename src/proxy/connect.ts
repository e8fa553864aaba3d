/**
 * @module proxy/connect — dial one backend with a timeout.
 *
 * Callback-style rather than a Promise: this runs once per attempt on the hot path and
 * a closure plus one timer is all it needs. The returned function aborts the attempt.
 */
import net from 'node:net';
import { ConnectError, ErrorCodes } from '../errors.js';
import type { Backend } from './backend.js';

export type DialCallback = (err: ConnectError | null, socket: net.Socket | null) => void;

/** Connects to `backend`; calls `cb` exactly once unless aborted. Returns an abort function. */
export function dial(backend: Backend, timeoutMs: number, cb: DialCallback): () => void {
  let done = false;
  const socket = net.connect({ host: backend.host, port: backend.port, allowHalfOpen: true, noDelay: true });
  const timer =
    timeoutMs > 0
      ? setTimeout(() => {
          finish(new ConnectError(ErrorCodes.CONNECT_TIMEOUT, `connect to ${backend.address} timed out after ${timeoutMs}ms`));
        }, timeoutMs)
      : undefined;

  function onConnect(): void {
    if (done) return;
    done = true;
    if (timer) clearTimeout(timer);
    socket.removeListener('error', onError);
    cb(null, socket);
  }
  function onError(err: NodeJS.ErrnoException): void {
    const code = err.code === 'ECONNREFUSED' ? ErrorCodes.CONNECT_REFUSED : ErrorCodes.CONNECT_FAILED;
    finish(new ConnectError(code, `connect to ${backend.address} failed: ${err.code ?? err.message}`, { cause: err }));
  }
  function finish(err: ConnectError): void {
    if (done) return;
    done = true;
    if (timer) clearTimeout(timer);
    socket.removeListener('connect', onConnect);
    socket.on('error', noop); // late errors from the destroyed socket
    socket.destroy();
    cb(err, null);
  }
  socket.once('connect', onConnect);
  socket.once('error', onError);
  return () => {
    if (done) return;
    done = true;
    if (timer) clearTimeout(timer);
    socket.removeListener('connect', onConnect);
    socket.on('error', noop);
    socket.destroy();
  };
}

function noop(): void {}
