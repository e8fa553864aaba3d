/**
 * @module proxy/connect — dial one backend with a timeout; optionally send a PROXY
 * protocol header first and/or speak TLS to it.
 *
 * An object with shared methods rather than a Promise or closures: this runs once per attempt
 * on the hot path. The timeout covers the TCP connect and, with TLS, the handshake; it is an
 * entry in a shared deadline list (deadlines.ts), not a timer of its own.
 */
import net from 'node:net';
import tls from 'node:tls';
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { ConnectError, ErrorCodes } from '../errors.js';
import type { PoolTlsConfig } from '../config/types.js';
import type { Backend } from './backend.js';
import { SocketReader, setReader } from './socket-reader.js';
import { connectRaw, type DialWatcher } from './raw-socket.js';
import { deadlineList, DeadlineEntryBase } from './deadlines.js';
import type { DataSocket } from './data-socket.js';
import { noop } from '../util/noop.js';

/** Who a dial reports to, exactly once unless aborted. */
export interface DialOwner {
  dialed(err: ConnectError | null, socket: DataSocket | null): void;
}

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

const kDial = Symbol('l4lb.dial');
type DialSocket = net.Socket & { [kDial]?: Dial };

/** Connects to `backend`; tells `owner` once unless aborted (`abort()`). */
export function dial(backend: Backend, timeoutMs: number, opts: DialOptions | undefined, owner: DialOwner): Dial {
  return new Dial(backend, timeoutMs, opts, owner);
}

/** One connection attempt to a backend; its connect timeout is a deadline-list entry. */
export class Dial extends DeadlineEntryBase implements DialWatcher {
  readonly backend: Backend;
  readonly opts: DialOptions | undefined;
  /** Owner and sockets: let go of once the dial succeeded (see succeed()). */
  owner: DialOwner;
  /** The TCP socket (a raw socket on the fast path); `socket` is the TLS socket over it once TLS starts. */
  raw: DataSocket;
  socket: DataSocket;
  /** The TCP socket when it is a net.Socket (net.connect: TLS, host names, fast path off). */
  tcp: DialSocket | undefined;
  reader: SocketReader | undefined;
  done = false;
  readonly timeoutMs: number;

  constructor(backend: Backend, timeoutMs: number, opts: DialOptions | undefined, owner: DialOwner) {
    super();
    this.backend = backend;
    this.opts = opts;
    this.owner = owner;
    this.timeoutMs = timeoutMs;
    // A plain backend is a raw socket when the fast path is on (raw-socket.ts), else a net.Socket
    // reading into buffers of its own (public `onread` option; socket-reader.ts), which relay()
    // finds through the socket. TLS reads through its own layer instead.
    const fast = opts?.tls ? undefined : connectRaw(backend.host, backend.port, backend.ipFamily, this);
    if (fast) {
      // A raw socket calls connected() or failed() itself.
      this.raw = this.socket = fast;
      this.tcp = this.reader = undefined;
    } else {
      const reader = opts?.tls ? undefined : new SocketReader();
      const tcp: DialSocket = net.connect({ host: backend.host, port: backend.port, allowHalfOpen: true, noDelay: true, onread: reader?.onread });
      if (reader) setReader(tcp, reader);
      tcp[kDial] = this;
      tcp.once('connect', onConnect);
      tcp.once('error', onError);
      this.raw = this.socket = this.tcp = tcp;
      this.reader = reader;
    }
    if (timeoutMs > 0) deadlineList(timeoutMs).add(this);
  }

  connected(): void {
    if (this.done) return;
    const { raw, tcp, opts, backend } = this;
    raw.removeListener('error', onError);
    if (opts?.header) raw.write(opts.header);
    // With TLS the TCP socket is always a net.Socket (see the constructor).
    if (!opts?.tls || tcp === undefined) return this.succeed(raw);
    let ca: Buffer | undefined;
    try {
      ca = caFor(opts.tls);
    } catch (err) {
      return this.fail(new ConnectError(ErrorCodes.CONNECT_FAILED, `cannot read CA ${opts.tls.ca}: ${(err as Error).message}`));
    }
    const servername = opts.tls.servername ?? (isIP(backend.host) === 0 ? backend.host : undefined);
    const t = tls.connect({
      socket: tcp,
      servername,
      ca,
      rejectUnauthorized: !opts.tls.insecureSkipVerify,
      allowHalfOpen: true,
    } as tls.ConnectionOptions);
    this.socket = t;
    const onTlsError = (err: Error): void => {
      this.fail(new ConnectError(ErrorCodes.CONNECT_FAILED, `TLS to ${backend.address} failed: ${err.message}`, { cause: err }));
    };
    t.once('secureConnect', () => {
      t.removeListener('error', onTlsError);
      this.succeed(t);
    });
    t.once('error', onTlsError);
  }

  failed(err: NodeJS.ErrnoException): void {
    const code = err.code === 'ECONNREFUSED' ? ErrorCodes.CONNECT_REFUSED : ErrorCodes.CONNECT_FAILED;
    this.fail(new ConnectError(code, `connect to ${this.backend.address} failed: ${err.code ?? err.message}`, { cause: err }));
  }

  /** The connect timeout passed. */
  onDeadline(): void {
    this.fail(new ConnectError(ErrorCodes.CONNECT_TIMEOUT, `connect to ${this.backend.address} timed out after ${this.timeoutMs}ms`));
  }

  succeed(s: DataSocket): void {
    if (this.done) return;
    this.done = true;
    this.dlList?.remove(this);
    if (this.tcp) this.tcp[kDial] = undefined;
    const owner = this.owner;
    // The socket is the owner's now. Let go of both, as a finished relay does (Relay.letGo in
    // relay.ts says why): a dial is done with once it succeeded.
    this.owner = NO_OWNER;
    this.raw = this.socket = ENDED_SOCKET;
    this.tcp = this.reader = undefined;
    owner.dialed(null, s);
  }

  fail(err: ConnectError): void {
    if (this.done) return;
    this.abort();
    this.owner.dialed(err, null);
  }

  /** Stops the attempt: the owner hears nothing more. */
  abort(): void {
    if (this.done) return;
    this.done = true;
    this.dlList?.remove(this);
    const { raw, socket, tcp } = this;
    if (tcp) {
      tcp[kDial] = undefined;
      tcp.removeListener('connect', onConnect);
    }
    raw.on('error', noop); // late errors from the destroyed socket
    socket.on('error', noop);
    socket.destroy();
    raw.destroy();
    this.reader?.release(); // destroyed: libuv reads into it no more
  }
}

/**
 * What finished objects point at instead of the socket they no longer need (Dial, Connection):
 * a net.Socket that never connects, so every method and getter stays safe to call.
 */
export const ENDED_SOCKET: net.Socket = new net.Socket();
const NO_OWNER: DialOwner = { dialed() {} };

// Socket listeners shared by every dial: `this` is the socket.
function onConnect(this: DialSocket): void {
  this[kDial]?.connected();
}
function onError(this: DialSocket, err: NodeJS.ErrnoException): void {
  this[kDial]?.failed(err);
}

