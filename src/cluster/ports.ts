/**
 * @module cluster/ports — listening-port questions the primary answers before workers bind.
 *
 * - Whether this Node.js and kernel support SO_REUSEPORT (`reusePort`, Node ≥ 22.12 / 23.1
 *   on Linux) for TCP and UDP: two sockets bound to one port prove it, for each. Older Node
 *   ignores the option, so the second bind fails.
 * - TCP and UDP ports are separate spaces: a `protocol: udp` listener is bound with a UDP socket.
 * - Port 0: with SO_REUSEPORT every worker binding port 0 would get a different port. The
 *   primary binds port 0 itself (with SO_REUSEPORT), holds that socket while the workers
 *   bind the port it got, and closes it once they have: the port can never be taken by
 *   someone else in between.
 * - Port 0 without SO_REUSEPORT (`shared` mode): node:cluster binds the port once, in the
 *   primary, when the first worker listens, and hands that socket to every worker. Before
 *   that, the port must stay taken: a port the primary found free and let go of could become
 *   another program's (or another connection's ephemeral source port) before the workers
 *   bind it, failing the start with "address already in use". So the primary binds port 0
 *   *without listening* ({@link holdFreePort}) and keeps that socket for as long as the port
 *   is in use. A bound socket takes no connection and the kernel no longer hands its port to
 *   anyone else (not to another port-0 bind, not as an ephemeral source port), yet
 *   node:cluster's socket (bound with SO_REUSEADDR, like it) can bind and listen on the same
 *   port. This holds through worker restarts, even when every worker has died and node:cluster
 *   has closed its socket. (A program that binds that very port number on purpose, with
 *   SO_REUSEADDR, still can, as with any configured port.)
 * - A listener on a given port is test-bound first, without SO_REUSEPORT, at start and when
 *   a reload adds it: an address in use fails the start (as in one process) or the reload
 *   (before any worker changes anything). Without this, in `reuseport` mode a second l4lb
 *   started on the same port by mistake would silently share its traffic with the first.
 */
import dgram from 'node:dgram';
import { lookup } from 'node:dns/promises';
import net from 'node:net';
import { getSystemErrorName } from 'node:util';
import { L4lbError, ErrorCodes } from '../errors.js';
import { bindWithoutListening } from '../proxy/node-internals.js';
import { formatHostPort } from '../util/address.js';

/** A bound socket kept open until released. */
export interface PortHold {
  port: number;
  release(): Promise<void>;
}

/** A socket of either protocol bound by {@link bind}. */
interface Bound {
  port: number;
  close(): Promise<void>;
}

function listenError(host: string, port: number, udp: boolean, err: NodeJS.ErrnoException): L4lbError {
  const what = err.code === 'EADDRINUSE' ? 'address already in use' : err.code === 'EACCES' ? 'permission denied' : err.message;
  const where = formatHostPort(host || (udp ? '::' : '0.0.0.0'), port);
  return new L4lbError(ErrorCodes.LISTEN, 'internal', `cannot listen on ${udp ? 'udp ' : ''}${where}: ${what}`, { cause: err });
}

function bindTcp(host: string, port: number, reusePort: boolean): Promise<Bound> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', (err: NodeJS.ErrnoException) => reject(listenError(host, port, false, err)));
    // No connection is ever accepted here: the socket only holds the port.
    s.on('connection', (c) => c.destroy());
    s.listen({ host: host || undefined, port, reusePort, exclusive: true, backlog: 1 }, () =>
      resolve({ port: (s.address() as net.AddressInfo).port, close: () => new Promise<void>((r) => s.close(() => r())) }),
    );
  });
}

function bindUdp(host: string, port: number, reusePort: boolean): Promise<Bound> {
  return new Promise((resolve, reject) => {
    // The family a UDP listener binds (udp/listener.ts): IPv6 for '::' and for no host.
    const type = net.isIP(host) === 6 || host === '' ? 'udp6' : 'udp4';
    const s = dgram.createSocket({ type, reusePort } as dgram.SocketOptions);
    s.once('error', (err: NodeJS.ErrnoException) => reject(listenError(host, port, true, err)));
    // Datagrams that reach a held socket (SO_REUSEPORT: the kernel counts it among the
    // workers' until it closes) are read and dropped.
    s.on('message', () => {});
    s.bind({ address: host || undefined, port, exclusive: true }, () =>
      resolve({ port: s.address().port, close: () => new Promise<void>((r) => s.close(() => r())) }),
    );
  });
}

function bind(host: string, port: number, reusePort: boolean, udp: boolean): Promise<Bound> {
  return udp ? bindUdp(host, port, reusePort) : bindTcp(host, port, reusePort);
}

/** True when sockets can share a port with SO_REUSEPORT here, for TCP and for UDP. */
export async function reusePortSupported(): Promise<boolean> {
  for (const udp of [false, true]) {
    let a: Bound | undefined;
    let b: Bound | undefined;
    try {
      a = await bind('127.0.0.1', 0, true, udp);
      b = await bind('127.0.0.1', a.port, true, udp);
    } catch {
      return false;
    } finally {
      await b?.close();
      await a?.close();
    }
  }
  return true;
}

/**
 * Binds `host:port` (port 0 = a free one), a UDP port when `udp`. With `hold` the socket
 * stays open until released (SO_REUSEPORT mode: workers bind next to it); otherwise it is
 * closed at once and only the port number is kept. Rejects with L4LB_ERR_LISTEN.
 */
export async function reservePort(host: string, port: number, reusePort: boolean, hold: boolean, udp = false): Promise<PortHold> {
  const s = await bind(host, port, reusePort, udp);
  if (!hold) {
    await s.close();
    return { port: s.port, release: async () => {} };
  }
  let released = false;
  return {
    port: s.port,
    async release() {
      if (released) return;
      released = true;
      await s.close();
    },
  };
}

/**
 * Binds a free TCP port on `host` without listening and keeps it (see the module comment: shared
 * mode). The host is resolved as net.Server.listen resolves it, so node:cluster later binds the
 * very address held. Resolves to undefined when this Node cannot bind without listening (the
 * caller then falls back to {@link reservePort}). Rejects with L4LB_ERR_LISTEN.
 */
export async function holdFreePort(host: string): Promise<PortHold | undefined> {
  let address: string | null = null;
  let family: 4 | 6 = 4;
  if (host !== '') {
    let found: { address: string; family: number };
    try {
      found = net.isIP(host) !== 0 ? { address: host, family: net.isIP(host) } : await lookup(host);
    } catch (err) {
      throw listenError(host, 0, false, err as NodeJS.ErrnoException);
    }
    address = found.address;
    family = found.family === 6 ? 6 : 4;
  }
  const h = bindWithoutListening(address, 0, family);
  if (h === undefined) return undefined;
  if (typeof h === 'number') {
    const code = getSystemErrorName(h);
    throw listenError(host, 0, false, Object.assign(new Error(code), { code, errno: h }));
  }
  const out: { port?: number } = {};
  if (h.getsockname(out) !== 0 || out.port === undefined) {
    h.close();
    return undefined;
  }
  let released = false;
  return {
    port: out.port,
    async release() {
      if (released) return;
      released = true;
      h.close();
    },
  };
}
