/**
 * @module udp/listener — one UDP listening socket, its session table, and per-datagram admission.
 *
 * The UDP counterpart of proxy/listener.ts: it shares the ACL, the per-source limiter, the
 * pools and balancers, passive health, the counters and the access-log record; it has no relay.
 *
 * A datagram from a client with a session goes to that session's backend. A datagram from a
 * new client is admitted (drain, ACL, process and listener session limits, per-source session
 * limits) and gets a session with a backend the pool picks. A datagram that cannot be admitted
 * is dropped and counted by reason (`rejected` in the stats, `l4lb_connections_rejected_total`
 * for a UDP listener counts datagrams); nothing is queued except the few datagrams a new
 * session holds while its socket connects (session.ts).
 *
 * Sessions end by idle timeout, after `udp.responses` replies, on a response timeout or an
 * error. Timeouts are found by one sweep per listener that runs only while sessions exist, at a
 * tenth of the shortest timeout (between 10 ms and 1 s); the sweep also advances the coarse
 * clock sessions stamp their activity with, so no datagram reads the time.
 *
 * Per-datagram mode (`udp.perDatagram`) keeps no session: each datagram is balanced on its own
 * and sent through one connected socket per backend (a bare handle on the fast path, as a
 * session's); replies are not expected and are dropped.
 *
 * The listening socket is a dgram.Socket (bind, errors, close) whose datagrams and replies go
 * through its handle directly where Node's internals allow (udp/raw-udp.ts).
 */
import dgram from 'node:dgram';
import { isIP } from 'node:net';
import type { ListenerConfig } from '../config/types.js';
import { L4lbError, ErrorCodes } from '../errors.js';
import { ListenerStats } from '../observability/stats.js';
import { formatHostPort } from '../util/address.js';
import type { Backend } from '../proxy/backend.js';
import type { Pool } from '../proxy/pool.js';
import type { ListenerHost } from '../proxy/listener.js';
import { Acl } from '../admission/acl.js';
import { SourceLimiter, RateLimitedLog } from '../admission/source-limits.js';
import { MAX_PENDING_DATAGRAMS, UdpSession, type SessionOwner, type UdpEndReason } from './session.js';
import { ListenerSocket, connectBackend, ipLookup, type BackendPeer, type BackendSocket } from './raw-udp.js';

/** What a UDP listener needs from the process around it (the proxy is one). */
export type UdpListenerHost = Pick<ListenerHost, 'logger' | 'pool' | 'accessLog' | 'logsAccess' | 'admitGlobal' | 'listenOptions'>;

/** Bounds of the sweep interval (ms). */
const MIN_SWEEP_MS = 10;
const MAX_SWEEP_MS = 1_000;
/** The sweep runs this many times per shortest timeout. */
const SWEEPS_PER_TIMEOUT = 10;
/** Per-datagram mode: a backend socket unused this long is closed. */
const PER_DATAGRAM_SOCKET_IDLE_MS = 60_000;
/** Socket buffer sizes asked of the kernel for the listening socket (it carries every client). */
const LISTENER_BUFFER_BYTES = 4 * 1024 * 1024;

/** Counters of a UDP listener: sessions as connections, plus datagrams each way. */
export class UdpListenerStats extends ListenerStats {
  /** Datagrams forwarded client → backend. */
  datagramsUp = 0;
  /** Datagrams forwarded backend → client. */
  datagramsDown = 0;
}

/** A UDP listener's config compiled for the datagram path; absent stages are `undefined`. */
interface UdpPolicy {
  acl: Acl | undefined;
  /** Sessions per source and new sessions per second per source. */
  sessionLimits: SourceLimiter | undefined;
  /** Datagrams per second per source (every datagram, sessions or not). */
  datagramLimits: SourceLimiter | undefined;
}

function compileUdpPolicy(c: ListenerConfig, previous?: { config: ListenerConfig; policy: UdpPolicy }): UdpPolicy {
  const s = c.sourceLimits;
  const prev = previous?.config.sourceLimits;
  const sameSessions = previous && prev?.maxConnections === s?.maxConnections && prev?.ratePerSecond === s?.ratePerSecond &&
    prev?.burst === s?.burst && prev?.ipv6Prefix === s?.ipv6Prefix;
  const sameDatagrams = previous && prev?.datagramsPerSecond === s?.datagramsPerSecond && prev?.datagramBurst === s?.datagramBurst &&
    prev?.ipv6Prefix === s?.ipv6Prefix;
  return {
    acl: c.acl.length > 0 || c.aclDefault === 'deny' ? new Acl(c.acl, c.aclDefault) : undefined,
    sessionLimits: sameSessions
      ? previous.policy.sessionLimits
      : s && (s.maxConnections > 0 || s.ratePerSecond > 0)
        ? new SourceLimiter({ maxConnections: s.maxConnections, ratePerSecond: s.ratePerSecond, burst: s.burst, ipv6Prefix: s.ipv6Prefix })
        : undefined,
    datagramLimits: sameDatagrams
      ? previous.policy.datagramLimits
      : s?.datagramsPerSecond
        ? new SourceLimiter({ maxConnections: 0, ratePerSecond: s.datagramsPerSecond, burst: s.datagramBurst, ipv6Prefix: s.ipv6Prefix })
        : undefined,
  };
}

/**
 * Live sessions by client port, then address: a number key and a short chain (clients seldom
 * share a port) instead of a string built and hashed for every datagram.
 */
class SessionTable {
  readonly #byPort = new Map<number, UdpSession>();
  #size = 0;

  get size(): number {
    return this.#size;
  }

  get(address: string, port: number): UdpSession | undefined {
    let s = this.#byPort.get(port);
    while (s !== undefined && s.clientAddress !== address) s = s.samePort;
    return s;
  }

  add(s: UdpSession): void {
    s.samePort = this.#byPort.get(s.clientPort);
    this.#byPort.set(s.clientPort, s);
    this.#size++;
  }

  /** Removes `s`; false when it was not in the table. */
  delete(s: UdpSession): boolean {
    const head = this.#byPort.get(s.clientPort);
    if (head === s) {
      if (s.samePort === undefined) this.#byPort.delete(s.clientPort);
      else this.#byPort.set(s.clientPort, s.samePort);
    } else {
      let prev = head;
      while (prev !== undefined && prev.samePort !== s) prev = prev.samePort;
      if (prev === undefined) return false;
      prev.samePort = s.samePort;
    }
    // s.samePort stays: an iteration standing on s goes on from there.
    this.#size--;
    return true;
  }

  /** Every session; ending sessions while iterating is fine. */
  *values(): IterableIterator<UdpSession> {
    for (const head of this.#byPort.values()) {
      for (let s: UdpSession | undefined = head; s !== undefined; s = s.samePort) yield s;
    }
  }
}

/**
 * Per-datagram mode: one connected socket per backend (udp/raw-udp.ts: a bare handle, or a
 * dgram.Socket that connects asynchronously). Its replies are not expected: they are read (so
 * the receive buffer stays empty) and dropped.
 */
class PerDatagramSocket implements BackendPeer {
  readonly socket: BackendSocket;
  /** Datagrams waiting for the connect; undefined once connected. */
  pending: Buffer[] | undefined = undefined;
  lastUsed: number;
  readonly #listener: UdpListener;
  readonly #pool: Pool;
  readonly #backend: Backend;

  constructor(listener: UdpListener, pool: Pool, backend: Backend) {
    this.#listener = listener;
    this.#pool = pool;
    this.#backend = backend;
    this.lastUsed = listener.clock;
    this.socket = connectBackend(backend.ipFamily, backend.host, backend.port, this);
    if (!this.socket.ready) this.pending = [];
  }

  connected(): void {
    const pending = this.pending;
    this.pending = undefined;
    for (const m of pending ?? []) this.socket.send(m);
  }

  received(): void {
    this.#listener.drop('unexpected_reply', { backend: this.#backend.address });
  }

  failed(code: string, message: string): void {
    if (code === 'ECONNREFUSED') this.#pool.recordConnectResult(this.#backend, false, 0);
    else this.#listener.drop('send_failed', { backend: this.#backend.address, err: code || message });
  }
}

export class UdpListener implements SessionOwner {
  #config: ListenerConfig;
  #policy: UdpPolicy;
  readonly #host: UdpListenerHost;
  readonly stats = new UdpListenerStats();
  readonly sessions = new SessionTable();
  readonly socket: dgram.Socket;
  /** Reads and replies through {@link socket} (set once bound). */
  #io: ListenerSocket | undefined;
  readonly #dropLog = new RateLimitedLog();
  readonly #perDatagram = new Map<Backend, PerDatagramSocket>();
  #address: { host: string; port: number } | undefined;
  #bound = false;
  /** Set by drain: no new session; live ones run to their end. */
  #draining = false;
  #closed = false;
  #sweep: NodeJS.Timeout | undefined;
  /** The sweep's interval: how stale {@link clock} may be. */
  #sweepEvery = 0;
  clock = performance.now();

  constructor(config: ListenerConfig, host: UdpListenerHost) {
    this.#config = config;
    this.#policy = compileUdpPolicy(config);
    this.#host = host;
    const family = isIP(config.host) === 6 || config.host === '' ? 'udp6' : 'udp4';
    this.socket = dgram.createSocket({
      type: family,
      ...(host.listenOptions?.reusePort && { reusePort: true }),
      lookup: ipLookup,
      recvBufferSize: LISTENER_BUFFER_BYTES,
      sendBufferSize: LISTENER_BUFFER_BYTES,
    } as dgram.SocketOptions);
    // Errors after binding (a send to a client failed: ENOBUFS, EAGAIN, an ICMP error for a
    // client that went away) cost that datagram only.
    this.socket.on('error', (err: NodeJS.ErrnoException) => {
      if (this.#bound) this.#dropped('send_failed', { err: err.code ?? err.message });
    });
  }

  get name(): string {
    return this.#config.name;
  }

  get config(): ListenerConfig {
    return this.#config;
  }

  /** Checks `next` for this listener without applying it (for an atomic reload). */
  compile(next: ListenerConfig): UdpPolicy {
    return compileUdpPolicy(next, { config: this.#config, policy: this.#policy });
  }

  /** Applies `next` to new sessions; live ones keep their backend. */
  apply(next: ListenerConfig, policy: UdpPolicy): void {
    this.#config = next;
    this.#policy = policy;
    this.#armSweep();
  }

  /** Binds the socket. Rejects with L4LB_ERR_LISTEN (e.g. address in use). */
  listen(): Promise<{ host: string; port: number }> {
    const { host, port } = this.#config;
    return new Promise((resolve, reject) => {
      const onError = (err: NodeJS.ErrnoException) => {
        const what = err.code === 'EADDRINUSE' ? 'address already in use' : err.code === 'EACCES' ? 'permission denied' : err.message;
        reject(new L4lbError(ErrorCodes.LISTEN, 'internal', `cannot listen on udp ${formatHostPort(host || '::', port)}: ${what}`, { cause: err }));
      };
      this.socket.once('error', onError);
      this.socket.bind({ address: host || undefined, port, exclusive: this.#host.listenOptions?.exclusive ?? true }, () => {
        this.socket.removeListener('error', onError);
        this.#bound = true;
        this.#io = new ListenerSocket(this.socket, (msg, address, port) => this.#onDatagram(msg, address, port));
        const a = this.socket.address();
        this.#address = { host: a.address, port: a.port };
        resolve(this.#address);
      });
    });
  }

  get address(): { host: string; port: number } | undefined {
    return this.#address;
  }

  /** Whether datagrams bypass dgram.Socket (udp/raw-udp.ts; false until bound). */
  get raw(): boolean {
    return this.#io?.raw ?? false;
  }

  /** Per-datagram mode: the open backend sockets, by backend address, and whether each is a bare handle. */
  perDatagramSockets(): Map<string, { raw: boolean }> {
    return new Map([...this.#perDatagram].map(([b, bs]) => [b.address, { raw: bs.socket.raw }]));
  }

  /** True while new sessions are taken. */
  get listening(): boolean {
    return this.#bound && !this.#draining && !this.#closed;
  }

  // --- the datagram path ---

  #onDatagram(msg: Buffer, address: string, port: number): void {
    if (msg.length === 0) return this.#dropped('empty', { client: address });
    const policy = this.#policy;
    if (policy.datagramLimits && !policy.datagramLimits.tryAdmit(address).ok) {
      return this.#dropped('datagram_rate', { client: address });
    }
    if (this.#config.udp!.perDatagram) return this.#forwardOne(msg, address, port);
    const s = this.sessions.get(address, port);
    if (s !== undefined) {
      s.forward(msg);
      return;
    }
    const session = this.#open(address, port);
    session?.forward(msg);
  }

  /** Admits a new client and opens its session; undefined (and counted) when refused. */
  #open(address: string, port: number): UdpSession | undefined {
    if (this.#draining) return this.#refused('shutdown', address);
    const policy = this.#policy;
    if (policy.acl && !policy.acl.allows(address)) return this.#refused('acl', address);
    const global = this.#host.admitGlobal();
    if (global !== null) return this.#refused(global, address);
    const max = this.#config.maxConnections;
    if (max > 0 && this.sessions.size >= max) return this.#refused('listener_limit', address);
    let release: (() => void) | undefined;
    if (policy.sessionLimits) {
      const a = policy.sessionLimits.tryAdmit(address);
      if (!a.ok) return this.#refused(a.reason, address);
      release = a.release;
    }
    const pool = this.#config.pool === undefined ? undefined : this.#host.pool(this.#config.pool);
    const backend = pool?.pick({ clientAddress: address, clientPort: port }, []);
    if (pool === undefined || backend === undefined) {
      release?.();
      return this.#refused('no_backend', address);
    }
    const s = new UdpSession(this, address, port, pool, backend, this.#config.udp!.responses);
    s.releaseSource = release;
    this.sessions.add(s);
    this.stats.accepted++;
    this.stats.active++;
    this.#armSweep();
    s.connect();
    return s;
  }

  #refused(reason: string, client: string): undefined {
    this.#dropped(reason, { client });
    return undefined;
  }

  /** Per-datagram mode: a backend for this datagram alone. */
  #forwardOne(msg: Buffer, address: string, port: number): void {
    if (this.#draining) return this.#dropped('shutdown', { client: address });
    const policy = this.#policy;
    if (policy.acl && !policy.acl.allows(address)) return this.#dropped('acl', { client: address });
    const pool = this.#config.pool === undefined ? undefined : this.#host.pool(this.#config.pool);
    const backend = pool?.pick({ clientAddress: address, clientPort: port }, []);
    if (pool === undefined || backend === undefined) return this.#dropped('no_backend', { client: address });
    let bs = this.#perDatagram.get(backend);
    if (bs === undefined) {
      bs = new PerDatagramSocket(this, pool, backend);
      this.#perDatagram.set(backend, bs);
      this.#armSweep();
    }
    bs.lastUsed = this.clock;
    if (bs.pending !== undefined) {
      if (bs.pending.length >= MAX_PENDING_DATAGRAMS) return this.#dropped('pending_full', { backend: backend.address });
      bs.pending.push(msg);
    } else {
      bs.socket.send(msg);
    }
    this.stats.datagramsUp++;
    this.stats.bytesUp += msg.length;
    backend.countDatagram('in');
    backend.addBytes(msg.length, 0);
  }

  /** Counts a dropped datagram and logs it (rate-limited per reason). */
  #dropped(reason: string, fields: Record<string, unknown>): void {
    this.stats.countRejected(reason);
    const r = this.#dropLog.take(reason);
    if (r) {
      this.#host.logger.warn({ listener: this.#config.name, reason, suppressed: r.suppressed || undefined, ...fields }, 'udp datagram dropped');
    }
  }

  // --- SessionOwner ---

  reply(msg: Buffer, port: number, address: string): void {
    this.stats.datagramsDown++;
    if (!this.#io!.sendTo(msg, port, address)) this.#dropped('send_failed', { client: address });
  }

  drop(reason: string, fields: Record<string, unknown> = {}): void {
    this.#dropped(reason, fields);
  }

  countUp(): void {
    this.stats.datagramsUp++;
  }

  ended(s: UdpSession, reason: UdpEndReason, error?: string): void {
    this.sessions.delete(s);
    const st = this.stats;
    st.active--;
    st.countClosed(reason);
    const { up, down } = s.flushBytes();
    st.bytesUp += up;
    st.bytesDown += down;
    s.backend.addBytes(up, down);
    if (this.#host.logsAccess) this.#host.accessLog(s.record(this.#config.name, reason, error));
  }

  // --- timeouts ---

  /** Starts the sweep when there is something to time out (and it is not running). */
  #armSweep(): void {
    if (this.#sweep !== undefined || this.#closed || (this.sessions.size === 0 && this.#perDatagram.size === 0)) return;
    const { idleMs } = this.#config.timeouts;
    const u = this.#config.udp!;
    const shortest = Math.min(idleMs > 0 ? idleMs : Infinity, u.responses > 0 ? u.responseTimeoutMs : Infinity, PER_DATAGRAM_SOCKET_IDLE_MS);
    const every = Math.min(MAX_SWEEP_MS, Math.max(MIN_SWEEP_MS, Math.floor(shortest / SWEEPS_PER_TIMEOUT)));
    // The clock stood still while nothing ran.
    this.clock = performance.now();
    this.#sweepEvery = every;
    this.#sweep = setInterval(() => this.#sweepNow(), every);
    this.#sweep.unref();
  }

  #sweepNow(): void {
    const now = performance.now();
    this.clock = now;
    // Stamps are up to one interval old, so a timeout is waited out in full, never cut short.
    const slack = this.#sweepEvery;
    const idleMs = this.#config.timeouts.idleMs;
    const u = this.#config.udp!;
    const responseMs = u.responses > 0 ? u.responseTimeoutMs : 0;
    for (const s of this.sessions.values()) {
      if (responseMs > 0 && s.awaitingSince > 0 && now - s.awaitingSince - slack >= responseMs) s.timedOut();
      else if (idleMs > 0 && now - s.lastActive - slack >= idleMs) s.end('idle_timeout');
    }
    for (const [b, bs] of this.#perDatagram) {
      if (now - bs.lastUsed >= PER_DATAGRAM_SOCKET_IDLE_MS || this.#closed) {
        this.#perDatagram.delete(b);
        bs.socket.close();
      }
    }
    if (this.sessions.size === 0 && this.#perDatagram.size === 0) {
      clearInterval(this.#sweep);
      this.#sweep = undefined;
    }
  }

  // --- lifecycle ---

  /** Adds the bytes of live sessions to the counters (before a stats snapshot). */
  flushLiveBytes(): void {
    for (const s of this.sessions.values()) {
      const { up, down } = s.flushBytes();
      this.stats.bytesUp += up;
      this.stats.bytesDown += down;
      s.backend.addBytes(up, down);
    }
  }

  /** Stops taking new sessions; live ones continue until they end (idle timeout, responses). */
  stopAccepting(): void {
    this.#draining = true;
  }

  /** Ends every live session now. */
  stopSessions(reason: UdpEndReason = 'shutdown'): void {
    for (const s of [...this.sessions.values()]) s.end(reason);
  }

  /** Ends every session and closes every socket. */
  close(): void {
    if (this.#closed) return;
    this.#draining = true;
    this.stopSessions('shutdown');
    this.#closed = true;
    if (this.#sweep !== undefined) clearInterval(this.#sweep);
    this.#sweep = undefined;
    for (const bs of this.#perDatagram.values()) bs.socket.close();
    this.#perDatagram.clear();
    this.#bound = false;
    try {
      this.socket.close();
    } catch {
      // Never bound, or the failed bind closed it.
    }
  }
}
