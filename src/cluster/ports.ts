/**
 * @module cluster/ports — listening-port questions the primary answers before workers bind.
 *
 * - Whether this Node.js and kernel support SO_REUSEPORT (`reusePort`, Node ≥ 22.12 / 23.1
 *   on Linux): two sockets bound to one port prove it. Older Node ignores the option, so
 *   the second bind fails.
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

function listenError(host: string, port: number, err: NodeJS.ErrnoException): L4lbError {
  const what = err.code === 'EADDRINUSE' ? 'address already in use' : err.code === 'EACCES' ? 'permission denied' : err.message;
  return new L4lbError(ErrorCodes.LISTEN, 'internal', `cannot listen on ${formatHostPort(host || '0.0.0.0', port)}: ${what}`, { cause: err });
}

function bind(host: string, port: number, reusePort: boolean): Promise<net.Server> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', (err: NodeJS.ErrnoException) => reject(listenError(host, port, err)));
    // No connection is ever accepted here: the socket only holds the port.
    s.on('connection', (c) => c.destroy());
    s.listen({ host: host || undefined, port, reusePort, exclusive: true, backlog: 1 }, () => resolve(s));
  });
}

function close(s: net.Server): Promise<void> {
  return new Promise((resolve) => s.close(() => resolve()));
}

/** True when sockets can share a port with SO_REUSEPORT here. */
export async function reusePortSupported(): Promise<boolean> {
  let a: net.Server | undefined;
  let b: net.Server | undefined;
  try {
    a = await bind('127.0.0.1', 0, true);
    b = await bind('127.0.0.1', (a.address() as net.AddressInfo).port, true);
    return true;
  } catch {
    return false;
  } finally {
    if (b) await close(b);
    if (a) await close(a);
  }
}

/**
 * Binds `host:port` (port 0 = a free one). With `hold` the socket stays open until
 * released (SO_REUSEPORT mode: workers bind next to it); otherwise it is closed at once
 * and only the port number is kept. Rejects with L4LB_ERR_LISTEN.
 */
export async function reservePort(host: string, port: number, reusePort: boolean, hold: boolean): Promise<PortHold> {
  const s = await bind(host, port, reusePort);
  const got = (s.address() as net.AddressInfo).port;
  if (!hold) {
    await close(s);
    return { port: got, release: async () => {} };
  }
  let released = false;
  return {
    port: got,
    async release() {
      if (released) return;
      released = true;
      await close(s);
    },
  };
}

/**
 * Binds a free port on `host` without listening and keeps it (see the module comment: shared
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
      throw listenError(host, 0, err as NodeJS.ErrnoException);
    }
    address = found.address;
    family = found.family === 6 ? 6 : 4;
  }
  const h = bindWithoutListening(address, 0, family);
  if (h === undefined) return undefined;
  if (typeof h === 'number') {
    const code = getSystemErrorName(h);
    throw listenError(host, 0, Object.assign(new Error(code), { code, errno: h }));
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
