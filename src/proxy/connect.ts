/**
 * @module proxy/connect — dial one backend with a timeout; optionally send a PROXY
 * protocol header first and/or speak TLS to it.
 *
 * Callback-style rather than a Promise: this runs once per attempt on the hot path and
 * a closure plus one timer is all it needs. The returned function aborts the attempt.
 * The timeout covers the TCP connect and, with TLS, the handshake.
 */
import net from 'node:net';
import tls from 'node:tls';
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { ConnectError, ErrorCodes } from '../errors.js';
import type { PoolTlsConfig } from '../config/types.js';
import type { Backend } from './backend.js';
import { SocketReader, setReader } from './socket-reader.js';
import { connectRaw } from './fast-path.js';

export type DialCallback = (err: ConnectError | null, socket: net.Socket | null) => void;

export interface DialOptions {
  /** Bytes to send before anything else (a PROXY protocol header). */
  header?: Buffer;
  /** Originate TLS towards the backend. */
  tls?: PoolTlsConfig;
}

/** CA bundles, read once per pool TLS config object (a reload brings a new object). */
const caCache = new WeakMap<PoolTlsConfig, Buffer>();

function caFor(cfg: PoolTlsConfig): Buffer | undefined {
  if (!cfg.ca) return undefined;
  let ca = caCache.get(cfg);
  if (!ca) {
    ca = readFileSync(cfg.ca);
    caCache.set(cfg, ca);
  }
  return ca;
}

/** Connects to `backend`; calls `cb` exactly once unless aborted. Returns an abort function. */
export function dial(backend: Backend, timeoutMs: number, opts: DialOptions | undefined, cb: DialCallback): () => void {
  let done = false;
  // A plain backend is a raw socket when the fast path is on (fast-path.ts), else a net.Socket
  // reading into buffers of its own (public `onread` option; socket-reader.ts), which relay()
  // finds through the socket. TLS reads through its own layer instead.
  const fast = opts?.tls ? undefined : connectRaw(backend.host, backend.port);
  const reader = opts?.tls || fast ? undefined : new SocketReader();
  const raw = fast ?? net.connect({ host: backend.host, port: backend.port, allowHalfOpen: true, noDelay: true, onread: reader?.onread });
  if (reader) setReader(raw, reader);
  let socket: net.Socket = raw;
  const timer =
    timeoutMs > 0
      ? setTimeout(() => {
          fail(new ConnectError(ErrorCodes.CONNECT_TIMEOUT, `connect to ${backend.address} timed out after ${timeoutMs}ms`));
        }, timeoutMs)
      : undefined;

  function onConnect(): void {
    if (done) return;
    raw.removeListener('error', onError);
    if (opts?.header) raw.write(opts.header);
    if (!opts?.tls) return succeed(raw);
    let ca: Buffer | undefined;
    try {
      ca = caFor(opts.tls);
    } catch (err) {
      return fail(new ConnectError(ErrorCodes.CONNECT_FAILED, `cannot read CA ${opts.tls.ca}: ${(err as Error).message}`));
    }
    const servername = opts.tls.servername ?? (isIP(backend.host) === 0 ? backend.host : undefined);
    const t = tls.connect({
      socket: raw,
      servername,
      ca,
      rejectUnauthorized: !opts.tls.insecureSkipVerify,
      allowHalfOpen: true,
    } as tls.ConnectionOptions);
    socket = t;
    t.once('secureConnect', () => {
      t.removeListener('error', onTlsError);
      succeed(t);
    });
    t.once('error', onTlsError);
  }
  function onTlsError(err: Error): void {
    fail(new ConnectError(ErrorCodes.CONNECT_FAILED, `TLS to ${backend.address} failed: ${err.message}`, { cause: err }));
  }
  function succeed(s: net.Socket): void {
    if (done) return;
    done = true;
    if (timer) clearTimeout(timer);
    cb(null, s);
  }
  function onError(err: NodeJS.ErrnoException): void {
    const code = err.code === 'ECONNREFUSED' ? ErrorCodes.CONNECT_REFUSED : ErrorCodes.CONNECT_FAILED;
    fail(new ConnectError(code, `connect to ${backend.address} failed: ${err.code ?? err.message}`, { cause: err }));
  }
  function fail(err: ConnectError): void {
    if (done) return;
    abort();
    cb(err, null);
  }
  function abort(): void {
    if (done) return;
    done = true;
    if (timer) clearTimeout(timer);
    raw.removeListener('connect', onConnect);
    raw.on('error', noop); // late errors from the destroyed socket
    socket.on('error', noop);
    socket.destroy();
    raw.destroy();
    reader?.release(); // destroyed: libuv reads into it no more
  }
  raw.once('connect', onConnect);
  raw.once('error', onError);
  return abort;
}

function noop(): void {}
